"""White and red, learned: a small per-pixel model that gives each lesion pixel a probability of each, fitted to
dermatologists' per-image labels (derm7pt's seven-point checklist criteria: regression's white areas, the
blue-whitish veil's white haze, vascular structures) by multiple-instance learning. There are no
per-pixel labels; the model was fitted so that the mean of its probabilities over a lesion (the share of the
lesion it names that colour) ranks lesions as the experts' labels do (scripts/fit_colour_model.py,
docs/measure.md). Thresholds on colour alone could not tell regression's white from the skin's or a pale brown,
nor a pink vessel from a reddish naevus: the model also sees each pixel against the rest of the lesion, its local
texture and how deep inside the lesion it lies.

Plain numpy at run time; the weights are a safetensors file in skinseg's assets.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from importlib import resources

import numpy as np
from safetensors.numpy import load_file
from scipy import ndimage

# The colours the model names; the others are named by colour.py. Blue-grey was tried too: its cross-validated
# AUC on derm7pt's calibrate part (0.66-0.80, with the folds and the starts) was no surer than its rule's (0.73),
# which already agrees with experts best of the six (docs/measure.md).
LEARNED = ("white", "red")
# lightness, a, b: CIELAB after normalisation against the skin; *_from_lesion: the same minus the median of the
# lesion's pixels; texture: the local standard deviation of lightness over TEXTURE_WINDOW pixels; depth: the
# distance to the nearest pixel outside the lesion in the cut (to the cut's border where the lesion fills it) over
# the largest such distance in the lesion (0-1).
FEATURES = ("lightness", "a", "b", "lightness_from_lesion", "a_from_lesion", "b_from_lesion", "texture", "depth")
TEXTURE_WINDOW = 5  # px, with the lesion at most 128 px across (measurement.lesion.COLOUR_DIAMETER)
WEIGHTS_FILE = "colour-pixels.safetensors"
MODEL_PIXELS = 1024  # the learned shares are means over at most this many of the lesion's pixels, on a lattice


def pixel_features(
    lab: np.ndarray, lesion: np.ndarray, counted: np.ndarray, most: int | None = MODEL_PIXELS
) -> np.ndarray:
    """The FEATURES (float32, (n, len(FEATURES))) of the `counted` pixels (bool, (h, w); within `lesion`) of a
    CIELAB cut of the lesion (h, w, 3), in row-major order. Where there are more than `most` (MODEL_PIXELS; None:
    no limit), of those on a square lattice that leaves at most `most` (the model's cost is per pixel, and a mean
    over 1024 pixels spread over the lesion is within a fraction of a percent of the mean over all)."""
    if not counted.any():
        raise ValueError("no pixel is counted: the lesion's colours need at least one")
    lightness = lab[..., 0]
    mean = ndimage.uniform_filter(lightness, TEXTURE_WINDOW)
    texture = np.sqrt(np.maximum(ndimage.uniform_filter(lightness * lightness, TEXTURE_WINDOW) - mean * mean, 0.0))
    filled = bool(lesion.all())  # no pixel outside the lesion: EDT would measure from nowhere; the border is the edge
    depth = ndimage.distance_transform_edt(np.pad(lesion, 1) if filled else lesion)
    depth = depth[1:-1, 1:-1] if filled else depth
    depth /= max(float(depth.max()), 1.0)
    step = 1 if most is None else math.ceil(math.sqrt(counted.sum() / most))
    if step > 1:
        lattice = np.zeros_like(counted)
        lattice[::step, ::step] = True
        on_lattice = counted & lattice
        counted = on_lattice if on_lattice.any() else counted
    where = np.flatnonzero(counted)
    pixels = lab.reshape(-1, 3)[where]
    columns = [pixels, pixels - np.median(pixels, axis=0), texture.ravel()[where, None], depth.ravel()[where, None]]
    return np.concatenate(columns, axis=1).astype(np.float32)


@dataclass(frozen=True)
class PixelModel:
    """For each colour of LEARNED, a few networks (members, fitted from different starts: one alone depends on
    its start) of one hidden tanh layer on the standardised FEATURES; a pixel's probability is their mean."""

    feature_mean: np.ndarray  # (len(FEATURES),)
    feature_scale: np.ndarray  # (len(FEATURES),)
    hidden_weight: np.ndarray  # (len(LEARNED), members, len(FEATURES), hidden)
    hidden_bias: np.ndarray  # (len(LEARNED), members, hidden)
    out_weight: np.ndarray  # (len(LEARNED), members, hidden)
    out_bias: np.ndarray  # (len(LEARNED), members)
    present_share: np.ndarray  # (len(LEARNED),): from this share of the lesion the labels more likely say present

    @functools.cached_property
    def _layers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The members' layers as two matrix products: all hidden units side by side (features, colours * members *
        hidden), and a block-diagonal output (colours * members * hidden, colours * members); one BLAS call each
        is several times faster than a product per member."""
        colours, members, features, hidden = self.hidden_weight.shape
        first = self.hidden_weight.transpose(2, 0, 1, 3).reshape(features, colours * members * hidden)
        blocks = colours * members
        second = np.zeros((blocks * hidden, blocks), np.float32)
        second[np.arange(blocks * hidden), np.repeat(np.arange(blocks), hidden)] = self.out_weight.reshape(-1)
        first = (first / self.feature_scale[:, None]).astype(np.float32)
        return first, self.hidden_bias.reshape(-1), second, self.out_bias.reshape(-1)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Each pixel's probability (n, len(LEARNED)) of each LEARNED colour."""
        first, first_bias, second, second_bias = self._layers
        hidden = np.tanh((features - self.feature_mean) @ first + first_bias)
        logits = hidden @ second + second_bias
        probability = 1.0 / (1.0 + np.exp(-logits))
        return probability.reshape(len(features), *self.out_bias.shape).mean(-1)

    def tensors(self) -> dict[str, np.ndarray]:
        """The arrays to save, by field name (load_pixel_model reads them back)."""
        return {name: np.ascontiguousarray(getattr(self, name), np.float32) for name in self.__dataclass_fields__}


def load_pixel_model(path) -> PixelModel:
    """A PixelModel from a safetensors file of its tensors (PixelModel.tensors); a file whose tensors do not fit
    FEATURES and LEARNED is refused with a ValueError naming the tensor."""
    tensors = load_file(str(path))
    missing = [name for name in PixelModel.__dataclass_fields__ if name not in tensors]
    if missing:
        raise ValueError(f"{path}: not a colour model, it lacks {', '.join(missing)}")
    model = PixelModel(**{name: tensors[name].astype(np.float32) for name in PixelModel.__dataclass_fields__})
    colours, features = len(LEARNED), len(FEATURES)
    expected = {
        "feature_mean": (features,),
        "feature_scale": (features,),
        "hidden_weight": (colours, None, features, None),
        "hidden_bias": (colours, None, None),
        "out_weight": (colours, None, None),
        "out_bias": (colours, None),
        "present_share": (colours,),
    }
    for name, shape in expected.items():
        actual = getattr(model, name).shape
        if len(actual) != len(shape) or any(e is not None and e != a for e, a in zip(shape, actual, strict=True)):
            raise ValueError(f"{path}: `{name}` is {actual}, expected {shape} (None: any)")
    return model


@functools.cache
def bundled_pixel_model() -> PixelModel:
    """The model fitted on derm7pt's calibrate part, shipped with skinseg (read once per process)."""
    return load_pixel_model(resources.files("skinseg") / "assets" / WEIGHTS_FILE)
