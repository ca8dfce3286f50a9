"""Small builders of fixture trees for the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from skinseg.data.synthetic import synthetic_pair


def write_pair(
    image_path: Path,
    mask_path: Path,
    size: int = 32,
    seed: int = 0,
    image_format: str | None = None,
    mask_values: tuple[int, int] = (0, 255),
) -> None:
    image, mask = synthetic_pair(size, seed)
    image_path.parent.mkdir(parents=True, exist_ok=True)
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(image_path, format=image_format)
    low, high = mask_values
    Image.fromarray(np.where(mask, high, low).astype(np.uint8)).save(mask_path)


def _isic_tree(root: Path, image_dir: str, mask_dir: str, mask_suffix: str, count: int, size: int) -> Path:
    for i in range(count):
        write_pair(root / image_dir / f"ISIC_{i:07d}.jpg", root / mask_dir / f"ISIC_{i:07d}{mask_suffix}.png", size, i)
    return root


def isic2018_tree(root: Path, count: int = 6, size: int = 32) -> Path:
    return _isic_tree(
        root, "ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth", "_segmentation", count, size
    )


def isic2017_tree(root: Path, count: int = 4, size: int = 32) -> Path:
    _isic_tree(root, "ISIC-2017_Training_Data", "ISIC-2017_Training_Part1_GroundTruth", "_segmentation", count, size)
    data = root / "ISIC-2017_Training_Data"
    for i in range(count):  # superpixel images and a CSV sit beside the inputs and must be ignored
        Image.fromarray(np.full((size, size, 3), i, np.uint8)).save(data / f"ISIC_{i:07d}_superpixels.png")
    (data / "ISIC-2017_Training_Data_metadata.csv").write_text("image_id,age\n")
    return root


def isic2016_tree(root: Path, count: int = 4, size: int = 32) -> Path:
    return _isic_tree(
        root,
        "ISBI2016_ISIC_Part1_Training_Data",
        "ISBI2016_ISIC_Part1_Training_GroundTruth",
        "_Segmentation",
        count,
        size,
    )


def ph2_tree(root: Path, count: int = 4, size: int = 32) -> Path:
    base = root / "PH2Dataset" / "PH2 Dataset images"
    for i in range(count):
        case = base / f"IMD{i:03d}"
        image_path = case / f"IMD{i:03d}_Dermoscopic_Image" / f"IMD{i:03d}.bmp"
        mask_path = case / f"IMD{i:03d}_lesion" / f"IMD{i:03d}_lesion.bmp"
        write_pair(image_path, mask_path, size, i, mask_values=(0, 1) if i % 2 else (0, 255))
        if i % 2 == 0:  # some PH2 masks are 3-channel
            Image.open(mask_path).convert("RGB").save(mask_path)
        (case / f"IMD{i:03d}_roi").mkdir()
    return root


def save_weights_forever(path: Path, first_write_done) -> None:
    """Write the default model's weights to `path` again and again until killed; `first_write_done` (an Event) is
    set once this process has written the file whole, so a kill after it lands in the write loop."""
    from skinseg.models.improved_unet import ImprovedUNet
    from skinseg.models.weights import ModelInfo, save_model

    model = ImprovedUNet()
    save_model(model, path, ModelInfo())
    first_write_done.set()
    while True:
        save_model(model, path, ModelInfo())


def save_weights_then_die_half_way(path: Path) -> None:
    """Write one model's weights to `path` whole (threshold 0.3 in its metadata), then start writing another's
    (threshold 0.7) and die by SIGKILL with half of the file's bytes written."""
    import os
    import signal

    import safetensors.torch
    from safetensors.torch import save

    import skinseg.models.weights as weights
    from skinseg.models.improved_unet import ImprovedUNet

    weights.save_model(ImprovedUNet(), path, weights.ModelInfo(threshold=0.3))

    def write_half_then_die(tensors, filename, metadata=None):
        data = save(tensors, metadata=metadata)
        with open(filename, "wb") as handle:
            handle.write(data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)

    safetensors.torch.save_file = write_half_then_die  # what fileio.save_tensors calls
    weights.save_model(ImprovedUNet(), path, weights.ModelInfo(threshold=0.7))


def forked_processes():
    """Processes forked from one server that has imported skinseg and torch once: each starts in milliseconds, where
    a fresh interpreter takes seconds (and a kill timed from its start would land while it is still importing torch).
    The server is started once per test process, so conftest keeps the tests that use it on one pytest-xdist worker."""
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    # torch._dynamo: the optimiser's first use imports it (seconds), in every training process
    from skinseg.cli.commands import COMMANDS

    commands = [f"skinseg.cli.{name}" for name in COMMANDS]  # built in the child by its main(): imported here once
    context.set_forkserver_preload(
        ["helpers", *commands, "skinseg.training.loop", "skinseg.inference.segment", "torch._dynamo"]
    )
    return context


def run_cli(args: list[str], cwd: Path, stdout_path: Path, stderr_path: Path, env: dict | None = None) -> None:
    """The body of a `skinseg ARGS` process forked by `forked_processes`: `python -m skinseg` does the same after
    seconds of imports. Its standard output and error go to the given files, `env` is added to its environment, and
    its exit code is the command's."""
    import os
    import sys

    for fd, path in ((1, stdout_path), (2, stderr_path)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    os.chdir(cwd)
    os.environ.update(env or {})
    sys.argv = ["skinseg", *args]
    from skinseg.cli import main

    main()


def start_cli(args: list, folder: Path, name: str, env: dict | None = None):
    """Start `skinseg ARGS` (run_cli) in a process forked by `forked_processes`, in `folder`, with its output in
    folder/NAME.out and NAME.err and `env` added to its environment. Returns (process, stdout path, stderr path)."""
    stdout, stderr = folder / f"{name}.out", folder / f"{name}.err"
    env = {key: str(value) for key, value in (env or {}).items()}
    process = forked_processes().Process(target=run_cli, args=([str(a) for a in args], folder, stdout, stderr, env))
    process.start()
    return process, stdout, stderr


def end_processes(processes) -> None:
    """Kill those of `processes` that still run and wait for all: a failing or hung test leaves none behind."""
    for process in processes:
        if process.is_alive():
            process.kill()
        process.join()


def ham10000_tree(root: Path, count: int = 12, size: int = 48) -> Path:
    """HAM10000's layout: images, masks and a metadata CSV whose dx alternates melanoma and naevus, one image a
    lesion."""
    rows = ["lesion_id,image_id,dx,dx_type,age,sex,localization"]
    for i in range(count):
        image_id = f"ISIC_{i:07d}"
        write_pair(
            root / "HAM10000_images" / f"{image_id}.jpg",
            root / "HAM10000_segmentations_lesion_tschandl" / f"{image_id}_segmentation.png",
            size,
            i,
        )
        rows.append(f"HAM_{i:07d},{image_id},{'mel' if i % 2 else 'nv'},histo,50.0,male,back")
    (root / "HAM10000_metadata.csv").write_text("\n".join(rows) + "\n")
    return root
