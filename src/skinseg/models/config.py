"""ModelConfig: everything needed to rebuild a model, stored beside its weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from skinseg.errors import check_setting


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model: stored beside its weights. `architecture` names an entry of
    skinseg.models.architectures.ARCHITECTURES."""

    architecture: str = "improved_unet"
    in_channels: int = 3
    out_channels: int = 1
    base_filters: int = 16
    depth: int = 5
    dropout: float = 0.3
    # Decoder levels whose heads are summed (deep supervision). Not given (None): three, or depth - 1 where that is
    # fewer; resolved when the config is built, so every config holds a number.
    segmentation_levels: int = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.segmentation_levels is None:
            object.__setattr__(self, "segmentation_levels", max(1, min(3, self.depth - 1)))
        check_setting(self.in_channels >= 1 and self.out_channels >= 1, "in_channels and out_channels must be >= 1")
        check_setting(
            1 <= self.base_filters <= 1024, f"base_filters must be between 1 and 1024, got {self.base_filters}"
        )
        check_setting(2 <= self.depth <= 8, f"depth must be between 2 and 8, got {self.depth}")
        check_setting(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        check_setting(
            1 <= self.segmentation_levels <= self.depth - 1,
            f"segmentation_levels must be between 1 and depth - 1 ({self.depth - 1}), got {self.segmentation_levels}",
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        unknown = set(values) - {f.name for f in fields(cls)}
        check_setting(not unknown, f"unknown model settings: {', '.join(sorted(unknown))}")
        return cls(**values)
