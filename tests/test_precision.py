"""Precision, memory layout and compile: resolved once from the device; the CPU runs the GPU's code path."""

import json
import math

import pytest
import torch

from conftest import TINY
from skinseg import precision as precision_module
from skinseg.config import TrainConfig
from skinseg.errors import SkinsegError
from skinseg.precision import compile_active, compile_note, resolve_precision
from skinseg.train import TrainingInterrupted, build_engine, load_data, train, train_step, training_batch
from skinseg.weights import load_model

CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda"), torch.device("mps")


@pytest.mark.parametrize("native,expected", [(True, ("bf16", True)), (False, ("fp32", False))])
def test_auto_is_bf16_with_channels_last_only_on_cpus_with_native_bf16(monkeypatch, native, expected):
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: native)
    chosen = resolve_precision("auto", CPU)
    assert (chosen.name, chosen.channels_last) == expected and chosen.notes == ()


def test_auto_is_bf16_on_cuda_and_fp32_on_mps():
    assert resolve_precision("auto", CUDA).dtype == torch.bfloat16
    assert resolve_precision("auto", CUDA).memory_format == torch.channels_last
    assert resolve_precision("auto", MPS).dtype is None


def test_settings_that_cannot_apply_say_so(monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)
    emulated = resolve_precision("bf16", CPU)
    assert emulated.dtype == torch.bfloat16 and "emulated" in emulated.notes[0]
    on_mps = resolve_precision("bf16", MPS)
    assert on_mps.dtype is None and "MPS" in on_mps.notes[0]
    assert compile_note(True, MPS) is not None and not compile_active(True, MPS)
    assert compile_note(True, CPU) is None and compile_active(True, CPU)
    assert compile_note(False, MPS) is None


def test_explicit_memory_format_wins_and_unknown_precision_is_refused():
    assert resolve_precision("bf16", CUDA, channels_last=False).channels_last is False
    assert resolve_precision("fp32", CPU, channels_last=True).memory_format == torch.channels_last
    with pytest.raises(SkinsegError, match="unknown precision 'fp16'; choose one of auto, fp32, bf16"):
        resolve_precision("fp16", CPU)


def test_autocast_is_built_from_the_device_type():
    chosen = resolve_precision("bf16", CPU)
    layer = torch.nn.Conv2d(3, 4, 3)
    with chosen.autocast():
        assert layer(torch.randn(1, 3, 8, 8)).dtype == torch.bfloat16
    with resolve_precision("fp32", CPU).autocast():
        assert layer(torch.randn(1, 3, 8, 8)).dtype == torch.float32


def test_a_bf16_channels_last_step_on_the_cpu_runs_the_gpu_code_path(prepared_dir):
    from skinseg.data.dataset import open_prepared

    config = TrainConfig(data=prepared_dir, device="cpu", precision="bf16", channels_last=True, **TINY)
    chosen = resolve_precision(config.precision, CPU, config.channels_last)
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
    settings = dict(data=prepared_dir, epochs=2, device="cpu", seed=3, max_train_images=8, precision="bf16", **TINY)
    whole = train(TrainConfig(out=tmp_path / "whole", **settings))

    def stop_in_second_epoch(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        train(TrainConfig(out=tmp_path / "split", **settings), on_epoch=stop_in_second_epoch)
    resumed = train(TrainConfig(data=prepared_dir, resume=tmp_path / "split"))
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in whole.history]
    a, _ = load_model(tmp_path / "whole" / "last.safetensors")
    b, info = load_model(tmp_path / "split" / "last.safetensors")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=False))
    resolved = json.loads((tmp_path / "split" / "config.json").read_text())["resolved"]
    assert resolved == {"device": "cpu", "precision": "bf16", "memory_format": "channels_last", "compile": False}
    assert info.training["precision"] == "bf16" and info.training["memory_format"] == "channels_last"


def test_bf16_inference_agrees_with_fp32(tiny_model_path, raw_dir):
    from skinseg.data.images import load_rgb
    from skinseg.inference import Segmenter

    images = [load_rgb(path) for path in sorted((raw_dir / "images").iterdir())[:8]]
    fp32 = Segmenter(tiny_model_path, "cpu", precision="fp32", postprocess=False)
    bf16 = Segmenter(tiny_model_path, "cpu", precision="bf16", postprocess=False)
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
    resumed = train(TrainConfig(data=prepared_dir, resume=tmp_path / "run"))
    assert resumed.epochs_done == 2


@pytest.mark.cuda
@needs_cuda
def test_cuda_bf16_masks_agree_with_cpu_fp32(tiny_model_path, raw_dir):
    from skinseg.data.images import load_rgb
    from skinseg.inference import Segmenter

    images = [load_rgb(path) for path in sorted((raw_dir / "images").iterdir())[:8]]
    cpu = Segmenter(tiny_model_path, "cpu", precision="fp32", postprocess=False).masks(images)
    gpu = Segmenter(tiny_model_path, "cuda", precision="auto", postprocess=False).masks(images)
    assert min((a == b).mean() for a, b in zip(cpu, gpu, strict=False)) > 0.98
