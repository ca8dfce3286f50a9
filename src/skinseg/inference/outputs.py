"""The files segment writes for each image, one small writer each: the mask, the overlay, the probability map
and the crop. A writer names its file (from the suffixes of skinseg.inputs), says whether an image's segmentation
makes it, and writes it from one `Segmented` result. segment plans, keeps (`skip_existing`) and writes through
them alone; the summary row, the COCO entry, the measurements and the page are collected per image
(inference.segment)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from skinseg.data.images import save_mask_png, save_png
from skinseg.inference.config import SegmentConfig
from skinseg.inputs import CROP, OVERLAY, PROBABILITY, picture_path


@dataclass(frozen=True)
class Segmented:
    """What the model made of one image: its mask file, the whole image (where an output needs it), the
    probability map and the mask."""

    source: Path
    target: Path
    image: np.ndarray | None
    probability: np.ndarray | None  # None: a kept mask read again (its crop cut anew)
    mask: np.ndarray


@dataclass(frozen=True)
class Writer:
    """One file per image. `from_segmentation`: the file comes from the model's output, so an image whose file
    is missing is segmented again (a crop is cut from the mask: it is not). `needs_image`: written only where the
    whole image was read. `replace`: a file there is replaced (`overwrite`); otherwise it is never written over,
    even one that another command wrote after this one planned (fileio.OutputExists)."""

    replace: bool = False
    from_segmentation: ClassVar[bool] = True
    needs_image: ClassVar[bool] = False

    def path(self, source: Path, target: Path) -> Path:
        raise NotImplementedError

    def write(self, item: Segmented) -> bool:
        """Write the file of `item`; False where there is none to write (a crop without a lesion)."""
        raise NotImplementedError


@dataclass(frozen=True)
class MaskWriter(Writer):
    def path(self, source: Path, target: Path) -> Path:
        return target

    def write(self, item: Segmented) -> bool:
        save_mask_png(item.mask, item.target, replace=self.replace)
        return True


@dataclass(frozen=True)
class OverlayWriter(Writer):
    needs_image: ClassVar[bool] = True

    def path(self, source: Path, target: Path) -> Path:
        return picture_path(target.parent, source, OVERLAY)

    def write(self, item: Segmented) -> bool:
        from skinseg.reporting.figures import overlay_image

        assert item.image is not None
        save_png(overlay_image(item.image, item.mask), self.path(item.source, item.target), replace=self.replace)
        return True


@dataclass(frozen=True)
class ProbabilityWriter(Writer):
    def path(self, source: Path, target: Path) -> Path:
        return picture_path(target.parent, source, PROBABILITY)

    def write(self, item: Segmented) -> bool:
        assert item.probability is not None
        probability = np.round(item.probability * 255).astype(np.uint8)
        save_png(probability, self.path(item.source, item.target), replace=self.replace)
        return True


@dataclass(frozen=True)
class CropWriter(Writer):
    """The lesion cut from the whole image, into `folder`; an image without a lesion has none."""

    folder: Path = Path()
    margin: float = 0.0
    size: int | None = None
    square: bool = False
    from_segmentation: ClassVar[bool] = False
    needs_image: ClassVar[bool] = True

    def path(self, source: Path, target: Path) -> Path:
        return picture_path(self.folder, source, CROP)

    def write(self, item: Segmented) -> bool:
        assert item.image is not None
        from skinseg.inference.crops import lesion_crop  # its bounding box comes with scipy: only for `crops`

        crop = lesion_crop(item.image, item.mask, self.margin, self.size, self.square)
        if crop is None:
            return False
        save_png(crop, self.path(item.source, item.target), replace=self.replace)
        return True


def writers_for(config: SegmentConfig) -> list[Writer]:
    """The writers of the files that `config` asks for, the mask first."""
    replace = config.overwrite
    writers: list[Writer] = [MaskWriter(replace)]
    writers += [OverlayWriter(replace)] if config.overlay else []
    writers += [ProbabilityWriter(replace)] if config.probabilities else []
    if config.crops is not None:
        crops = config.crops
        writers.append(CropWriter(replace, crops, config.crop_margin, config.crop_size, config.crop_square))
    return writers


def crop_writer(writers: list[Writer]) -> CropWriter | None:
    return next((writer for writer in writers if isinstance(writer, CropWriter)), None)
