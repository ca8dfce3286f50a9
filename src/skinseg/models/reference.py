"""The one rule for naming a model: a path to a skinseg weights file, or the bundled model (None, or BUNDLED).
Torch-free, so that a command checks its files before torch is imported."""

from __future__ import annotations

from pathlib import Path

BUNDLED = "bundled"  # what a model setting says for the model in the package (None says it too)


def is_bundled(model: str | Path | None) -> bool:
    """Whether a model setting names the bundled model."""
    return model is None or str(model) == BUNDLED


def user_model(model: str | Path | None) -> Path | None:
    """The user's model file that a command reads (and checks first); None for the bundled model."""
    return None if model is None or is_bundled(model) else Path(model)


def model_label(model: str | Path | None) -> str:
    """How results and reports name a model: as it was given, else as the bundled model."""
    return str(model) if model else f"{BUNDLED} model"
