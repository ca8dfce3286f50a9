"""Optimisers and learning-rate schedules, chosen by name. A schedule is a pure function of the step."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from skinseg.registry import Registry

if TYPE_CHECKING:
    import torch

OptimizerFactory = Callable[[Iterable["torch.nn.Parameter"], float, float], "torch.optim.Optimizer"]


def _torch_optimizer(name: str, **settings: Any) -> OptimizerFactory:
    """The optimiser torch.optim.`name` with these settings (torch is imported when one is made: the help of `train`
    lists the names without it)."""

    def make(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
        import torch

        return getattr(torch.optim, name)(params, lr=lr, weight_decay=weight_decay, **settings)

    return make


OPTIMIZERS: Registry[OptimizerFactory] = Registry("optimizer")
OPTIMIZERS.register("adamw")(_torch_optimizer("AdamW"))
OPTIMIZERS.register("adam")(_torch_optimizer("Adam"))
OPTIMIZERS.register("sgd")(_torch_optimizer("SGD", momentum=0.99, nesterov=True))

# A schedule maps training progress after warm-up (0 to 1) to a fraction of the peak learning rate.
ScheduleCurve = Callable[[float], float]
SCHEDULES: Registry[ScheduleCurve] = Registry("schedule")
SCHEDULES.register("cosine")(lambda progress: 0.5 * (1 + math.cos(math.pi * progress)))
SCHEDULES.register("constant")(lambda progress: 1.0)
SCHEDULES.register("poly")(lambda progress: (1 - progress) ** 0.9)  # nnU-Net's


def lr_at(step: int, total_steps: int, base_lr: float, warmup_steps: int, schedule: str) -> float:
    """Linear warm-up over `warmup_steps`, then `schedule` over the rest."""
    if warmup_steps and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * SCHEDULES.get_checked(schedule)(min(1.0, progress))


def lr_at_fraction(step: int, fraction: float, base_lr: float, warmup_steps: int, schedule: str) -> float:
    """For a time budget: linear warm-up over the first `warmup_steps`, and `schedule` over the fraction of
    the budget spent (the lower of the two, so the curve has no jump where warm-up ends)."""
    warm = (step + 1) / warmup_steps if warmup_steps and step < warmup_steps else 1.0
    return base_lr * min(warm, SCHEDULES.get_checked(schedule)(min(1.0, max(0.0, fraction))))


def create_optimizer(
    name: str, params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    return OPTIMIZERS.get_checked(name)(params, lr, weight_decay)


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
    def of(
        cls,
        *,
        train_images: int,
        world: int,
        batch_size: int,
        epochs: int,
        warmup_epochs: float,
        lr: float,
        name: str,
        time_budget: float = 0.0,
    ) -> Schedule:
        per_rank = math.ceil(train_images / world)
        steps = math.ceil(per_rank / batch_size)
        return cls(steps, steps * epochs, int(warmup_epochs * steps), per_rank, lr, name, time_budget)

    def lr(self, step: int, seconds_spent: float) -> float:
        if self.time_budget:
            return lr_at_fraction(step, seconds_spent / self.time_budget, self.base_lr, self.warmup_steps, self.name)
        return lr_at(step, self.total_steps, self.base_lr, self.warmup_steps, self.name)
