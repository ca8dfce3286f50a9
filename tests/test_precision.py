"""Precision, memory layout and compile: resolved once from the device; the CPU runs the GPU's code path."""

import json
import math

import pytest
import torch

from conftest import TINY
from skinseg.errors import SkinsegError, TrainingInterrupted
from skinseg.models.weights import load_model
from skinseg.runtime import precision as precision_module
from skinseg.runtime.precision import compile_active, compile_note, resolve_precision
from skinseg.training.batches import load_data, training_batch
from skinseg.training.config import TrainConfig
from skinseg.training.engine import build_engine, train_step
from skinseg.training.loop import train
from skinseg.training.runs import load_run

CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda"), torch.device("mps")


# What `auto` picks on each kind of CPU, per job and image size: (precision, channels_last), as measured
# (docs/benchmarks.md, "Precision").
AUTO_ON_CPU = {
    ("amx", "train", 128): ("bf16", False),
    ("amx", "train", 256): ("bf16", True),
    ("amx", "infer", 128): ("bf16", False),
    ("amx", "infer", 256): ("bf16", False),
    **{("avx512_bf16", job, size): ("bf16", False) for job in ("train", "infer") for size in (128, 256)},
    **{("emulated", job, size): ("fp32", False) for job in ("train", "infer") for size in (128, 256)},
}


@pytest.mark.parametrize("job", ["train", "infer"])
@pytest.mark.parametrize("size", [128, 256])
def test_auto_picks_precision_and_memory_format_by_cpu_kind_job_and_size(cpu_kind, job, size):
    chosen = resolve_precision("auto", CPU, job=job, size=size)
    assert (chosen.name, chosen.channels_last) == AUTO_ON_CPU[cpu_kind, job, size] and chosen.notes == ()


# --precision bf16 given on each kind of CPU: the memory format measured faster for bf16 there (on a CPU without
# native bf16, channels_last: emulated bf16 ran 2x faster with it, and a note says bf16 is slow there anyway).
BF16_CHANNELS_LAST = {("amx", 128): False, ("amx", 256): True, ("avx512_bf16", 128): False,
                      ("avx512_bf16", 256): False, ("emulated", 128): True, ("emulated", 256): True}  # fmt: skip


@pytest.mark.parametrize("size", [128, 256])
def test_bf16_given_takes_the_memory_format_measured_for_bf16(cpu_kind, size):
    chosen = resolve_precision("bf16", CPU, job="train", size=size)
    assert chosen.name == "bf16" and chosen.channels_last == BF16_CHANNELS_LAST[cpu_kind, size]
    assert bool(chosen.notes) == (cpu_kind == "emulated")


def test_cpu_kind_is_read_from_onednn_and_the_cpu_flags(monkeypatch):
    flags = {"amx": "fpu avx512f avx512_bf16 amx_bf16 amx_tile", "avx512_bf16": "fpu avx512f avx512_bf16"}
    for kind, line in flags.items():
        monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)
        monkeypatch.setattr(precision_module, "_cpuinfo", lambda field, line=line: line)
        assert precision_module.cpu_bf16_kind() == kind
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)
    assert precision_module.cpu_bf16_kind() == "emulated"


def test_the_segmenter_and_a_run_resolve_auto_for_their_job_and_size(
    cpu_kind, tiny_model_path, prepared_dir, tmp_path, monkeypatch
):
    """The tiny model and data are 48 px; the table's sizes are faked by moving the thresholds down."""
    from skinseg.inference.segmenter import Segmenter

    scaled = {key: size and size * 48 // 256 for key, size in precision_module.CHANNELS_LAST_FROM.items()}
    monkeypatch.setattr(precision_module, "CHANNELS_LAST_FROM", scaled)
    segmenter = Segmenter(tiny_model_path, device="cpu")
    assert (segmenter.precision.name, segmenter.precision.channels_last) == AUTO_ON_CPU[cpu_kind, "infer", 256]
    started = []
    config = TrainConfig(data=prepared_dir, out=tmp_path / "run", epochs=1, device="cpu", max_train_images=8, **TINY)
    train(config, on_start=lambda line, notes: started.append(line))
    name, channels_last = AUTO_ON_CPU[cpu_kind, "train", 256]
    expected = f"{'bf16 autocast' if name == 'bf16' else 'fp32'}, {'channels_last' if channels_last else 'contiguous'}"
    assert len(started) == 1 and f"precision: {expected};" in started[0]


def test_auto_is_bf16_on_cuda_and_fp32_on_mps():
    assert resolve_precision("auto", CUDA, job="train", size=256).dtype == torch.bfloat16
    assert resolve_precision("auto", CUDA, job="train", size=256).memory_format == torch.channels_last
    assert resolve_precision("auto", MPS, job="train", size=256).dtype is None


def test_settings_that_cannot_apply_say_so(monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_bf16_kind", lambda: "emulated")
    emulated = resolve_precision("bf16", CPU, job="train", size=128)
    assert emulated.dtype == torch.bfloat16 and "emulated" in emulated.notes[0]
    on_mps = resolve_precision("bf16", MPS, job="train", size=128)
    assert on_mps.dtype is None and "MPS" in on_mps.notes[0]
    assert compile_note(True, MPS) is not None and not compile_active(True, MPS)
    assert compile_note(True, CPU) is None and compile_active(True, CPU)
    assert compile_note(False, MPS) is None


def test_explicit_memory_format_wins_and_unknown_precision_is_refused():
    assert resolve_precision("bf16", CUDA, channels_last=False, job="train", size=256).channels_last is False
    assert (
        resolve_precision("fp32", CPU, channels_last=True, job="infer", size=128).memory_format == torch.channels_last
    )
    with pytest.raises(SkinsegError, match="unknown precision 'fp16'; choose one of auto, fp32, bf16"):
        resolve_precision("fp16", CPU, job="train", size=128)


def test_autocast_is_built_from_the_device_type():
    chosen = resolve_precision("bf16", CPU, job="infer", size=128)
    layer = torch.nn.Conv2d(3, 4, 3)
    with chosen.autocast():
        assert layer(torch.randn(1, 3, 8, 8)).dtype == torch.bfloat16
    with resolve_precision("fp32", CPU, job="infer", size=128).autocast():
        assert layer(torch.randn(1, 3, 8, 8)).dtype == torch.float32


def test_a_bf16_channels_last_step_on_the_cpu_runs_the_gpu_code_path(prepared_dir):
    from skinseg.data.dataset import open_prepared

    config = TrainConfig(data=prepared_dir, device="cpu", precision="bf16", channels_last=True, **TINY)
    chosen = resolve_precision(config.precision, CPU, config.channels_last, job="train", size=48)
    torch.manual_seed(0)
    data = load_data(open_prepared(prepared_dir), CPU)
    engine = build_engine(config, CPU, chosen)
    x, y = training_batch(data, torch.arange(8), augment=True, precision=chosen)
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert engine.model.stem.weight.is_contiguous(memory_format=torch.channels_last)
    before = [p.detach().clone() for p in engine.model.parameters()]
    loss, logits = train_step(engine, x, y, lr=1e-3)
    assert logits.dtype == torch.bfloat16 and torch.isfinite(loss)
    grads = [p.grad for p in engine.model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert all(p.dtype == torch.float32 for p in engine.model.parameters())  # master weights stay fp32
    assert any(not torch.equal(a, b) for a, b in zip(before, engine.model.parameters(), strict=False))


def test_a_bf16_run_resumes_exactly_and_records_its_precision(prepared_dir, tmp_path):
    settings = dict(
        data=prepared_dir,
        epochs=2,
        device="cpu",
        seed=3,
        max_train_images=8,
        precision="bf16",
        channels_last=True,
        **TINY,
    )
    whole = train(TrainConfig(out=tmp_path / "whole", **settings))

    def stop_in_second_epoch(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        train(TrainConfig(out=tmp_path / "split", **settings), on_epoch=stop_in_second_epoch)
    resumed = train(load_run(tmp_path / "split"))
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in whole.history]
    a, _ = load_model(tmp_path / "whole" / "last.safetensors")
    b, info = load_model(tmp_path / "split" / "last.safetensors")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=False))
    resolved = json.loads((tmp_path / "split" / "config.json").read_text())["resolved"]
    assert resolved == {"device": "cpu", "precision": "bf16", "memory_format": "channels_last", "compile": False}
    assert info.training["precision"] == "bf16" and info.training["memory_format"] == "channels_last"


def test_bf16_inference_agrees_with_fp32(tiny_model_path, raw_dir):
    from skinseg.data.images import load_rgb
    from skinseg.inference.segmenter import Segmenter

    images = [load_rgb(path) for path in sorted((raw_dir / "images").iterdir())[:8]]
    fp32 = Segmenter(tiny_model_path, device="cpu", precision="fp32", postprocess=False)
    bf16 = Segmenter(tiny_model_path, device="cpu", precision="bf16", postprocess=False)
    assert bf16.precision.dtype == torch.bfloat16 and fp32.precision.dtype is None
    agree = [(a == b).mean() for a, b in zip(fp32.masks(images), bf16.masks(images), strict=False)]
    assert min(agree) > 0.98


@pytest.mark.compile
def test_compile_trains_on_the_cpu(prepared_dir, tmp_path):
    result = train(
        TrainConfig(
            data=prepared_dir,
            out=tmp_path / "compiled",
            epochs=1,
            device="cpu",
            max_train_images=8,
            compile=True,
            **TINY,
        )
    )
    assert result.epochs_done == 1 and math.isfinite(result.history[0]["train_loss"])
    assert json.loads((tmp_path / "compiled" / "config.json").read_text())["resolved"]["compile"] is True
    model, _ = load_model(tmp_path / "compiled" / "best.safetensors")
    assert not any(name.startswith("_orig_mod") for name in model.state_dict())


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("compile", [False, True])
def test_a_cuda_run_uses_bf16_channels_last_and_resumes(prepared_dir, tmp_path, compile):
    settings = dict(data=prepared_dir, epochs=2, device="cuda", max_train_images=16, compile=compile, **TINY)
    result = train(TrainConfig(out=tmp_path / "run", **settings))
    resolved = json.loads((tmp_path / "run" / "config.json").read_text())["resolved"]
    assert resolved == {"device": "cuda", "precision": "bf16", "memory_format": "channels_last", "compile": compile}
    assert all(math.isfinite(row["train_loss"]) for row in result.history)
    resumed = train(load_run(tmp_path / "run"))
    assert resumed.epochs_done == 2


@pytest.mark.cuda
@needs_cuda
def test_cuda_bf16_masks_agree_with_cpu_fp32(tiny_model_path, raw_dir):
    from skinseg.data.images import load_rgb
    from skinseg.inference.segmenter import Segmenter

    images = [load_rgb(path) for path in sorted((raw_dir / "images").iterdir())[:8]]
    cpu = Segmenter(tiny_model_path, device="cpu", precision="fp32", postprocess=False).masks(images)
    gpu = Segmenter(tiny_model_path, device="cuda", precision="auto", postprocess=False).masks(images)
    assert min((a == b).mean() for a, b in zip(cpu, gpu, strict=False)) > 0.98
