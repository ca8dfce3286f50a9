"""Adapting a model to a site's own outlines from a few of its labelled images (`skinseg adapt`).

`from skinseg.adaptation import AdaptConfig, adapt` works; `adapt` and `AdaptResult` are imported on first use,
so that the command line reads AdaptConfig without loading torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from skinseg.adaptation.config import AdaptConfig

if TYPE_CHECKING:
    from skinseg.adaptation.pipeline import AdaptResult, adapt

__all__ = ["AdaptConfig", "AdaptResult", "adapt"]


def __getattr__(name: str) -> Any:
    if name in ("adapt", "AdaptResult"):
        from skinseg.adaptation import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'skinseg.adaptation' has no attribute '{name}'")
