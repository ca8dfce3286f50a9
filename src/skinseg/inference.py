"""`skinseg segment`: masks for images of any size, one file or thousands.

Each image is resized to the model's input size, the probabilities are resized back to the image's own
size and thresholded there, so a mask always matches its image pixel for pixel. Decoding of the next
batch runs in threads while the model works on the current one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
import torch.nn.functional as F

from skinseg.config import SegmentConfig
from skinseg.data.images import load_rgb, save_mask_png, save_png
from skinseg.device import resolve_device
from skinseg.distributed import env_rank_world
from skinseg.errors import SkinsegError
from skinseg.fileio import check_output, interrupts_held
from skinseg.inputs import collect_inputs, output_paths, real_path
from skinseg.precision import resolve_precision
from skinseg.weights import load_model


def postprocess_mask(mask: np.ndarray) -> np.ndarray:
    """Keep the largest connected lesion (8-connected) and fill its holes: the background regions that do not
    reach the image's edge (4-connected, as scipy's binary_fill_holes, which took three times as long)."""
    from skimage.measure import label

    if not mask.any():
        return mask
    labels = label(mask, connectivity=2)
    lesion = labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1
    background = label(~lesion, connectivity=1)
    edge = np.unique(np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]]))
    return lesion | (~lesion & ~np.isin(background, edge[edge > 0]))


class Segmenter:
    """A loaded model with its preprocessing: uint8 RGB arrays in, probability maps out."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        device: str | torch.device = "auto",
        threshold: float | None = None,
        tta: bool = False,
        postprocess: bool = True,
        backend: str = "torch",
        precision: str = "auto",
    ):
        self.notes: list[str] = []  # settings that were ignored, in words
        if backend == "onnx":
            from skinseg.export import OnnxRunner, cached_onnx

            self.device = torch.device("cpu")
            self.precision = resolve_precision("fp32", self.device)
            if precision not in ("auto", "fp32"):
                self.notes.append(f"--precision {precision} is ignored with --backend onnx (ONNX Runtime runs fp32)")
            self.model = OnnxRunner(cached_onnx(model_path))
            self.info = self.model.info
        elif backend == "torch":
            self.device = device if isinstance(device, torch.device) else resolve_device(device)
            self.precision = resolve_precision(precision, self.device)
            self.notes += self.precision.notes
            model, self.info = load_model(model_path, self.device)
            self.model = model.to(memory_format=self.precision.memory_format).eval()  # type: ignore[call-overload]
        else:
            raise SkinsegError(f"unknown backend '{backend}'; choose torch or onnx")
        self.threshold = self.info.threshold if threshold is None else threshold
        if not 0.0 < self.threshold < 1.0:
            raise SkinsegError(f"threshold must be between 0 and 1, got {self.threshold}")
        self.tta = tta
        self.postprocess = postprocess
        self.mean = torch.tensor(self.info.mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(self.info.std, device=self.device).view(1, 3, 1, 1)

    def _to_input(self, image: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(image).to(self.device).permute(2, 0, 1)[None].float()
        size = self.info.input_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return (x - self.mean) / self.std

    def _logits(self, batch: torch.Tensor) -> torch.Tensor:
        with self.precision.autocast():
            return self.model(batch.contiguous(memory_format=self.precision.memory_format)).float()

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        probs = torch.sigmoid(self._logits(batch))
        if self.tta:  # average over horizontal, vertical and both flips
            for dims in ((-1,), (-2,), (-2, -1)):
                probs += torch.sigmoid(self._logits(batch.flip(dims))).flip(dims)
            probs /= 4
        return probs

    @torch.inference_mode()
    def probabilities(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Lesion probability maps, each the size of its image."""
        if not images:
            return []
        probs = self._forward(torch.cat([self._to_input(image) for image in images]))
        result = []
        for prob, image in zip(probs, images, strict=False):
            full = F.interpolate(prob[None], size=image.shape[:2], mode="bilinear", align_corners=False)
            result.append(full[0, 0].cpu().numpy())
        return result

    def masks_from(self, probabilities: list[np.ndarray]) -> list[np.ndarray]:
        masks = [prob > self.threshold for prob in probabilities]
        return [postprocess_mask(m) for m in masks] if self.postprocess else masks

    def masks(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return self.masks_from(self.probabilities(images))


def _sibling(target: Path, source: Path, kind: str) -> Path:
    return target.with_name(f"{source.stem}_{kind}.png")


@dataclass
class SegmentResult:
    output: Path
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    existing: list[Path] = field(default_factory=list)  # skipped with skip_existing: their outputs are there
    ignored: list[Path] = field(default_factory=list)  # mask files in input folders, not segmented


SUMMARY_COLUMNS = (
    "image",
    "mask",
    "width",
    "height",
    "lesion_pixels",
    "lesion_fraction",
    "bbox_x0",
    "bbox_y0",
    "bbox_x1",
    "bbox_y1",
    "mean_probability",
    "seconds",
)


def _summary_row(source: Path, target: Path, mask: np.ndarray, prob: np.ndarray, seconds: float) -> dict:
    area = int(mask.sum())
    ys, xs = np.nonzero(mask)
    box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1] if area else [0, 0, 0, 0]
    values = [
        str(source),
        str(target),
        mask.shape[1],
        mask.shape[0],
        area,
        round(area / mask.size, 6),
        *box,
        round(float(prob[mask].mean()) if area else 0.0, 6),
        round(seconds, 4),
    ]
    return dict(zip(SUMMARY_COLUMNS, values, strict=True))


class SummaryWriter:
    """Per-image rows written to CSV (or a JSON list, by suffix) as they come and flushed each time, so that an
    interrupted batch keeps the rows of the images it finished (the JSON list is closed on the way out)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.file: TextIO | None = None
        self.json = path is not None and path.suffix.lower() == ".json"
        self.count = 0

    def __enter__(self) -> SummaryWriter:
        if self.path is None:
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "w", encoding="utf-8", newline="")  # closed in __exit__
        except OSError as exc:
            raise SkinsegError(f"cannot write the summary: {exc.strerror or exc}", self.path) from None
        self._write("[" if self.json else ",".join(SUMMARY_COLUMNS) + "\r\n")
        return self

    def _write(self, text: str) -> None:
        assert self.file is not None
        try:
            self.file.write(text)
            self.file.flush()
        except OSError as exc:
            raise SkinsegError(f"could not write file: {exc.strerror or exc}", self.path) from None

    def add(self, row: dict) -> None:
        if self.file is None:
            return
        if self.json:
            self._write(("," if self.count else "") + "\n " + json.dumps(row))
        else:
            buffer = io.StringIO()
            csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS).writerow(row)
            self._write(buffer.getvalue())
        self.count += 1

    def __exit__(self, *exc_info) -> None:
        if self.file is None:
            return
        with interrupts_held():
            try:
                if self.json:
                    self._write("\n]\n")
            finally:
                self.file.close()


def _rank_share(items: list) -> tuple[list, int, int]:
    """Under torchrun, each rank takes every WORLD_SIZE-th input."""
    rank, world = env_rank_world()
    return items[rank::world], rank, world


def _read(source: Path) -> tuple[Path, np.ndarray | None, str | None]:
    try:
        return source, load_rgb(source), None
    except SkinsegError as exc:
        return source, None, str(exc).removeprefix(f"{source}: ")


def _outputs_of(config: SegmentConfig, source: Path, target: Path) -> list[Path]:
    """The files one image gives: its mask, and its overlay and probability map when asked for."""
    kinds = [kind for kind, on in (("overlay", config.overlay), ("probability", config.probabilities)) if on]
    return [target, *(_sibling(target, source, kind) for kind in kinds)]


def segment_paths(config: SegmentConfig, console=None) -> SegmentResult:
    """Segment every input image; unreadable ones are reported and the rest go on.

    Every output is checked before the model is loaded: none may be an input (not even with `overwrite`);
    an image whose outputs exist is skipped (with `skip_existing`), replaced (with `overwrite`) or reported."""
    from rich.console import Console

    from skinseg.figures import overlay_image
    from skinseg.html_report import ReportCases
    from skinseg.progress import progress_bar
    from skinseg.reports import print_notes

    if config.skip_existing and config.overwrite:
        raise SkinsegError("--skip-existing and --overwrite exclude each other: give one")
    result = SegmentResult(config.output)
    inputs = collect_inputs(config.inputs, result.ignored)
    targets = output_paths(inputs, config.output)
    folders: dict[str, str] = {}
    resolved_inputs = {real_path(p, folders) for p in inputs}  # realpath, unlike resolve, survives link loops
    todo = []
    pairs, rank, world = _rank_share(list(zip(inputs, targets, strict=False)))
    report = _rank_path(config.report, rank, world) if config.report else None
    summary = _rank_path(config.summary, rank, world) if config.summary else None
    if summary and summary.suffix.lower() not in (".csv", ".json"):
        raise SkinsegError("a summary is CSV or JSON, by its suffix: name it .csv or .json", summary)
    if report and summary and os.path.realpath(report) == os.path.realpath(summary):
        raise SkinsegError("--report and --summary name one file", summary)
    for path in filter(None, (report, summary)):
        check_output(path, config.overwrite, inputs)  # before the work, not after it
    cases = ReportCases(config.report_max_cases)
    for source, target in pairs:
        outputs = _outputs_of(config, source, target)
        taken = [p for p in outputs if real_path(p, folders) in resolved_inputs]
        if taken:
            raise SkinsegError("refusing to overwrite an input image with an output", taken[0])
        there = [p for p in outputs if p.exists()]
        if config.skip_existing and len(there) == len(outputs):
            result.existing.append(source)
        elif there and not config.overwrite:
            hint = "--overwrite to replace it or --skip-existing to leave it"
            result.failed.append((source, f"output {there[0]} exists (use {hint})"))
        else:
            todo.append((source, target))
    segmenter = Segmenter(
        config.model, config.device, config.threshold, config.tta, config.postprocess, config.backend, config.precision
    )
    print_notes(console, segmenter.notes)
    batches = [todo[i : i + config.batch_size] for i in range(0, len(todo), config.batch_size)]

    with (
        SummaryWriter(summary) as rows_out,
        progress_bar(console or Console(quiet=True), "Segmenting") as advance,
        ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool,
    ):
        pending = pool.map(_read, [s for s, _ in batches[0]]) if batches else iter(())
        for index, batch in enumerate(batches):
            decoded = list(pending)
            if index + 1 < len(batches):  # decode the next batch while this one is computed
                pending = pool.map(_read, [s for s, _ in batches[index + 1]])
            started = time.perf_counter()
            ready = [(s, t, image) for (s, image, _), (_, t) in zip(decoded, batch, strict=False) if image is not None]
            result.failed += [(s, error or "unreadable") for s, image, error in decoded if image is None]
            probs = segmenter.probabilities([image for _, _, image in ready])
            masks = segmenter.masks_from(probs)
            seconds = (time.perf_counter() - started) / max(1, len(ready))
            for (source, target, image), prob, mask in zip(ready, probs, masks, strict=False):
                save_mask_png(mask, target)
                if config.overlay:
                    save_png(overlay_image(image, mask), _sibling(target, source, "overlay"))
                if config.probabilities:
                    save_png(np.round(prob * 255).astype(np.uint8), _sibling(target, source, "probability"))
                result.written.append(target)
                result.rows.append(_summary_row(source, target, mask, prob, seconds))
                rows_out.add(result.rows[-1])
                if report:
                    cases.add(source.name, mask, image=image, probability=prob, threshold=segmenter.threshold)
            advance(sum(len(b) for b in batches[: index + 1]), len(todo))
    if report:
        from skinseg.html_report import segment_page, write_page

        facts = [("inputs", " ".join(map(str, config.inputs))), ("masks", config.output), ("backend", config.backend)]
        model_name = str(config.model) if config.model else None
        write_page(report, segment_page(cases, result.failed, facts, model_name, segmenter), config.overwrite)
    return result


def _rank_path(path: Path, rank: int, world: int) -> Path:
    """Under torchrun, each rank writes FILE.rankR.suffix."""
    return path if world == 1 else path.with_name(f"{path.stem}.rank{rank}{path.suffix}")
