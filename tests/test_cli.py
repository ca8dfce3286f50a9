import json
import os
import subprocess
import sys
import textwrap
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import THREAD_ENV
from skinseg import __version__
from skinseg.cli import app
from skinseg.cli import base as cli

COLUMNS = {"COLUMNS": "160"}  # tables on one line each, whatever the terminal


def skinseg(*args, cwd=None):
    """`python -m skinseg ...` in a fresh process, with one torch thread."""
    return subprocess.run(
        [sys.executable, "-m", "skinseg", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        env=os.environ | THREAD_ENV | COLUMNS,
    )


def invoke(*args):
    """The same command in this process, where torch is already imported (a fresh process spends seconds on it);
    an exception that escapes the command fails the test."""
    # The CLI's rich consoles fix their width when skinseg.cli is imported if COLUMNS is set then (pytest-xdist
    # sets it to 80 in its workers), so widen them for the call as COLUMNS does for a fresh process.
    with mock.patch.object(cli.out, "_width", 160), mock.patch.object(cli.console, "_width", 160):
        return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False, env=COLUMNS)


def test_help_lists_the_seven_commands():
    result = skinseg("--help")
    assert result.returncode == 0
    listed = result.stdout.split("Commands:")[1].splitlines()
    commands = [line.split()[0] for line in listed if line.strip()]
    assert commands == ["prepare", "train", "evaluate", "segment", "measure", "export", "adapt"]


def test_version():
    result = skinseg("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"skinseg {__version__}"


def test_help_version_and_a_wrong_path_do_not_import_torch(tmp_path):
    """Answered at once: a mistyped input to segment is reported before seconds of torch imports."""
    code = (
        "import sys\nfrom skinseg.cli import app\n"
        "for args in (['--help'], ['--version'], ['train', '--help'], ['segment', 'missing.jpg', '-o', 'm.png']):\n"
        "    try:\n        app(args, prog_name='skinseg')\n"
        "    except SystemExit as end:\n        print('exit', end.code)\n"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    lines = result.stdout.strip().splitlines()
    assert [line for line in lines if line.startswith("exit ")] == ["exit 0", "exit 0", "exit 0", "exit 1"]
    assert lines[-1] == "False"
    assert "error: missing.jpg: input not found" in result.stderr


def test_package_errors_are_one_red_line_and_exit_code_1(tmp_path):
    result = skinseg("segment", tmp_path / "missing.jpg", "-o", tmp_path / "m.png")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"error: {tmp_path / 'missing.jpg'}: input not found"]


def test_a_failing_prepare_prints_only_its_error_line(tmp_path):
    """docs/reliability.md: one line on standard error, and no empty progress bar (`Preparing ... 0/?`) above it."""
    result = invoke("prepare", "--data", tmp_path / "missing", "--out", tmp_path / "p")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"error: {tmp_path / 'missing'}: data folder not found"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_missing_cuda_is_an_error_not_a_traceback(tmp_path):
    result = invoke("train", "--data", tmp_path, "--device", "cuda")
    assert result.exit_code == 1 and "no CUDA GPU" in result.stderr and "Traceback" not in result.output


def test_prepare_train_evaluate_segment_end_to_end(raw_dir, tmp_path):
    # prepare runs as `python -m skinseg` (it never imports torch, so the process starts quickly); the commands
    # that need torch run in this process, through the same Typer app.
    prepared = tmp_path / "prepared"
    result = skinseg("prepare", "--data", raw_dir, "--out", prepared, "--size", 32)
    assert result.returncode == 0, result.stderr
    assert "30" in result.stdout and (prepared / "manifest.json").is_file()

    run = tmp_path / "run"
    result = invoke(
        "train",
        "--data",
        prepared,
        "--out",
        run,
        "--epochs",
        1,
        "--base-filters",
        4,
        "--depth",
        3,
        "--batch-size",
        8,
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    assert "best validation Dice" in result.stdout
    assert "val Dice" in result.stdout and "best, last (1)" in result.stdout  # the final table
    assert (run / "best.safetensors").is_file() and (run / "metrics.csv").is_file()

    report = tmp_path / "report.json"
    result = invoke(
        "evaluate", "--model", run / "best.safetensors", "--data", prepared, "--json", report, "--device", "cpu"
    )
    assert result.exit_code == 0, result.output
    scores = json.loads(report.read_text())
    test_count = json.loads((prepared / "manifest.json").read_text())["split_sizes"]["test"]
    assert scores["count"] == test_count and 0 <= scores["macro_average"]["dice"] <= 1
    assert "dice" in result.stdout
    assert f"wrote {report}" in result.stdout  # a trial found the files evaluate wrote unsaid

    source = raw_dir / "images" / "case_000.png"
    result = invoke(
        "segment", source, "-o", tmp_path / "mask.png", "--model", run / "best.safetensors", "--device", "cpu"
    )
    assert result.exit_code == 0, result.output
    mask = np.asarray(Image.open(tmp_path / "mask.png"))
    assert mask.shape == (48, 48) and set(np.unique(mask)) <= {0, 255}


def test_paths_are_printed_as_they_are_not_as_markup_or_emoji(tiny_model_path, tmp_path):
    """Issue #21: `-o "out[/red]dir"` wrote the mask, then raised Rich's MarkupError; `:thumbs_up:` became an emoji."""
    from skinseg.data.synthetic import synthetic_pair

    source = tmp_path / "in:thumbs_up:" / "a.png"
    source.parent.mkdir()
    Image.fromarray(synthetic_pair(40, 1)[0]).save(source)
    out = tmp_path / "out[/red]dir"
    result = invoke("segment", source.parent, "-o", out, "--model", tiny_model_path, "--device", "cpu")
    assert result.exit_code == 0 and f"wrote 1 mask(s) to {out}" in result.stdout
    assert (out / "a_segmentation.png").is_file()
    missing = invoke("prepare", "--data", tmp_path / "no:thumbs_up:such[red]", "--out", tmp_path / "p")
    assert missing.exit_code == 1 and f"error: {tmp_path / 'no:thumbs_up:such[red]'}: data folder not found" in (
        missing.stderr
    )


@pytest.mark.parametrize("bad", [("--epochs", "0"), ("--loss", "focal"), ("--dropout", "1.5"), ("--ema", "2")])
def test_a_bad_training_setting_is_refused_before_the_run_folder_is_made(prepared_dir, tmp_path, bad):
    """Issue #21 (from the trial): a refused setting left an empty --out folder behind."""
    result = invoke("train", "--data", prepared_dir, "--out", tmp_path / "run", *bad)
    assert result.exit_code == 1 and "error:" in result.stderr and not (tmp_path / "run").exists()


def test_a_file_name_with_a_line_break_cannot_forge_a_line(tmp_path):
    """#21's attacker trial: a file named `nl<newline>error: fake.png` printed as two lines, the second an error
    line of the tool's own making."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "nl\nerror: fake.png").write_bytes(b"not an image")
    result = invoke("segment", folder, "-o", tmp_path / "out", "--device", "cpu")
    assert result.exit_code == 1
    skipped = [line for line in result.stderr.splitlines() if "fake.png" in line]
    assert skipped == [f"skipped {folder}/nl\\nerror: fake.png: not an image file (or an unsupported format)"]


class _Node:
    """An object that can sit in a reference cycle (a plain list cannot be weakly referenced)."""

    def __init__(self):
        self.other = self


def test_heavy_imports_pause_the_collector_then_freeze_what_they_made(monkeypatch):
    import gc

    monkeypatch.setitem(cli._OWN_PROCESS, "claimed", True)  # as the `skinseg` process
    try:
        with cli.heavy_imports():
            assert not gc.isenabled()
            frozen = gc.get_freeze_count()
            made = [_Node() for _ in range(100)]
        assert gc.isenabled()
        assert gc.get_freeze_count() >= frozen + len(made)
    finally:
        gc.unfreeze()  # the rest of this test process collects as before


def test_heavy_imports_leave_a_callers_process_and_a_paused_collector_alone(monkeypatch):
    """In a caller's own process (a test, a notebook) nothing is paused or frozen: a freeze would keep that
    process's later garbage from ever being collected (a review found the first version did)."""
    import gc
    import weakref

    frozen = gc.get_freeze_count()
    with cli.heavy_imports():
        assert gc.isenabled()
        kept = _Node()
    assert gc.get_freeze_count() == frozen
    freed = weakref.ref(kept)
    del kept
    gc.collect()
    assert freed() is None
    monkeypatch.setitem(cli._OWN_PROCESS, "claimed", True)
    gc.disable()
    try:
        with cli.heavy_imports():
            made = [_Node() for _ in range(100)]
        assert not gc.isenabled() and len(made) == 100
        assert gc.get_freeze_count() == frozen
    finally:
        gc.enable()


def test_every_command_that_loads_torch_imports_it_under_heavy_imports(tmp_path):
    """Each command but prepare enters heavy_imports before torch is imported and leaves it with torch loaded."""
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    runs = {
        "segment": ["a.png", "-o", "out", "--model", "missing.safetensors"],
        "measure": ["a.png", "--csv", "m.csv", "--model", "missing.safetensors"],
        "evaluate": [],
        "export": ["missing.safetensors", "-o", "m.onnx"],
        "train": [],
        "adapt": ["--data", "missing", "-o", "a.safetensors"],
    }
    code = textwrap.dedent(
        f"""
        import contextlib, json, sys
        import skinseg.cli.base as base

        real, seen, found = base.heavy_imports, [], {{}}

        @contextlib.contextmanager
        def spy():  # what each command's heavy_imports saw: torch before, torch after
            before = "torch" in sys.modules
            with real():
                yield
            seen.append([before, "torch" in sys.modules])

        base.heavy_imports = spy  # before the command modules import it
        from skinseg.cli.commands import build_app

        for name, args in {runs!r}.items():
            seen.clear()
            try:
                build_app((name,))([name, *args], prog_name="skinseg")
            except SystemExit:
                pass
            found[name] = list(seen)
        print(json.dumps(found))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found.pop("segment") == [[False, True]], result.stderr  # the first: torch not imported before
    assert all(entries and entries[0][1] for entries in found.values()), found


def test_a_command_named_first_is_built_alone(tmp_path):
    """`skinseg segment ...` builds and imports segment's command only; anything else gets all seven."""
    code = (
        "import sys\nfrom skinseg.cli.commands import main\n"
        "sys.argv = ['skinseg', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit as end:\n    print('exit', end.code)\n"
        "print(sorted(m for m in sys.modules if m.startswith('skinseg.cli.')))"
    )
    alone = subprocess.run(
        [sys.executable, "-c", code, "segment", "missing.jpg", "-o", "m.png"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert "error: missing.jpg: input not found" in alone.stderr
    exit_line, modules = alone.stdout.strip().splitlines()
    assert exit_line == "exit 1"
    commands = {"prepare", "train", "evaluate", "segment", "measure", "export", "adapt"}
    assert {m.removeprefix("skinseg.cli.") for m in eval(modules)} & commands == {"segment"}
    mistyped = subprocess.run([sys.executable, "-c", code, "segmnt"], capture_output=True, text=True, cwd=tmp_path)
    assert "Did you mean 'segment'?" in mistyped.stderr
    assert {m.removeprefix("skinseg.cli.") for m in eval(mistyped.stdout.strip().splitlines()[-1])} >= commands


def test_the_metrics_table_counts_one_image_in_the_singular():
    from types import SimpleNamespace

    from skinseg.cli.tables import metrics_table

    stats = dict.fromkeys(("mean", "std", "median", "min", "max"), 0.9)
    one = SimpleNamespace(title="val", per_image=[{}], summary={"dice": stats})
    assert metrics_table(one).title == "val (1 image)"
    assert metrics_table(SimpleNamespace(title="val", per_image=[{}, {}], summary={})).title == "val (2 images)"


def test_a_prepare_with_nothing_to_do_draws_no_progress_bar(raw_dir, tmp_path):
    """A trial: a reused cache still drew `Preparing ... 0/?`."""
    first = invoke("prepare", "--data", raw_dir, "--out", tmp_path / "p", "--size", 32)
    assert first.exit_code == 0 and "Preparing" in first.output
    again = invoke("prepare", "--data", raw_dir, "--out", tmp_path / "p", "--size", 32)
    assert again.exit_code == 0 and "Preparing" not in again.output
