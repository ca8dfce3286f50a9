"""A run's folder: what a new run may write into, the state that resumes it exactly, its settings on
resume, and the files written after each epoch (weights, state, metrics.csv, curves.png)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from skinseg.errors import SkinsegError
from skinseg.fileio import interrupts_held, save_tensors, write_csv, write_text
from skinseg.models.reference import user_model
from skinseg.models.weights import ModelInfo, save_model
from skinseg.plan import Plan
from skinseg.training.config import TrainConfig
from skinseg.training.engine import Engine

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


CURVES_EVERY = 30.0  # seconds between redraws of curves.png during a run (a drawing takes ~0.3 s); and at its end


@dataclass
class RunState:
    """Where a run stands after its last finished epoch: enough, with the optimiser, to resume it exactly."""

    selected_on: str = "val_dice"  # the column of an epoch's row that selects the best epoch (validation.selection)
    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best_dice: float = -1.0  # the best epoch's Dice in `selected_on`
    best_epoch: int = 0
    bad_epochs: int = 0

    def record(self, row: dict) -> bool:
        """Add an epoch's row; True if it is the best so far (by its `selected_on` Dice)."""
        self.history.append(row)
        self.epoch = row["epoch"]
        if row[self.selected_on] > self.best_dice:
            self.best_dice, self.best_epoch, self.bad_epochs = row[self.selected_on], row["epoch"], 0
            return True
        self.bad_epochs += 1
        return False

    def save(
        self, place: Callable[[str], Path], optimizer: torch.optim.Optimizer, trained: torch.nn.Module | None = None
    ) -> None:
        """Optimiser tensors as safetensors, everything else as JSON; never pickle. `place(name)`: where the file
        `name` is written (epoch_files). `trained`: the weights the optimiser trains, where the run saves others
        (their average, `ema`), stored here as `model.*`."""
        opt_state = optimizer.state_dict()
        tensors: dict[str, torch.Tensor] = {}
        scalars = {}
        if trained is not None:
            tensors |= {f"model.{k}": v.detach().cpu().contiguous() for k, v in trained.state_dict().items()}
        for index, values in opt_state["state"].items():
            for name, value in values.items():
                if torch.is_tensor(value):
                    tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
                else:
                    scalars[f"{index}.{name}"] = value
        save_tensors(place("state.safetensors"), tensors)
        write_text(
            place("state.json"),
            json.dumps(
                {
                    "epoch": self.epoch,
                    "history": self.history,
                    "selected_on": self.selected_on,
                    "best_dice": self.best_dice,
                    "best_epoch": self.best_epoch,
                    "bad_epochs": self.bad_epochs,
                    "optimizer_scalars": scalars,
                    "param_groups": opt_state["param_groups"],
                },
                indent=1,
            ),
        )

    @classmethod
    def load(
        cls, run_dir: Path, optimizer: torch.optim.Optimizer, selected_on: str, trained: torch.nn.Module | None = None
    ) -> RunState:
        """The state `save` wrote, loaded into `optimizer` (and `trained`, with `ema`)."""
        state = _read_json(run_dir / "state.json", "the resume state")
        try:
            tensors = load_file(str(run_dir / "state.safetensors"))
        except Exception as exc:  # a missing file and safetensors' own error types alike
            raise SkinsegError(f"cannot read the resume state ({exc})", run_dir) from None
        if state.get("selected_on", selected_on) != selected_on:
            raise SkinsegError(
                f"the run selected its best epoch on {state['selected_on']}, but its data now gives {selected_on}:"
                " its data sets changed since it started",
                run_dir,
            )
        weights = {k.removeprefix("model."): tensors.pop(k) for k in list(tensors) if k.startswith("model.")}
        if trained is not None:
            if not weights:
                raise SkinsegError("the resume state has no trained weights beside their average (`ema`)", run_dir)
            trained.load_state_dict(weights)
        try:
            opt_state: dict = {"state": {}, "param_groups": state["param_groups"]}
            for key, value in list(tensors.items()) + list(state["optimizer_scalars"].items()):
                index, name = key.split(".", 1)
                opt_state["state"].setdefault(int(index), {})[name] = value
            optimizer.load_state_dict(opt_state)
            best = float(state.get("best_dice", state.get("best_val_dice", -1.0)))  # best_val_dice: the older name
            return cls(selected_on, state["epoch"], state["history"], best, state["best_epoch"], state["bad_epochs"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SkinsegError(f"the resume state is damaged ({type(exc).__name__}: {exc})", run_dir) from None


RUN_FILES = ("best.safetensors", "last.safetensors", "state.json")  # a folder holding one holds a run
RUN_OUTPUTS = (*RUN_FILES, "state.safetensors", "metrics.csv", "curves.png", "config.json")
RESUME_CHANGES = ("epochs", "time_budget", "device", "precision")  # what a resumed run may be given anew


def plan_training(config: TrainConfig, overwrite: bool = False) -> Plan:
    """What a run reads (its data sets, the weights it fine-tunes) and writes (its folder, locked while it
    trains, and every file in it); a resumed run continues its own files."""
    plan = Plan("train", overwrite)
    for data in config.data_sets:
        plan.read_data_set(data)
    if config.init and (init := user_model(config.init)) is not None and not config.resume:
        plan.read(init, "`init` weights")
    run_dir = Path(config.resume or config.out)
    plan.write(run_dir, "`resume`" if config.resume else "`out`", owned=True, lock=True)
    continued = config.resume is not None or unstarted_run(run_dir)
    for name in RUN_OUTPUTS:
        plan.write(run_dir / name, "run file", continued=continued)
    return plan


def unstarted_run(run_dir: Path) -> bool:
    """A run that was killed (kill -9, power loss) before its first epoch was saved: skinseg's config.json and
    no weights. Starting again with the same command replaces it, as that run's message says."""
    if any((run_dir / name).exists() for name in RUN_FILES):
        return False
    try:
        saved = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and {"data", "out", "resolved"} <= saved.keys()


def refuse_resume_with_overwrite(resume: Path | None, overwrite: bool) -> None:
    if resume and overwrite:
        raise SkinsegError("`resume` continues a run and `overwrite` replaces it: give one of them")


def check_run_folder(config: TrainConfig, overwrite: bool = False, writer: bool = True) -> Plan:
    """The run's plan, checked before any data is prepared or loaded: a new run does not write into a folder
    that holds a run (that takes `resume` to continue it or `overwrite` to replace it), nor over anything of
    the user's without `overwrite`, nor into its data or over the weights it starts from. Whether its files
    exist is the writer's to judge: the other torchrun ranks may find rank 0's config.json there already."""
    refuse_resume_with_overwrite(config.resume, overwrite)
    plan = plan_training(config, overwrite or not writer)
    out = Path(config.resume or config.out)
    found = [name for name in RUN_FILES if (out / name).exists()]
    if found and not overwrite and not config.resume and writer:
        raise SkinsegError(
            f"holds a run ({', '.join(found)}): continue it with `resume` {out}, or replace it with `overwrite`", out
        )
    plan.check()
    return plan


@contextlib.contextmanager
def run_folder(config: TrainConfig, overwrite: bool = False, writer: bool = True) -> Iterator[None]:
    """The run's folder for the block that trains: checked first (check_run_folder); for the process that
    writes it (`writer`: not the other torchrun ranks), locked while the run trains, and cleared first with
    `overwrite`. A new run that ends before its first epoch is saved (an error, Ctrl-C) leaves nothing behind:
    the files it wrote are removed (and the folder, if it made it: Plan.hold)."""
    out = Path(config.resume or config.out)
    plan = check_run_folder(config, overwrite, writer)
    with plan.hold() if writer else contextlib.nullcontext():
        try:
            if overwrite and writer:
                clear_run_folder(out)
            yield
        except BaseException:
            if writer and not config.resume and not (out / "last.safetensors").exists():
                clear_run_folder(out)
            raise


def clear_run_folder(out: Path) -> None:
    """Remove the files of the run in `out` (`overwrite`), so that none of the old run's is left beside the new,
    and the pending ones a kill -9 left (epoch_files)."""
    for name in RUN_OUTPUTS:
        (Path(out) / name).unlink(missing_ok=True)
        (Path(out) / f".{name}.pending").unlink(missing_ok=True)


def load_run(run_dir: str | Path, **options: Any) -> TrainConfig:
    """The settings that continue the run in `run_dir`: those in its config.json, with the options of
    RESUME_CHANGES that are given (not None): a new total of epochs or time budget, another device or precision.
    Any other option given is refused (a resumed run keeps its data, model, recipe and folder), never ignored."""
    refused = [name for name, value in options.items() if value is not None and name not in RESUME_CHANGES]
    if refused:
        names = ", ".join(f"`{name}`" for name in refused)
        raise SkinsegError(
            f"{names} cannot be given with `resume`: a resumed run keeps its data, model and recipe"
            " (only `epochs`, `time_budget`, `device` and `precision` can change)"
        )
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise SkinsegError("no config.json: not a skinseg run folder", run_dir)
    if not (run_dir / "last.safetensors").is_file() or not (run_dir / "state.json").is_file():
        raise SkinsegError(
            "no finished epoch to resume from (the run stopped in its first epoch): start it again without `resume`",
            run_dir,
        )
    saved = _read_json(run_dir / "config.json", "the run's settings")
    saved.pop("resolved", None)  # how the run computed: resolved again when it resumes
    saved.pop("prepared", None)  # what its data sets were when it started: checked when it resumes
    try:
        restored = TrainConfig.from_dict(saved)
    except (TypeError, KeyError, AttributeError) as exc:
        raise SkinsegError(f"cannot read the run's settings ({exc})", run_dir / "config.json") from None
    changes = {name: value for name, value in options.items() if value is not None and value != getattr(restored, name)}
    if "epochs" in changes or "time_budget" in changes:
        _check_new_total(run_dir, restored, changes)
    return replace(restored, resume=run_dir, **changes)


def _check_new_total(run_dir: Path, restored: TrainConfig, changes: dict) -> None:
    """`epochs` and `time_budget` on resume set the run's new total, of the kind it trains for, above what it did."""
    if restored.time_budget and "epochs" in changes and not changes.get("time_budget"):
        raise SkinsegError("this run trains for a time budget: give it a new total with `time_budget`", run_dir)
    if not restored.time_budget and "time_budget" in changes:
        raise SkinsegError("this run trains for a number of epochs: give it a new total with `epochs`", run_dir)
    state = _read_json(run_dir / "state.json", "the resume state")
    done, spent = state.get("epoch", 0), sum(row.get("seconds", 0) for row in state.get("history", []))
    if changes.get("epochs", done) < done:
        raise SkinsegError(f"the run has finished {done} epochs; `epochs` sets its new total, so give more", run_dir)
    if changes.get("time_budget", spent) < spent:
        raise SkinsegError(
            f"the run has trained for {spent / 60:.1f} min; `time_budget` sets its new total, so give more", run_dir
        )


def first_epoch(config: TrainConfig) -> int:
    """The epoch a run starts with: 1, or for a resumed run the one after its last saved epoch."""
    if not config.resume:
        return 1
    return int(_read_json(Path(config.resume) / "state.json", "the resume state").get("epoch", 0)) + 1


def _read_json(path: Path, what: str) -> dict:
    """A run's JSON file, or one line saying that it is damaged."""
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SkinsegError(f"cannot read {what} ({exc})", path) from None
    if not isinstance(values, dict):
        raise SkinsegError(f"cannot read {what}: not a JSON object", path)
    return values


def check_resumable(config: TrainConfig) -> None:
    """A resumed run keeps its own settings: `config` must be what load_run gives for its folder (with any of
    RESUME_CHANGES), never a config whose other settings the run would silently drop or take."""
    assert config.resume is not None
    saved = load_run(config.resume, **{name: getattr(config, name) for name in RESUME_CHANGES})
    if saved != config:
        differ = [f.name for f in fields(config) if getattr(config, f.name) != getattr(saved, f.name)]
        raise SkinsegError(
            f"these settings differ from the run's own ({', '.join(differ)}): resume with"
            " skinseg.training.runs.load_run(run_dir, ...), which reads them",
            config.resume,
        )


def save_epoch(
    run_dir: Path,
    engine: Engine,
    state: RunState,
    info: ModelInfo,
    improved: bool,
    columns: list[str] | tuple[str, ...] = METRIC_COLUMNS,
    curves: bool = True,
) -> None:
    """The epoch's files, all of them or none (epoch_files), and with `curves` its curves. An interrupt waits
    until they are all written (and matplotlib imported: a KeyboardInterrupt inside an import can surface as
    another error)."""
    with interrupts_held():
        with epoch_files(run_dir) as place:
            if improved:
                save_model(engine.saved, place("best.safetensors"), info)
            save_model(engine.saved, place("last.safetensors"), info)
            state.save(place, engine.optimizer, engine.model if engine.average else None)
            write_csv(place("metrics.csv"), state.history, columns)
        if curves:
            draw_curves(run_dir, state.history)


@contextlib.contextmanager
def epoch_files(run_dir: Path) -> Iterator[Callable[[str], Path]]:
    """One epoch's files (weights, resume state, metrics), each written whole under a hidden name
    (`.NAME.pending`: `place(NAME)` gives it), then renamed into place together: a write that fails (a full
    disk) leaves the previous epoch's files as they were, all of one epoch, and no pending file behind."""
    pending: dict[Path, Path] = {}

    def place(name: str) -> Path:
        pending[run_dir / name] = run_dir / f".{name}.pending"
        return pending[run_dir / name]

    try:
        yield place
        for path, tmp in pending.items():
            os.replace(tmp, path)
    except SkinsegError as exc:  # a failed write names the file the user knows, not its pending name
        real = {tmp: path for path, tmp in pending.items()}
        if exc.path not in real:
            raise
        raise SkinsegError(str(exc).removeprefix(f"{exc.path}: "), real[exc.path]) from None
    finally:
        for tmp in pending.values():
            tmp.unlink(missing_ok=True)


def draw_curves(run_dir: Path, history: list[dict]) -> None:
    with interrupts_held():
        from skinseg.reporting.figures import plot_curves

        plot_curves(history, run_dir / "curves.png")


class Curves:
    """When curves.png is drawn: when CURVES_EVERY seconds have passed since the last drawing, and when the run
    ends (finished, or interrupted or failed: then of the epochs saved so far)."""

    def __init__(self, run_dir: Path, epochs_saved: int):
        self.run_dir = run_dir
        self.saved = self.drawn = epochs_saved  # epochs whose files are written; epochs in the last drawing
        self.drawn_at = time.perf_counter()

    def due(self) -> bool:
        return time.perf_counter() - self.drawn_at >= CURVES_EVERY

    def epoch_saved(self, epochs: int, drawn: bool) -> None:
        self.saved = epochs
        if drawn:
            self.drawn, self.drawn_at = epochs, time.perf_counter()

    def draw_at_end(self, history: list[dict]) -> None:
        if self.drawn != self.saved:
            with contextlib.suppress(KeyboardInterrupt):  # the run is complete: a Ctrl-C now changes nothing
                draw_curves(self.run_dir, history)
            self.drawn = self.saved

    def draw_saved(self, history: list[dict]) -> None:
        """After an interrupt or an error: the curves of the epochs saved so far, if not drawn yet."""
        if self.drawn != self.saved:
            with contextlib.suppress(Exception, KeyboardInterrupt):
                draw_curves(self.run_dir, history[: self.saved])
