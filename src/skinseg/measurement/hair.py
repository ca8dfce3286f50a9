"""Hairs: found with a black-hat filter (the grey closing minus the image: dark lines narrower than the closing's
window stand out), kept only where the dark trace is thin (it vanishes under a small opening) and long, as a
hair is and a dot or a globule is not.

The mask is found on the cut where colours are named (the lesion at most 128 pixels across; hairs are 1-3
pixels wide there), in the brightest channel, and widened by a pixel to take in the hair's blurred rim. Hair
pixels are left out of the colours: a hair is not the lesion's dark brown or black.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

CLOSING = 9  # the closing's square window (px): dark traces narrower than this stand out
DARKER = 18  # how much darker (0-255) than the closing a pixel must be to be part of a trace ...
RELATIVE = 0.15  # ... and by this share of the closing (a glare spot's rim is darker only by a small share)
THIN = 4  # a hair's trace is narrower than this (px): it vanishes under an opening by a square this wide ...
LONG = 30  # ... and its connected thin part is at least this long (the diagonal of its box, px)


def hair_mask(value: np.ndarray) -> np.ndarray:
    """The hairs (bool) in the brightest channel (uint8) of an image whose lesion is about 128 pixels across: the
    long, thin traces of the black-hat filter, widened by a pixel. The brightest channel, as a hair is dark in
    all three and a vessel is bright in red."""
    closed = ndimage.grey_closing(value, size=(CLOSING, CLOSING))
    depth = closed.astype(np.int16) - value
    dark = (depth > DARKER) & (depth > RELATIVE * closed)
    # not dots, globules, blotches: the binary opening by a THIN square, as two separable grey filters (faster)
    eroded = ndimage.minimum_filter(dark.view(np.uint8), size=THIN, mode="constant", cval=0)
    thin = dark & ~ndimage.maximum_filter(eroded, size=THIN, mode="constant", cval=0, origin=-(1 - THIN % 2)).view(bool)
    labels, count = ndimage.label(thin, structure=np.ones((3, 3)))
    if count == 0:
        return thin
    sides = np.array([(b[0].stop - b[0].start, b[1].stop - b[1].start) for b in ndimage.find_objects(labels)])
    hairy = np.hypot(sides[:, 0], sides[:, 1]) >= LONG  # hairs cross each other: their traces join, still thin
    if not hairy.any():
        return np.zeros_like(dark)
    hairs = np.concatenate([[False], hairy])[labels].view(np.uint8)
    widened = [ndimage.maximum_filter1d(hairs, 3, axis, mode="constant", cval=0) for axis in (0, 1)]
    return (widened[0] | widened[1]).view(bool)  # by a pixel up, down, left and right
