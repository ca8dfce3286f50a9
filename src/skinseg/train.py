"""`skinseg train`: one loop that reads top to bottom.

The prepared arrays sit on the training device as uint8; each step normalises and augments its batch
there. Every epoch re-seeds from (seed, epoch), so a run resumed at an epoch boundary continues exactly as
an uninterrupted one would. Per epoch the run folder gets last.safetensors, best.safetensors (by
validation Dice), state.safetensors + state.json (resume), metrics.csv and curves.png.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import signal
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from skinseg import distributed
from skinseg.augment import augment_batch
from skinseg.config import TrainConfig
from skinseg.data.dataset import PreparedData, ensure_prepared
from skinseg.device import resolve_device
from skinseg.errors import SkinsegError
from skinseg.fileio import atomic_path, interrupts_held, raise_interrupt, write_text
from skinseg.losses import LOSSES, segmentation_loss
from skinseg.model import ImprovedUNet, ModelConfig
from skinseg.weights import ModelInfo, save_model

METRIC_COLUMNS = ("epoch", "train_loss", "train_accuracy", "train_dice", "val_loss", "val_accuracy", "val_dice",
                  "lr", "seconds")


class TrainingInterrupted(SkinsegError):
    """Ctrl-C or SIGTERM: the state of the last finished epoch is on disk."""


@dataclass
class TrainResult:
    run_dir: Path
    epochs_done: int
    best_epoch: int
    best_val_dice: float
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False
    is_main: bool = True  # False on the other ranks of a torchrun job


def lr_at(step: int, total_steps: int, base_lr: float, warmup_steps: int, schedule: str) -> float:
    """Linear warm-up, then constant or cosine decay to zero."""
    if warmup_steps and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _batch_to_float(images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 NHWC / NHW -> float NCHW in [0, 1] and float N1HW."""
    return images.permute(0, 3, 1, 2).float().div_(255), masks.unsqueeze(1).float()


def _normalise(images01: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (images01 * 255 - mean) / std


def _batch_stats(logits: torch.Tensor, masks: torch.Tensor, threshold: float) -> torch.Tensor:
    """[summed per-image Dice (1.0 for 0/0, as the ISIC scorer), summed pixel accuracy] of a batch, on device."""
    pred = torch.sigmoid(logits.float()) > threshold
    truth = masks > 0.5
    tp = (pred & truth).flatten(1).sum(1).float()
    denominator = pred.flatten(1).sum(1).float() + truth.flatten(1).sum(1).float()
    dice = torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), torch.ones_like(tp))
    accuracy = (pred == truth).flatten(1).float().mean(1)
    return torch.stack([dice.sum(), accuracy.sum()])


@torch.no_grad()
def evaluate_arrays(model: torch.nn.Module, images: torch.Tensor, masks: torch.Tensor, mean: torch.Tensor,
                    std: torch.Tensor, config: TrainConfig, autocast: Callable) -> torch.Tensor:
    """[loss sum, Dice sum, pixel-accuracy sum, count] over uint8 arrays already on the device."""
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=images.device)
    step = config.batch_size * 2
    for start in range(0, len(images), step):
        x, y = _batch_to_float(images[start:start + step], masks[start:start + step])
        with autocast():
            logits = model(_normalise(x, mean, std).contiguous(memory_format=_memory_format(x.device)))
        loss = segmentation_loss(config.loss, logits, y).detach() * len(x)
        sums += torch.cat([loss[None], _batch_stats(logits, y, config.threshold),
                           torch.tensor([len(x)], device=x.device)]).double()
    return sums


def _memory_format(device: torch.device) -> torch.memory_format:
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def _to_device(data: PreparedData, split: str, device: torch.device, cap: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rows = data.indices(split)
    if cap:
        rows = rows[:cap]
    if len(rows) == 0:
        return (torch.zeros((0, data.size, data.size, 3), dtype=torch.uint8, device=device),
                torch.zeros((0, data.size, data.size), dtype=torch.uint8, device=device))
    return (torch.from_numpy(np.ascontiguousarray(data.images[rows])).to(device),
            torch.from_numpy(np.ascontiguousarray(data.masks[rows])).to(device))


def _write_metrics(run_dir: Path, history: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS)
    writer.writeheader()
    writer.writerows({k: row[k] for k in METRIC_COLUMNS} for row in history)
    write_text(run_dir / "metrics.csv", buffer.getvalue())


def _save_state(run_dir: Path, optimizer: torch.optim.Optimizer, state: dict) -> None:
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
    write_text(run_dir / "state.json", json.dumps({**state, "optimizer_scalars": scalars,
                                                   "param_groups": opt_state["param_groups"]}, indent=1))


def _load_state(run_dir: Path, optimizer: torch.optim.Optimizer) -> dict:
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
    return state


def _load_initial_weights(model: ImprovedUNet, init: Path, device: torch.device) -> str:
    """Copy the weights of a skinseg model file (or the bundled model, for "bundled") into `model`: fine-tuning."""
    from skinseg.weights import bundled_model_path, load_model

    bundled = str(init) == "bundled"
    path = bundled_model_path() if bundled else Path(init)
    source, info = load_model(path, device)
    if replace(info.config, dropout=model.config.dropout) != model.config:  # dropout holds no weights
        raise SkinsegError(f"cannot start from these weights: their architecture {info.config.to_dict()} differs"
                           f" from this run's {model.config.to_dict()}", path)
    model.load_state_dict(source.state_dict())
    return "bundled" if bundled else path.name


@contextlib.contextmanager
def _interrupt_signals():
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
    saved = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").is_file() else None
    if saved is None:
        raise SkinsegError("no config.json: not a skinseg run folder", run_dir)
    return replace(TrainConfig(**{k: (Path(v) if k in ("data", "out") else v) for k, v in saved.items()
                                  if k != "resume"}), resume=config.resume, device=config.device)


def train(config: TrainConfig, on_epoch: Callable[[dict], None] | None = None,
          on_step: Callable[[int, int, float, float], None] | None = None) -> TrainResult:
    """Train an ImprovedUNet per `config`; `on_step(step, steps_per_epoch, loss, running_train_dice)` and
    `on_epoch(row)` report.

    Under torchrun every rank trains on its share of each epoch's shuffled images (DistributedDataParallel,
    NCCL on GPUs, gloo on the CPU); metrics are summed across ranks and only rank 0 writes files.
    """
    if config.loss not in LOSSES:
        raise SkinsegError(f"unknown loss '{config.loss}'; choose one of {', '.join(LOSSES)}")
    run_dir = Path(config.resume or config.out)
    config = resumed_config(config)
    context, device = distributed.setup(resolve_device(config.device))
    try:
        return _train(config, run_dir, context, device, on_epoch if context.is_main else None,
                      on_step if context.is_main else None)
    finally:
        distributed.teardown(context)


def _train(config: TrainConfig, run_dir: Path, context: distributed.Context, device: torch.device,
           on_epoch: Callable | None, on_step: Callable | None) -> TrainResult:
    main = context.is_main
    data = ensure_prepared(config.data, config.size, config.seed) if main else None
    distributed.barrier(context)  # rank 0 prepares a raw folder once; the others then read the cache
    data = data or ensure_prepared(config.data, config.size, config.seed)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run_dir / "config.json", json.dumps(config.to_dict() | {"resume": None}, indent=1))

    torch.manual_seed(config.seed)
    train_x, train_y = _to_device(data, "train", device, config.max_train_images)
    val_x, val_y = _to_device(data, "val", device)
    val_x, val_y = val_x[context.rank::context.world], val_y[context.rank::context.world]
    if len(train_x) == 0:
        raise SkinsegError("the prepared dataset has no training images", data.root)
    mean = torch.tensor(data.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(data.std, device=device).view(1, 3, 1, 1)

    model_config = ModelConfig(base_filters=config.base_filters, depth=config.depth, dropout=config.dropout,
                               segmentation_levels=config.segmentation_levels)
    try:
        model = ImprovedUNet(model_config)
    except ValueError as exc:
        raise SkinsegError(f"invalid model settings: {exc}") from None
    model = model.to(device).to(memory_format=_memory_format(device))
    init_name = _load_initial_weights(model, config.init, device) if config.init and not config.resume else None
    optimizer_cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}.get(config.optimizer)
    if optimizer_cls is None:
        raise SkinsegError(f"unknown optimizer '{config.optimizer}'; choose adamw or adam")
    optimizer = optimizer_cls(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    use_bf16 = config.amp and device.type == "cuda"

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()

    per_rank = math.ceil(len(train_x) / context.world)
    steps_per_epoch = math.ceil(per_rank / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = int(config.warmup_epochs * steps_per_epoch)
    history: list[dict] = []
    best_dice, best_epoch, start_epoch, bad_epochs = -1.0, 0, 0, 0
    if config.resume:
        from skinseg.weights import load_model

        restored, _ = load_model(run_dir / "last.safetensors", device)
        model.load_state_dict(restored.state_dict())
        state = _load_state(run_dir, optimizer)
        history, best_dice, best_epoch = state["history"], state["best_val_dice"], state["best_epoch"]
        start_epoch, bad_epochs = state["epoch"], state["bad_epochs"]

    forward: torch.nn.Module = model
    if context.active:
        from torch.nn.parallel import DistributedDataParallel

        forward = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile and device.type == "cuda":
        forward = torch.compile(forward)

    def info(epoch: int) -> ModelInfo:
        return ModelInfo(config=model_config, input_size=data.size, mean=data.mean, std=data.std,
                         threshold=config.threshold,
                         training={"epochs": epoch, "best_epoch": best_epoch, "val_dice": round(best_dice, 4),
                                   "train_images": len(train_x), "data": data.manifest.get("source", ""),
                                   "recipe": f"{config.optimizer} lr {config.lr} {config.schedule}, {config.loss},"
                                             f" batch {config.batch_size} x {context.world} process(es),"
                                             f" augment {config.augment}"}
                         | ({"init": init_name} if init_name else {}))

    def check_finite(loss: torch.Tensor, epoch: int, step: int) -> None:
        bad = float(~torch.isfinite(loss.detach()))
        if distributed.sum_across(context, [bad], device)[0] > 0:
            raise SkinsegError(
                f"loss became {float(loss.detach())} at epoch {epoch + 1}, step {step + 1}; stopped. The last good"
                f" weights are in {run_dir / 'last.safetensors'} (try a lower --lr)")

    report_every = 10  # progress and NaN checks every few steps, so a GPU is not synchronised at every step
    stopped_early = False
    with _interrupt_signals():
        try:
            for epoch in range(start_epoch, config.epochs):
                started = time.perf_counter()
                torch.manual_seed(config.seed * 100_003 + epoch)
                order = torch.randperm(len(train_x), device=device)
                order = torch.cat([order, order[:per_rank * context.world - len(order)]])[context.rank::context.world]
                torch.manual_seed(config.seed * 100_003 + epoch + 7_919 * (context.rank + 1))  # augmentation, dropout
                model.train()
                sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss, Dice, accuracy
                for step in range(steps_per_epoch):
                    lr = lr_at(epoch * steps_per_epoch + step, total_steps, config.lr, warmup_steps, config.schedule)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    rows = order[step * config.batch_size:(step + 1) * config.batch_size]
                    x, y = _batch_to_float(train_x[rows], train_y[rows])
                    if config.augment:
                        x, y = augment_batch(x, y)
                    x = _normalise(x, mean, std).contiguous(memory_format=_memory_format(device))
                    with autocast():
                        logits = forward(x)
                    loss = segmentation_loss(config.loss, logits, y)
                    last = step + 1 == steps_per_epoch
                    if step % report_every == 0 or last:
                        check_finite(loss, epoch, step)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    sums += torch.cat([loss.detach()[None] * len(x), _batch_stats(logits.detach(), y,
                                                                                config.threshold)]).double()
                    if on_step and (step % report_every == 0 or last):
                        on_step(step + 1, steps_per_epoch, float(loss.detach()),
                                float(sums[1]) / min(per_rank, (step + 1) * config.batch_size))

                loss_sum, dice_sum, acc_sum = distributed.sum_across(context, sums.tolist(), device)
                train_seconds = time.perf_counter() - started  # the sum above waited for the device
                seen = per_rank * context.world
                val_loss, val_dice, val_acc, val_count = distributed.sum_across(
                    context, evaluate_arrays(model, val_x, val_y, mean, std, config, autocast).tolist(), device)
                if val_count == 0:  # no validation split: select on training Dice
                    val_loss, val_dice, val_acc, val_count = float("nan"), dice_sum, float("nan"), seen
                row = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_accuracy": acc_sum / seen,
                       "train_dice": dice_sum / seen, "val_loss": val_loss / val_count,
                       "val_accuracy": val_acc / val_count, "val_dice": val_dice / val_count,
                       "lr": lr, "seconds": time.perf_counter() - started, "train_seconds": train_seconds}
                history.append(row)
                improved = row["val_dice"] > best_dice
                if improved:
                    best_dice, best_epoch, bad_epochs = row["val_dice"], epoch + 1, 0
                else:
                    bad_epochs += 1
                if main:
                    # An interrupt waits until the epoch's files are all written (and matplotlib imported:
                    # a KeyboardInterrupt inside an import can surface as another error).
                    with interrupts_held():
                        if improved:
                            save_model(model, run_dir / "best.safetensors", info(epoch + 1))
                        save_model(model, run_dir / "last.safetensors", info(epoch + 1))
                        _save_state(run_dir, optimizer, {"epoch": epoch + 1, "history": history,
                                                         "best_val_dice": best_dice, "best_epoch": best_epoch,
                                                         "bad_epochs": bad_epochs})
                        _write_metrics(run_dir, history)
                        from skinseg.figures import plot_curves

                        plot_curves(history, run_dir / "curves.png")
                distributed.barrier(context)
                if on_epoch:
                    on_epoch(row)
                if config.patience and bad_epochs >= config.patience:
                    stopped_early = True
                    break
        except KeyboardInterrupt:
            raise TrainingInterrupted(f"training interrupted after {len(history)} finished epoch(s); continue with "
                                      f"`skinseg train --resume {run_dir}`") from None
    return TrainResult(run_dir, len(history), best_epoch, best_dice, history, stopped_early, main)
