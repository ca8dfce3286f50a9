"""Builders of the awkward image files that the reliability matrix feeds to every command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from skinseg.data.synthetic import synthetic_pair

SIZE = (40, 30)  # width, height of the well-formed cases


def _rgb(size=SIZE, seed=0) -> Image.Image:
    image, _ = synthetic_pair((size[1], size[0]), seed)
    return Image.fromarray(image)


def zero_byte(path: Path) -> None:
    path.write_bytes(b"")


def truncated_jpeg(path: Path) -> None:
    _rgb().save(path, format="JPEG")
    path.write_bytes(path.read_bytes()[:150])


def text_named_jpg(path: Path) -> None:
    path.write_text("this is not an image\n")


def cmyk_jpeg(path: Path) -> None:
    _rgb().convert("CMYK").save(path, format="JPEG")


def png_16bit(path: Path) -> None:
    grey = np.asarray(_rgb().convert("L"), dtype=np.uint16) * 257
    Image.fromarray(grey).save(path, format="PNG")


def palette_png(path: Path) -> None:
    _rgb().convert("P", palette=Image.ADAPTIVE).save(path, format="PNG")


def rgba_png(path: Path) -> None:
    _rgb().convert("RGBA").save(path, format="PNG")


def grey_png(path: Path) -> None:
    _rgb().convert("L").save(path, format="PNG")


def one_pixel(path: Path) -> None:
    Image.new("RGB", (1, 1), (200, 150, 120)).save(path, format="PNG")


def exif_rotated(path: Path) -> None:
    """Stored 30 wide x 40 high with EXIF orientation 6 (rotate 90): displayed 40 x 30."""
    exif = Image.Exif()
    exif[0x0112] = 6
    _rgb((30, 40)).save(path, format="JPEG", exif=exif.tobytes())


def very_large(path: Path) -> None:
    """Over Pillow's decompression-bomb limit (2x MAX_IMAGE_PIXELS is an error), yet a small file."""
    Image.new("1", (16000, 12000)).save(path, format="PNG")


# name -> (file name, builder, readable, displayed size when readable)
IMAGE_CASES = {
    "zero_byte": ("zero.jpg", zero_byte, False, None),
    "truncated_jpeg": ("cut.jpg", truncated_jpeg, False, None),
    "text_named_jpg": ("text.jpg", text_named_jpg, False, None),
    "cmyk_jpeg": ("cmyk.jpg", cmyk_jpeg, True, SIZE),
    "png_16bit": ("deep.png", png_16bit, True, SIZE),
    "palette_png": ("palette.png", palette_png, True, SIZE),
    "rgba_png": ("alpha.png", rgba_png, True, SIZE),
    "grey_png": ("grey.png", grey_png, True, SIZE),
    "one_pixel": ("dot.png", one_pixel, True, (1, 1)),
    "exif_rotated": ("rotated.jpg", exif_rotated, True, SIZE),
    "very_large": ("huge.png", very_large, False, None),
    "non_ascii_spaces": ("lésion ünïcode 1.png", lambda p: _rgb().save(p, format="PNG"), True, SIZE),
}


def mask_for(size: tuple[int, int], kind: str = "normal") -> Image.Image:
    width, height = size
    mask = np.zeros((height, width), np.uint8)
    mask[height // 4 : 3 * height // 4 + 1, width // 4 : 3 * width // 4 + 1] = 255
    if kind == "zeros":
        mask[:] = 0
    elif kind == "all_lesion":
        mask[:] = 255
    elif kind == "zero_one":
        mask //= 255
    elif kind == "levels":
        mask[0, :] = 100
    image = Image.fromarray(mask)
    return image.convert("RGB") if kind == "rgb" else image
