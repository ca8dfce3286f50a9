"""What a run starts from: its data sets, the weights it fine-tunes (`init`), and the line that says how it
computes."""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import torch

from skinseg.data.dataset import PreparedData, ensure_prepared
from skinseg.errors import SkinsegError
from skinseg.fileio import raise_interrupt
from skinseg.models.layers import SegmentationModel
from skinseg.models.weights import BUNDLED, ModelInfo, is_bundled, load_model, model_file, read_info
from skinseg.runtime import distributed
from skinseg.runtime.device import describe_device
from skinseg.runtime.precision import Precision, compile_note
from skinseg.training.batches import TrainData
from skinseg.training.config import TrainConfig


def open_data_sets(config: TrainConfig, context: distributed.Context) -> list[PreparedData]:
    """Every data set of the run, each read once: rank 0 prepares a raw folder, the other ranks then read its
    cache."""
    prepared = [ensure_prepared(d, config.size, config.split_seed) for d in config.data_sets] if context.is_main else []
    distributed.barrier(context)
    return prepared or [ensure_prepared(d, config.size, config.split_seed) for d in config.data_sets]


def data_record(prepared: list[PreparedData]) -> list[dict]:
    """What a run records of its data sets when it starts (config.json's `prepared`): each cache's folder, size
    and fingerprint, which a resumed run must find again (check_same_data)."""
    return [{"folder": str(p.root), "size": p.size, "fingerprint": p.fingerprint} for p in prepared]


def check_same_data(config: TrainConfig, prepared: list[PreparedData]) -> None:
    """A resumed run trains on the data it started with: a data set prepared again at another size, or from
    changed files or settings, is refused, in one line naming the run and what differs. For a run of an older
    skinseg, which recorded no fingerprints, the size its weights were trained at is checked."""
    run_dir = Path(config.resume or config.out)
    try:
        recorded = json.loads((run_dir / "config.json").read_text(encoding="utf-8")).get("prepared")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if not (
        isinstance(recorded, list) and len(recorded) == len(prepared) and all(isinstance(r, dict) for r in recorded)
    ):
        size = read_info(run_dir / "last.safetensors").input_size  # a run of an older skinseg: its weights' size
        recorded = [{"size": size} for _ in prepared]
    for data, then, now in zip(config.data_sets, recorded, prepared, strict=True):
        differs = None
        if then.get("size") != now.size:
            differs = f"{data} was prepared at {then.get('size')} px when the run started, now at {now.size} px"
        elif then.get("fingerprint", now.fingerprint) != now.fingerprint:
            differs = (
                f"{data} holds other data than when the run started (prepared again from changed files or settings)"
            )
        if differs:
            raise SkinsegError(
                f"cannot resume: its data changed: {differs}; resume it on the data it started with, or start a"
                " new run",
                run_dir,
            )


def describe_setup(device: torch.device, precision: Precision, compiled: bool) -> dict:
    """How the run computes, for config.json, the weights' metadata and the start-up line."""
    return {"device": device.type, **precision.to_dict(), "compile": compiled}


def startup_notes(
    config: TrainConfig, device: torch.device, precision: Precision, compiled: bool, selected_on: str
) -> tuple[str, list[str]]:
    """The line a run starts with (device, precision, memory format, compile) and notes on ignored settings
    and on how the best epoch is selected."""
    line = (
        f"device: {describe_device(device)}; precision: {precision.describe()}; compile: {'on' if compiled else 'off'}"
    )
    notes = [*precision.notes, *filter(None, [compile_note(config.compile, device)])]
    if selected_on == "train_dice":
        notes.append("no validation split: the best epoch is selected on training Dice (selected_on: train_dice)")
    return line, notes


def load_initial_weights(model: SegmentationModel, init: Path, device: torch.device) -> tuple[str, ModelInfo]:
    """Copy the weights of a skinseg model file (or the bundled model, for BUNDLED) into `model`: fine-tuning.
    Returns the file's name and its metadata (whose normalisation the fine-tuning keeps)."""
    path = model_file(init)
    source, info = load_model(path, device)
    if replace(info.config, dropout=model.config.dropout) != model.config:  # dropout holds no weights
        raise SkinsegError(
            f"cannot start from these weights: their architecture {info.config.to_dict()} differs"
            f" from this run's {model.config.to_dict()}",
            path,
        )
    model.load_state_dict(source.state_dict())
    return (BUNDLED if is_bundled(init) else path.name), info


def use_normalisation(data: TrainData, info: ModelInfo) -> None:
    """Normalise as the given model was trained to (fine-tuning from it, or resuming it)."""
    data.mean = torch.tensor(info.mean, device=data.mean.device).view(1, 3, 1, 1)
    data.std = torch.tensor(info.std, device=data.std.device).view(1, 3, 1, 1)


@contextlib.contextmanager
def interrupt_signals() -> Iterator[None]:
    """Ctrl-C and SIGTERM end a run cleanly, with its state saved (also when called from Python, not the CLI)."""
    try:
        previous = {sig: signal.signal(sig, raise_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
