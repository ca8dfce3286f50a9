"""Segmenting images with a trained model: Segmenter (arrays in, masks out), segment_paths (files in, files
out), post-processing, the per-image summary and the ONNX backend.

`from skinseg.inference import Segmenter` works; the names are imported on first use, so that importing a
submodule (SegmentConfig, for the command line) does not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from skinseg.inference.segment import segment_paths
    from skinseg.inference.segmenter import Segmenter

__all__ = ["Segmenter", "segment_paths"]


def __getattr__(name: str) -> Any:
    if name == "Segmenter":
        from skinseg.inference.segmenter import Segmenter

        return Segmenter
    if name == "segment_paths":
        from skinseg.inference.segment import segment_paths

        return segment_paths
    raise AttributeError(f"module 'skinseg.inference' has no attribute '{name}'")
