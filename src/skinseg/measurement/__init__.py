"""Lesion measurements for research (size, the dermoscopic ABCD rule's asymmetry, border and colours): numbers
computed from an image and its mask, not a diagnosis. Plain numpy: no segmentation model and no torch; white and
red come from a 4 kB per-pixel model in skinseg's assets (colour_model.py)."""

from skinseg.measurement.lesion import MEASURE_COLUMNS, TINY_DIAMETER, measure_lesion

__all__ = ["MEASURE_COLUMNS", "TINY_DIAMETER", "measure_lesion"]
