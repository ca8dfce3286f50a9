"""Frozen settings for each command. The CLI builds these; library functions and tests take them.

Every setting is checked when its config is built: names against their registries (the choices are listed
in the error) and numbers against their ranges, so a bad value never reaches the training loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from skinseg.errors import SkinsegError


class ConfigError(SkinsegError, ValueError):
    """A setting out of its range or not among its choices."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model: stored beside its weights. `architecture` names an entry of
    skinseg.architectures.ARCHITECTURES."""

    architecture: str = "improved_unet"
    in_channels: int = 3
    out_channels: int = 1
    base_filters: int = 16
    depth: int = 5
    dropout: float = 0.3
    segmentation_levels: int = 0  # decoder levels whose heads are summed (deep supervision); 0: three

    def __post_init__(self) -> None:
        if self.segmentation_levels == 0:
            object.__setattr__(self, "segmentation_levels", max(1, min(3, self.depth - 1)))
        _require(self.in_channels >= 1 and self.out_channels >= 1, "in_channels and out_channels must be >= 1")
        _require(1 <= self.base_filters <= 1024, f"base_filters must be between 1 and 1024, got {self.base_filters}")
        _require(2 <= self.depth <= 8, f"depth must be between 2 and 8, got {self.depth}")
        _require(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        _require(
            1 <= self.segmentation_levels <= self.depth - 1,
            f"segmentation_levels must be between 1 and depth - 1 ({self.depth - 1}), got {self.segmentation_levels}",
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        unknown = set(values) - {f.name for f in fields(cls)}
        _require(not unknown, f"unknown model settings: {', '.join(sorted(unknown))}")
        return cls(**values)


@dataclass(frozen=True)
class PrepareConfig:
    data: Path
    out: Path
    size: int = 256
    layout: str = "auto"
    mask_suffix: str | None = None
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    seed: int = 0  # the split's seed
    split_file: Path | None = None
    group_by: str | None = None  # "FILE.csv:COLUMN", "none", or None: the layout's own grouping (HAM10000)
    strict: bool = False
    force: bool = False
    workers: int = 0  # 0: one per core, at most 8

    def __post_init__(self) -> None:
        from skinseg.data.splits import parse_group_by

        _require(8 <= self.size <= 4096, f"--size must be between 8 and 4096, got {self.size}")
        if self.group_by not in (None, "none"):
            parse_group_by(self.group_by)
        _require(self.workers >= 0, f"--workers must be >= 0, got {self.workers}")

    def cache_settings(self) -> dict:
        """The settings that change the cache's content (not where it goes or how fast it is built)."""
        return {
            "size": self.size,
            "layout": self.layout,
            "mask_suffix": self.mask_suffix,
            "split": list(self.split),
            "seed": self.seed,
            "strict": self.strict,
            "split_file": str(self.split_file) if self.split_file else None,
            "group_by": self.group_by,
        }


def parse_data_set(text: str | Path) -> tuple[Path, float | None]:
    """'prepared/ham10000:0.5' -> (Path('prepared/ham10000'), 0.5); a plain path has no weight."""
    head, _, tail = str(text).rpartition(":")
    try:
        weight = float(tail)
    except ValueError:
        return Path(text), None
    if not head:
        return Path(text), None
    _require(weight > 0, f"a data set's weight must be > 0, got {tail} in '{text}'")
    return Path(head), weight


def parse_duration(text: str) -> float:
    """'2h', '90m', '1h30m', '45s' or plain seconds '5400' -> seconds."""
    import re

    cleaned = text.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", cleaned):
        return float(cleaned)
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?:in)?)?(?:(\d+(?:\.\d+)?)s)?", cleaned)
    if not cleaned or parts is None:
        raise ConfigError(f"--time-budget must look like 2h, 90m, 1h30m or 45s, got '{text}'")
    hours, minutes, seconds = (float(p) if p else 0.0 for p in parts.groups())
    return hours * 3600 + minutes * 60 + seconds


@dataclass(frozen=True)
class TrainConfig:
    data: Path  # the first (or only) data set: a prepared folder or a raw one
    more_data: tuple[Path, ...] = ()  # further data sets, trained on together with `data`
    data_weights: tuple[float, ...] = ()  # each set's share of every epoch, `data` first; (): equal shares
    time_budget: float = 0.0  # seconds; > 0: the schedule spans this time instead of `epochs`
    out: Path = Path("runs/skinseg")
    size: int = 256  # for a raw --data folder, prepared on the fly; a prepared folder keeps its own size
    epochs: int = 40
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"  # skinseg.optim.OPTIMIZERS
    schedule: str = "cosine"  # skinseg.optim.SCHEDULES
    warmup_epochs: float = 1.0
    loss: str = "dice_bce"  # skinseg.losses.LOSSES
    augment: bool = True
    model: ModelConfig = field(default_factory=ModelConfig)
    threshold: float = 0.5
    patience: int = 0  # epochs without validation-Dice gain before stopping; 0 = never
    seed: int = 0  # initialisation, shuffling, augmentation, dropout
    split_seed: int = 0  # the train/val/test split of a raw --data folder prepared on the fly
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16 (skinseg.precision)
    channels_last: bool | None = None  # None: with bf16
    compile: bool = False
    max_train_images: int = 0  # 0: all (a cap for quick runs)
    resume: Path | None = None
    init: Path | None = None  # start from these weights (a skinseg model file, or "bundled")
    resumed: bool = False  # made by skinseg.train.resume_config: the run's own settings, not to be reloaded

    def __post_init__(self) -> None:
        from skinseg.architectures import ARCHITECTURES
        from skinseg.losses import LOSSES
        from skinseg.optim import OPTIMIZERS, SCHEDULES
        from skinseg.precision import PRECISION_CHOICES

        ARCHITECTURES.check(self.model.architecture)
        LOSSES.check(self.loss)
        OPTIMIZERS.check(self.optimizer)
        SCHEDULES.check(self.schedule)
        _require(
            self.precision in PRECISION_CHOICES,
            f"unknown precision '{self.precision}'; choose one of {', '.join(PRECISION_CHOICES)}",
        )
        _require(self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}")
        _require(self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}")
        _require(self.lr > 0, f"--lr must be > 0, got {self.lr}")
        _require(self.weight_decay >= 0, f"--weight-decay must be >= 0, got {self.weight_decay}")
        _require(self.warmup_epochs >= 0, f"--warmup-epochs must be >= 0, got {self.warmup_epochs}")
        _require(0 < self.threshold < 1, f"threshold must be between 0 and 1, got {self.threshold}")
        _require(self.patience >= 0, f"--patience must be >= 0, got {self.patience}")
        _require(self.max_train_images >= 0, f"--max-train-images must be >= 0, got {self.max_train_images}")
        _require(8 <= self.size <= 4096, f"--size must be between 8 and 4096, got {self.size}")
        _require(self.time_budget >= 0, f"--time-budget must be >= 0, got {self.time_budget}")
        _require(
            len(self.data_weights) in (0, len(self.data_sets)),
            f"{len(self.data_weights)} data-set weights for {len(self.data_sets)} data sets",
        )
        _require(all(w > 0 for w in self.data_weights), f"data-set weights must be > 0, got {self.data_weights}")

    @property
    def data_sets(self) -> tuple[Path, ...]:
        return (Path(self.data), *map(Path, self.more_data))

    @property
    def set_weights(self) -> tuple[float, ...]:
        """Each data set's share of an epoch, summing to 1."""
        weights = self.data_weights or (1.0,) * len(self.data_sets)
        return tuple(w / sum(weights) for w in weights)

    def to_dict(self) -> dict:
        """JSON-ready; the data paths made absolute so that a run can be resumed from any folder."""
        values = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}
        values["data"] = str(Path(self.data).resolve())
        values["more_data"] = [str(Path(p).resolve()) for p in self.more_data]
        values["data_weights"] = list(self.data_weights)
        values.pop("resumed")
        return values

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """The inverse of to_dict, also for the config.json of runs written before the model was nested."""
        values = dict(values)
        for old in ("amp", "workers"):
            values.pop(old, None)
        model = dict(values.pop("model", None) or {})
        for name in ("base_filters", "depth", "dropout", "segmentation_levels"):
            if name in values:
                model[name] = values.pop(name)
        for name in ("data", "out", "resume", "init"):
            if values.get(name) is not None:
                values[name] = Path(values[name])
        values["more_data"] = tuple(Path(p) for p in values.get("more_data", ()))
        values["data_weights"] = tuple(values.get("data_weights", ()))
        known = {f.name for f in fields(cls)}
        _require(not set(values) - known, f"unknown training settings: {', '.join(sorted(set(values) - known))}")
        return cls(model=ModelConfig.from_dict(model), **values)


# The course project's recipe, kept so its result can be reproduced and compared.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "seed": dict(
        epochs=10,
        batch_size=16,
        lr=1e-4,
        optimizer="adam",
        schedule="constant",
        warmup_epochs=0.0,
        loss="dice",
        augment=False,
        weight_decay=0.0,
    ),
}
MODEL_OPTIONS = tuple(f.name for f in fields(ModelConfig))


def train_config(data: Path | str | Sequence[Path | str], preset: str = "default", **options: Any) -> TrainConfig:
    """A TrainConfig from a preset and options; options that are None are unset, so the preset's value (or
    else the default) applies. Model settings (base_filters, depth, ...) may be given flat. `data` is one data
    set or several, each optionally 'PATH:WEIGHT' (a set without a weight counts 1)."""
    _require(preset in PRESETS, f"unknown preset '{preset}'; choose one of {', '.join(PRESETS)}")
    sets = [parse_data_set(d) for d in ([data] if isinstance(data, (str, Path)) else data)]
    _require(bool(sets), "give at least one data set")
    chosen = PRESETS[preset] | {k: v for k, v in options.items() if v is not None}
    chosen["more_data"] = tuple(path for path, _ in sets[1:])
    if any(weight is not None for _, weight in sets):
        chosen["data_weights"] = tuple(1.0 if weight is None else weight for _, weight in sets)
    data = sets[0][0]
    model_values = {k: chosen.pop(k) for k in MODEL_OPTIONS if k in chosen}
    model = chosen.pop("model", None) or ModelConfig()
    if model_values:
        if "depth" in model_values:  # the default number of heads follows the depth
            model_values.setdefault("segmentation_levels", 0)
        model = replace(model, **model_values)
    return TrainConfig(data=data, model=model, **chosen)


@dataclass(frozen=True)
class EvaluateConfig:
    model: Path | None
    data: Path
    split: str = "test"
    device: str = "auto"
    batch_size: int = 16
    threshold: float | None = None
    tta: bool = False
    postprocess: bool = True  # measured: +0.0035 val Dice, +0.0025 test Dice (docs/model-card.md)
    precision: str = "auto"
    split_seed: int = 0  # for a raw --data folder: the split it was prepared with

    def __post_init__(self) -> None:
        _require(self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class SegmentConfig:
    inputs: tuple[Path, ...]
    output: Path
    model: Path | None = None
    threshold: float | None = None
    device: str = "auto"
    batch_size: int = 8
    overwrite: bool = False
    skip_existing: bool = False  # leave images whose outputs exist (counted, not failures)
    overlay: bool = False
    probabilities: bool = False
    tta: bool = False
    postprocess: bool = True
    summary: Path | None = None
    backend: str = "torch"  # torch | onnx
    precision: str = "auto"
    report: Path | None = None  # an HTML page of the results (skinseg.html_report)
    report_max_cases: int = 500  # rows with an image in it: the most uncertain

    def __post_init__(self) -> None:
        _require(self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}")
        _require(self.report_max_cases >= 0, f"--report-max-cases must be >= 0, got {self.report_max_cases}")
