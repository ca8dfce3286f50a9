"""Validation: loss, Dice and accuracy on every set's validation split, and the rule that selects the best
epoch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from skinseg.data.arrays import SplitArrays
from skinseg.data.dataset import PreparedData
from skinseg.runtime import distributed
from skinseg.training.batches import TrainData, to_float
from skinseg.training.config import TrainConfig
from skinseg.training.engine import Engine, batch_stats


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
    model, device = engine.saved, arrays.device
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


def selection(prepared: list[PreparedData]) -> str:
    """The rule that selects a run's best epoch, decided once per run: 'val_dice' (the mean over the sets that
    have a validation split, as validate_sets gives it), or 'train_dice' where no set has one."""
    return "val_dice" if any(p.manifest["split_sizes"].get("val") for p in prepared) else "train_dice"
