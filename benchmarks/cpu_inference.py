"""CPU inference benchmark: how close the forward pass is to the machine's floor, and where `segment` spends.

    python benchmarks/cpu_inference.py [--images ../shared/data/isic2018/ISIC2018_Task1-2_Training_Input]
                                       [--count 64] [--model PATH] [--repeats 5] [--matmul-size 2048]
                                       [--batches 1,8] [--backends torch,onnx] [--wall-repeats N]

Prints: the fp32 matrix-product rate of this machine and the model's FLOPs per image (so the floor in ms);
the forward time per image for each lever (eager, channels_last, inference_mode, batch size, ONNX
Runtime); end-to-end `skinseg segment DIR -o OUT` images/s; a cold `skinseg segment one.jpg` split into
its phases; and the wall time of `skinseg --help` and `--version`. --backends chooses the backends of the
end-to-end runs (ONNX Runtime is timed in the forward table only when it names onnx).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

DEFAULT_IMAGES = Path(__file__).resolve().parents[2] / "shared/data/isic2018/ISIC2018_Task1-2_Training_Input"


def best_of(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / best_of(lambda: a @ b, repeats) / 1e9


def forward_ms(model, size: int, batch: int, channels_last: bool, mode: str, repeats: int = 5) -> float:
    x = torch.randn(batch, 3, size, size)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    context = torch.inference_mode if mode == "inference_mode" else torch.no_grad
    with context():
        seconds = best_of(lambda: model(x), repeats)
    model.to(memory_format=torch.contiguous_format)
    return seconds / batch * 1000


def wall(command: list[str], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="a folder of JPEGs")
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per forward figure (the best is kept)")
    parser.add_argument("--matmul-size", type=int, default=2048, help="n of the n x n fp32 matrix product")
    parser.add_argument("--batches", default="1,8", help="batch sizes of the forward table")
    parser.add_argument("--backends", default="torch,onnx", help="torch and/or onnx")
    parser.add_argument(
        "--wall-repeats", type=int, default=None, help="runs per command timed [default: 2 end to end, 3 otherwise]"
    )
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    backends = args.backends.split(",")
    end_to_end_repeats = args.wall_repeats or 2
    wall_repeats = args.wall_repeats or 3

    from skinseg.models.weights import load_model

    model, info = load_model(args.model)
    size = info.input_size
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, input {size}px")
    n = args.matmul_size
    rate = matmul_gflops(n, args.repeats)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 3, size, size))
    gflop = counter.get_total_flops() / 1e9
    floor = gflop / rate * 1000
    print(f"fp32 {n}^3 matmul: {rate:.0f} GFLOP/s; model: {gflop:.2f} GFLOP/image; floor {floor:.1f} ms/image")

    print(f"\nforward, ms per image (best of {args.repeats}):")
    for batch in batches:
        for channels_last in (False, True):
            for mode in ("no_grad", "inference_mode"):
                ms = forward_ms(model, size, batch, channels_last, mode, args.repeats)
                print(
                    f"  batch {batch:2d}  {'channels_last' if channels_last else 'contiguous   '}  {mode:15s}"
                    f"  {ms:7.1f} ms  ({ms / floor:.2f}x floor)"
                )
    if "onnx" in backends:
        try:
            from skinseg.inference.onnx import OnnxRunner, cached_onnx

            runner = OnnxRunner(cached_onnx(args.model))
            for batch in batches:
                x = torch.randn(batch, 3, size, size)
                ms = best_of(lambda x=x: runner(x), args.repeats) / batch * 1000
                lever = "ONNX Runtime".ljust(37)
                print(f"  batch {batch:2d}  {lever}  {ms:7.1f} ms  ({ms / floor:.2f}x floor)")
        except Exception as exc:  # the ONNX extra is optional
            print(f"  ONNX Runtime: skipped ({exc})")

    sources = sorted(args.images.glob("*.jpg"))[: args.count]
    skinseg = [sys.executable, "-m", "skinseg"]
    model_args = ["--model", str(args.model)] if args.model else []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for source in sources:
            shutil.copy(source, folder / source.name)
        print(f"\nend to end, `skinseg segment DIR -o OUT` on {len(sources)} JPEGs (includes start-up):")
        for backend in backends:
            for batch in (8,):
                seconds = wall(
                    [
                        *skinseg,
                        "segment",
                        str(folder),
                        "-o",
                        str(Path(tmp) / f"out-{backend}"),
                        "--overwrite",
                        "--batch-size",
                        str(batch),
                        "--backend",
                        backend,
                        *model_args,
                    ],
                    repeats=end_to_end_repeats,
                )
                rate = len(sources) / seconds
                print(f"  backend {backend:5s} batch {batch}: {seconds:.2f} s, {rate:.1f} images/s")

        one = sources[0]
        code = f"""
import time; t0 = time.perf_counter()
import torch; t1 = time.perf_counter()
from skinseg.inference.segmenter import Segmenter
from skinseg.data.images import load_rgb, save_mask_png; t2 = time.perf_counter()
s = Segmenter({str(args.model)!r} if {bool(args.model)} else None, device='cpu'); t3 = time.perf_counter()
image = load_rgb({str(one)!r}); t4 = time.perf_counter()
mask = s.masks([image])[0]; t5 = time.perf_counter()
save_mask_png(mask, {str(Path(tmp) / "one.png")!r}); t6 = time.perf_counter()
print(f"import torch {{t1-t0:.2f}} s, import skinseg {{t2-t1:.2f}} s, model load {{t3-t2:.2f}} s, "
      f"decode {{(t4-t3)*1000:.0f}} ms, forward {{(t5-t4)*1000:.0f}} ms, encode {{(t6-t5)*1000:.0f}} ms")
"""
        print("\ncold `skinseg segment one.jpg -o mask.png`:")
        total = wall(
            [
                *skinseg,
                "segment",
                str(one),
                "-o",
                str(Path(tmp) / "mask.png"),
                "--overwrite",
                "--device",
                "cpu",
                *model_args,
            ],
            wall_repeats,
        )
        print(f"  wall {total:.2f} s (median of {wall_repeats})")
        phases = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        print(f"  phases: {phases.stdout.strip()}")
    print(
        f"\n`skinseg --help`: {wall([*skinseg, '--help'], wall_repeats):.2f} s; `skinseg --version`: "
        f"{wall([*skinseg, '--version'], wall_repeats):.2f} s (median of {wall_repeats})"
    )


if __name__ == "__main__":
    main()
