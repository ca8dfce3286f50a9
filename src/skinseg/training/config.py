"""TrainConfig, the presets and the parsing of data-set and time-budget texts: the settings of `skinseg train`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from skinseg.errors import ConfigError, check_above, check_at_least, check_image_size, check_setting, check_threshold
from skinseg.fileio import paths_from_text
from skinseg.models.config import ModelConfig

MAX_SET_WEIGHT = 1e6  # a share of every epoch relative to the others: more than a million to one means a typo


def parse_data_set(text: str | Path) -> tuple[Path, float | None]:
    """'prepared/ham10000:0.5' -> (Path('prepared/ham10000'), 0.5); a plain path has no weight, and neither has
    a path that exists as it is written (a folder named 'prep/v:2')."""
    if Path(text).exists():
        return Path(text), None
    head, _, tail = str(text).rpartition(":")
    try:
        weight = float(tail)
    except ValueError:
        return Path(text), None
    if not head:
        return Path(text), None
    return Path(head), weight


def parse_duration(text: str) -> float:
    """'2h', '90m', '1h30m', '45s' or plain seconds '5400' -> seconds."""
    import re

    cleaned = text.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", cleaned):
        cleaned += "s"
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?:in)?)?(?:(\d+(?:\.\d+)?)s)?", cleaned)
    if not cleaned or parts is None:
        raise ConfigError(f"`time_budget` must look like 2h, 90m, 1h30m or 45s, got '{text}'")
    hours, minutes, seconds = (float(p) if p else 0.0 for p in parts.groups())
    total = hours * 3600 + minutes * 60 + seconds
    check_setting(total > 0, f"`time_budget` must be more than 0 (e.g. 2h, 90m, 45s), got '{text}'")
    return total


@dataclass(frozen=True)
class TrainConfig:
    data: Path  # the first (or only) data set: a prepared folder or a raw one
    more_data: tuple[Path, ...] = ()  # further data sets, trained on together with `data`
    data_weights: tuple[float, ...] = ()  # each set's share of every epoch, `data` first; (): equal shares
    time_budget: float = 0.0  # seconds; > 0: the schedule spans this time instead of `epochs`
    out: Path = Path("runs/skinseg")
    size: int = 256  # for a raw data folder, prepared on the fly; a prepared folder keeps its own size
    epochs: int = 40
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"  # skinseg.training.optim.OPTIMIZERS
    schedule: str = "cosine"  # skinseg.training.optim.SCHEDULES
    warmup_epochs: float = 1.0
    loss: str = "dice_bce"  # skinseg.training.losses.LOSSES
    augment: bool = True
    model: ModelConfig = field(default_factory=ModelConfig)
    threshold: float = 0.5
    ema: float = 0.0  # decay of an exponential moving average of the weights, validated and saved; 0: none
    patience: int = (
        0  # epochs without a gain in the selected Dice (validation, else training) before stopping; 0: never
    )
    seed: int = 0  # initialisation, shuffling, augmentation, dropout
    split_seed: int = 0  # the train/val/test split of a raw data folder prepared on the fly
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16 (skinseg.runtime.precision)
    channels_last: bool | None = None  # None: where measured faster (skinseg.runtime.precision.CHANNELS_LAST_FROM)
    compile: bool = False
    max_train_images: int = 0  # 0: all (a cap for quick runs)
    resume: Path | None = None
    init: Path | None = None  # start from these weights (a skinseg model file, or models.reference.BUNDLED)

    def __post_init__(self) -> None:
        paths_from_text(self)
        from skinseg.models.architectures import ARCHITECTURES
        from skinseg.runtime.choices import check_precision
        from skinseg.training.losses import LOSSES
        from skinseg.training.optim import OPTIMIZERS, SCHEDULES

        ARCHITECTURES.check(self.model.architecture)
        LOSSES.check(self.loss)
        OPTIMIZERS.check(self.optimizer)
        SCHEDULES.check(self.schedule)
        check_precision(self.precision)
        check_at_least("epochs", self.epochs, 1)
        check_at_least("batch_size", self.batch_size, 1)
        check_above("lr", self.lr, 0)
        check_at_least("weight_decay", self.weight_decay, 0)
        check_at_least("warmup_epochs", self.warmup_epochs, 0)
        check_threshold(self.threshold)
        check_setting(0 <= self.ema < 1, f"`ema` must be in [0, 1) (a decay such as 0.999; 0: off), got {self.ema}")
        check_at_least("patience", self.patience, 0)
        check_at_least("max_train_images", self.max_train_images, 0)
        check_image_size(self.size)
        check_at_least("time_budget", self.time_budget, 0)
        check_setting(
            len(self.data_weights) in (0, len(self.data_sets)),
            f"{len(self.data_weights)} data-set weights for {len(self.data_sets)} data sets",
        )
        check_setting(
            all(0 < w <= MAX_SET_WEIGHT for w in self.data_weights),  # nan and inf fail too
            f"a data set's weight must be a number > 0 and <= {MAX_SET_WEIGHT:g}, got"
            f" {', '.join(f'{w:g}' for w in self.data_weights)}",
        )

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
        check_setting(not set(values) - known, f"unknown training settings: {', '.join(sorted(set(values) - known))}")
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


DEFAULT_PRESET = "default"


def train_config(data: Path | str | Sequence[Path | str], preset: str = DEFAULT_PRESET, **options: Any) -> TrainConfig:
    """A TrainConfig from a preset and options; options that are None are unset, so the preset's value (or
    else the default) applies. Model settings (base_filters, depth, ...) may be given flat. `data` is one data
    set or several, each optionally 'PATH:WEIGHT' (a set without a weight counts 1)."""
    check_setting(preset in PRESETS, f"unknown preset '{preset}'; choose one of {', '.join(PRESETS)}")
    sets = [parse_data_set(d) for d in ([data] if isinstance(data, (str, Path)) else data)]
    check_setting(bool(sets), "give at least one data set")
    chosen = PRESETS[preset] | {k: v for k, v in options.items() if v is not None}
    chosen["more_data"] = tuple(path for path, _ in sets[1:])
    if any(weight is not None for _, weight in sets):
        chosen["data_weights"] = tuple(1.0 if weight is None else weight for _, weight in sets)
    data = sets[0][0]
    model_values = {k: chosen.pop(k) for k in MODEL_OPTIONS if k in chosen}
    model = chosen.pop("model", None) or ModelConfig()
    if model_values:
        if "depth" in model_values:  # the default number of heads follows the depth
            model_values.setdefault("segmentation_levels", None)
        model = replace(model, **model_values)
    return TrainConfig(data=data, model=model, **chosen)


def default_value(name: str) -> Any:
    """A training setting's default: TrainConfig's, or ModelConfig's for a model setting."""
    defaults = {f.name: f.default for f in fields(TrainConfig)} | ModelConfig().to_dict()
    return defaults[name]


def shown(value: Any) -> str:
    """A setting's value as the help of `skinseg train` shows it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def default_text(name: str) -> str:
    """'[default: 0.002; seed: 0.0001]': a training setting's default, and each preset's where it differs, for
    the help. Read from TrainConfig, ModelConfig and PRESETS, so the help cannot drift from them."""
    default = default_value(name)
    presets = "".join(
        f"; {preset}: {shown(values[name])}"
        for preset, values in PRESETS.items()
        if name in values and values[name] != default
    )
    return f"[default: {shown(default)}{presets}]"


def choices_text(name: str) -> str:
    """The choices of setting `name` (optimizer, schedule, loss, architecture) for the help, read from its registry,
    the default first. The registries import torch only when an entry is used."""
    from skinseg.models.architectures import ARCHITECTURES
    from skinseg.registry import Registry
    from skinseg.training.losses import LOSSES
    from skinseg.training.optim import OPTIMIZERS, SCHEDULES

    registries: dict[str, Registry[Any]] = {
        "optimizer": OPTIMIZERS,
        "schedule": SCHEDULES,
        "loss": LOSSES,
        "architecture": ARCHITECTURES,
    }
    return registries[name].choices(default_value(name))


def preset_text() -> str:
    """What each preset sets, for the help."""
    return "; ".join(
        f"{name}: {', '.join(f'{k} {shown(v)}' for k, v in values.items()) or 'the defaults'}"
        for name, values in PRESETS.items()
    )
