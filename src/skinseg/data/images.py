"""Reading images and masks of any common encoding into uint8 arrays, with one-line errors."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from skinseg.errors import SkinsegError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
# warnings.catch_warnings saves and restores the process's filters: two threads opening images at once (segment's
# and measure's pools) would restore each other's, and an image over the limit would be decoded. Opening reads
# only the header, so one at a time costs nothing.
_OPENING = threading.Lock()


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise SkinsegError("file not found", path)
    if path.stat().st_size == 0:
        raise SkinsegError("empty file (0 bytes)", path)
    try:
        with _OPENING, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
        return image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise SkinsegError("image is too large (over Pillow's decompression-bomb limit)", path) from None
    except UnidentifiedImageError:
        damaged = _format_by_signature(path)
        if damaged:  # Pillow knows the format but cannot read the header: a bad checksum, or a file cut short
            message = f"damaged {damaged} file: it cannot be decoded (a bad checksum, or cut short)"
            raise SkinsegError(message, path) from None
        raise SkinsegError("not an image file (or an unsupported format)", path) from None
    except OSError as exc:
        raise SkinsegError(f"cannot read image ({exc})", path) from None


SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"BM": "BMP",
    b"GIF8": "GIF",
}


def _format_by_signature(path: Path) -> str | None:
    """The image format that a file's first bytes announce, or None."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    return next((name for signature, name in SIGNATURES.items() if head.startswith(signature)), None)


FLOAT_RANGES = (1.0, 255.0, 65535.0)  # what the values of a floating-point image may run to, in this order


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit grey images are scaled to 8 bits by their value range, not clipped. A floating-point
    image is read as 0-1 where its values fit (else 0-255 or 0-65535): a 0-1 TIFF was read nearly black."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16"):
            top = 65535.0
        elif image.mode == "F":
            top = _float_range(array)
        else:
            top = 65535.0 if array.max() > 255 else 255.0
        return Image.fromarray(np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    return image


def _float_range(array: np.ndarray) -> float:
    """The first of FLOAT_RANGES that holds every value; ValueError (a cannot-decode error) where none does."""
    if np.isnan(array).any():
        raise ValueError(f"{int(np.isnan(array).sum())} of its floating-point values are NaN (not a number)")
    low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    top = next((top for top in FLOAT_RANGES if low >= 0 and high <= top), None)
    if top is None:  # negative, or beyond every range
        ranges = ", ".join(f"0-{top:g}" for top in FLOAT_RANGES)
        raise ValueError(f"floating-point values from {low:g} to {high:g}, not in {ranges}")
    return top


def resize_rgb(image: Image.Image | np.ndarray, size: int) -> np.ndarray:
    """The model's view of an RGB image: size x size, bilinear with Pillow's reducing gap, uint8.

    The one resize of the pipeline: the prepared cache that training reads and every prediction go through
    it (a file by decode_rgb(path, size), an array by Segmenter.probabilities)."""
    picture = image if isinstance(image, Image.Image) else Image.fromarray(np.ascontiguousarray(image, np.uint8))
    if picture.size != (size, size):
        picture = picture.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.array(picture)


def decode_rgb(path: str | Path, size: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """An RGB uint8 array and the image's own (width, height), EXIF orientation applied, any mode converted.

    With `size`, the model's input (resize_rgb); a JPEG is then decoded at a reduced scale that is still at
    least that size (Pillow's draft mode: much faster when the target is far smaller). Training's cache and
    predictions from files both read images this way, so a model sees the same input in both.
    """
    path = Path(path)
    image = _open(path)
    try:
        with image:
            original = image.size
            if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # orientations that swap width and height
                original = original[::-1]
            if size and image.format == "JPEG":
                image.draft("RGB", (size, size))
            image = ImageOps.exif_transpose(image)
            image = _to_8bit(image)
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                image = image.convert("RGBA")
                background = Image.new("RGBA", image.size, (255, 255, 255, 255))
                image = Image.alpha_composite(background, image)
            image = image.convert("RGB")
            return (resize_rgb(image, size) if size else np.array(image)), original
    except SkinsegError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise SkinsegError(f"cannot decode image ({exc})", path) from None


def load_rgb(path: str | Path, size: int | None = None) -> np.ndarray:
    """An RGB uint8 array (H, W, 3), or (size, size, 3) when `size` is given."""
    return decode_rgb(path, size)[0]


def read_mask_grey(path: str | Path) -> np.ndarray:
    """A mask as 8-bit grey (H, W); 0/1 masks are scaled to 0/255 first, as the ISIC scorer does."""
    path = Path(path)
    image = _open(path)
    try:
        with image:
            image = ImageOps.exif_transpose(image)
            grey = np.asarray(_to_8bit(image).convert("L"))
    except (OSError, ValueError, SyntaxError) as exc:
        raise SkinsegError(f"cannot decode mask ({exc})", path) from None
    return grey * np.uint8(255) if grey.max() <= 1 else grey


def binarise(grey: np.ndarray) -> np.ndarray:
    """The official ISIC rule: lesion where the 8-bit grey value is > 128."""
    return grey > 128


def load_mask(path: str | Path) -> np.ndarray:
    """A boolean lesion mask read by the ISIC rule."""
    return binarise(read_mask_grey(path))


def grey_levels(grey: np.ndarray) -> int:
    """How many of the 256 grey values occur in an 8-bit image (Pillow's histogram: a third of bincount's time)."""
    return sum(1 for count in Image.fromarray(np.ascontiguousarray(grey, dtype=np.uint8)).histogram() if count)


def not_binary(grey: np.ndarray) -> str | None:
    """Why 8-bit grey values are not a binary mask's (a photo, a JPEG-compressed mask), or None."""
    levels = grey_levels(grey)
    return f"mask has {levels} grey levels, expected 2 (a binary mask)" if levels > 2 else None


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """A boolean mask resized to size x size by area averaging, lesion where at least half is lesion."""
    picture = Image.fromarray(mask.astype(np.uint8) * 255)
    height, width = mask.shape
    if width % size == 0 and height % size == 0 and width // size == height // size:
        picture = picture.reduce(width // size)
    else:
        picture = picture.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(picture) > 127


MASK_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}  # lossless: a mask stays 0/255


def save_png(array: np.ndarray, path: str | Path, format: str = "PNG", *, replace: bool = True) -> None:
    """A uint8 array (H, W) or (H, W, 3) written as PNG (or `format`), atomically; without `replace`, never over
    a file (fileio.atomic_path)."""
    from skinseg.fileio import atomic_path

    with atomic_path(path, suffix=Path(path).suffix or ".png", replace=replace) as tmp:
        Image.fromarray(array).save(tmp, format=format)


def save_mask_png(mask: np.ndarray, path: str | Path, *, replace: bool = True) -> None:
    """A bool or 0/1 mask written as 8-bit 0/255 image, atomically: PNG, or TIFF or BMP by the path's suffix."""
    image_format = MASK_FORMATS.get(Path(path).suffix.lower(), "PNG")
    save_png(np.multiply(np.asarray(mask, bool), 255, dtype=np.uint8), path, image_format, replace=replace)
