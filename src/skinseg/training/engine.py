"""The engine of a run: model (from the registry), optimiser, loss and precision, and one optimiser step.
The same code on every device: precision (bf16 autocast, memory format) and torch.compile are resolved once
from the device, never from a "cuda" literal."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from skinseg.models.architectures import create_model
from skinseg.models.layers import SegmentationModel
from skinseg.runtime import distributed
from skinseg.runtime.precision import Precision, compile_active
from skinseg.training.config import TrainConfig
from skinseg.training.losses import LOSSES, Loss
from skinseg.training.optim import create_optimizer


class WeightAverage:
    """An exponential moving average of a model's weights (`ema` DECAY), updated after every optimiser step:
    avg <- decay * avg + (1 - decay) * weights. Buffers are copied as they are."""

    def __init__(self, model: SegmentationModel, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: SegmentationModel) -> None:
        for mean, weight in zip(self.model.parameters(), model.parameters(), strict=True):
            mean.lerp_(weight.detach(), 1.0 - self.decay)
        for kept, buffer in zip(self.model.buffers(), model.buffers(), strict=True):
            kept.copy_(buffer)


@dataclass
class Engine:
    """What a training step needs: the model (and the wrapper that runs it), optimiser, loss and precision."""

    model: SegmentationModel  # the plain module the optimiser trains; loaded into
    forward: torch.nn.Module  # the same, compiled and/or wrapped in DistributedDataParallel
    optimizer: torch.optim.Optimizer
    loss: Loss
    precision: Precision
    compiled: bool = False
    average: WeightAverage | None = None  # with `ema`: the averaged weights

    @property
    def saved(self) -> SegmentationModel:
        """The weights a run validates and saves: the average with `ema`, else the trained model itself."""
        return self.average.model if self.average else self.model

    def start_average(self, decay: float) -> None:
        """Begin the average from the current weights (after `init` or a resume has loaded them)."""
        self.average = WeightAverage(self.model, decay) if decay else None


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
    if engine.average:
        engine.average.update(engine.model)
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
