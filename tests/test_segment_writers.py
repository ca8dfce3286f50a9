"""Issue #33: segment's outputs under a second writer, long names, clashing names, interrupts and leftovers."""

from __future__ import annotations

import csv
import errno
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock
from PIL import Image

from skinseg.errors import ConfigError, Interrupted, SkinsegError
from skinseg.fileio import _temporary_name, atomic_path, remove_temporaries
from skinseg.inference.config import MAX_CROP_SIZE, SegmentConfig
from skinseg.inference.model_run import ModelRun
from skinseg.inference.segment import segment_paths
from skinseg.inputs import OUTPUT_NAMES
from skinseg.plan import FOLDER_LOCK, Plan
from test_cli import invoke


def images_in(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), np.uint8)).save(folder / name)
    return folder


def config_for(model: Path, inputs: Path, output: Path, **settings) -> SegmentConfig:
    return SegmentConfig(inputs=(inputs,), output=output, run=ModelRun(model=model, device="cpu"), **settings)


def test_a_mask_written_by_another_command_meanwhile_is_left_as_it_is(tiny_model_path, tmp_path):
    """Case 1: a second segment into one folder wrote its masks over those the first wrote meanwhile, and the
    first's summary described masks that were no longer its own. Without `overwrite`, a mask never replaces a
    file, even one that appeared after the plan; that image is reported and has no summary row."""
    images = images_in(tmp_path / "in", "a.png", "b.png")
    out = tmp_path / "out"
    theirs = out / "b_segmentation.png"

    def another_command_writes(done: int, total: int) -> None:
        if done == 0:
            out.mkdir(exist_ok=True)
            theirs.write_bytes(b"another command's mask")

    config = config_for(tiny_model_path, images, out, summary=tmp_path / "s.csv")
    result = segment_paths(config, on_progress=another_command_writes)
    assert theirs.read_bytes() == b"another command's mask"
    assert [(s.name, "written by another command meanwhile" in why) for s, why in result.failed] == [("b.png", True)]
    with open(tmp_path / "s.csv", newline="") as handle:
        assert [Path(row["mask"]).name for row in csv.DictReader(handle)] == ["a_segmentation.png"]
    assert sorted(p.name for p in out.iterdir()) == ["a_segmentation.png", "b_segmentation.png"]  # no temporary


def test_a_second_segment_into_a_folder_being_written_is_refused(tiny_model_path, tmp_path):
    images = images_in(tmp_path / "in", "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".lock").write_text("the user's own")  # not skinseg's: left as it is
    with FileLock(out / FOLDER_LOCK), pytest.raises(SkinsegError, match="another skinseg command is writing it now"):
        segment_paths(config_for(tiny_model_path, images, out))
    assert not (out / "a_segmentation.png").exists()
    segment_paths(config_for(tiny_model_path, images, out))
    assert sorted(p.name for p in out.iterdir()) == [".lock", "a_segmentation.png"]  # its lock removed
    assert (out / ".lock").read_text() == "the user's own"


def test_atomic_path_without_replace_never_writes_over_a_file(tmp_path):
    target = tmp_path / "m.png"
    target.write_bytes(b"theirs")
    with pytest.raises(SkinsegError, match="another command meanwhile"), atomic_path(target, replace=False) as tmp:
        tmp.write_bytes(b"ours")
    assert target.read_bytes() == b"theirs" and sorted(tmp_path.iterdir()) == [target]


def test_a_file_system_without_hard_links_still_never_writes_over_a_file(tmp_path, monkeypatch):
    def no_links(source, target):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr("os.link", no_links)
    fresh, taken = tmp_path / "fresh.png", tmp_path / "taken.png"
    taken.write_bytes(b"theirs")
    with atomic_path(fresh, replace=False) as tmp:
        tmp.write_bytes(b"ours")
    with pytest.raises(SkinsegError, match="another command meanwhile"), atomic_path(taken, replace=False) as tmp:
        tmp.write_bytes(b"ours")
    assert fresh.read_bytes() == b"ours" and taken.read_bytes() == b"theirs"


def test_a_long_name_is_skipped_and_the_batch_goes_on(tiny_model_path, tmp_path):
    """Case 9: a 240-character file name stopped the whole batch after the first image ("File name too long"):
    its temporary's name was longer than the file system takes. One whose mask's name is too long is skipped."""
    long_ok, too_long = "x" * 236 + ".png", "y" * 246 + ".png"  # masks of 253 and 263 characters
    images = images_in(tmp_path / "in", "a.png", long_ok, too_long, "z.png")
    coco = tmp_path / "c.json"
    result = segment_paths(config_for(tiny_model_path, images, tmp_path / "out", coco=coco))
    assert sorted(p.name[:3] for p in result.written) == ["a_s", "xxx", "z_s"]
    assert [(s.name, "name is 263 bytes long" in why) for s, why in result.failed] == [(too_long, True)]
    assert coco.exists()
    # into the folder that now exists (a name too long cannot even be asked whether it exists there)
    again = segment_paths(config_for(tiny_model_path, images, tmp_path / "out", skip_existing=True))
    assert len(again.existing) == 3 and [s.name for s, _ in again.failed] == [too_long]


def test_two_images_of_one_name_segment_the_first_and_skip_the_other(tiny_model_path, tmp_path):
    """Case 16: good.jpg and good.png in one folder refused the whole batch."""
    images = images_in(tmp_path / "in", "good.png", "good.tif", "other.png")
    result = segment_paths(config_for(tiny_model_path, images, tmp_path / "out"))
    assert sorted(p.name for p in result.written) == ["good_segmentation.png", "other_segmentation.png"]
    [(skipped, why)] = result.failed
    assert skipped.name == "good.tif" and "good_segmentation.png is " in why and "good.png's" in why
    cli = invoke("segment", images, "-o", tmp_path / "again")
    assert cli.exit_code == 1 and "skipped" in cli.output and "rename one to segment both" in cli.output


def test_an_interrupted_segment_says_how_to_continue(tiny_model_path, tmp_path):
    """Case 17: an interrupted segment printed only "interrupted"."""
    images = images_in(tmp_path / "in", "a.png", "b.png")

    def interrupt_after_one(done: int, total: int) -> None:
        if done == 1:
            raise KeyboardInterrupt

    config = config_for(tiny_model_path, images, tmp_path / "out")
    with pytest.raises(Interrupted, match=r"after 1 of 2 images.*the same command with `skip_existing`"):
        segment_paths(config, on_progress=interrupt_after_one)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a_segmentation.png"]
    overwriting = config_for(tiny_model_path, images, tmp_path / "out", overwrite=True)  # review: it advised a
    with pytest.raises(Interrupted, match=r"with `skip_existing` in place of `overwrite` segments the rest"):
        segment_paths(overwriting, on_progress=interrupt_after_one)  # command that is refused


def test_repeated_inputs_are_named_and_a_batch_with_nothing_to_do_writes_no_empty_coco_or_report(
    tiny_model_path, tmp_path
):
    """Case 17: duplicate inputs were merged without a note; a batch whose every mask exists wrote an empty
    `--coco` and a `--report`."""
    images = images_in(tmp_path / "in", "a.png")
    out = tmp_path / "out"
    first = invoke("segment", images, images / "a.png", "-o", out, "--model", tiny_model_path)
    said = f"1 input(s) are the same file as another, segmented once (first: {images / 'a.png'}, which is"
    assert first.exit_code == 0 and said in first.output
    outputs = ("--coco", tmp_path / "c.json", "--report", tmp_path / "r.html")
    again = invoke("segment", images, "-o", out, "--model", tiny_model_path, *outputs)
    assert again.exit_code == 1 and "no --coco written: no image was segmented or kept" in again.output
    assert "no --report written: no image was segmented in this run" in again.output
    assert not (tmp_path / "c.json").exists() and not (tmp_path / "r.html").exists()


def test_a_huge_crop_size_is_refused_with_the_other_settings(tmp_path):
    """Case 8: `--crop-size 100000` grew to 24 GB and was killed."""
    with pytest.raises(ConfigError, match=f"`crop_size` must be between 1 and {MAX_CROP_SIZE}, got 100000"):
        SegmentConfig(inputs=(tmp_path,), output=tmp_path / "o", crops=tmp_path / "c", crop_size=100000)
    result = invoke("segment", tmp_path, "-o", tmp_path / "o", "--crops", tmp_path / "c", "--crop-size", 100000)
    assert result.exit_code == 1 and "--crop-size must be between" in result.output


def test_a_killed_segments_temporaries_are_removed_by_the_next_one(tiny_model_path, tmp_path):
    """Case 15: temporaries from a killed segment stayed in the output folder after a later run."""
    images = images_in(tmp_path / "in", "a.png")
    out = tmp_path / "out"
    out.mkdir()
    long_name = "y" * 230 + "_segmentation.png"  # its temporary keeps the name's start and end
    leftovers = [".a_segmentation.png.k2x_9abc.png", ".b_overlay.png.0123abcd.png"]
    leftovers.append(f".{_temporary_name(long_name)}.q1w2e3r4.png")
    assert len(leftovers[-1]) <= 255 and leftovers[-1].endswith("_segmentation.png.q1w2e3r4.png")
    kept = [".notes.txt", ".report.html.abcdefgh.html", ".holiday.png.12345678.png"]  # not segment's outputs
    for name in leftovers + kept:
        (out / name).write_bytes(b"")
    segment_paths(config_for(tiny_model_path, images, out))
    assert sorted(p.name for p in out.iterdir()) == sorted([*kept, "a_segmentation.png"])
    assert remove_temporaries(out, OUTPUT_NAMES) == []


def test_a_runs_or_caches_lock_is_removed_when_the_command_ends(tmp_path):
    """Case 15: the `.lock` inside a run or cache folder stayed, although the docs say locks are removed."""
    plan = Plan("t")
    plan.write(tmp_path / "run", "`out`", owned=True, lock=True)
    with plan.hold():
        (tmp_path / "run" / "weights").write_bytes(b"")
        assert (tmp_path / "run" / ".lock").exists()
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["weights"]


def test_a_lock_that_cannot_be_made_names_the_users_path(tmp_path, monkeypatch):
    """Case 13: a read-only output location was reported through the lock file (`.s.csv.lock: cannot lock`)."""

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(FileLock, "acquire", read_only)
    plan = Plan("t")
    plan.write(tmp_path / "s.csv", "`summary`", lock=True)
    with pytest.raises(SkinsegError) as caught, plan.hold():
        pass
    assert str(caught.value) == f"{tmp_path / 's.csv'}: cannot write here: Read-only file system"


def test_a_long_temporary_name_is_cut_between_characters():
    """Found by review: cut by bytes inside a UTF-8 character, the name was invalid UTF-8 (APFS refuses it)."""
    name = "é" * 120 + "_segmentation.png"  # 257 bytes
    cut = _temporary_name(name)
    assert len(cut.encode()) <= 200 and cut.endswith("_segmentation.png") and "~" in cut
    cut.encode("utf-8")  # strict: every character whole


def test_an_error_other_than_no_hard_links_is_not_taken_for_it(tmp_path, monkeypatch):
    """Found by review: any OSError from os.link (a full disk, a quota) fell back to the check-then-move."""

    def full_disk(source, target):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("os.link", full_disk)
    refused = pytest.raises(SkinsegError, match="could not write file: No space left")
    with refused, atomic_path(tmp_path / "m.png", replace=False) as tmp:
        tmp.write_bytes(b"ours")
    assert list(tmp_path.iterdir()) == []
