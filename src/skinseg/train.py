"""`skinseg train`: one engine for every device, in parts that read top to bottom.

    train()                      settings, device, precision; then, per epoch:
      load_data()                every data set's prepared arrays, as uint8 (on the device, or memory-mapped)
      build_engine()             model (from the registry), optimiser, loss, precision, compile / DDP
      RunState.load()            on --resume: history, best epoch, optimiser tensors
      run_epoch()                training_batch() + train_step() over epoch_rows(): the sets mixed by weight
      validate_sets()            loss, Dice and accuracy on each set's validation split, and their means
      save_epoch()               weights, resume state, metrics.csv, curves.png (every 30 s and at the end)

The same code runs on CUDA and on the CPU: precision (bf16 autocast, channels_last) and torch.compile are
resolved once from the device, never from a "cuda" literal. Every epoch re-seeds from (seed, epoch), so a
run resumed at an epoch boundary continues exactly as an uninterrupted one would (with a time budget the
learning rate follows the clock, so a resumed budgeted run continues its schedule, not bit for bit).
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
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from skinseg import distributed
from skinseg.architectures import create_model
from skinseg.augment import augment_batch
from skinseg.config import TrainConfig
from skinseg.data.dataset import PreparedData, ensure_prepared, set_name
from skinseg.device import resolve_device
from skinseg.errors import SkinsegError, TrainingInterrupted
from skinseg.fileio import atomic_path, interrupts_held, raise_interrupt, write_csv, write_text
from skinseg.losses import LOSSES, Loss
from skinseg.model import SegmentationModel
from skinseg.optim import create_optimizer, lr_at, lr_at_fraction
from skinseg.precision import Precision, compile_active, resolve_precision
from skinseg.weights import ModelInfo, save_model

__all__ = [
    "TrainResult",
    "TrainingInterrupted",
    "check_run_folder",
    "clear_run_folder",
    "lr_at",
    "resume_config",
    "resumed_config",
    "startup_notes",
    "train",
]

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
CURVES_EVERY = 30.0  # seconds between redraws of curves.png during a run (a drawing takes ~0.3 s); and at its end
IN_MEMORY_SHARE = 0.5  # splits larger than this share of the available memory are read from the cache per batch


class SplitArrays:
    """The uint8 images (N, S, S, 3) and masks (N, S, S) of one split of one or more prepared sets, in order.

    Copied whole to the training device when they take at most IN_MEMORY_SHARE of the available memory;
    larger ones (e.g. 12,000 images at 512 px, 9.4 GB) stay memory-mapped in the caches and each batch is
    read from disk (the OS keeps what fits in its page cache).
    """

    def __init__(self, parts: list[tuple[PreparedData, np.ndarray]], device: torch.device, in_memory: bool):
        self.parts, self.device, self.in_memory = parts, device, in_memory
        self.starts = np.cumsum([0, *(len(rows) for _, rows in parts)])
        self.size = parts[0][0].size
        if in_memory:
            self.images = torch.cat([_rows_to_tensor(prepared.images, rows) for prepared, rows in parts]).to(device)
            self.masks = torch.cat([_rows_to_tensor(prepared.masks, rows) for prepared, rows in parts]).to(device)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def take(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The images and masks of `rows` (positions in this split), on the device."""
        if self.in_memory:
            rows = rows.to(self.device)
            return self.images[rows], self.masks[rows]
        wanted = rows.cpu().numpy()
        part_of = np.searchsorted(self.starts, wanted, side="right") - 1
        images = np.empty((len(wanted), self.size, self.size, 3), np.uint8)
        masks = np.empty((len(wanted), self.size, self.size), np.uint8)
        for k, (prepared, cache_rows) in enumerate(self.parts):
            chosen = np.flatnonzero(part_of == k)
            where = cache_rows[wanted[chosen] - self.starts[k]]
            order = np.argsort(where)  # read the memory map front to back
            images[chosen[order]] = prepared.images[where[order]]
            masks[chosen[order]] = prepared.masks[where[order]]
        return torch.from_numpy(images).to(self.device), torch.from_numpy(masks).to(self.device)


def _rows_to_tensor(array: np.ndarray, rows: np.ndarray) -> torch.Tensor:
    if len(rows) == 0:
        return torch.zeros((0, *array.shape[1:]), dtype=torch.uint8)
    return torch.from_numpy(np.ascontiguousarray(array[rows]))


def available_memory() -> int:
    """Bytes of memory available to this process (MemAvailable on Linux), or 8 GiB where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30


@dataclass
class DataSet:
    """One data set's part of a run: its name, its share of every epoch and its validation split."""

    name: str
    source: str
    weight: float
    train_images: int
    val: SplitArrays


@dataclass
class TrainData:
    """The training images of every set (one SplitArrays, sets in order), each set's validation split (this
    rank's share) and the normalisation."""

    train: SplitArrays
    sets: list[DataSet]
    mean: torch.Tensor  # (1, 3, 1, 1), 0-255 scale
    std: torch.Tensor

    def normalise(self, images01: torch.Tensor) -> torch.Tensor:
        return (images01 * 255 - self.mean) / self.std


def set_names(sets: list[PreparedData]) -> list[str]:
    """Short unique names of the data sets (their raw folders' names), for metric columns and reports."""
    names: list[str] = []
    for prepared in sets:
        name = set_name(prepared.root, prepared.manifest)
        names.append(name if name not in names else f"{name}-{len(names) + 1}")
    return names


def combined_normalisation(sets: list[PreparedData], weights: tuple[float, ...]) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the mixture that training draws (each set's statistics, weighted)."""
    means = np.array([p.mean for p in sets])
    stds = np.array([p.std for p in sets])
    w = np.array(weights)[:, None]
    mean = (w * means).sum(0)
    second = (w * (stds**2 + means**2)).sum(0)
    return mean.tolist(), np.sqrt(np.maximum(second - mean**2, 1e-6)).tolist()


def load_data(
    prepared: PreparedData | list[PreparedData],
    device: torch.device,
    max_train_images: int = 0,
    context: distributed.Context = distributed.Context(),
    weights: tuple[float, ...] = (),
) -> TrainData:
    """The training splits (each capped for quick runs) and this rank's share of every validation split."""
    sets = prepared if isinstance(prepared, list) else [prepared]
    weights = weights or (1.0 / len(sets),) * len(sets)
    if len({p.size for p in sets}) > 1:
        sizes = ", ".join(f"{p.root} is {p.size} px" for p in sets)
        raise SkinsegError(f"the data sets were prepared at different sizes ({sizes}); prepare them at one --size")
    train_rows = [p.indices("train")[: max_train_images or None] for p in sets]
    for p, rows in zip(sets, train_rows, strict=True):
        if len(rows) == 0:
            raise SkinsegError("the prepared dataset has no training images", p.root)
    val_rows = [p.indices("val")[context.rank :: context.world] for p in sets]
    image_bytes = sets[0].size ** 2 * 4
    needed = sum(len(r) for r in train_rows + val_rows) * image_bytes
    in_memory = needed <= IN_MEMORY_SHARE * available_memory()
    mean, std = combined_normalisation(sets, weights)
    return TrainData(
        SplitArrays(list(zip(sets, train_rows, strict=True)), device, in_memory),
        [
            DataSet(
                name, str(p.manifest.get("source") or p.root), w, len(tr), SplitArrays([(p, vr)], device, in_memory)
            )
            for name, p, w, tr, vr in zip(set_names(sets), sets, weights, train_rows, val_rows, strict=True)
        ],
        torch.tensor(mean, device=device).view(1, 3, 1, 1),
        torch.tensor(std, device=device).view(1, 3, 1, 1),
    )


def epoch_rows(data: TrainData) -> torch.Tensor:
    """The order in which an epoch visits the training rows: as many draws as there are training images,
    each set's share of them per its weight, every set's images without repeats until all have been drawn.
    With one set, a permutation. Uses the global generator (seeded per epoch by the caller)."""
    sizes = [s.train_images for s in data.sets]
    if len(sizes) == 1:
        return torch.randperm(sizes[0])
    total = sum(sizes)
    quotas = [s.weight * total for s in data.sets]
    counts = [int(q) for q in quotas]
    for k in sorted(range(len(sizes)), key=lambda k: counts[k] - quotas[k])[: total - sum(counts)]:
        counts[k] += 1  # largest remainders
    parts = []
    for start, size, count in zip(data.train.starts, sizes, counts, strict=False):
        repeats = -(-count // size)
        parts.append(torch.cat([torch.randperm(size) for _ in range(repeats)])[:count] + int(start))
    order = torch.cat(parts)
    return order[torch.randperm(len(order))]


def to_float(images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 NHWC / NHW -> float NCHW in [0, 1] and float N1HW."""
    return images.permute(0, 3, 1, 2).float().div_(255), masks.unsqueeze(1).float()


def training_batch(
    data: TrainData, rows: torch.Tensor, augment: bool, precision: Precision
) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalised, (optionally) augmented images and masks of `rows`, in the run's memory format."""
    x, y = to_float(*data.train.take(rows))
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
    arrays: SplitArrays,
    data: TrainData,
    threshold: float,
    batch_size: int,
    context: distributed.Context = distributed.Context(),
) -> Validation:
    """Loss, Dice and accuracy of the model on a split's images, summed across ranks."""
    model, device = engine.model, arrays.device
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)
    for start in range(0, len(arrays), batch_size):
        x, y = to_float(*arrays.take(torch.arange(start, min(start + batch_size, len(arrays)))))
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


def validate_sets(
    engine: Engine, data: TrainData, config: TrainConfig, context: distributed.Context = distributed.Context()
) -> tuple[Validation, dict[str, float]]:
    """Every set's validation split; the run's figures are the means over the sets that have one (the rule
    that selects the best epoch: each set counts the same, however large). With several sets, each set's
    Dice is returned too, as `val_dice_<name>`."""
    results = [
        (s.name, validate(engine, s.val, data, config.threshold, config.batch_size * 2, context)) for s in data.sets
    ]
    scored = [v for _, v in results if v.count]
    if not scored:
        return Validation(float("nan"), float("nan"), float("nan"), 0), {}
    loss, dice, accuracy = (float(np.mean([getattr(v, f) for v in scored])) for f in ("loss", "dice", "accuracy"))
    mean = Validation(loss, dice, accuracy, sum(v.count for v in scored))
    per_set = {f"val_dice_{name}": v.dice for name, v in results} if len(results) > 1 else {}
    return mean, per_set


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
    """Steps per epoch, and the learning rate at a step: over `epochs`, or over a time budget (then the
    schedule follows the fraction of the budget spent, warm-up still counts steps)."""

    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    per_rank: int  # training images per rank and epoch
    base_lr: float
    name: str
    time_budget: float = 0.0

    @classmethod
    def of(cls, config: TrainConfig, train_images: int, world: int) -> Schedule:
        per_rank = math.ceil(train_images / world)
        steps = math.ceil(per_rank / config.batch_size)
        return cls(
            steps,
            steps * config.epochs,
            int(config.warmup_epochs * steps),
            per_rank,
            config.lr,
            config.schedule,
            config.time_budget,
        )

    def lr(self, step: int, seconds_spent: float) -> float:
        if self.time_budget:
            return lr_at_fraction(step, seconds_spent / self.time_budget, self.base_lr, self.warmup_steps, self.name)
        return lr_at(step, self.total_steps, self.base_lr, self.warmup_steps, self.name)


def _check_finite(loss: torch.Tensor, bad: float, epoch: int, step: int, run_dir: Path) -> None:
    """`bad`: the count of ranks whose loss is not finite."""
    if bad > 0:
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
    seconds_spent: float = 0.0,
) -> dict:
    """One pass over this rank's share of the shuffled training rows; returns the epoch's training figures.
    With a time budget the pass ends early once the budget is spent (`budget_spent` in the result)."""
    started = time.perf_counter()
    device = data.train.device
    torch.manual_seed(config.seed * 100_003 + epoch)
    order = epoch_rows(data)
    order = torch.cat([order, order[: schedule.per_rank * context.world - len(order)]])[context.rank :: context.world]
    torch.manual_seed(config.seed * 100_003 + epoch + 7_919 * (context.rank + 1))  # augmentation, dropout
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss, Dice, accuracy
    seen = 0  # images this rank trained on, counted on the host: no transfer to the device per step
    spent, budget_spent = seconds_spent, False
    lr = config.lr
    for step in range(schedule.steps_per_epoch):
        lr = schedule.lr(epoch * schedule.steps_per_epoch + step, spent)
        rows = order[step * config.batch_size : (step + 1) * config.batch_size]
        x, y = training_batch(data, rows, config.augment, engine.precision)
        loss, logits = train_step(engine, x, y, lr)
        sums += torch.cat([loss[None] * len(x), batch_stats(logits, y, config.threshold)]).double()
        seen += len(x)
        last = step + 1 == schedule.steps_per_epoch
        if step % REPORT_EVERY == 0 or last:
            # one collective for the NaN check and the clock, so that every rank uses the same learning rate
            # and stops at the same step
            bad, elapsed = distributed.sum_across(
                context, [float(~torch.isfinite(loss)), time.perf_counter() - started], device
            )
            _check_finite(loss, bad, epoch, step, run_dir)
            spent = seconds_spent + elapsed / context.world
            budget_spent = bool(schedule.time_budget) and spent >= schedule.time_budget
            if on_step:
                on_step(step + 1, schedule.steps_per_epoch, float(loss), float(sums[1]) / seen)
            if budget_spent:
                break
    loss_sum, dice_sum, accuracy_sum, seen_all = distributed.sum_across(context, [*sums.tolist(), seen], device)
    return {
        "train_loss": loss_sum / seen_all,
        "train_accuracy": accuracy_sum / seen_all,
        "train_dice": dice_sum / seen_all,
        "lr": lr,
        "train_seconds": time.perf_counter() - started,
        "budget_spent": budget_spent,
    }  # the sum above waited for the device


def save_epoch(
    run_dir: Path,
    engine: Engine,
    state: RunState,
    info: ModelInfo,
    improved: bool,
    columns: list[str] | tuple[str, ...] = METRIC_COLUMNS,
    curves: bool = True,
) -> None:
    """The epoch's files, and with `curves` its curves. An interrupt waits until they are all written (and
    matplotlib imported: a KeyboardInterrupt inside an import can surface as another error)."""
    with interrupts_held():
        if improved:
            save_model(engine.model, run_dir / "best.safetensors", info)
        save_model(engine.model, run_dir / "last.safetensors", info)
        state.save(run_dir, engine.optimizer)
        write_csv(run_dir / "metrics.csv", state.history, columns)
        if curves:
            draw_curves(run_dir, state.history)


def draw_curves(run_dir: Path, history: list[dict]) -> None:
    with interrupts_held():
        from skinseg.figures import plot_curves

        plot_curves(history, run_dir / "curves.png")


# ---------------------------------------------------------------------------------------------------- runs
def _best_set_dice(state: RunState, name: str, sets: int) -> dict:
    """A set's validation Dice at the best epoch (runs on several sets)."""
    best = next((row for row in state.history if row["epoch"] == state.best_epoch), None)
    key = f"val_dice_{name}"
    return {"val_dice": round(best[key], 4)} if sets > 1 and best and key in best else {}


def _load_initial_weights(model: SegmentationModel, init: Path, device: torch.device) -> tuple[str, ModelInfo]:
    """Copy the weights of a skinseg model file (or the bundled model, for "bundled") into `model`: fine-tuning.
    Returns the file's name and its metadata (whose normalisation the fine-tuning keeps)."""
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
    return ("bundled" if bundled else path.name), info


def _use_normalisation(data: TrainData, info: ModelInfo) -> None:
    """Normalise as the given model was trained to (fine-tuning from it, or resuming it)."""
    data.mean = torch.tensor(info.mean, device=data.mean.device).view(1, 3, 1, 1)
    data.std = torch.tensor(info.std, device=data.std.device).view(1, 3, 1, 1)


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


RUN_FILES = ("best.safetensors", "last.safetensors", "state.json")  # a folder holding one holds a run
RUN_OUTPUTS = (*RUN_FILES, "state.safetensors", "metrics.csv", "curves.png", "config.json")
RESUME_CHANGES = ("epochs", "time_budget", "device", "precision")  # what a resumed run may be given anew


def check_run_folder(out: Path, overwrite: bool = False) -> None:
    """A new run does not write into a folder that holds a finished or started run: that takes --resume (to
    continue it) or --overwrite (to replace it). The folder is made here, so that one that cannot be is an
    error before the work."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SkinsegError("is a file; --out takes a folder for the run", out)
    found = [name for name in RUN_FILES if (out / name).exists()]
    if found and not overwrite:
        raise SkinsegError(
            f"holds a run ({', '.join(found)}): continue it with --resume {out}, or replace it with --overwrite", out
        )
    try:
        out.mkdir(parents=True, exist_ok=True)  # a folder that cannot be made is said before the data is loaded
    except OSError as exc:
        raise SkinsegError(f"cannot make the run folder: {exc.strerror or exc}", out) from None


def clear_run_folder(out: Path) -> None:
    """Remove the files of the run in `out` (--overwrite), so that none of the old run's is left beside the new."""
    for name in RUN_OUTPUTS:
        (Path(out) / name).unlink(missing_ok=True)


def resume_config(run_dir: str | Path, **options: Any) -> TrainConfig:
    """The settings that continue the run in `run_dir`: those in its config.json, with the options of
    RESUME_CHANGES that are given (not None): a new total of epochs or time budget, another device or precision.
    Any other option given is refused (a resumed run keeps its data, model, recipe and folder), never ignored."""
    refused = [name for name, value in options.items() if value is not None and name not in RESUME_CHANGES]
    if refused:
        names = ", ".join(f"--{name.replace('_', '-')}" for name in refused)
        raise SkinsegError(
            f"{names} cannot be given with --resume: a resumed run keeps its data, model and recipe"
            " (only --epochs, --time-budget, --device and --precision can change)"
        )
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise SkinsegError("no config.json: not a skinseg run folder", run_dir)
    if not (run_dir / "last.safetensors").is_file() or not (run_dir / "state.json").is_file():
        raise SkinsegError(
            "no finished epoch to resume from (the run stopped in its first epoch): start it again without --resume",
            run_dir,
        )
    saved = json.loads((run_dir / "config.json").read_text())
    saved.pop("resolved", None)
    restored = TrainConfig.from_dict(saved)
    changes = {name: value for name, value in options.items() if value is not None}
    if "epochs" in changes:
        if restored.time_budget and not changes.get("time_budget"):
            raise SkinsegError("this run trains for a time budget: give it a new total with --time-budget", run_dir)
        done = json.loads((run_dir / "state.json").read_text()).get("epoch", 0)
        if changes["epochs"] < done:
            raise SkinsegError(
                f"the run has finished {done} epochs; --epochs sets its new total, so give more", run_dir
            )
    return replace(restored, resume=run_dir, resumed=True, **changes)


def resumed_config(config: TrainConfig) -> TrainConfig:
    """With `resume` set: the settings saved in that run folder (a resumed run keeps its own schedule), on
    this call's device, and with its time budget where one is given. Without: `config` itself."""
    if not config.resume or config.resumed:
        return config
    return resume_config(config.resume, device=config.device, time_budget=config.time_budget or None)


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
    notes = [*precision.notes, *filter(None, [compile_note(config.compile, device), _no_validation_note(config)])]
    return (
        f"device: {describe_device(device)}; precision: {precision.describe()}; compile: {'on' if compiled else 'off'}"
    ), notes


def _no_validation_note(config: TrainConfig) -> str | None:
    """Said at the start when no data set has a validation split (known once it is prepared)."""
    from skinseg.data.dataset import default_cache_dir
    from skinseg.data.prepare import load_manifest

    manifests = [
        load_manifest(d) or load_manifest(default_cache_dir(d, config.size, config.split_seed))
        for d in config.data_sets
    ]
    if all(m and not m["split_sizes"].get("val") for m in manifests):
        return "no validation split: the best epoch is selected on training Dice (selected_on: train_dice)"
    return None


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
    prepared = [ensure_prepared(d, config.size, config.split_seed) for d in config.data_sets] if main else []
    distributed.barrier(context)  # rank 0 prepares a raw folder once; the others then read the cache
    prepared = prepared or [ensure_prepared(d, config.size, config.split_seed) for d in config.data_sets]
    precision = resolve_precision(config.precision, device, config.channels_last)

    torch.manual_seed(config.seed)
    data = load_data(prepared, device, config.max_train_images, context, config.set_weights)
    engine = build_engine(config, device, precision, context)
    setup = describe_setup(device, precision, engine.compiled)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(
            run_dir / "config.json",
            json.dumps(
                # the size of the data as prepared (a prepared folder keeps its own, whatever --size says)
                replace(config, size=prepared[0].size).to_dict() | {"resume": None, "resolved": setup},
                indent=1,
            ),
        )
    init_name = None
    if config.init and not config.resume:
        init_name, init_info = _load_initial_weights(engine.model, config.init, device)
        _use_normalisation(data, init_info)
    state = RunState()
    if config.resume:
        from skinseg.weights import load_model

        restored, restored_info = load_model(run_dir / "last.safetensors", device)
        engine.model.load_state_dict(restored.state_dict())
        _use_normalisation(data, restored_info)
        state = RunState.load(run_dir, engine.optimizer)

    schedule = Schedule.of(config, len(data.train), context.world)
    recipe = (
        f"{config.optimizer} lr {config.lr} {config.schedule}, {config.loss}, batch {config.batch_size} x "
        f"{context.world} process(es), augment {config.augment}"
        + (f", time budget {config.time_budget / 60:.0f} min" if config.time_budget else "")
    )
    columns = [*METRIC_COLUMNS, *(f"val_dice_{s.name}" for s in data.sets if len(data.sets) > 1)]
    selected_on = "val_dice" if any(p.manifest["split_sizes"].get("val") for p in prepared) else "train_dice"

    def model_info() -> ModelInfo:
        return ModelInfo(
            config=config.model,
            input_size=prepared[0].size,
            mean=tuple(data.mean.flatten().tolist()),
            std=tuple(data.std.flatten().tolist()),
            threshold=config.threshold,
            training={
                "epochs": state.epoch,
                "best_epoch": state.best_epoch,
                "val_dice": round(state.best_val_dice, 4),
                "selected_on": selected_on,
                "train_images": len(data.train),
                "data": ", ".join(s.source for s in data.sets),
                "data_sets": [
                    {
                        "name": s.name,
                        "source": s.source,
                        "train_images": s.train_images,
                        "weight": round(s.weight, 4),
                        **_best_set_dice(state, s.name, len(data.sets)),
                    }
                    for s in data.sets
                ],
                "recipe": recipe,
                **setup,
            }
            | ({"init": init_name} if init_name else {}),
        )

    stopped_early = False
    last_epoch = config.epochs if not config.time_budget else 1_000_000  # a budget ends the run instead
    saved = len(state.history)  # epochs whose files are written
    curves_drawn, curves_epochs = time.perf_counter(), saved  # curves.png: when, and of how many epochs
    with _interrupt_signals():
        try:
            for epoch in range(state.epoch, last_epoch):
                spent = sum(row["seconds"] for row in state.history)
                if config.time_budget and spent >= config.time_budget:
                    break
                started = time.perf_counter()
                row = {
                    "epoch": epoch + 1,
                    **run_epoch(engine, data, config, schedule, epoch, run_dir, context, on_step, spent),
                }
                budget_spent = row.pop("budget_spent")
                val, per_set = validate_sets(engine, data, config, context)
                if val.count == 0:  # no validation split: select on training Dice (and say so in the row)
                    val = Validation(float("nan"), row["train_dice"], float("nan"), 0)
                    row["selected_on"] = "train_dice"
                row |= {
                    "val_loss": val.loss,
                    "val_accuracy": val.accuracy,
                    "val_dice": val.dice,
                    **per_set,
                    "seconds": time.perf_counter() - started,
                }
                with interrupts_held():  # an epoch is recorded, saved and counted as one
                    improved = state.record(row)
                    curves = time.perf_counter() - curves_drawn >= CURVES_EVERY  # else later, or at the run's end
                    if main:
                        save_epoch(run_dir, engine, state, model_info(), improved, columns, curves)
                    saved = len(state.history)
                    if curves:
                        curves_drawn, curves_epochs = time.perf_counter(), saved
                distributed.barrier(context)
                if on_epoch:
                    on_epoch(row)
                if budget_spent:
                    break
                if config.patience and state.bad_epochs >= config.patience:
                    stopped_early = True
                    break
            if main and curves_epochs != saved:
                with contextlib.suppress(KeyboardInterrupt):  # the run is complete: a Ctrl-C now changes nothing
                    draw_curves(run_dir, state.history)
                curves_epochs = saved
        except KeyboardInterrupt:
            if not state.history:
                raise TrainingInterrupted(
                    "training interrupted in its first epoch, before anything was saved: nothing to resume;"
                    " start it again with the same command"
                ) from None
            raise TrainingInterrupted(
                f"training interrupted after {len(state.history)} finished epoch(s); continue "
                f"with `skinseg train --resume {run_dir}`"
            ) from None
        finally:
            if main and curves_epochs != saved:  # interrupted or failed: the curves of the epochs saved so far
                with contextlib.suppress(Exception, KeyboardInterrupt):
                    draw_curves(run_dir, state.history[:saved])
    return TrainResult(
        run_dir, len(state.history), state.best_epoch, state.best_val_dice, state.history, stopped_early, main
    )
