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
        RunState().save(tmp_path, optimizer)
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
