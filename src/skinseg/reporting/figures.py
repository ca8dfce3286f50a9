"""PNG figures: training curves, prediction grids and Dice histograms (matplotlib, no display needed), and the
small copies of images and masks they are drawn from (shrink, Thumbnails)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skinseg.fileio import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: list[dict], path: str | Path) -> None:
    """Loss, pixel accuracy and Dice per epoch, train and validation."""
    plt = _pyplot()
    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, name, title in zip(axes, ("loss", "accuracy", "dice"), ("Loss", "Pixel accuracy", "Dice"), strict=False):
        ax.plot(epochs, [row[f"train_{name}"] for row in history], "o-", label="train", markersize=3)
        ax.plot(epochs, [row[f"val_{name}"] for row in history], "o-", label="validation", markersize=3)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend()
    # Fixed margins: tight_layout measured every label at every epoch and took half of the drawing time.
    fig.subplots_adjust(left=0.045, right=0.99, bottom=0.14, top=0.92, wspace=0.16)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


TRUTH_COLOUR = (0, 220, 255)  # cyan
PREDICTION_COLOUR = (255, 230, 0)  # yellow


def _rgb01(colour: tuple[int, int, int]) -> tuple[float, float, float]:
    return (colour[0] / 255, colour[1] / 255, colour[2] / 255)


def outline_band(mask: np.ndarray, width: int) -> np.ndarray:
    """The pixels within `width` of the mask's boundary, on both sides. Distance transforms cost the same
    whatever the width, where dilating the outline with a disk of that width grows with it (and so with
    the image: a 10000 x 8800 overlay took minutes)."""
    from scipy.ndimage import distance_transform_edt

    mask = np.asarray(mask, dtype=bool)
    band = np.zeros_like(mask)
    if not mask.any() or mask.all():
        return band
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    top, left = max(0, rows[0] - width - 1), max(0, cols[0] - width - 1)  # the band lies in the lesion's box
    box = (slice(top, rows[-1] + width + 2), slice(left, cols[-1] + width + 2))
    inside = np.pad(mask[box], 1, mode="edge")  # a box on the image's edge: no outline along the edge
    near = (distance_transform_edt(inside) <= width) & inside | (distance_transform_edt(~inside) <= width) & ~inside
    band[box] = near[1:-1, 1:-1]
    return band


def overlay_image(
    image: np.ndarray, mask: np.ndarray, truth: np.ndarray | None = None, width: int | None = None
) -> np.ndarray:
    """The image with the predicted outline in yellow (and the true outline in cyan, if given); `width` is how
    far the outlines reach beyond the two-pixel boundary [default: one pixel per 300 of the longer side]."""
    result = image.copy()
    width = width or max(1, round(max(image.shape[:2]) / 300))
    band = width + 1  # the boundary's own pixel on each side, then `width` more: as the disk dilation drew them
    if truth is not None:
        result[outline_band(truth, band)] = TRUTH_COLOUR
    result[outline_band(mask, band)] = PREDICTION_COLOUR
    return result


def plot_cases(cases: list[dict], path: str | Path) -> None:
    """Rows of image | ground truth | prediction | overlay; each case: image, truth, prediction, title."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(cases), 4, figsize=(12, 3.1 * len(cases)), squeeze=False)
    for row, case in zip(axes, cases, strict=False):
        panels = (
            case["image"],
            case["truth"],
            case["prediction"],
            overlay_image(case["image"], case["prediction"], case["truth"]),
        )
        for ax, panel, label in zip(row, panels, ("image", "ground truth", "prediction", "overlay"), strict=False):
            ax.imshow(panel, cmap="gray" if panel.ndim == 2 else None, vmin=0, vmax=1 if panel.ndim == 2 else None)
            ax.set_title(f"{label}" if label != "image" else case["title"], fontsize=9)
            ax.axis("off")
    from matplotlib.patches import Patch

    height = fig.get_figheight()  # fixed margins in inches (tight_layout measured every title: most of the time)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.1 / height, top=1 - 0.6 / height, wspace=0.04, hspace=0.12)
    fig.legend(
        handles=[Patch(color=_rgb01(TRUTH_COLOUR)), Patch(color=_rgb01(PREDICTION_COLOUR))],
        labels=["ground truth outline", "prediction outline"],
        loc="upper right",
        ncols=2,
        fontsize=9,
        frameon=False,
    )
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def plot_histogram(values: list[float], path: str | Path, label: str = "Dice") -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.hist(values, bins=40, range=(0, 1), color="#4477aa")
    ax.set_xlabel(f"per-image {label}")
    ax.set_ylabel("images")
    ax.set_title(f"{label}: mean {np.mean(values):.4f}, median {np.median(values):.4f} (n={len(values)})")
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.15, top=0.9)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def shrink(array: np.ndarray, side: int) -> np.ndarray:
    """An image or mask scaled down to at most `side` pixels on its longer side (bilinear; a mask stays bool)."""
    from PIL import Image

    height, width = array.shape[:2]
    scale = side / max(height, width)
    if scale >= 1:
        return array
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if array.dtype == bool:
        return np.asarray(Image.fromarray(array.astype(np.uint8) * 255).resize(size, Image.Resampling.BILINEAR)) > 127
    return np.asarray(Image.fromarray(array).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))


class Thumbnails:
    """Each image's predicted mask, shrunk to at most `side` px and bit-packed (13 kB at 320 px), kept while
    images are scored so that the figures are drawn afterwards without running the model again."""

    def __init__(self, side: int = 320):
        self.side = side
        self._masks: dict[str, tuple[tuple[int, int], np.ndarray]] = {}

    def add(self, image_id: str, mask: np.ndarray) -> None:
        small = shrink(np.asarray(mask, dtype=bool), self.side)  # no copy of a mask that is bool already
        self._masks[image_id] = (small.shape[:2], np.packbits(small))

    def __getitem__(self, image_id: str) -> np.ndarray:
        (height, width), bits = self._masks[image_id]
        return np.unpackbits(bits, count=height * width).reshape(height, width).astype(bool)
