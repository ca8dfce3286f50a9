"""skinseg.plan: the one rule for what a command reads and writes (issue #20), and each command's plan of it."""

from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from typer.testing import CliRunner

import skinseg
from cases import IMAGE_CASES
from skinseg.adaptation.config import AdaptConfig
from skinseg.adaptation.pipeline import plan_adapt
from skinseg.cli import app
from skinseg.data.cache import plan_prepare
from skinseg.data.config import PrepareConfig
from skinseg.errors import Interrupted, SkinsegError
from skinseg.evaluation.config import EvaluateConfig
from skinseg.evaluation.reports import plan_evaluation
from skinseg.inference.config import ExportConfig, MeasureConfig, SegmentConfig
from skinseg.inference.measure import MeasureResult, plan_measurement
from skinseg.inference.model_run import ModelRun
from skinseg.inference.onnx import plan_export
from skinseg.inference.segment import SegmentResult, plan_segmentation
from skinseg.inference.summary import SUMMARY_COLUMNS
from skinseg.plan import Output, Plan, lock_file
from skinseg.training.config import TrainConfig
from skinseg.training.runs import plan_training

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def _images(folder: Path, names=("a.png", "b.png")) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        IMAGE_CASES["grey_png"][1](folder / name)
    return [folder / name for name in names]


# ------------------------------------------------------------------------------------------------ the rule
def test_an_input_is_never_written_not_even_with_overwrite(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.png").write_bytes(b"image")
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"weights")
    (tmp_path / "link.json").symlink_to(model)
    cases = [
        (model, {}, "is the model, an input of this command"),
        (tmp_path / "link.json", {}, "is the model, an input of this command"),  # through a link
        (data / "new.csv", {}, "lies in the data folder"),
        (data, {"folder": True}, "is the data folder"),
        (tmp_path, {"owned": True}, "holds the data folder"),
    ]
    for path, kind, words in cases:
        plan = Plan("test", overwrite=True)
        plan.read(data, "data folder", folder=True)
        plan.read(model, "model")
        plan.write(path, "--out", **kind)
        with pytest.raises(SkinsegError, match=words):
            plan.check()
    assert model.read_bytes() == b"weights" and (data / "a.png").read_bytes() == b"image"


def test_an_existing_output_is_replaced_only_with_overwrite_or_when_the_plan_continues_it(tmp_path):
    existing = tmp_path / "s.csv"
    existing.write_text("mine")
    plan = Plan("test")
    plan.write(existing, "--summary")
    with pytest.raises(SkinsegError, match="exists \\(use `overwrite`"):
        plan.check()
    Plan("test", overwrite=True, outputs=[Output(existing, "--summary")]).check()
    Plan("test", outputs=[Output(existing, "--summary", continued=True)]).check()


def test_outputs_that_are_missing_inputs_folders_files_or_named_twice_are_one_line(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    plans = [
        (Plan("t", inputs=[]), lambda p: p.read(tmp_path / "typo", "data folder"), "typo: data folder not found"),
        (Plan("t"), lambda p: p.write(tmp_path / "folder", "--report"), "is a folder; --report takes a file name"),
        (Plan("t"), lambda p: p.write(tmp_path / "file", "--figures", folder=True), "--figures takes a folder"),
        (
            Plan("t"),
            lambda p: (p.write(tmp_path / "r.html", "--report"), p.write(tmp_path / "r.html", "--summary")),
            "--report and --summary name one file",
        ),
    ]
    for plan, build, words in plans:
        build(plan)
        with pytest.raises(SkinsegError, match=words):
            plan.check()


def test_a_held_output_refuses_a_second_command_at_once_and_leaves_no_lock_beside_the_users_files(tmp_path):
    report = tmp_path / "r.html"
    first, second = Plan("first"), Plan("second")
    for plan in (first, second):
        plan.write(report, "--report", lock=True)
    refused = pytest.raises(SkinsegError, match=r"another skinseg command is writing it now.*another --report")
    with first.hold(), refused, second.hold():
        pass
    with second.hold():  # released
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert lock_file(Output(tmp_path / "run", "--out", folder=True, owned=True)) == tmp_path / "run" / ".lock"


# ------------------------------------------------------------------------------ every command's plan
PLANNERS = {
    PrepareConfig: lambda c: plan_prepare(c),
    TrainConfig: lambda c: plan_training(c),
    SegmentConfig: lambda c: plan_segmentation(c, SegmentResult(c.output)).files,
    EvaluateConfig: lambda c: plan_evaluation(c, ["data"]),
    ExportConfig: lambda c: plan_export(c),
    MeasureConfig: lambda c: plan_measurement(c, MeasureResult()).files,
    AdaptConfig: lambda c: plan_adapt(c),
}


def _path_fields(cls) -> list[tuple[str, bool]]:
    """(name, is a tuple of paths) of each field of `cls` that holds a path."""
    hints = typing.get_type_hints(cls)
    found = []
    for field in dataclasses.fields(cls):
        text = str(hints[field.name])
        if "Path" in text:
            found.append((field.name, text.startswith("tuple")))
    return found


def _config_classes() -> set[type]:
    """Every frozen config dataclass in skinseg with a path field."""
    found = set()
    for module_info in pkgutil.walk_packages(skinseg.__path__, "skinseg."):
        if module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and dataclasses.is_dataclass(value)
                and value.__name__.endswith("Config")
                and value.__module__ == module.__name__
                and _path_fields(value)
            ):
                found.add(value)
    return found


def test_every_command_config_has_a_plan():
    assert _config_classes() == set(PLANNERS)


@pytest.mark.parametrize("cls", list(PLANNERS), ids=lambda c: c.__name__)
def test_every_path_field_of_every_config_is_an_input_or_an_output(cls, tmp_path):
    """Issue #20: a path option that the plan does not know is an output nobody checks."""
    (image,) = _images(tmp_path / "images", ("a.png",))
    base = {
        PrepareConfig: dict(data=tmp_path / "raw", out=tmp_path / "cache"),
        TrainConfig: dict(data=tmp_path / "prep"),
        SegmentConfig: dict(inputs=(image,), output=tmp_path / "masks"),
        EvaluateConfig: dict(data=tmp_path / "prep"),
        ExportConfig: dict(run=ModelRun(), out=tmp_path / "m.onnx"),
        MeasureConfig: dict(inputs=(image,), csv_file=tmp_path / "m.csv"),
        AdaptConfig: dict(data=tmp_path / "raw", out=tmp_path / "a.safetensors"),
    }[cls]
    (tmp_path / "model-x").write_bytes(b"")  # segment and measure check their plans as they make them
    (tmp_path / "masks-x").mkdir()
    for name, several in _path_fields(cls):
        value = image if name == "inputs" else tmp_path / _NAMES.get((cls, name), _NAMES.get(name, f"{name}-x"))
        changes = {name: (value,) if several else value}
        if name in ("pred", "truth"):  # they go together
            changes = {"data": None, "pred": tmp_path / "pred-x", "truth": tmp_path / "truth-x"}
        config = cls(**{**base, **changes})
        assert value in PLANNERS[cls](config).paths, f"{cls.__name__}.{name} is neither an input nor an output"


_NAMES = {
    "report": "r.html",
    "csv_file": "e.csv",
    "json_file": "e.json",
    "summary": "t.csv",
    "split_file": "s.csv",
    "coco": "c.json",
    (ExportConfig, "out"): "e.onnx",
    (AdaptConfig, "out"): "a.safetensors",
}


# ----------------------------------------------------------------------------- the cases of issue #20
def test_train_leaves_the_users_own_files_in_out_without_overwrite(prepared_dir, tmp_path):
    """Case 2: a folder with the user's config.json, metrics.csv and curves.png (no weights) was overwritten."""
    out = tmp_path / "userrun"
    out.mkdir()
    mine = {name: f"mine: {name}" for name in ("config.json", "metrics.csv", "curves.png")}
    for name, text in mine.items():
        (out / name).write_text(text)
    result = invoke("train", "--data", prepared_dir, "--out", out, "--epochs", "1", "--device", "cpu")
    assert result.exit_code == 1 and "exists (use --overwrite to replace it)" in result.output
    assert {name: (out / name).read_text() for name in mine} == mine


def test_a_second_train_into_a_run_being_trained_is_refused_at_once(trained_run, prepared_dir, tmp_path):
    """Case 8: two trains (or a --resume while the run trains) into one folder mixed their files."""
    run = Path(shutil.copytree(trained_run.run_dir, tmp_path / "run"))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with plan_training(TrainConfig(data=prepared_dir, out=run, resume=run)).hold():  # another process trains it
        for extra in (["--resume", run, "--epochs", "6"], ["--data", prepared_dir, "--out", run, "--overwrite"]):
            result = invoke("train", *extra, "--device", "cpu")
            assert result.exit_code == 1 and "another skinseg command is writing it now" in result.output, result.output
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.name in before} == before


def test_a_second_segment_into_one_summary_is_refused_at_once(tiny_model_path, tmp_path):
    """Case 7: two segments with one --summary both exited 0, their rows lost and interleaved."""
    images = _images(tmp_path / "in")
    summary = tmp_path / "s.csv"
    holder = Plan("segment")
    holder.write(summary, "--summary", lock=True)
    with holder.hold():
        result = invoke("segment", *images, "-o", tmp_path / "o", "--model", tiny_model_path, "--summary", summary)
    assert result.exit_code == 1 and "another skinseg command is writing it now" in result.output
    assert not summary.exists() and not (tmp_path / "o").exists()


def test_a_second_evaluate_into_one_report_is_refused_at_once(tmp_path):
    from cases import SIZE, mask_for

    for folder in ("truth", "pred"):
        (tmp_path / folder).mkdir()
        mask_for(SIZE).save(tmp_path / folder / "a.png")
    holder = Plan("evaluate")
    holder.write(tmp_path / "e.json", "--json", lock=True)
    with holder.hold():
        result = invoke(
            "evaluate", "--pred", tmp_path / "pred", "--truth", tmp_path / "truth", "--json", tmp_path / "e.json"
        )
    assert result.exit_code == 1 and "another skinseg command is writing it now" in result.output


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_skip_existing_continues_the_summary(suffix, tiny_model_path, tmp_path):
    """Case 9: after an interrupted `segment --summary`, --skip-existing could not continue the summary."""
    images = _images(tmp_path / "in", ("a.png", "b.png", "c.png"))
    summary, masks = tmp_path / f"s{suffix}", tmp_path / "o"
    common = ("-o", masks, "--model", tiny_model_path, "--device", "cpu", "--summary", summary)
    assert invoke("segment", *images[:2], *common).exit_code == 0
    if suffix == ".json":  # as a kill -9 leaves it: the list not closed
        summary.write_text(summary.read_text().rstrip().removesuffix("]"))
    result = invoke("segment", *images, *common, "--skip-existing")
    assert result.exit_code == 0, result.output
    rows = _summary_rows(summary)
    assert [Path(r["image"]).name for r in rows] == ["a.png", "b.png", "c.png"]
    assert all(tuple(r) == SUMMARY_COLUMNS for r in rows)


def _summary_rows(path: Path) -> list[dict]:
    import csv

    if path.suffix == ".json":
        return json.loads(path.read_text())
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_skip_existing_refuses_a_summary_with_other_columns(tiny_model_path, tmp_path):
    images = _images(tmp_path / "in")
    summary = tmp_path / "s.csv"
    summary.write_text("name,score\nx,1\n")
    result = invoke(
        "segment", *images, "-o", tmp_path / "o", "--model", tiny_model_path, "--summary", summary, "--skip-existing"
    )
    assert result.exit_code == 1 and "has other columns than this command writes" in result.output
    assert summary.read_text() == "name,score\nx,1\n" and not (tmp_path / "o").exists()


def test_a_mask_is_never_written_without_its_summary_row(tiny_model_path, tmp_path, monkeypatch):
    """Case 9: Ctrl-C between a mask and its row left a mask that no summary lists."""
    import signal

    from skinseg.fileio import raise_interrupt
    from skinseg.inference import segment

    images = _images(tmp_path / "in", ("a.png", "b.png"))
    real_row = segment.summary_row

    def interrupted_after_the_mask(*args, **kwargs):
        raise_interrupt(signal.SIGINT, None)  # Ctrl-C, as the CLI's handler takes it
        return real_row(*args, **kwargs)

    monkeypatch.setattr(segment, "summary_row", interrupted_after_the_mask)
    config = SegmentConfig(
        inputs=tuple(images),
        output=tmp_path / "o",
        summary=tmp_path / "s.csv",
        run=ModelRun(model=tiny_model_path, device="cpu"),
    )
    with pytest.raises(Interrupted, match="after 1 of 2 images"):
        segment.segment_paths(config)
    written = sorted(p.name.removesuffix("_segmentation.png") for p in (tmp_path / "o").glob("*_segmentation.png"))
    listed = sorted(Path(r["image"]).stem for r in _summary_rows(tmp_path / "s.csv"))
    assert written == listed == ["a"]


# ----------------------------------------------------------------------------------- without POSIX
def test_skinseg_imports_and_locks_without_posix_only_modules(tmp_path):
    """Windows has no fcntl (data/prepare.py imported it: every command that prepares failed on import) and no
    /proc/meminfo. Every module imports, a lock is taken and released, and the free memory is known."""
    script = f"""
import sys
for name in ("fcntl", "termios", "pwd", "grp"):
    sys.modules[name] = None  # import fails, as on Windows
import importlib, pkgutil, skinseg
for info in pkgutil.walk_packages(skinseg.__path__, "skinseg."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
from pathlib import Path
from skinseg.plan import Plan
from skinseg.data.arrays import available_memory
plan = Plan("t")
plan.write(Path({str(tmp_path / "r.html")!r}), "--report", lock=True)
with plan.hold():
    pass
assert available_memory() > 0
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


# ------------------------------------------------------------------------------- failures leave no trace
def test_a_train_or_prepare_that_fails_leaves_no_folder_behind(prepared_dir, tmp_path):
    """#20's trial: a failed `train --init BAD` left config.json (then `--out` was refused as the user's), and a
    failed prepare left its --out with a lock file in it."""
    run, bad = tmp_path / "r", tmp_path / "bad.safetensors"
    bad.write_bytes(b"not weights")
    result = invoke("train", "--data", prepared_dir, "--out", run, "--init", bad, "--device", "cpu", "--epochs", "1")
    assert result.exit_code == 1 and "bad.safetensors" in result.output, result.output
    assert not run.exists()
    raw = tmp_path / "raw"
    (raw / "images").mkdir(parents=True)
    (raw / "masks").mkdir()
    IMAGE_CASES["grey_png"][1](raw / "images" / "a.png")
    from cases import SIZE, mask_for

    mask_for(SIZE, "zeros").save(raw / "masks" / "a_segmentation.png")
    result = invoke("prepare", "--data", raw, "--out", tmp_path / "p", "--size", "16", "--workers", "1")
    assert result.exit_code == 1 and "no usable image/mask pairs" in result.output
    assert not (tmp_path / "p").exists()


def test_a_run_interrupted_in_its_first_epoch_can_be_started_again_with_the_same_command(
    prepared_dir, tmp_path, monkeypatch
):
    from skinseg.errors import TrainingInterrupted
    from skinseg.training import loop

    def interrupted(config, **kwargs):
        (Path(config.out) / "config.json").write_text("{}")  # what a run writes before its first epoch
        raise TrainingInterrupted("training interrupted in its first epoch: start it again with the same command")

    monkeypatch.setattr(loop, "train", interrupted)
    command = ("train", "--data", prepared_dir, "--out", tmp_path / "r", "--device", "cpu")
    first = invoke(*command)
    assert first.exit_code == 130 and not (tmp_path / "r").exists()
    assert "start it again" in invoke(*command).output  # not refused: nothing of the first run is left


def test_a_file_where_a_folder_belongs_is_one_line_before_the_work(tmp_path):
    """#21's trial: `evaluate --pred FILE` said "folder not found", and `export -o afile/x.onnx` said "cannot write
    here: File exists"."""
    (tmp_path / "afile").write_text("x")
    (tmp_path / "truth").mkdir()
    result = invoke("evaluate", "--pred", tmp_path / "afile", "--truth", tmp_path / "truth")
    assert result.exit_code == 1 and "afile: is a file, but the --pred folder must be a folder" in result.output
    result = invoke("export", "-o", tmp_path / "afile" / "x.onnx")
    assert result.exit_code == 1 and f"cannot write here: {tmp_path / 'afile'} is a file, not a folder" in result.output


# ------------------------------------------------------------------------------------- found by review
def test_a_refused_command_leaves_the_holders_lock_and_folder(tmp_path):
    """A second command refused on a folder that the first had just made must not clean that folder up."""
    out = tmp_path / "new"
    first, second = Plan("first"), Plan("second")
    for plan in (first, second):
        plan.write(out, "--out", owned=True, lock=True)
    refused = pytest.raises(SkinsegError, match="another skinseg command")
    with first.hold():
        with refused, second.hold():
            pass
        assert (out / ".lock").exists()
        with refused, second.hold():  # the lock is still held: the first refusal did not remove it
            pass
    failing = Plan("failing")
    failing.write(tmp_path / "fresh", "--out", owned=True, lock=True)
    with pytest.raises(RuntimeError), failing.hold():
        raise RuntimeError
    assert not (tmp_path / "fresh").exists()  # made by this command, left with only its lock: removed


def test_a_lock_file_that_cannot_be_removed_while_held_is_no_error(tmp_path, monkeypatch):
    """Windows refuses to delete an open lock file (filelock removes it on release there)."""
    real_unlink = Path.unlink

    def windows_unlink(self, *args, **kwargs):
        if self.name.endswith(".lock"):
            raise PermissionError(13, "The process cannot access the file", str(self))
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", windows_unlink)
    plan = Plan("t")
    plan.write(tmp_path / "r.html", "--report", lock=True)
    with plan.hold():
        pass
    with plan.hold():  # released all the same
        pass


def test_a_folder_is_locked_from_inside_it_the_current_folder_too(tmp_path, monkeypatch):
    """Beside it, `-o .` in a home folder would need a lock file in /home (issue #33)."""
    monkeypatch.chdir(tmp_path)
    assert lock_file(Output(Path("."), "--figures", folder=True)).resolve() == tmp_path / ".skinseg.lock"


def test_a_run_killed_before_its_first_epoch_is_replaced_by_the_same_command(trained_run, prepared_dir, tmp_path):
    """kill -9 in the first epoch leaves skinseg's config.json and no weights: the run's own message says to
    start it again with the same command, which must not be refused as the user's file."""
    from skinseg.training.runs import check_run_folder

    run = tmp_path / "r"
    run.mkdir()
    shutil.copy(trained_run.run_dir / "config.json", run / "config.json")
    check_run_folder(TrainConfig(data=prepared_dir, out=run))  # no error
    (run / "config.json").write_text('{"mine": true}')
    with pytest.raises(SkinsegError, match="exists"):
        check_run_folder(TrainConfig(data=prepared_dir, out=run))


def test_a_json_summary_cut_inside_its_last_row_is_continued_without_it(tmp_path):
    from skinseg.inference.summary import continued_rows

    row = json.dumps(dict.fromkeys(SUMMARY_COLUMNS, 1))
    path = tmp_path / "s.json"
    path.write_text(f"[\n {row},\n {row[:20]}")
    length, count = continued_rows(path)
    assert count == 1 and path.read_bytes()[:length].decode() == f"[\n {row}"
    path.write_text("")
    assert continued_rows(path) is None  # empty: written anew


def test_a_wrong_suffix_names_the_format_in_words(tmp_path):
    """A trial read `--out writes SAFETENSORS`: a short suffix is a format's name, a long one is not."""
    with pytest.raises(SkinsegError, match=r"`report` writes HTML: name the file \.html"):
        Plan("t").write(tmp_path / "r.txt", "`report`", suffixes=(".html", ".htm"))
    with pytest.raises(SkinsegError, match=r"`out` writes a \.safetensors file: name the file \.safetensors"):
        Plan("t").write(tmp_path / "m.pt", "`out`", suffixes=(".safetensors",))
