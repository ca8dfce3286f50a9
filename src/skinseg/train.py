"""`skinseg train`: one engine for every device, in parts that read top to bottom.

    train()                      settings, device, precision; then, per epoch:
      load_data()                the prepared arrays on the training device, as uint8
      build_engine()             model (from the registry), optimiser, loss, precision, compile / DDP
      RunState.load()            on --resume: history, best epoch, optimiser tensors
      run_epoch()                training_batch() + train_step() over the shuffled training split
      validate()                 loss, Dice and accuracy on the validation split, a named result
      save_epoch()               weights, resume state, metrics.csv, curves.png

The same code runs on CUDA and on the CPU: precision (bf16 autocast, channels_last) and torch.compile are
resolved once from the device, never from a "cuda" literal. Every epoch re-seeds from (seed, epoch), so a
run resumed at an epoch boundary continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from skinseg import distributed
from skinseg.architectures import create_model
from skinseg.augment import augment_batch
from skinseg.config import TrainConfig
from skinseg.data.dataset import PreparedData, ensure_prepared
from skinseg.device import resolve_device
from skinseg.errors import SkinsegError, TrainingInterrupted
from skinseg.fileio import atomic_path, interrupts_held, raise_interrupt, write_csv, write_text
from skinseg.losses import LOSSES, Loss
from skinseg.model import SegmentationModel
from skinseg.optim import create_optimizer, lr_at
from skinseg.precision import Precision, compile_active, resolve_precision
from skinseg.weights import ModelInfo, save_model

__all__ = ["TrainResult", "TrainingInterrupted", "lr_at", "resumed_config", "startup_notes", "train"]

METRIC_COLUMNS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "train_dice",
    "val_loss",
    "val_accuracy",
    "val_dice",
    "lr",
    "seconds",
    "train_seconds",
)
REPORT_EVERY = 10  # progress and NaN checks every few steps, so a GPU is not synchronised at every step


@dataclass
class TrainResult:
    run_dir: Path
    epochs_done: int
    best_epoch: int
    best_val_dice: float
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False
    is_main: bool = True  # False on the other ranks of a torchrun job


# ----------------------------------------------------------------------------------------------------- data
@dataclass
class TrainData:
    """Training and validation arrays on the device (uint8 NHWC images, NHW masks) and the normalisation."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    mean: torch.Tensor  # (1, 3, 1, 1), 0-255 scale
    std: torch.Tensor

    def normalise(self, images01: torch.Tensor) -> torch.Tensor:
        return (images01 * 255 - self.mean) / self.std


def _split_to_device(
    data: PreparedData, split: str, device: torch.device, cap: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    rows = data.indices(split)
    if cap:
        rows = rows[:cap]
    if len(rows) == 0:
        return (
            torch.zeros((0, data.size, data.size, 3), dtype=torch.uint8, device=device),
            torch.zeros((0, data.size, data.size), dtype=torch.uint8, device=device),
        )
    return (
        torch.from_numpy(np.ascontiguousarray(data.images[rows])).to(device),
        torch.from_numpy(np.ascontiguousarray(data.masks[rows])).to(device),
    )


def load_data(
    prepared: PreparedData,
    device: torch.device,
    max_train_images: int = 0,
    context: distributed.Context = distributed.Context(),
) -> TrainData:
    """The training split (capped for quick runs) and this rank's share of the validation split."""
    train_x, train_y = _split_to_device(prepared, "train", device, max_train_images)
    if len(train_x) == 0:
        raise SkinsegError("the prepared dataset has no training images", prepared.root)
    val_x, val_y = _split_to_device(prepared, "val", device)
    return TrainData(
        train_x,
        train_y,
        val_x[context.rank :: context.world],
        val_y[context.rank :: context.world],
        torch.tensor(prepared.mean, device=device).view(1, 3, 1, 1),
        torch.tensor(prepared.std, device=device).view(1, 3, 1, 1),
    )


def to_float(images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 NHWC / NHW -> float NCHW in [0, 1] and float N1HW."""
    return images.permute(0, 3, 1, 2).float().div_(255), masks.unsqueeze(1).float()


def training_batch(
    data: TrainData, rows: torch.Tensor, augment: bool, precision: Precision
) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalised, (optionally) augmented images and masks of `rows`, in the run's memory format."""
    x, y = to_float(data.train_x[rows], data.train_y[rows])
    if augment:
        x, y = augment_batch(x, y)
    return data.normalise(x).contiguous(memory_format=precision.memory_format), y


# --------------------------------------------------------------------------------------------------- engine
@dataclass
class Engine:
    """What a training step needs: the model (and the wrapper that runs it), optimiser, loss and precision."""

    model: SegmentationModel  # the plain module: saved, validated, loaded into
    forward: torch.nn.Module  # the same, compiled and/or wrapped in DistributedDataParallel
    optimizer: torch.optim.Optimizer
    loss: Loss
    precision: Precision
    compiled: bool = False


def build_engine(
    config: TrainConfig,
    device: torch.device,
    precision: Precision,
    context: distributed.Context = distributed.Context(),
) -> Engine:
    model = create_model(config.model).to(device)
    model = model.to(memory_format=precision.memory_format)  # type: ignore[call-overload]
    optimizer = create_optimizer(config.optimizer, model.parameters(), config.lr, config.weight_decay)
    forward: torch.nn.Module = model
    if context.active:
        from torch.nn.parallel import DistributedDataParallel

        forward = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    compiled = compile_active(config.compile, device)
    if compiled:
        forward = torch.compile(forward)  # type: ignore[assignment]
    return Engine(model, forward, optimizer, LOSSES.get_checked(config.loss), precision, compiled)


def train_step(engine: Engine, x: torch.Tensor, y: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step at learning rate `lr`; returns the (detached) loss and logits."""
    for group in engine.optimizer.param_groups:
        group["lr"] = lr
    engine.model.train()
    with engine.precision.autocast():
        logits = engine.forward(x)
    loss = engine.loss(logits, y)
    engine.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    engine.optimizer.step()
    return loss.detach(), logits.detach()


def batch_stats(logits: torch.Tensor, masks: torch.Tensor, threshold: float) -> torch.Tensor:
    """[summed per-image Dice (1.0 for 0/0, as the ISIC scorer), summed pixel accuracy] of a batch, on device."""
    pred = torch.sigmoid(logits.float()) > threshold
    truth = masks > 0.5
    tp = (pred & truth).flatten(1).sum(1).float()
    denominator = pred.flatten(1).sum(1).float() + truth.flatten(1).sum(1).float()
    dice = torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), torch.ones_like(tp))
    accuracy = (pred == truth).flatten(1).float().mean(1)
    return torch.stack([dice.sum(), accuracy.sum()])


@dataclass(frozen=True)
class Validation:
    """Means over the validation images (count 0: there is no validation split)."""

    loss: float
    dice: float
    accuracy: float
    count: int


@torch.no_grad()
def validate(
    engine: Engine,
    images: torch.Tensor,
    masks: torch.Tensor,
    data: TrainData,
    threshold: float,
    batch_size: int,
    context: distributed.Context = distributed.Context(),
) -> Validation:
    """Loss, Dice and accuracy of the model on uint8 arrays already on the device, summed across ranks."""
    model, device = engine.model, images.device
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)
    for start in range(0, len(images), batch_size):
        x, y = to_float(images[start : start + batch_size], masks[start : start + batch_size])
        with engine.precision.autocast():
            logits = model(data.normalise(x).contiguous(memory_format=engine.precision.memory_format))
        loss = engine.loss(logits, y).detach() * len(x)
        sums += torch.cat(
            [loss[None], batch_stats(logits, y, threshold), torch.tensor([len(x)], device=device)]
        ).double()
    loss_sum, dice_sum, accuracy_sum, count = distributed.sum_across(context, sums.tolist(), device)
    if count == 0:
        return Validation(float("nan"), float("nan"), float("nan"), 0)
    return Validation(loss_sum / count, dice_sum / count, accuracy_sum / count, int(count))


# ---------------------------------------------------------------------------------------------- run state
@dataclass
class RunState:
    """Where a run stands after its last finished epoch: enough, with the optimiser, to resume it exactly."""

    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best_val_dice: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0

    def record(self, row: dict) -> bool:
        """Add an epoch's row; True if it is the best so far (by validation Dice)."""
        self.history.append(row)
        self.epoch = row["epoch"]
        if row["val_dice"] > self.best_val_dice:
            self.best_val_dice, self.best_epoch, self.bad_epochs = row["val_dice"], row["epoch"], 0
            return True
        self.bad_epochs += 1
        return False

    def save(self, run_dir: Path, optimizer: torch.optim.Optimizer) -> None:
        """Optimiser tensors as safetensors, everything else as JSON; never pickle."""
        opt_state = optimizer.state_dict()
        tensors, scalars = {}, {}
        for index, values in opt_state["state"].items():
            for name, value in values.items():
                if torch.is_tensor(value):
                    tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
                else:
                    scalars[f"{index}.{name}"] = value
        with atomic_path(run_dir / "state.safetensors") as tmp:
            save_file(tensors, str(tmp))
        write_text(
            run_dir / "state.json",
            json.dumps(
                {
                    "epoch": self.epoch,
                    "history": self.history,
                    "best_val_dice": self.best_val_dice,
                    "best_epoch": self.best_epoch,
                    "bad_epochs": self.bad_epochs,
                    "optimizer_scalars": scalars,
                    "param_groups": opt_state["param_groups"],
                },
                indent=1,
            ),
        )

    @classmethod
    def load(cls, run_dir: Path, optimizer: torch.optim.Optimizer) -> RunState:
        try:
            state = json.loads((run_dir / "state.json").read_text())
            tensors = load_file(str(run_dir / "state.safetensors"))
        except Exception as exc:  # missing files, bad JSON, and safetensors' own error types alike
            raise SkinsegError(f"cannot read the resume state ({exc})", run_dir) from None
        opt_state: dict = {"state": {}, "param_groups": state["param_groups"]}
        for key, value in list(tensors.items()) + list(state["optimizer_scalars"].items()):
            index, name = key.split(".", 1)
            opt_state["state"].setdefault(int(index), {})[name] = value
        optimizer.load_state_dict(opt_state)
        return cls(state["epoch"], state["history"], state["best_val_dice"], state["best_epoch"], state["bad_epochs"])


# ------------------------------------------------------------------------------------------------- epochs
@dataclass(frozen=True)
class Schedule:
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    per_rank: int  # training images per rank and epoch

    @classmethod
    def of(cls, config: TrainConfig, train_images: int, world: int) -> Schedule:
        per_rank = math.ceil(train_images / world)
        steps = math.ceil(per_rank / config.batch_size)
        return cls(steps, steps * config.epochs, int(config.warmup_epochs * steps), per_rank)


def _check_finite(loss: torch.Tensor, epoch: int, step: int, run_dir: Path, context: distributed.Context) -> None:
    bad = float(~torch.isfinite(loss))
    if distributed.sum_across(context, [bad], loss.device)[0] > 0:
        raise SkinsegError(
            f"loss became {float(loss)} at epoch {epoch + 1}, step {step + 1}; stopped. The last good"
            f" weights are in {run_dir / 'last.safetensors'} (try a lower --lr)"
        )


def run_epoch(
    engine: Engine,
    data: TrainData,
    config: TrainConfig,
    schedule: Schedule,
    epoch: int,
    run_dir: Path,
    context: distributed.Context = distributed.Context(),
    on_step: Callable[[int, int, float, float], None] | None = None,
) -> dict:
    """One pass over this rank's share of the shuffled training split; returns the epoch's training figures."""
    started = time.perf_counter()
    device = data.train_x.device
    torch.manual_seed(config.seed * 100_003 + epoch)
    order = torch.randperm(len(data.train_x), device=device)
    order = torch.cat([order, order[: schedule.per_rank * context.world - len(order)]])[context.rank :: context.world]
    torch.manual_seed(config.seed * 100_003 + epoch + 7_919 * (context.rank + 1))  # augmentation, dropout
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss, Dice, accuracy
    lr = config.lr
    for step in range(schedule.steps_per_epoch):
        lr = lr_at(
            epoch * schedule.steps_per_epoch + step,
            schedule.total_steps,
            config.lr,
            schedule.warmup_steps,
            config.schedule,
        )
        rows = order[step * config.batch_size : (step + 1) * config.batch_size]
        x, y = training_batch(data, rows, config.augment, engine.precision)
        loss, logits = train_step(engine, x, y, lr)
        sums += torch.cat([loss[None] * len(x), batch_stats(logits, y, config.threshold)]).double()
        last = step + 1 == schedule.steps_per_epoch
        if step % REPORT_EVERY == 0 or last:
            _check_finite(loss, epoch, step, run_dir, context)
            if on_step:
                on_step(
                    step + 1,
                    schedule.steps_per_epoch,
                    float(loss),
                    float(sums[1]) / min(schedule.per_rank, (step + 1) * config.batch_size),
                )
    loss_sum, dice_sum, accuracy_sum = distributed.sum_across(context, sums.tolist(), device)
    seen = schedule.per_rank * context.world
    return {
        "train_loss": loss_sum / seen,
        "train_accuracy": accuracy_sum / seen,
        "train_dice": dice_sum / seen,
        "lr": lr,
        "train_seconds": time.perf_counter() - started,
    }  # the sum above waited for the device


def save_epoch(run_dir: Path, engine: Engine, state: RunState, info: ModelInfo, improved: bool) -> None:
    """The epoch's files. An interrupt waits until they are all written (and matplotlib imported: a
    KeyboardInterrupt inside an import can surface as another error)."""
    with interrupts_held():
        if improved:
            save_model(engine.model, run_dir / "best.safetensors", info)
        save_model(engine.model, run_dir / "last.safetensors", info)
        state.save(run_dir, engine.optimizer)
        write_csv(run_dir / "metrics.csv", state.history, METRIC_COLUMNS)
        from skinseg.figures import plot_curves

        plot_curves(state.history, run_dir / "curves.png")


# ---------------------------------------------------------------------------------------------------- runs
def _load_initial_weights(model: SegmentationModel, init: Path, device: torch.device) -> str:
    """Copy the weights of a skinseg model file (or the bundled model, for "bundled") into `model`: fine-tuning."""
    from skinseg.weights import bundled_model_path, load_model

    bundled = str(init) == "bundled"
    path = bundled_model_path() if bundled else Path(init)
    source, info = load_model(path, device)
    if replace(info.config, dropout=model.config.dropout) != model.config:  # dropout holds no weights
        raise SkinsegError(
            f"cannot start from these weights: their architecture {info.config.to_dict()} differs"
            f" from this run's {model.config.to_dict()}",
            path,
        )
    model.load_state_dict(source.state_dict())
    return "bundled" if bundled else path.name


@contextlib.contextmanager
def _interrupt_signals() -> Iterator[None]:
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


def resumed_config(config: TrainConfig) -> TrainConfig:
    """With `resume` set: the settings saved in that run folder (a resumed run keeps its own schedule), on
    this call's device. Without: `config` itself."""
    if not config.resume:
        return config
    run_dir = Path(config.resume)
    if not (run_dir / "config.json").is_file():
        raise SkinsegError("no config.json: not a skinseg run folder", run_dir)
    saved = json.loads((run_dir / "config.json").read_text())
    saved.pop("resolved", None)
    return replace(TrainConfig.from_dict(saved), resume=config.resume, device=config.device)


def describe_setup(device: torch.device, precision: Precision, compiled: bool) -> dict:
    """How the run computes, for config.json, the weights' metadata and the start-up line."""
    return {"device": device.type, **precision.to_dict(), "compile": compiled}


def startup_notes(config: TrainConfig) -> tuple[str, list[str]]:
    """The line a run starts with (device, precision, memory format, compile) and notes on ignored settings."""
    from skinseg.device import describe_device
    from skinseg.precision import compile_note

    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device, config.channels_last)
    compiled = compile_active(config.compile, device)
    notes = [*precision.notes, *filter(None, [compile_note(config.compile, device)])]
    return (
        f"device: {describe_device(device)}; precision: {precision.describe()}; compile: {'on' if compiled else 'off'}"
    ), notes


def train(
    config: TrainConfig,
    on_epoch: Callable[[dict], None] | None = None,
    on_step: Callable[[int, int, float, float], None] | None = None,
) -> TrainResult:
    """Train a model per `config`; `on_step(step, steps_per_epoch, loss, running_train_dice)` and
    `on_epoch(row)` report.

    Under torchrun every rank trains on its share of each epoch's shuffled images (DistributedDataParallel,
    NCCL on GPUs, gloo on the CPU); metrics are summed across ranks and only rank 0 writes files.
    """
    run_dir = Path(config.resume or config.out)
    config = resumed_config(config)
    context, device = distributed.setup(resolve_device(config.device))
    try:
        return _train(
            config,
            run_dir,
            context,
            device,
            on_epoch if context.is_main else None,
            on_step if context.is_main else None,
        )
    finally:
        distributed.teardown(context)


def _train(
    config: TrainConfig,
    run_dir: Path,
    context: distributed.Context,
    device: torch.device,
    on_epoch: Callable | None,
    on_step: Callable | None,
) -> TrainResult:
    main = context.is_main
    prepared = ensure_prepared(config.data, config.size, config.split_seed) if main else None
    distributed.barrier(context)  # rank 0 prepares a raw folder once; the others then read the cache
    prepared = prepared or ensure_prepared(config.data, config.size, config.split_seed)
    precision = resolve_precision(config.precision, device, config.channels_last)

    torch.manual_seed(config.seed)
    data = load_data(prepared, device, config.max_train_images, context)
    engine = build_engine(config, device, precision, context)
    setup = describe_setup(device, precision, engine.compiled)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(
            run_dir / "config.json", json.dumps(config.to_dict() | {"resume": None, "resolved": setup}, indent=1)
        )
    init_name = _load_initial_weights(engine.model, config.init, device) if config.init and not config.resume else None
    state = RunState()
    if config.resume:
        from skinseg.weights import load_model

        restored, _ = load_model(run_dir / "last.safetensors", device)
        engine.model.load_state_dict(restored.state_dict())
        state = RunState.load(run_dir, engine.optimizer)

    schedule = Schedule.of(config, len(data.train_x), context.world)
    recipe = (
        f"{config.optimizer} lr {config.lr} {config.schedule}, {config.loss}, batch {config.batch_size} x "
        f"{context.world} process(es), augment {config.augment}"
    )

    def model_info() -> ModelInfo:
        return ModelInfo(
            config=config.model,
            input_size=prepared.size,
            mean=prepared.mean,
            std=prepared.std,
            threshold=config.threshold,
            training={
                "epochs": state.epoch,
                "best_epoch": state.best_epoch,
                "val_dice": round(state.best_val_dice, 4),
                "train_images": len(data.train_x),
                "data": prepared.manifest.get("source", ""),
                "recipe": recipe,
                **setup,
            }
            | ({"init": init_name} if init_name else {}),
        )

    stopped_early = False
    with _interrupt_signals():
        try:
            for epoch in range(state.epoch, config.epochs):
                started = time.perf_counter()
                row = {
                    "epoch": epoch + 1,
                    **run_epoch(engine, data, config, schedule, epoch, run_dir, context, on_step),
                }
                val = validate(engine, data.val_x, data.val_y, data, config.threshold, config.batch_size * 2, context)
                if val.count == 0:  # no validation split: select on training Dice (and say so in the row)
                    val = Validation(float("nan"), row["train_dice"], float("nan"), 0)
                row |= {
                    "val_loss": val.loss,
                    "val_accuracy": val.accuracy,
                    "val_dice": val.dice,
                    "seconds": time.perf_counter() - started,
                }
                improved = state.record(row)
                if main:
                    save_epoch(run_dir, engine, state, model_info(), improved)
                distributed.barrier(context)
                if on_epoch:
                    on_epoch(row)
                if config.patience and state.bad_epochs >= config.patience:
                    stopped_early = True
                    break
        except KeyboardInterrupt:
            raise TrainingInterrupted(
                f"training interrupted after {len(state.history)} finished epoch(s); continue "
                f"with `skinseg train --resume {run_dir}`"
            ) from None
    return TrainResult(
        run_dir, len(state.history), state.best_epoch, state.best_val_dice, state.history, stopped_early, main
    )
