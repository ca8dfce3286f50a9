"""The reliability matrix: every command against every awkward input that applies to it.

Each case must end in a one-line error naming the file (exit code 1) or a reported skip, never a
traceback, a hang or a half-written output.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cases import IMAGE_CASES, SIZE, mask_for
from conftest import made_once
from skinseg.cli import app
from skinseg.data.config import PrepareConfig
from skinseg.data.prepare import prepare_dataset
from skinseg.errors import SkinsegError

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


@pytest.mark.parametrize("case", sorted(IMAGE_CASES))
def test_segment_each_image_case(case, tiny_model_path, tmp_path):
    name, build, readable, size = IMAGE_CASES[case]
    source = tmp_path / name
    build(source)
    result = invoke("segment", source, "-o", tmp_path / "out", "--model", tiny_model_path, "--device", "cpu")
    target = tmp_path / "out" / f"{source.stem}_segmentation.png"
    if readable:
        assert result.exit_code == 0, result.output
        mask = Image.open(target)
        assert mask.mode == "L" and mask.size == size
    else:
        assert result.exit_code == 1
        assert name in result.output and "skipped" in result.output
        assert not target.exists()
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left behind


@pytest.mark.parametrize("case", sorted(IMAGE_CASES))
def test_prepare_each_image_case(case, tmp_path):
    name, build, readable, size = IMAGE_CASES[case]
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    build(root / "images" / name)
    mask_for(size or SIZE).save(root / "masks" / f"{(root / 'images' / name).stem}.png")
    mask_for(SIZE).save(root / "masks" / "fine.png")
    Image.fromarray(np.full((SIZE[1], SIZE[0], 3), 180, np.uint8)).save(root / "images" / "fine.png")
    result = invoke("prepare", "--data", root, "--out", tmp_path / "p", "--size", 16, "--workers", 1)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert manifest["count"] == (2 if readable else 1), result.output
    if not readable:
        assert [name in path for path, _ in manifest["skipped"]] == [True]
        assert "skipped" in result.output


@pytest.mark.parametrize("case", ["cut.jpg", "text.jpg"])
def test_evaluate_refuses_unreadable_images_by_name(case, tiny_model_path, tmp_path):
    name, build, _, _ = IMAGE_CASES["truncated_jpeg" if case == "cut.jpg" else "text_named_jpg"]
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    build(root / "images" / name)
    mask_for(SIZE).save(root / "masks" / f"{name[:-4]}.png")
    result = invoke("evaluate", "--data", root, "--model", tiny_model_path, "--device", "cpu")
    assert result.exit_code == 1 and name in result.output


@pytest.mark.parametrize(
    "kind,outcome",
    [
        ("other_size", "mask is 20x20 but its image is 40x30"),
        ("levels", "grey levels"),
        ("zeros", "empty mask"),
        ("all_lesion", None),
        ("zero_one", None),
        ("rgb", None),
    ],
)
def test_prepare_each_mask_case(kind, outcome, tmp_path):
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    IMAGE_CASES["non_ascii_spaces"][1](root / "images" / "a.png")
    mask = mask_for((20, 20)) if kind == "other_size" else mask_for(SIZE, kind)
    mask.save(root / "masks" / "a.png")
    if outcome is None:
        result = prepare_dataset(PrepareConfig(data=root, out=tmp_path / "p", size=16, workers=1))
        assert result.count == 1
    else:
        with pytest.raises(SkinsegError, match="no usable") as error:
            prepare_dataset(PrepareConfig(data=root, out=tmp_path / "p", size=16, workers=1))
        assert outcome in str(error.value) and "a.png" in str(error.value)


def test_a_folder_of_10000_empty_files(tiny_model_path, tmp_path):
    folder = tmp_path / "empties"
    folder.mkdir()
    empty = tmp_path / "empty.jpg"
    empty.touch()
    for i in range(10_000):  # hard links to one empty file: 10000 empty files, without allocating 10000 inodes
        os.link(empty, folder / f"e{i:05d}.jpg")
    result = invoke(
        "segment", folder, "-o", tmp_path / "out", "--model", tiny_model_path, "--device", "cpu", "--batch-size", 64
    )
    assert result.exit_code == 1
    assert "10000 failed" in result.output and "and 9980 more" in result.output
    assert not list((tmp_path / "out").glob("*.png"))
    result = invoke("prepare", "--data", folder, "--out", tmp_path / "p")
    assert result.exit_code == 1 and "no image/mask pairs found" in result.output
    shutil.rmtree(folder)  # here, beside the other worker's tests, rather than when pytest clears old runs


def test_symlink_loop_in_an_input_folder(tiny_model_path, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    IMAGE_CASES["grey_png"][1](folder / "g.png")
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    (folder / "self.png").symlink_to(folder / "self.png")  # a link to itself
    result = invoke("segment", folder, "-o", tmp_path / "out", "--model", tiny_model_path, "--device", "cpu")
    assert (tmp_path / "out" / "g_segmentation.png").is_file()
    assert result.exit_code == 1 and "self.png" in result.output


def test_output_folder_that_cannot_be_created(tiny_model_path, tmp_path):
    source = tmp_path / "a.png"
    IMAGE_CASES["grey_png"][1](source)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke("segment", source, "-o", blocker / "sub" / "m.png", "--model", tiny_model_path, "--device", "cpu")
    assert result.exit_code == 1 and "cannot write here" in result.output and str(blocker) in result.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_output_folder_not_writable(tiny_model_path, tmp_path):
    source = tmp_path / "a.png"
    IMAGE_CASES["grey_png"][1](source)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = invoke("segment", source, "-o", locked / "m.png", "--model", tiny_model_path, "--device", "cpu")
    assert result.exit_code == 1 and str(locked) in result.output


def test_disk_full_leaves_no_partial_file(tiny_model_path, tmp_path, monkeypatch):
    import errno

    from PIL import Image as PILImage

    source = tmp_path / "a.png"
    IMAGE_CASES["grey_png"][1](source)
    real_save = PILImage.Image.save

    def full_disk(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(PILImage.Image, "save", full_disk)
    result = invoke("segment", source, "-o", tmp_path / "out" / "m.png", "--model", tiny_model_path, "--device", "cpu")
    assert result.exit_code == 1 and "No space left on device" in result.output
    assert list((tmp_path / "out").iterdir()) == []


def test_disk_full_while_saving_weights(tmp_path, monkeypatch):
    import errno

    import skinseg.models.weights as weights
    from skinseg.models.config import ModelConfig
    from skinseg.models.improved_unet import ImprovedUNet

    def full_disk(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("safetensors.torch.save_file", full_disk)  # what fileio.save_tensors calls
    target = tmp_path / "w.safetensors"
    with pytest.raises(SkinsegError, match="No space left on device"):
        small = ModelConfig(base_filters=2, depth=2)
        weights.save_model(ImprovedUNet(small), target, weights.ModelInfo(config=small))
    assert list(tmp_path.iterdir()) == []


def _run_and_signal(args, sig, wait_for, tmp_path, timeout=120):
    """Run `skinseg ARGS` in a process of its own, send `sig` once `wait_for()` is true, return (exit code, stderr)."""
    from helpers import end_processes, start_cli

    process, _, stderr = start_cli(args, tmp_path, "command")
    try:
        deadline = time.time() + timeout
        while not wait_for() and time.time() < deadline and process.is_alive():
            time.sleep(0.05)
        if process.is_alive():  # else it ended before the signal, and the test says how (its exit code, stderr)
            with contextlib.suppress(ProcessLookupError):  # ended just now
                os.kill(process.pid, sig)
        process.join(timeout=60)
    finally:
        end_processes([process])  # hung: the test fails on its exit code, without this process left behind
    return process.exitcode, stderr.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_during_train_leave_a_resumable_run(sig, prepared_dir, tmp_path):
    run = tmp_path / "run"
    code, stderr = _run_and_signal(
        [
            "train",
            "--data",
            prepared_dir,
            "--out",
            run,
            "--epochs",
            50,
            "--base-filters",
            4,
            "--depth",
            3,
            "--device",
            "cpu",
        ],
        sig,
        lambda: (run / "state.json").is_file(),
        tmp_path,
    )
    assert code == 130 and "Traceback" not in stderr and "--resume" in stderr
    from skinseg.models.weights import load_model

    load_model(run / "last.safetensors")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_during_segment_leave_only_whole_masks(sig, tiny_model_path, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(300):
        IMAGE_CASES["grey_png"][1](folder / f"i{i:03d}.png")
    out = tmp_path / "out"
    code, stderr = _run_and_signal(
        ["segment", folder, "-o", out, "--model", tiny_model_path, "--device", "cpu", "--batch-size", 4],
        sig,
        lambda: len(list(out.glob("*.png"))) > 3,
        tmp_path,
    )
    assert code == 130 and "Traceback" not in stderr
    for mask in out.glob("*.png"):
        assert Image.open(mask).size == SIZE  # every mask under its real name is whole
    assert not list(out.glob(".*"))  # no temporary files left behind


@pytest.fixture(scope="session")
def raw_400(tmp_path_factory):
    """400 synthetic pairs, enough for prepare to be still at work when the signal comes; only read. Made once for
    both signals (the two tests may run on different pytest-xdist workers)."""
    from skinseg.data.synthetic import write_synthetic_dataset

    return made_once(tmp_path_factory, "raw400", lambda folder: write_synthetic_dataset(folder, count=400, size=64))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_during_prepare_leave_no_manifest(sig, raw_400, tmp_path):
    raw = raw_400
    out = tmp_path / "p"
    code, stderr = _run_and_signal(
        ["prepare", "--data", raw, "--out", out, "--workers", 1],
        sig,
        lambda: any(out.glob(".images.*.tmp.npy")),  # a unique name per run
        tmp_path,
    )
    assert code == 130 and "Traceback" not in stderr
    assert not (out / "manifest.json").exists()


@pytest.mark.slow
def test_kill_9_while_writing_weights_never_leaves_a_damaged_file(tmp_path):
    from helpers import forked_processes, save_weights_forever
    from skinseg.models.weights import load_model

    context = forked_processes()
    target = tmp_path / "w.safetensors"
    for attempt in range(3):
        first_write_done = context.Event()
        writer = context.Process(target=save_weights_forever, args=(target, first_write_done))
        writer.start()
        assert first_write_done.wait(timeout=120)  # this writer is in its write loop
        time.sleep(0.2 + 0.3 * attempt)
        writer.kill()
        writer.join()
        assert writer.exitcode == -signal.SIGKILL
        _model, _ = load_model(target)  # the file under the real name is always whole


@pytest.mark.slow
def test_kill_9_half_way_through_a_weights_write_keeps_the_previous_file(tmp_path):
    """The timed kills above rarely land inside the short write itself; this one always does."""
    from helpers import forked_processes, save_weights_then_die_half_way
    from skinseg.models.weights import load_model

    target = tmp_path / "w.safetensors"
    writer = forked_processes().Process(target=save_weights_then_die_half_way, args=(target,))
    writer.start()
    writer.join(timeout=120)
    assert writer.exitcode == -signal.SIGKILL
    _, info = load_model(target)
    assert info.threshold == 0.3  # the previous file, whole


def test_brackets_in_file_names_are_printed_as_they_are(tmp_path):
    root = tmp_path / "data [v2]"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    IMAGE_CASES["grey_png"][1](root / "images" / "ok.png")
    mask_for(SIZE).save(root / "masks" / "ok.png")
    (root / "images" / "[red]bad.jpg").write_bytes(b"")
    (root / "masks" / "[red]bad.png").write_bytes(b"")
    result = invoke("prepare", "--data", root, "--out", tmp_path / "p", "--size", 16, "--workers", 1)
    assert result.exit_code == 0 and "[red]bad.jpg" in result.output.replace("\n", "")


# ------------------------------------------------------------------ what the tool writes (issue 13, part A)
def _images(folder: Path, names=("a.png", "b.png")) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        IMAGE_CASES["grey_png"][1](folder / name)
    return [folder / name for name in names]


def test_segment_summary_never_overwrites_an_input(tiny_model_path, tmp_path):
    """`segment --summary victim/*.jpg -o out`: the shell makes the first image the summary file."""
    first, second = _images(tmp_path / "victim", ("a.jpg", "b.jpg"))
    before = first.read_bytes()
    for extra in ([], ["--overwrite"]):
        result = invoke(
            "segment", "--summary", first, second, "-o", tmp_path / "out", "--model", tiny_model_path, *extra
        )
        assert result.exit_code == 1 and "name it .csv or .json" in result.output
    assert first.read_bytes() == before and not (tmp_path / "out").exists()
    existing = tmp_path / "s.csv"
    existing.write_text("keep")
    result = invoke("segment", second, "-o", tmp_path / "out", "--summary", existing, "--model", tiny_model_path)
    assert result.exit_code == 1 and "exists (use --overwrite" in result.output and existing.read_text() == "keep"
    assert not (tmp_path / "out").exists()  # refused before any mask was written


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_summary_rows_are_written_as_each_image_is_done(suffix, tmp_path):
    from skinseg.inference.summary import SummaryWriter, summary_row

    path = tmp_path / f"s{suffix}"
    mask = np.zeros((4, 6), bool)
    mask[1:3, 2:4] = True
    with pytest.raises(KeyboardInterrupt), SummaryWriter(path) as rows:
        for name in ("a", "b"):
            rows.add(summary_row(Path(f"{name}.png"), Path(f"{name}_m.png"), mask, mask.astype(float), 0.1))
        raise KeyboardInterrupt  # Ctrl-C after two images: their rows stay
    if suffix == ".json":
        assert [row["image"] for row in json.loads(path.read_text())] == ["a.png", "b.png"]
    else:
        lines = path.read_text().splitlines()
        assert lines[0].startswith("image,mask,width") and len(lines) == 3 and lines[2].startswith("b.png,")


def test_segment_skip_existing_and_its_own_masks_are_not_inputs(tiny_model_path, tmp_path):
    folder = tmp_path / "in"
    _images(folder)
    args = ("segment", folder, "-o", folder, "--model", tiny_model_path, "--device", "cpu")
    assert invoke(*args).exit_code == 0
    again = invoke(*args)  # the masks now in the folder are not taken as images; a and b are there already
    assert again.exit_code == 1 and "2 failed" in again.output and "--skip-existing" in again.output
    assert "left out 2 mask or output file(s)" in again.output
    skipped = invoke(*args, "--skip-existing", "--summary", tmp_path / "s.csv", "--report", tmp_path / "r.html")
    assert skipped.exit_code == 0 and "wrote 0 mask(s)" in skipped.output and "2 already there" in skipped.output
    # the page shows this run's images; a trial read "no image was segmented or kept" beside "2 already there"
    assert "no --report written: no image was segmented in this run" in skipped.output
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "a_segmentation.png", "b.png", "b_segmentation.png"]
    assert invoke(*args, "--skip-existing", "--overwrite").exit_code == 1
    # Issue #21: with the masks there and the overlays asked for, every image was an "exists" error. Now the
    # overlays are added and the masks left as they are.
    masks = {p: p.read_bytes() for p in folder.glob("*_segmentation.png")}
    (folder / "a_segmentation.png").write_bytes(b"a mask made by hand")  # not a PNG: it would not survive a rewrite
    completed = invoke(*args, "--skip-existing", "--overlay")
    assert completed.exit_code == 0 and "2 completed (mask there, other outputs added)" in completed.output
    assert sorted(p.name for p in folder.glob("*_overlay.png")) == ["a_overlay.png", "b_overlay.png"]
    assert (folder / "a_segmentation.png").read_bytes() == b"a mask made by hand"
    assert (folder / "b_segmentation.png").read_bytes() == masks[folder / "b_segmentation.png"]
    # A trial's unquoted `segment DIR/* -o OUT`: the shell names the masks and overlays one by one, and they
    # were segmented without a word. They still are (a file named on its own is an input), and are named.
    expanded = invoke("segment", *sorted(folder.iterdir()), "-o", tmp_path / "out", "--model", tiny_model_path)
    assert "wrote 5 mask(s)" in expanded.output  # and a_segmentation.png, no longer a PNG, is reported
    assert "4 input(s) named like masks or outputs" in expanded.output
    assert "were given one by one, so taken as images" in expanded.output
    # into the folder itself, a's mask would be written over the input a_segmentation.png: refused, with why
    into_itself = invoke("segment", *sorted(folder.iterdir()), "-o", folder, "--model", tiny_model_path)
    assert into_itself.exit_code == 1 and "refusing to write over it" in into_itself.output
    assert "(named like a mask or an output: give the folder or quote the pattern" in into_itself.output


@pytest.mark.parametrize(
    "suffix,fmt", [(".png", "PNG"), (".tif", "TIFF"), (".bmp", "BMP"), (".jpg", None), (".webp", None), (".gif", None)]
)
def test_a_single_mask_takes_the_format_of_its_suffix_or_is_refused(suffix, fmt, tiny_model_path, tmp_path):
    (source,) = _images(tmp_path / "in", ("a.png",))
    target = tmp_path / f"m{suffix}"
    result = invoke("segment", source, "-o", target, "--model", tiny_model_path, "--device", "cpu")
    if fmt is None:
        assert result.exit_code == 1 and "name it .png, .tif or .bmp" in result.output and not target.exists()
    else:
        assert result.exit_code == 0, result.output
        with Image.open(target) as mask:
            assert mask.format == fmt and mask.mode == "L" and set(np.unique(np.array(mask))) <= {0, 255}


def test_evaluate_never_writes_over_an_input_or_an_existing_file(tmp_path):
    truth, pred = tmp_path / "truth", tmp_path / "pred"
    for folder in (truth, pred):
        folder.mkdir()
        mask_for(SIZE).save(folder / "a.png")
    victim = truth / "a.png"
    before = victim.read_bytes()
    scoring = ("evaluate", "--pred", pred, "--truth", truth)
    assert invoke(*scoring, "--csv", victim, "--overwrite").exit_code == 1  # a mask is not a .csv
    (truth / "old.json").write_text("{}")
    result = invoke(*scoring, "--json", truth / "old.json", "--overwrite")
    assert result.exit_code == 1 and "an input of this command" in result.output
    report = tmp_path / "r.json"
    report.write_text("keep")
    result = invoke(*scoring, "--json", report)
    assert result.exit_code == 1 and "exists (use --overwrite" in result.output and report.read_text() == "keep"
    assert invoke(*scoring, "--json", report, "--overwrite").exit_code == 0 and "macro_average" in report.read_text()
    result = invoke(*scoring, "--figures", report)
    assert result.exit_code == 1 and "--figures takes a folder" in result.output
    drawn = invoke(*scoring, "--figures", tmp_path / "f")  # issue #21: cases.png was dropped without a word
    assert drawn.exit_code == 0 and "--figures draws the Dice histogram only" in drawn.output
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["dice_histogram.png"]
    result = invoke(*scoring, "--figures", tmp_path / "f")
    assert result.exit_code == 1 and "dice_histogram.png: exists" in result.output
    assert victim.read_bytes() == before


def test_evaluate_report_is_checked_like_every_report_before_the_scoring(tiny_model_path, prepared_dir, tmp_path):
    """Issue #21 (and #20's case 4): `--report` had no input or suffix check, and a folder failed after scoring;
    a new --csv inside an input folder was written although the docs say it is refused."""
    import shutil

    truth, pred = tmp_path / "truth", tmp_path / "pred"
    for folder in (truth, pred):
        folder.mkdir()
        mask_for(SIZE).save(folder / "a.png")
    prepared = tmp_path / "prepared"
    shutil.copytree(prepared_dir, prepared)
    model = tmp_path / "m.safetensors"
    shutil.copy(tiny_model_path, model)
    kept = {p: p.read_bytes() for p in (truth / "a.png", pred / "a.png", prepared / "manifest.json", model)}
    scoring = ("evaluate", "--pred", pred, "--truth", truth)
    scoring_model = ("evaluate", "--model", model, "--data", prepared, "--device", "cpu")
    cases = [
        ((*scoring, "--report", pred / "a.png", "--overwrite"), "--report writes HTML: name the file .html"),
        ((*scoring, "--report", pred / "page.html"), "an input of this command"),
        ((*scoring, "--csv", truth / "new.csv"), "an input of this command"),
        ((*scoring, "--report", tmp_path / "r.txt"), "--report writes HTML"),
        ((*scoring_model, "--report", prepared / "manifest.json", "--overwrite"), "--report writes HTML"),
        ((*scoring_model, "--report", prepared / "r.html"), "an input of this command"),
        ((*scoring_model, "--report", model.with_suffix(".html").mkdir() or model.with_suffix(".html")), "is a folder"),
    ]
    for command, words in cases:
        result = invoke(*command)
        assert result.exit_code == 1 and words in result.output, (command, result.output)
        assert "Evaluating" not in result.output  # refused before any scoring
    assert {p: p.read_bytes() for p in kept} == kept
    assert not (truth / "new.csv").exists() and not (pred / "page.html").exists()


def test_export_refuses_an_existing_file_and_the_model_itself(tiny_model_path, tmp_path):
    existing = tmp_path / "m.onnx"
    existing.write_text("keep")
    result = invoke("export", tiny_model_path, "-o", existing)
    assert result.exit_code == 1 and "exists (use --overwrite" in result.output and existing.read_text() == "keep"
    result = invoke("export", tiny_model_path, "-o", tiny_model_path, "--overwrite")
    assert result.exit_code == 1 and "named .onnx" in result.output


def test_train_needs_data_and_never_replaces_a_run_without_overwrite(prepared_dir, tmp_path):
    result = invoke("train", "--out", tmp_path / "r")
    assert result.exit_code == 1 and "give --data" in result.output
    done = tmp_path / "done"
    done.mkdir()
    (done / "best.safetensors").write_text("a finished run's weights")
    result = invoke("train", "--data", prepared_dir, "--out", done, "--epochs", 1)
    assert result.exit_code == 1 and "holds a run" in result.output and "--resume" in result.output
    assert (done / "best.safetensors").read_text() == "a finished run's weights"
    assert invoke("train", "--resume", done, "--overwrite").exit_code == 1


def test_resume_extends_a_run_and_refuses_other_options(prepared_dir, tmp_path):
    run = tmp_path / "run"
    tiny = ("--base-filters", 4, "--depth", 3, "--batch-size", 8, "--max-train-images", 8, "--device", "cpu")
    assert invoke("train", "--data", prepared_dir, "--out", run, "--epochs", 1, *tiny).exit_code == 0
    for option in (["--lr", 1], ["--data", prepared_dir], ["--out", tmp_path / "x"], ["--init", "bundled"]):
        result = invoke("train", "--resume", run, "--epochs", 2, *option)
        assert (
            result.exit_code == 1 and "cannot be given with --resume" in result.output and "--epochs" in result.output
        )
    result = invoke("train", "--resume", run, "--epochs", 2, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert len(json.loads((run / "state.json").read_text())["history"]) == 2
    assert json.loads((run / "config.json").read_text())["epochs"] == 2
    result = invoke("train", "--resume", run, "--epochs", 1, "--device", "cpu")
    assert result.exit_code == 1 and "finished 2 epochs" in result.output


def test_an_interrupt_in_the_first_epoch_says_to_restart(prepared_dir, tmp_path):
    from conftest import TINY
    from skinseg.errors import TrainingInterrupted
    from skinseg.training.config import TrainConfig
    from skinseg.training.loop import train

    def interrupt(*_):
        raise KeyboardInterrupt

    config = TrainConfig(data=prepared_dir, out=tmp_path / "r", epochs=2, device="cpu", max_train_images=8, **TINY)
    with pytest.raises(TrainingInterrupted, match="start it again") as error:
        train(config, on_step=interrupt)
    assert "--resume" not in str(error.value)
    result = invoke("train", "--resume", tmp_path / "r")
    assert result.exit_code == 1 and "start it again without --resume" in result.output


def test_output_folders_that_cannot_be_made_are_one_line(prepared_dir, raw_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    truth, pred = tmp_path / "truth", tmp_path / "pred"  # two folders: one as both is refused (issue #33)
    for folder in (truth, pred):
        folder.mkdir()
        mask_for(SIZE).save(folder / "a.png")
    for args in (
        ("prepare", "--data", raw_dir, "--out", blocker / "p", "--size", 16, "--workers", 1),
        ("train", "--data", prepared_dir, "--out", blocker / "r", "--epochs", 1, "--device", "cpu"),
        ("evaluate", "--pred", pred, "--truth", truth, "--figures", blocker / "f"),
    ):
        result = invoke(*args)
        assert result.exit_code == 1, args
        assert len(result.output.strip().splitlines()) == 1 and str(blocker) in result.output, result.output


@pytest.mark.parametrize("command", ["segment", "train", "evaluate", "prepare", "export"])
def test_help_shows_no_python_type_names(command):
    text = invoke(command, "--help").output
    assert "list[" not in text and "{" not in text and "range>" not in text


def test_prepare_writes_only_a_folder_of_its_own(raw_dir, tmp_path):
    """Issue #20 case 3, found again by #21's attacker trial: the user's manifest.json and images.npy were replaced,
    --out could be the raw folder or inside it, and another data set's cache was replaced without a word."""
    import shutil

    raw = Path(shutil.copytree(raw_dir, tmp_path / "raw"))
    user = tmp_path / "userdir"
    user.mkdir()
    for name, text in (("manifest.json", "precious"), ("images.npy", "x"), ("masks.npy", "y")):
        (user / name).write_text(text)
    before = {p: p.read_bytes() for p in [*raw.rglob("*.png"), *user.iterdir()]}
    cases = [
        (user, "holds files that are not a skinseg cache"),
        (raw, "is the data folder, an input of this command"),
        (raw / "images", "lies in the data folder"),
        (tmp_path, "holds the data folder"),  # the data inside --out
    ]
    for out, words in cases:
        result = invoke("prepare", "--data", raw, "--out", out, "--size", "32", "--workers", "1")
        assert result.exit_code == 1 and words in result.output, (out, result.output)
    other = tmp_path / "other"
    assert invoke("prepare", "--data", raw_dir, "--out", other, "--size", "32", "--workers", "1").exit_code == 0
    replaced = invoke("prepare", "--data", raw, "--out", other, "--size", "32", "--workers", "1")
    assert replaced.exit_code == 1 and f"holds the prepared set of {raw_dir.resolve()}" in replaced.output
    assert invoke("prepare", "--data", raw, "--out", other, "--size", "32", "--workers", "1", "--force").exit_code == 0
    assert {p: p.read_bytes() for p in before} == before and not (raw / "manifest.json").exists()


def test_train_never_writes_into_its_data_or_over_its_init_weights(prepared_dir, tiny_model_path, tmp_path):
    """Issue #20 case 1 and #21's trial: `train --data prep --out prep` wrote a run into the data folder, and
    `--init run/best.safetensors --out run --overwrite` deleted the weights before reading them."""
    import shutil

    prepared = Path(shutil.copytree(prepared_dir, tmp_path / "prep"))
    for out in (prepared, prepared / "run", tmp_path):
        result = invoke("train", "--data", prepared, "--out", out, "--epochs", "1")
        assert result.exit_code == 1 and "an input of this command" in result.output, result.output
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tiny_model_path, run / "best.safetensors")
    result = invoke("train", "--data", prepared, "--out", run, "--init", run / "best.safetensors", "--overwrite")
    assert result.exit_code == 1 and "holds the --init weights" in result.output
    assert (run / "best.safetensors").read_bytes() == Path(tiny_model_path).read_bytes()
    assert sorted(p.name for p in prepared.iterdir()) == sorted(p.name for p in Path(prepared_dir).iterdir())


def test_evaluate_figures_never_go_into_an_input_folder(tmp_path):
    """#21's trial: --figures pred wrote dice_histogram.png among the masks, and the next evaluate scored it."""
    truth, pred = tmp_path / "truth", tmp_path / "pred"
    for folder in (truth, pred):
        folder.mkdir()
        mask_for(SIZE).save(folder / "a.png")
    for figures in (pred, truth, pred / "figs"):
        result = invoke("evaluate", "--pred", pred, "--truth", truth, "--figures", figures)
        assert result.exit_code == 1 and "an input of this command" in result.output
    assert sorted(p.name for p in pred.iterdir()) == ["a.png"] and sorted(p.name for p in truth.iterdir()) == ["a.png"]


def test_a_mistyped_data_folder_leaves_the_run_that_overwrite_would_replace(trained_run, tmp_path):
    """Issue #20 case 1: `train --out RUN --overwrite` with a mistyped --data deleted the finished run, then said
    that the data folder was not found."""
    import shutil

    run = Path(shutil.copytree(trained_run.run_dir, tmp_path / "run"))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    result = invoke("train", "--data", tmp_path / "typo", "--out", run, "--overwrite")
    assert result.exit_code == 1 and "typo: data folder not found" in result.output
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_segment_never_writes_over_its_model(tiny_model_path, tmp_path):
    """Issue #20 case 5: `--summary` or `--report` naming the model file replaced it with --overwrite."""
    import shutil

    model = Path(shutil.copy(tiny_model_path, tmp_path / "m.json"))  # a model file that a summary could be named
    (source,) = _images(tmp_path / "in", ("a.png",))
    before = model.read_bytes()
    result = invoke("segment", source, "-o", tmp_path / "o.png", "--model", model, "--summary", model, "--overwrite")
    assert result.exit_code == 1 and "an input of this command" in result.output and model.read_bytes() == before
