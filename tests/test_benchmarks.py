"""Smoke tests of every script in benchmarks/: each benchmark's main() runs in this process on a tiny input (the
conftest fixtures' synthetic data and tiny model, the smallest sizes, repeats and epochs its options allow), so that
a change of the library or of the command line that breaks a benchmark fails here rather than on the day someone
measures. They check what each benchmark reports (its JSON file, its printed rows), never its figures.

Nothing is written outside tmp_path: temporary folders, skinseg's cache and relative default outputs go there too.
benchmarks/gpu_check.sh needs CUDA and nine minutes; its shell plumbing runs here with a stand-in for Python that
records the commands, and those commands are parsed by the real benchmarks and CLI. What truly needs CUDA runs only
where there is one (the `cuda` mark).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from types import ModuleType, SimpleNamespace
from unittest import mock

import pytest
import torch
from PIL import Image

from conftest import REPO, TINY
from helpers import ham10000_tree, isic2018_tree, write_pair

BENCHMARKS = REPO / "benchmarks"
TINY_MODEL = ["--base-filters", str(TINY["model"].base_filters), "--depth", str(TINY["model"].depth)]
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, needs_cuda])]


def load(name: str) -> ModuleType:
    """benchmarks/NAME.py as a module (the folder is not a package), freshly executed."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def args(*values) -> list[str]:
    return [str(v) for v in values]


@pytest.fixture(autouse=True)
def inside_tmp_path(tmp_path, monkeypatch) -> None:
    """Temporary folders, skinseg's cache and any relative default output of a benchmark land in tmp_path."""
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setenv("SKINSEG_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


# Each script in benchmarks/ and the tests below that run it: a new script fails the next test until it has one.
SMOKE_TESTS = {
    "adapt_sites.py": ["test_adapt_sites"],
    "compare.py": ["test_compare_with_skinsegs_own_models"],
    "cpu_inference.py": ["test_cpu_inference"],
    "gpu_data.py": ["test_gpu_data_copies_the_isic_2018_layout"],
    "gpu_check.sh": ["test_gpu_check_sh_plumbing_with_a_stand_in_python"],
    "int8_quantization.py": ["test_int8_quantization"],
    "link_split.py": ["test_link_split"],
    "measure_derm7pt.py": ["test_measure_derm7pt"],
    "measure_lesion_speed.py": ["test_measure_lesion_speed"],
    "measure_ham10000.py": ["test_measure_ham10000"],
    "measure_speed.py": ["test_measure_speed"],
    "precision.py": ["test_precision_table", "test_precision_agreement"],
    "prepare_speed.py": ["test_prepare_speed"],
    "recipe_ablation.py": ["test_recipe_ablation"],
    "skin_reference.py": ["test_skin_reference"],
    "threshold_sweep.py": ["test_threshold_sweep"],
    "train_speed.py": ["test_train_speed"],
    "segment_speed.py": ["test_segment_speed"],
}


def test_every_benchmark_has_a_smoke_test():
    scripts = sorted(p.name for p in BENCHMARKS.iterdir() if p.suffix in (".py", ".sh"))
    assert scripts == sorted(SMOKE_TESTS)
    assert all(callable(globals().get(test)) for tests in SMOKE_TESTS.values() for test in tests)


def test_adapt_sites(prepared_dir, tiny_model_path, tmp_path, capsys):
    (tmp_path / "prepared").mkdir()
    (tmp_path / "prepared" / "isic2018").symlink_to(prepared_dir)
    out = tmp_path / "sites.jsonl"
    load("adapt_sites").main(
        args(
            "--site", "isic-tight", "--split", "train", "--images", 6, "--eval", 3, "--model", tiny_model_path,
            "--budget", 1, "--prepared", tmp_path / "prepared", "--json", out,
        )
    )  # fmt: skip
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["site"] == "isic-tight" and row["images"] == 6 and row["scored"] == 3
    assert row["chosen"] in ("unchanged", "calibrated") and "unchanged" in row["cross_validation"]
    assert json.loads(capsys.readouterr().out) == row


def test_compare_with_skinsegs_own_models(prepared_dir, tmp_path, capsys):
    from skinseg.models.architectures import create_model
    from skinseg.models.layers import count_parameters

    out = tmp_path / "compare.json"
    load("compare").main(
        args(
            "--data", prepared_dir, "--models", "skinseg,unet", "--budget", 0.01, "--batch-size", 8,
            "--device", "cpu", "--precision", "fp32", *TINY_MODEL, "--json", out,
        )
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert report["size"] == 48 and report["budget"] == 0.01
    results = report["results"]
    assert [r["model"] for r in results] == ["skinseg", "unet"]
    for result, architecture in zip(results, ("improved_unet", "unet"), strict=True):
        expected = count_parameters(create_model(replace(TINY["model"], architecture=architecture)))
        assert result["parameters"] == expected  # --base-filters and --depth size the model
        assert result["steps"] >= 1 and result["images_seen"] == 8 * result["steps"]
        assert 0 <= result["val_dice"] <= 1 and result["inference_images_per_s"] > 0
    printed = capsys.readouterr().out
    assert re.search(r"^skinseg +params +\d", printed, re.M) and re.search(r"^unet +params +\d", printed, re.M)


def cli_in_this_process(calls: list[str]):
    """A stand-in for subprocess.run that runs `python -m skinseg ...` and `python -c CODE` in this process (a fresh
    interpreter spends seconds importing torch): the same commands, only not timed from a cold start."""
    from typer.testing import CliRunner

    from skinseg import cli

    def run(command, check=False, capture_output=False, text=False):
        assert command[0] == sys.executable
        if command[1:3] == ["-m", "skinseg"]:
            result = CliRunner().invoke(cli.app, command[3:])
            code, output = result.exit_code, result.output
            calls.append(command[3])
        else:
            assert command[1] == "-c"
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                exec(command[2], {})
            code, output = 0, buffer.getvalue()
            calls.append("-c")
        if check and code:
            raise subprocess.CalledProcessError(code, command, output)
        return subprocess.CompletedProcess(command, code, output if text else output.encode())

    return run


def test_cpu_inference(tiny_model_path, tmp_path, monkeypatch, capsys):
    """Every part but ONNX Runtime (--backends torch): its export of even the tiny model takes ~25 s, and
    tests/test_export.py covers the export, OnnxRunner and the onnx backend of Segmenter."""
    images = tmp_path / "jpegs"
    for i in range(3):
        write_pair(images / f"ISIC_{i:07d}.jpg", tmp_path / "masks" / f"{i}.png", size=48, seed=i)
    module = load("cpu_inference")
    calls: list[str] = []
    monkeypatch.setattr(module, "subprocess", SimpleNamespace(run=cli_in_this_process(calls)))
    module.main(
        args(
            "--images", images, "--count", 2, "--model", tiny_model_path, "--repeats", 1, "--matmul-size", 64,
            "--batches", 1, "--backends", "torch", "--wall-repeats", 1,
        )
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert "input 48px" in printed
    assert len(re.findall(r"^  batch  1  .+ ms  \(\d+\.\d+x floor\)$", printed, re.M)) == 4
    assert re.search(r"^  backend torch batch 8: \d+\.\d+ s, \d+\.\d+ images/s$", printed, re.M)
    assert re.search(r"phases: import torch .+ forward \d+ ms, encode \d+ ms$", printed, re.M), printed
    assert calls == ["segment", "segment", "-c", "--help", "--version"]


def test_gpu_data_copies_the_isic_2018_layout(tmp_path, capsys):
    from skinseg.data.layouts import discover_pairs

    source = isic2018_tree(tmp_path / "isic", count=3, size=32)
    out = tmp_path / "copy"
    load("gpu_data").main(args("--data", source, "--out", out, "--size", 16, "--limit", 2, "--workers", 0))
    images = sorted((out / "ISIC2018_Task1-2_Training_Input").iterdir())
    masks = sorted((out / "ISIC2018_Task1_Training_GroundTruth").iterdir())
    assert [p.name for p in images] == ["ISIC_0000000.jpg", "ISIC_0000001.jpg"]
    assert [p.name for p in masks] == ["ISIC_0000000_segmentation.png", "ISIC_0000001_segmentation.png"]
    with Image.open(images[0]) as image, Image.open(masks[0]) as mask:
        assert (image.format, image.size, mask.mode, mask.size) == ("JPEG", (16, 16), "1", (16, 16))
    assert "CC BY-NC 4.0" in (out / "COPY.txt").read_text()
    discovery = discover_pairs(out)
    assert (discovery.layout, len(discovery.pairs)) == ("isic2018", 2)
    assert capsys.readouterr().out.startswith(f"2 pairs -> {out}")


class Parsed(Exception):
    pass


def parsed_options(module: ModuleType, argv: list[str]) -> argparse.Namespace:
    """What `module.main(argv)` makes of argv: its own parser reads it, then main stops (a wrong option fails)."""
    parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, *a, **k):
        raise Parsed(parse(self, *a, **k))

    with mock.patch.object(argparse.ArgumentParser, "parse_args", parse_then_stop), pytest.raises(Parsed) as caught:
        module.main(argv)
    return caught.value.args[0]


def test_gpu_check_sh_plumbing_with_a_stand_in_python(tmp_path):
    """The whole script on the CPU, each Python command recorded instead of run (the stages that train need CUDA
    and minutes); the benchmarks and skinseg commands it builds must parse with their real parsers."""
    import typer

    from skinseg import cli

    calls, stub = tmp_path / "calls.txt", tmp_path / "python"
    stub.write_text(
        "#!/usr/bin/env bash\n"
        "(IFS=$'\\x1f'; printf '%s\\n' \"$*\") >> \"$STUB_CALLS\"\n"
        'if [[ "$*" == "-m skinseg train --help" ]]; then echo "  --precision"; fi\n'  # checked below: it has one
    )
    stub.chmod(0o755)
    out, work = tmp_path / "out", tmp_path / "work"
    env = os.environ | {
        "PYTHON": str(stub), "STUB_CALLS": str(calls), "SKINSEG_GPU_CHECK_DEVICE": "cpu", "GPU_CHECK_QUICK": "1",
        "GPU_CHECK_DATA": str(isic2018_tree(tmp_path / "isic", count=2, size=32)), "GPU_CHECK_TMP": str(work),
        "TMPDIR": tempfile.gettempdir(),
    }  # fmt: skip
    done = subprocess.run(
        ["bash", BENCHMARKS / "gpu_check.sh", out], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    stages = [line.split("\t") for line in (work / "stages.tsv").read_text().splitlines()]
    assert [(name, rc) for name, rc, *_ in stages] == [
        (name, "0") for name in ("env", "prepare", "cuda-tests", "precision", "speed", "recipe")
    ]
    assert (out / "env.txt").is_file() and (out / "gpu_check.log").is_file()
    commands = [line.split("\x1f") for line in calls.read_text().splitlines()]
    by_script = {c[0]: c[1:] for c in commands if c[0].startswith("benchmarks/")}
    assert sorted(by_script) == ["benchmarks/precision.py", "benchmarks/train_speed.py"]
    precision = parsed_options(load("precision"), by_script["benchmarks/precision.py"])
    assert (precision.device, precision.sizes, precision.json) == ("cpu", "64", out / "precision.json")
    speed = parsed_options(load("train_speed"), by_script["benchmarks/train_speed.py"])
    assert (speed.device, speed.settings, speed.max_train_images) == ("cpu", "b16,b64", 16)
    skinseg = [c[2:] for c in commands if c[:2] == ["-m", "skinseg"] and "--help" not in c]
    assert [c[0] for c in skinseg] == ["prepare", "train"]
    assert skinseg[1][-2:] == ["--precision", "auto"]
    group = typer.main.get_command(cli.app)
    context = typer.Context(group)
    for name, *options in skinseg:  # parsed, not run: an option that the CLI lacks fails
        group.get_command(context, name).make_context(name, options, parent=context)


def test_link_split(prepared_dir, tmp_path, capsys):
    from skinseg.data.prepare import load_manifest

    val = [item for item in load_manifest(prepared_dir)["items"] if item["split"] == "val"]
    out = tmp_path / "val-split"
    for _ in range(2):  # a second run finds the links made
        load("link_split").main(args(prepared_dir, "val", out))
    for kind, key in (("images", "image"), ("masks", "mask")):
        links = sorted((out / kind).iterdir())
        assert [link.name for link in links] == sorted(Path(item[key]).name for item in val)
        assert all(link.is_symlink() and link.resolve().is_file() for link in links)
    assert (
        capsys.readouterr().out.splitlines() == [f"linked {len(val)} val pairs into {out}/images and {out}/masks"] * 2
    )


def test_measure_ham10000(tiny_model_path, tmp_path):
    out = tmp_path / "ham.json"
    ham = ham10000_tree(tmp_path / "ham")
    load("measure_ham10000").main(
        args("--ham", ham, "--split", "all", "--model-masks", "--model", tiny_model_path, "--json", out)
    )
    report = json.loads(out.read_text())
    assert (report["images"], report["melanoma"], report["naevi"]) == (12, 6, 6)
    assert all(0.0 <= v <= 1.0 for v in report["auc_true_masks"].values())
    assert set(report["auc_true_masks"]) >= {"asymmetry", "border_irregularity", "colour_count", "diameter_px"}
    assert set(report["auc_baselines"]) >= {"baseline_shape_fold", "baseline_colour_blue_grey"}
    assert set(report["auc_model_masks"]) == set(report["auc_true_masks"])  # NaN where the tiny model found none
    assert report["presence_by_dx"]["mel"]["images"] == 6


def test_measure_derm7pt(tmp_path):
    root = tmp_path / "derm7pt"
    header = "diagnosis,pigment_network,streaks,pigmentation,regression_structures,dots_and_globules,"
    rows = [header + "blue_whitish_veil,vascular_structures,derm"]
    for i in range(8):
        write_pair(root / "images" / "F" / f"c{i}.jpg", tmp_path / "masks" / f"c{i}_segmentation.png", 48, i)
        regression, vessels = ("white areas", "dotted") if i % 2 else ("absent", "absent")
        rows.append(f"clark nevus,absent,absent,absent,{regression},absent,absent,{vessels},F/c{i}.jpg")
    (root / "meta.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "derm7pt.json"
    load("measure_derm7pt").main(args("--derm7pt", root, "--masks", tmp_path / "masks", "--part", "all", "--json", out))
    report = json.loads(out.read_text())
    assert report["images"] == 8 and report["positives"]["white"] == report["positives"]["red"] == 4
    assert set(report["auc"]) >= {"white", "red", "blue_grey"} and len(report["count_spearman"]) == 3


def test_measure_lesion_speed(tmp_path):
    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "speed.json"
    for i in range(3):
        write_pair(images / f"ISIC_{i:07d}.jpg", masks / f"ISIC_{i:07d}_segmentation.png", size=48, seed=i)
    source = REPO / "src"
    load("measure_lesion_speed").main(
        args("--images", images, "--masks", masks, "--count", 3, "--rounds", 1, "--tree", source, "--json", out)
    )
    report = json.loads(out.read_text())
    (figures,) = report["trees"].values()
    assert report["images"] == 3 and figures["measure_lesion_ms"] > 0
    # the command's figure is a difference of two runs' times, each mostly start-up: on 3 tiny images its sign is
    # noise (CI once saw -115.8), so only its presence is checked here
    assert math.isfinite(figures["measure_command_ms"])


def isic_jpegs(tmp_path, count: int) -> Path:
    """A folder of `count` small ISIC-named JPEGs (their masks beside it, in masks/)."""
    images = tmp_path / "jpegs"
    for i in range(count):
        write_pair(images / f"ISIC_{i:07d}.jpg", tmp_path / "masks" / f"{i}.png", size=48, seed=i)
    return images


def test_measure_speed(tiny_model_path, tmp_path):
    out, images = tmp_path / "speed.json", isic_jpegs(tmp_path, 3)
    load("measure_speed").main(
        args("--images", images, "--count", 2, "--rounds", 1, "--threads", 1, "--model", tiny_model_path, "--json", out)
    )
    report = json.loads(out.read_text())
    assert (report["images"], report["image_size"], report["measured_rows"]) == (2, [48, 48], 2)
    assert report["measure_ms_per_image"] > 0 and report["segment_ms_per_image"] > 0
    assert report["added_ms_per_image"] == pytest.approx(
        report["measure_ms_per_image"] - report["segment_ms_per_image"], abs=0.11
    )


def test_segment_speed(tiny_model_path, tmp_path):
    out, images = tmp_path / "speed.json", isic_jpegs(tmp_path, 3)
    load("segment_speed").main(
        args(
            "--images",
            images,
            "--count",
            2,
            "--floor-count",
            3,
            "--rounds",
            1,
            "--model",
            tiny_model_path,
            "--json",
            out,
        )
    )
    report = json.loads(out.read_text())
    assert (report["images"], report["floor_images"]) == (2, 3) and report["floor_s"] > 0
    [row] = report["rows"]
    assert row["images_per_s"] > 0 and row["ratio_to_floor"] > 0 and row["one_cold_s"] > 0
    assert row["masks_differing_from_first_tree"] == 0


def test_skin_reference(tmp_path, capsys):
    load("skin_reference").main(args("--isic", isic2018_tree(tmp_path / "isic", count=3, size=48)))
    printed = capsys.readouterr().out
    colour = re.fullmatch(r"3 images: median skin sRGB \((0\.\d+), (0\.\d+), (0\.\d+)\)\n", printed)
    assert colour, printed
    red, green, blue = map(float, colour.groups())
    assert red > green > blue  # skin-toned, as the synthetic images are


@pytest.mark.parametrize("device", DEVICES)
def test_precision_table(tmp_path, capsys, device):
    out = tmp_path / "precision.json"
    load("precision").main(
        args(
            "--device", device, "--sizes", 32, "--settings", "fp32,bf16-cl", "--batch", 2, "--infer-batch", 1,
            "--warmup", 0, "--repeats", 1, *TINY_MODEL, "--json", out,
        )
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert (report["warmup"], report["repeats"]) == (0, 1)
    rows = report["rows"]
    assert [(r["size"], r["setting"]) for r in rows] == [(32, "fp32"), (32, "bf16-cl")]
    for row in rows:
        assert "error" not in row, row
        assert row["train_step_s"] > 0 and row["train_images_per_s"] > 0 and row["infer_ms_per_image"] > 0
    printed = capsys.readouterr().out
    assert [line.split("|")[2].strip() for line in printed.splitlines() if line.startswith("| 32 |")] == [
        "fp32",
        "bf16-cl",
    ]


def test_precision_agreement(prepared_dir, tiny_model_path, tmp_path):
    from skinseg.data.prepare import load_manifest

    out = tmp_path / "agreement.json"
    load("precision").main(
        args(
            "--agreement", prepared_dir, "--split", "val", "--model", tiny_model_path, "--device", "cpu", "--json", out
        )
    )
    result = json.loads(out.read_text())
    val = [item for item in load_manifest(prepared_dir)["items"] if item["split"] == "val"]
    assert result["images"] == len(val) and result["pixels"] == len(val) * 48 * 48
    assert 0.5 < result["worst_image_agreement"] <= result["agreement"] <= 1


def test_int8_quantization(prepared_dir, tiny_model_path, tmp_path):
    out = tmp_path / "int8.json"
    load("int8_quantization").main(
        args(
            "--data",
            prepared_dir,
            "--model",
            tiny_model_path,
            "--calibrate",
            4,
            "--batch",
            2,
            "--repeats",
            1,
            "--json",
            out,
        )
    )
    result = json.loads(out.read_text())
    assert result["calibration_images"] == 4 and result["images"] > 0 and result["where"].startswith("val split")
    assert set(result["forward_ms_per_image"]) == {"fp32", "int8"} and result["int8_speedup"] > 0
    assert 0.5 < result["agreement"] <= 1 and 0 <= result["dice_int8"] <= 1
    assert result["int8_passes"] == (
        result["agreement"] >= 0.995 and abs(result["dice_int8"] - result["dice_fp32"]) <= 0.001
    )


def test_prepare_speed(raw_dir, capsys):
    load("prepare_speed").main(args("--data", raw_dir, "--size", 32, "--repeat", 1))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"30 pairs from {raw_dir}, size 32")
    rows = [re.fullmatch(r"(.+?) +(\d+\.\d\d) +(\d+)", line) for line in lines[2:]]
    assert all(rows), lines
    assert [row.group(1) for row in rows if row] == [
        "Pillow loop, 1 core",
        "Pillow loop + draft, 1 core",
        "skinseg prepare (cold, all cores)",
        "skinseg prepare (warm, cache reused)",
    ]


def test_recipe_ablation(prepared_dir, tmp_path, capsys):
    out = tmp_path / "ablation"
    load("recipe_ablation").main(
        args(
            "--data", prepared_dir, "--epochs", 1, "--variants", "default,loss-dice", "--device", "cpu",
            "--max-train-images", 8, *TINY_MODEL, "--out", out,
        )
    )  # fmt: skip
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["variant"], r["change"], r["epochs"]) for r in rows] == [
        ("default", {}, 1),
        ("loss-dice", {"loss": "dice"}, 1),
    ]
    assert all(0 <= r["best_val_dice"] <= 1 and r["best_epoch"] == 1 for r in rows)
    for variant in ("default", "loss-dice"):
        model = json.loads((out / variant / "config.json").read_text())["model"]
        assert (model["base_filters"], model["depth"]) == (4, 3)
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| variant |")
    assert [line.split(" | ")[0] for line in table[1:]] == ["| default", "| loss-dice"]


def test_threshold_sweep(prepared_dir, tiny_model_path, tmp_path, capsys):
    out = tmp_path / "sweep.json"
    load("threshold_sweep").main(
        args(
            "--data", prepared_dir, "--model", tiny_model_path, "--split", "val", "--thresholds", "0.4,0.6",
            "--device", "cpu", "--json", out,
        )
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert (report["split"], report["model"]) == ("val", str(tiny_model_path))
    rows = report["rows"]
    assert [(r["threshold"], r["postprocess"]) for r in rows] == [(0.4, False), (0.4, True), (0.6, False), (0.6, True)]
    assert all(0 <= r[name] <= 1 for r in rows for name in ("dice", "jaccard", "threshold_jaccard"))
    assert "best on the val split of" in capsys.readouterr().out


@pytest.mark.parametrize("device", DEVICES)
def test_train_speed(prepared_dir, tmp_path, device):
    out = tmp_path / "speed.json"
    load("train_speed").main(
        args(
            "--data", prepared_dir, "--device", device, "--settings", "b16", "--epochs", 1, "--max-train-images", 8,
            "--target-epochs", 1, "--target-dice", 0.0, *TINY_MODEL, "--json", out,
        )
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert (report["size"], report["train_images"]) == (48, 8)
    assert [(r["setting"], r["batch_size"]) for r in report["speed"]] == [("b16", 16)]
    assert report["speed"][0]["train_images_per_s"] > 0
    target = report["target"]
    assert (target["setting"], target["epochs"], target["reached"]["epoch"]) == ("b16", 1, 1)
    assert len(target["val_dice_by_epoch"]) == 1
