"""Issue #33 (reliability round 4), cases 3, 6, 7 and 10: resume checks its data, prepare says when it replaces a
cache, a full disk during prepare or train is one line with nothing left behind, and a run that failed before
any epoch was saved says so."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError

from conftest import TINY
from skinseg.errors import SkinsegError
from skinseg.models import architectures
from skinseg.models.weights import ModelInfo, save_model

TINY_FLAGS = ("--base-filters", "4", "--depth", "3", "--batch-size", "8", "--device", "cpu")
DISK_FULL = "Error while serializing: I/O error: No space left on device (os error 28)"


@contextlib.contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `folder`: a disk that fills up. Skipped where the test cannot mount one."""
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def one_line_error(output: str) -> str:
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return lines[0]


# ------------------------------------------------------------------------------------------ case 10
def test_issue_33_a_run_failing_in_its_first_epoch_says_nothing_was_saved(prepared_dir, tmp_path, monkeypatch):
    """Issue #33, case 10: `train --lr 1e30` whose first epoch failed said "The last good weights are in
    runs/n/last.safetensors" after removing runs/n."""
    from skinseg.training.losses import LOSSES
    from test_cli import invoke

    real_loss = LOSSES["dice_bce"]
    monkeypatch.setitem(LOSSES, "dice_bce", lambda logits, target: real_loss(logits, target) * float("inf"))
    run = tmp_path / "n"
    result = invoke("train", "--data", prepared_dir, "--out", run, "--epochs", "2", *TINY_FLAGS)
    line = one_line_error(result.output)
    assert result.exit_code == 1 and "loss became" in line, result.output
    assert "last.safetensors" not in line and "no weights were kept" in line
    assert not run.exists()


# ------------------------------------------------------------------------------------------ case 7
def tiny_model():
    return architectures.create_model(TINY["model"])


def test_issue_33_a_failed_safetensors_write_is_one_line_naming_the_file(tmp_path, monkeypatch):
    """Issue #33, case 7: safetensors' own SafetensorError (a full disk) is not an OSError, so it escaped the
    one-line handler as a traceback. Every safetensors write (weights, resume state) goes through one helper."""
    import safetensors.torch

    def disk_full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise SafetensorError(DISK_FULL)

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    target = tmp_path / "m.safetensors"
    with pytest.raises(SkinsegError) as error:
        save_model(tiny_model(), target, ModelInfo(config=TINY["model"]))
    assert str(error.value) == f"{target}: could not write file: No space left on device"
    assert leftovers(tmp_path) == []

    from skinseg.training.runs import RunState

    model = tiny_model()
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.zeros(1, 3, 32, 32)).sum().backward()
    optimizer.step()
    with pytest.raises(SkinsegError, match=r"state\.safetensors: could not write file: No space left on device"):
        RunState().save(lambda name: tmp_path / name, optimizer)
    assert leftovers(tmp_path) == []


def test_issue_33_a_full_disk_during_train_is_one_line_and_leaves_nothing(prepared_dir, tmp_path):
    """Issue #33, case 7, on a real full disk: a 64 kB tmpfs holds config.json and one set of weights, not two."""
    with small_disk(tmp_path / "small", "64k") as small:
        run = small / "run"
        command = ("train", "--data", prepared_dir, "--out", run, "--epochs", "1", "--max-train-images", "8")
        result = subprocess.run(
            [sys.executable, "-m", "skinseg", *map(str, command), *TINY_FLAGS],
            capture_output=True,
            text=True,
            env=os.environ | {"COLUMNS": "200"},
        )
        line = one_line_error(result.stderr)
        assert result.returncode == 1, result.stderr
        assert "safetensors: could not write file: No space left on device" in line, line
        assert leftovers(small) == []


# ------------------------------------------------------------------------------------------ case 6
@pytest.fixture(scope="module")
def big_dir(tmp_path_factory) -> Path:
    """40 pairs of 32 px: 2.5 MiB of arrays at 128 px, more than a 600 kB disk holds."""
    from skinseg.data.synthetic import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("big"), count=40, size=32, seed=1)


def prepare_in_a_process(data: Path, out: Path, *options: str, check_room: bool = True, fallocate: bool = True):
    """`skinseg prepare` in its own process (a SIGBUS must not take the test run with it); without `check_room`,
    the space check is left out so that the writes meet the full disk; without `fallocate`, as on a system
    without posix_fallocate (macOS, Windows)."""
    patch = "" if check_room else "import skinseg.data.prepare as p; p.check_room = lambda *a: None; "
    patch += "" if fallocate else "import os; del os.posix_fallocate; "
    argv = ["skinseg", "prepare", "--data", str(data), "--out", str(out), "--size", "128", *options]
    code = f"{patch}import sys; sys.argv = {argv!r}; from skinseg.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ | {"COLUMNS": "300"}
    )


def test_issue_33_prepare_checks_the_room_its_arrays_need_before_writing(big_dir, tmp_path, monkeypatch):
    """Issue #33, case 6: a full disk during `prepare` was a traceback (BrokenProcessPool) or a bus error (exit
    135, `--workers 1`), temporaries left. The room the arrays need is checked first."""
    import shutil

    from skinseg.data import npy
    from skinseg.data.config import PrepareConfig
    from skinseg.data.prepare import prepare_dataset

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 600_000, 600_000))
    out = tmp_path / "p"
    with pytest.raises(SkinsegError) as error:
        prepare_dataset(PrepareConfig(data=big_dir, out=out, size=128, workers=1))
    needed = npy.cache_bytes(40, 128)
    assert str(error.value).startswith(f"{out}: not enough free space: 40 image/mask pairs at 128x128 px need")
    assert f"need {needed} bytes" in str(error.value) and "600000 bytes (0.57 MiB) free" in str(error.value)
    assert not out.exists()


def test_issue_33_a_failed_write_of_the_arrays_is_one_line_and_leaves_nothing(big_dir, tmp_path, monkeypatch):
    """Issue #33, case 6: the arrays' blocks are allocated when they are made, so a full disk is an OSError there
    (one line naming the file), never a SIGBUS later from the memory map."""
    import errno

    from skinseg.data.config import PrepareConfig
    from skinseg.data.prepare import prepare_dataset

    def disk_full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", disk_full, raising=False)
    out = tmp_path / "p"
    with pytest.raises(SkinsegError) as error:
        prepare_dataset(PrepareConfig(data=big_dir, out=out, size=128, workers=1))
    assert str(error.value) == f"{out / 'images.npy'}: could not write file: No space left on device"
    assert not out.exists()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_issue_33_prepare_onto_a_full_disk_is_one_line_and_leaves_nothing(big_dir, tmp_path, workers):
    """Issue #33, case 6, on a real 600 kB disk: refused by the room check; and without it, the writes themselves
    fail in one line (`--workers 1` was a bus error, more workers a BrokenProcessPool traceback)."""
    with small_disk(tmp_path / "small", "600k") as small:
        checked = prepare_in_a_process(big_dir, small / "p", "--workers", workers)
        assert checked.returncode == 1, checked.stderr
        assert "not enough free space" in one_line_error(checked.stderr)
        assert leftovers(small) == []
        unchecked = prepare_in_a_process(big_dir, small / "p", "--workers", workers, check_room=False)
        assert unchecked.returncode == 1, unchecked.stderr
        line = one_line_error(unchecked.stderr)
        assert line == f"error: {small / 'p' / 'images.npy'}: could not write file: No space left on device"
        assert leftovers(small) == []
        written = prepare_in_a_process(big_dir, small / "p", "--workers", workers, check_room=False, fallocate=False)
        assert one_line_error(written.stderr) == line and leftovers(small) == []


@pytest.mark.parametrize("fallocate", [True, False], ids=["posix_fallocate", "zeros_written"])
def test_issue_33_skipped_pairs_are_dropped_from_the_arrays_in_place(tmp_path, monkeypatch, fallocate):
    """The arrays of a prepare that skipped pairs are compacted in place (no second copy: no more room than the
    check asked for), the kept rows in order; where the OS has no posix_fallocate, the blocks are written."""
    import numpy as np

    from skinseg.data.npy import allocate, keep_rows

    if not fallocate:
        monkeypatch.delattr(os, "posix_fallocate", raising=False)
    path = tmp_path / "a.npy"
    allocate(path, (5, 4, 4, 3), tmp_path / "images.npy")
    assert not np.load(path).any() and path.stat().st_blocks * 512 >= path.stat().st_size
    array = np.load(path, mmap_mode="r+")
    array[:] = np.arange(5, dtype=np.uint8)[:, None, None, None]
    array.flush()
    del array
    keep_rows(path, [1, 3, 4], tmp_path / "images.npy")
    kept = np.load(path)
    assert kept.shape == (3, 4, 4, 3) and kept[:, 0, 0, 0].tolist() == [1, 3, 4]
    assert path.stat().st_size == 128 + 3 * 4 * 4 * 3


# ------------------------------------------------------------------------------------------ case 3
def run_files(run: Path) -> dict[str, bytes]:
    return {name: (run / name).read_bytes() for name in ("config.json", "metrics.csv", "last.safetensors")}


def test_issue_33_resume_refuses_data_prepared_again_and_prepare_says_it_replaced_a_cache(tmp_path):
    """Issue #33, case 3: `prepare` into an existing cache at another `--size` rebuilt it without a word, and
    `train --resume` then trained at the new size, rewrote config.json and the weights' metadata, and mixed two
    resolutions in metrics.csv. The run records its data's size and fingerprint; resume refuses other data."""
    from helpers import write_pair
    from test_cli import invoke

    raw, cache, run = tmp_path / "raw", tmp_path / "cache", tmp_path / "run"
    for i in range(20):
        write_pair(raw / "images" / f"im{i:02d}.png", raw / "masks" / f"im{i:02d}_segmentation.png", 48, i)
    assert invoke("prepare", "--data", raw, "--out", cache, "--size", "48", "--workers", "1").exit_code == 0
    trained = invoke("train", "--data", cache, "--out", run, "--epochs", "1", "--max-train-images", "8", *TINY_FLAGS)
    assert trained.exit_code == 0, trained.output
    before = run_files(run)

    again = invoke("prepare", "--data", raw, "--out", cache, "--size", "32", "--workers", "1")
    assert again.exit_code == 0, again.output
    assert f"note: replacing the prepared set in {cache}: it was prepared at 48 px, now at 32 px" in again.output
    resumed = invoke("train", "--resume", run, "--epochs", "2")
    assert resumed.exit_code == 1
    assert one_line_error(resumed.output) == (
        f"error: {run}: cannot resume: its data changed: {cache} was prepared at 48 px when the run started, now"
        " at 32 px; resume it on the data it started with, or start a new run"
    )

    write_pair(raw / "images" / "im00.png", raw / "masks" / "im00_segmentation.png", 48, 99)  # other contents
    again = invoke("prepare", "--data", raw, "--out", cache, "--size", "48", "--workers", "1")
    assert "it was prepared at 32 px, now at 48 px" in again.output
    write_pair(raw / "images" / "im01.png", raw / "masks" / "im01_segmentation.png", 48, 98)
    again = invoke("prepare", "--data", raw, "--out", cache, "--size", "48", "--workers", "1")
    assert "replacing the prepared set in" in again.output and "its data changed since it was prepared" in again.output
    resumed = invoke("train", "--resume", run, "--epochs", "2")
    assert resumed.exit_code == 1
    assert f"{cache} holds other data than when the run started" in one_line_error(resumed.output)
    assert run_files(run) == before


def test_issue_33_a_full_disk_in_a_later_epoch_leaves_the_last_saved_epoch_whole(prepared_dir, tmp_path, monkeypatch):
    """Issue #33, case 7: a write of epoch 2 that fails (here its resume state) leaves epoch 1's weights, state
    and metrics, all of one epoch (`--resume` continues from there), and no pending file."""
    import json

    import safetensors.torch

    from skinseg.models.weights import load_model
    from skinseg.training.config import TrainConfig
    from skinseg.training.loop import train

    real_save, states = safetensors.torch.save_file, []

    def full_in_epoch_2(tensors, filename, metadata=None):
        if "state.safetensors" in filename:
            states.append(filename)
            if len(states) == 2:
                raise SafetensorError(DISK_FULL)
        real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", full_in_epoch_2)
    run = tmp_path / "run"
    config = TrainConfig(data=prepared_dir, out=run, epochs=3, device="cpu", max_train_images=8, **TINY)
    with pytest.raises(SkinsegError, match=r"state\.safetensors: could not write file: No space left on device"):
        train(config)
    assert json.loads((run / "state.json").read_text())["epoch"] == 1
    assert load_model(run / "last.safetensors")[1].training["epochs"] == 1
    assert (run / "metrics.csv").read_text().count("\n") == 2  # the header and epoch 1
    assert not [name for name in leftovers(run) if name.startswith(".")]


def test_issue_33_a_run_on_a_raw_folder_resumes_however_the_folder_is_spelled(tmp_path, monkeypatch):
    """A run on a raw folder given as a relative path resumes (its config.json records the folder resolved: the
    fingerprint is of what the cache holds, not of the paths); a mask changed since is refused."""
    from helpers import write_pair
    from test_cli import invoke

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SKINSEG_CACHE", str(tmp_path / "cache"))
    for i in range(16):
        write_pair(tmp_path / "raw" / "images" / f"im{i:02d}.png", tmp_path / "raw" / "masks" / f"im{i:02d}.png", 32, i)
    options = ("--size", "32", "--max-train-images", "8", *TINY_FLAGS)
    assert invoke("train", "--data", "raw", "--out", "run", "--epochs", "1", *options).exit_code == 0
    resumed = invoke("train", "--resume", "run", "--epochs", "2")
    assert resumed.exit_code == 0, resumed.output
    write_pair(tmp_path / "raw" / "images" / "im00.png", tmp_path / "raw" / "masks" / "im00.png", 32, 0)
    (tmp_path / "raw" / "masks" / "im00.png").write_bytes((tmp_path / "raw" / "masks" / "im01.png").read_bytes())
    resumed = invoke("train", "--resume", "run", "--epochs", "3")
    assert resumed.exit_code == 1
    assert f"{tmp_path / 'raw'} holds other data than when the run started" in one_line_error(resumed.output)


def test_issue_33_weights_broken_by_an_epochs_last_step_are_not_saved(prepared_dir, tmp_path, monkeypatch):
    """Found by the fresh-eyes trial: `train --lr 1e308` on a one-step epoch exited 0 and saved weights that were
    all NaN: the step's loss was computed before the update that broke them, and the validation loss (nan) was
    not checked."""
    from skinseg.training import loop
    from test_cli import invoke

    real_step = loop.train_step

    def breaking_step(engine, x, y, lr):
        loss, logits = real_step(engine, x, y, lr)
        with torch.no_grad():
            for parameter in engine.model.parameters():
                parameter.fill_(float("nan"))
        return loss, logits

    monkeypatch.setattr(loop, "train_step", breaking_step)
    run = tmp_path / "n"
    one_step = ("--batch-size", "512")  # the whole set in one step: its loss is checked before the update
    result = invoke("train", "--data", prepared_dir, "--out", run, "--epochs", "2", *TINY_FLAGS, *one_step)
    line = one_line_error(result.output)
    assert result.exit_code == 1 and "the weights became NaN or infinite in epoch 1" in line, result.output
    assert "no weights were kept" in line and not run.exists()
