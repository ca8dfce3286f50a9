"""`skinseg train`'s loop, read top to bottom:

    train()            check a resumed config, set up the device (and torchrun's ranks)
      start_run()      data sets, precision, arrays, engine, config.json, `init` or `resume`: a Run
      run_epochs()     per epoch: run_epoch() (train_step over the epoch's rows), validate_sets(), save_epoch()

Every epoch re-seeds from (seed, epoch), so a run resumed at an epoch boundary continues exactly as an
uninterrupted one would (with a time budget the learning rate follows the clock, so a resumed budgeted run
continues its schedule, not bit for bit).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from skinseg.errors import SkinsegError, TrainingInterrupted
from skinseg.fileio import interrupts_held, write_text
from skinseg.models.weights import ModelInfo, load_model
from skinseg.runtime import distributed
from skinseg.runtime.device import resolve_device
from skinseg.runtime.precision import resolve_precision
from skinseg.training.batches import TrainData, epoch_rows, load_data, training_batch
from skinseg.training.config import TrainConfig
from skinseg.training.engine import Engine, batch_stats, build_engine, train_step
from skinseg.training.optim import Schedule
from skinseg.training.runs import METRIC_COLUMNS, Curves, RunState, check_resumable, save_epoch
from skinseg.training.start import (
    check_same_data,
    data_record,
    describe_setup,
    interrupt_signals,
    load_initial_weights,
    open_data_sets,
    startup_notes,
    use_normalisation,
)
from skinseg.training.validation import selection, validate_sets

REPORT_EVERY = 10  # progress and NaN checks every few steps, so a GPU is not synchronised at every step


@dataclass
class TrainResult:
    run_dir: Path
    epochs_done: int
    best_epoch: int
    best_dice: float  # the best epoch's Dice in `selected_on`
    selected_on: str = "val_dice"  # or "train_dice", where no data set has a validation split
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False
    is_main: bool = True  # False on the other ranks of a torchrun job


@dataclass
class Run:
    """Everything a run holds once started: settings, where it writes, data, engine, schedule and state."""

    config: TrainConfig
    run_dir: Path
    context: distributed.Context
    data: TrainData
    engine: Engine
    schedule: Schedule
    state: RunState
    size: int  # the side of the images, as the data sets were prepared
    about: dict  # what the weights' metadata says of the training besides the state's figures

    @property
    def columns(self) -> list[str]:
        sets = self.data.sets
        return [*METRIC_COLUMNS, *(f"val_dice_{s.name}" for s in sets if len(sets) > 1)]

    def model_info(self) -> ModelInfo:
        state, data = self.state, self.data
        return ModelInfo(
            config=self.config.model,
            input_size=self.size,
            mean=tuple(data.mean.flatten().tolist()),
            std=tuple(data.std.flatten().tolist()),
            threshold=self.config.threshold,
            training={
                "epochs": state.epoch,
                "best_epoch": state.best_epoch,
                state.selected_on: round(state.best_dice, 4),
                "selected_on": state.selected_on,
                "train_images": len(data.train),
                "data": ", ".join(s.source for s in data.sets),
                "data_sets": [
                    {
                        "name": s.name,
                        "source": s.source,
                        "train_images": s.train_images,
                        "weight": round(s.weight, 4),
                        **self._best_set_dice(s.name),
                    }
                    for s in data.sets
                ],
                **self.about,
            },
        )

    def _best_set_dice(self, name: str) -> dict:
        """A set's validation Dice at the best epoch (runs on several sets)."""
        best = next((row for row in self.state.history if row["epoch"] == self.state.best_epoch), None)
        key = f"val_dice_{name}"
        return {"val_dice": round(best[key], 4)} if len(self.data.sets) > 1 and best and key in best else {}


def train(
    config: TrainConfig,
    on_epoch: Callable[[dict], None] | None = None,
    on_step: Callable[[int, int, float, float], None] | None = None,
    on_start: Callable[[str, list[str]], None] | None = None,
) -> TrainResult:
    """Train a model per `config` (to resume a run, build it with `runs.load_run`). `on_start(line, notes)`
    says how the run computes, `on_step(step, steps_per_epoch, loss, running_train_dice)` and `on_epoch(row)`
    report progress.

    Under torchrun every rank trains on its share of each epoch's shuffled images (DistributedDataParallel,
    NCCL on GPUs, gloo on the CPU); metrics are summed across ranks and only rank 0 writes files and reports.
    """
    if config.resume:
        check_resumable(config)
    context, device = distributed.setup(resolve_device(config.device))
    main = context.is_main
    try:
        run = start_run(config, context, device, on_start if main else None)
        return run_epochs(run, on_epoch if main else None, on_step if main else None)
    finally:
        distributed.teardown(context)


def start_run(
    config: TrainConfig,
    context: distributed.Context,
    device: torch.device,
    on_start: Callable[[str, list[str]], None] | None = None,
) -> Run:
    """Open the data, resolve the precision, build the engine, write config.json, and load the weights a
    run starts from: `init`'s, or on resume its own last ones with its state."""
    prepared = open_data_sets(config, context)
    if config.resume:
        check_same_data(config, prepared)
    size = prepared[0].size  # a prepared folder keeps its own size, whatever `size` says
    precision = resolve_precision(config.precision, device, config.channels_last, job="train", size=size)
    torch.manual_seed(config.seed)
    data = load_data(prepared, device, config.max_train_images, context, config.set_weights)
    engine = build_engine(config, device, precision, context)
    setup = describe_setup(device, precision, engine.compiled)
    state = RunState(selection(prepared))
    if on_start:
        on_start(*startup_notes(config, device, precision, engine.compiled, state.selected_on))
    run_dir = Path(config.resume or config.out)
    if context.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        saved = replace(config, size=size).to_dict() | {"resume": None, "resolved": setup}
        saved["prepared"] = data_record(prepared)
        write_text(run_dir / "config.json", json.dumps(saved, indent=1))
    recipe = (
        f"{config.optimizer} lr {config.lr} {config.schedule}, {config.loss}, batch {config.batch_size} x "
        f"{context.world} process(es), augment {config.augment}"
        + (f", time budget {config.time_budget / 60:.0f} min" if config.time_budget else "")
        + (f", weights averaged (EMA {config.ema:g})" if config.ema else "")
    )
    about = {"recipe": recipe, **setup}
    if config.init and not config.resume:
        about["init"], init_info = load_initial_weights(engine.model, config.init, device)
        use_normalisation(data, init_info)
    engine.start_average(config.ema)
    if config.resume:
        restored, restored_info = load_model(run_dir / "last.safetensors", device)
        engine.saved.load_state_dict(restored.state_dict())  # with `ema`, the average; the trained weights follow
        use_normalisation(data, restored_info)
        state = RunState.load(run_dir, engine.optimizer, state.selected_on, engine.model if engine.average else None)
    schedule = Schedule.of(
        train_images=len(data.train),
        world=context.world,
        batch_size=config.batch_size,
        epochs=config.epochs,
        warmup_epochs=config.warmup_epochs,
        lr=config.lr,
        name=config.schedule,
        time_budget=config.time_budget,
    )
    return Run(config, run_dir, context, data, engine, schedule, state, size, about)


def run_epochs(
    run: Run,
    on_epoch: Callable[[dict], None] | None = None,
    on_step: Callable[[int, int, float, float], None] | None = None,
) -> TrainResult:
    """Epochs until the last, the time budget or the patience ends the run; each is saved as one, and an
    interrupt leaves the state of the last saved epoch (TrainingInterrupted says how to resume)."""
    config, state = run.config, run.state
    stopped_early = False
    last_epoch = config.epochs if not config.time_budget else 1_000_000  # a budget ends the run instead
    curves = Curves(run.run_dir, len(state.history)) if run.context.is_main else None
    with interrupt_signals():
        try:
            for epoch in range(state.epoch, last_epoch):
                spent = sum(row["seconds"] for row in state.history)
                if config.time_budget and spent >= config.time_budget:
                    break
                row, budget_spent = train_and_validate(run, epoch, spent, on_step)
                with interrupts_held():  # an epoch is recorded, saved and counted as one
                    improved = state.record(row)
                    if run.context.is_main:  # rank 0 writes the files; `curves` exists there only
                        assert curves is not None
                        draw = curves.due()
                        save_epoch(run.run_dir, run.engine, state, run.model_info(), improved, run.columns, draw)
                        curves.epoch_saved(len(state.history), draw)
                distributed.barrier(run.context)
                if on_epoch:
                    on_epoch(row)
                if budget_spent:
                    break
                if config.patience and state.bad_epochs >= config.patience:
                    stopped_early = True
                    break
            if curves:
                curves.draw_at_end(state.history)
        except KeyboardInterrupt:
            raise interrupted(state, run.run_dir) from None
        finally:
            if curves:
                curves.draw_saved(state.history)
    return TrainResult(
        run.run_dir,
        len(state.history),
        state.best_epoch,
        state.best_dice,
        state.selected_on,
        state.history,
        stopped_early,
        run.context.is_main,
    )


def interrupted(state: RunState, run_dir: Path) -> TrainingInterrupted:
    if not state.history:
        return TrainingInterrupted(
            "training interrupted in its first epoch, before anything was saved: nothing to resume;"
            " start it again with the same command"
        )
    return TrainingInterrupted(
        f"training interrupted after {len(state.history)} finished epoch(s); continue "
        f"with `skinseg train --resume {run_dir}`"
    )


def train_and_validate(
    run: Run, epoch: int, spent: float, on_step: Callable[[int, int, float, float], None] | None
) -> tuple[dict, bool]:
    """One epoch's row of metrics.csv, and whether the time budget ran out during it."""
    started = time.perf_counter()
    figures = run_epoch(run.engine, run.data, run.config, run.schedule, epoch, run.run_dir, run.context, on_step, spent)
    budget_spent = figures.pop("budget_spent")
    val, per_set = validate_sets(run.engine, run.data, run.config, run.context)
    weights = run.engine.saved.parameters()
    if (val.count and not math.isfinite(val.loss)) or not all(bool(torch.isfinite(w).all()) for w in weights):
        # the epoch's last step broke the weights after its loss was checked
        what = f"the weights became NaN or infinite in epoch {epoch + 1} (validation loss {val.loss})"
        raise _not_finite(what, epoch, run.run_dir)
    row = {"epoch": epoch + 1, **figures, "val_loss": val.loss, "val_accuracy": val.accuracy, "val_dice": val.dice}
    return row | per_set | {"seconds": time.perf_counter() - started}, budget_spent


def _check_finite(loss: torch.Tensor, bad: float, epoch: int, step: int, run_dir: Path) -> None:
    """`bad`: the count of ranks whose loss is not finite. Epoch 0 is a new run's first: nothing saved yet (a
    resumed run starts after a saved epoch), and a new run that fails there leaves no files (runs.run_folder)."""
    if bad > 0:
        raise _not_finite(f"loss became {float(loss)} at epoch {epoch + 1}, step {step + 1}", epoch, run_dir)


def _not_finite(what: str, epoch: int, run_dir: Path) -> SkinsegError:
    """The error of a run whose numbers stopped being finite in `epoch` (0: a new run's first, nothing saved)."""
    kept = (
        f"stopped. The last good weights are in {run_dir / 'last.safetensors'} (try a lower `lr`)"
        if epoch
        else "stopped in the first epoch, before anything was saved: no weights were kept (start again with"
        " a lower `lr`)"
    )
    return SkinsegError(f"{what}; {kept}")


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
