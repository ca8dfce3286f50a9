import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY
from skinseg.config import TrainConfig
from skinseg.errors import SkinsegError
from skinseg.train import TrainingInterrupted, lr_at, train
from skinseg.weights import load_model


def test_run_folder_has_every_output(trained_run):
    run = trained_run.run_dir
    for name in ("best.safetensors", "last.safetensors", "state.safetensors", "state.json", "metrics.csv",
                 "curves.png", "config.json"):
        assert (run / name).is_file(), name
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert {"train_loss", "val_loss", "train_accuracy", "val_accuracy", "train_dice", "val_dice", "lr",
            "seconds"} <= set(rows[0])
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert all(0 < row["train_seconds"] <= row["seconds"] for row in trained_run.history)
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((run / "config.json").read_text())["epochs"] == 4
    _, info = load_model(run / "best.safetensors")
    assert info.training["best_epoch"] == trained_run.best_epoch
    assert info.training["val_dice"] == pytest.approx(trained_run.best_val_dice, abs=1e-4)


def test_tiny_model_learns_the_synthetic_lesions(trained_run):
    assert trained_run.best_val_dice > 0.6


def test_state_file_holds_optimizer_tensors_without_pickle(trained_run):
    tensors = load_file(str(trained_run.run_dir / "state.safetensors"))
    assert any(k.endswith("exp_avg") for k in tensors)
    state = json.loads((trained_run.run_dir / "state.json").read_text())
    assert state["epoch"] == 4 and len(state["history"]) == 4


def test_lr_schedule():
    assert lr_at(0, 100, 1.0, 10, "cosine") == pytest.approx(0.1)
    assert lr_at(10, 100, 1.0, 10, "cosine") == pytest.approx(1.0)
    assert lr_at(55, 100, 1.0, 10, "cosine") == pytest.approx(0.5)
    assert lr_at(100, 100, 1.0, 10, "cosine") == pytest.approx(0.0)
    assert lr_at(50, 100, 1.0, 0, "constant") == 1.0


def test_interrupted_and_resumed_run_ends_like_an_uninterrupted_one(prepared_dir, tmp_path, monkeypatch):
    settings = dict(data=prepared_dir, epochs=3, device="cpu", seed=7, max_train_images=12, **TINY)
    whole = train(TrainConfig(out=tmp_path / "whole", **settings))

    calls = {"epochs": 0}

    def interrupt_in_second_epoch(step, steps, loss, dice):
        if calls["epochs"] == 1 and step == 1:
            raise KeyboardInterrupt

    def count(row):
        calls["epochs"] += 1

    with pytest.raises(TrainingInterrupted, match="--resume"):
        train(TrainConfig(out=tmp_path / "split", **settings), on_epoch=count, on_step=interrupt_in_second_epoch)
    resumed = train(TrainConfig(data=prepared_dir, out=tmp_path / "ignored", resume=tmp_path / "split"))
    assert [r["val_dice"] for r in resumed.history] == [r["val_dice"] for r in whole.history]
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in whole.history]
    a, _ = load_model(tmp_path / "whole" / "last.safetensors")
    b, _ = load_model(tmp_path / "split" / "last.safetensors")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_nan_loss_stops_with_a_clear_message_and_keeps_good_weights(prepared_dir, tmp_path, monkeypatch):
    import skinseg.train as train_module

    real_loss = train_module.segmentation_loss
    calls = {"n": 0}

    def loss_that_turns_nan(name, logits, target):
        calls["n"] += 1
        value = real_loss(name, logits, target)
        return value * float("nan") if calls["n"] > 4 else value

    monkeypatch.setattr(train_module, "segmentation_loss", loss_that_turns_nan)
    with pytest.raises(SkinsegError, match="loss became nan"):
        train(TrainConfig(data=prepared_dir, out=tmp_path / "nan", epochs=3, device="cpu", max_train_images=16,
                          **TINY))
    model, info = load_model(tmp_path / "nan" / "last.safetensors")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_seed_preset_values_are_the_course_project():
    from skinseg.config import SEED_PRESET

    assert SEED_PRESET["lr"] == 1e-4 and SEED_PRESET["batch_size"] == 16 and SEED_PRESET["epochs"] == 10
    assert SEED_PRESET["optimizer"] == "adam"


def test_unknown_settings_are_clear_errors(prepared_dir, tmp_path):
    with pytest.raises(SkinsegError, match="unknown loss"):
        train(TrainConfig(data=prepared_dir, out=tmp_path, loss="focal", device="cpu"))
    with pytest.raises(SkinsegError, match="no config.json"):
        train(TrainConfig(data=prepared_dir, resume=tmp_path / "nothing"))


@pytest.mark.slow
def test_two_process_gloo_run_trains_and_only_rank_0_writes(prepared_dir, tmp_path):
    import subprocess
    import sys

    run = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "skinseg", "train", "--data", str(prepared_dir), "--out", str(run), "--epochs", "2",
               "--base-filters", "4", "--depth", "3", "--batch-size", "4", "--device", "cpu"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env={
        **__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("best validation Dice") == 1
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    _, info = load_model(run / "best.safetensors")
    assert "x 2 process(es)" in info.training["recipe"]
    state = json.loads((run / "state.json").read_text())
    assert state["epoch"] == 2


def test_a_raw_folder_is_prepared_on_the_fly_into_the_cache(raw_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SKINSEG_CACHE", str(tmp_path / "cache"))
    result = train(TrainConfig(data=raw_dir, out=tmp_path / "run", size=32, epochs=1, device="cpu", **TINY))
    assert result.epochs_done == 1
    manifests = list((tmp_path / "cache" / "prepared").glob("*/manifest.json"))
    assert len(manifests) == 1 and json.loads(manifests[0].read_text())["size"] == 32
    _, info = load_model(tmp_path / "run" / "best.safetensors")
    assert info.input_size == 32


def test_init_starts_from_the_given_weights(prepared_dir, trained_run, tmp_path):
    start = trained_run.run_dir / "best.safetensors"
    result = train(TrainConfig(data=prepared_dir, out=tmp_path / "tuned", epochs=1, device="cpu", lr=1e-12,
                               warmup_epochs=0, init=start, **TINY))
    # A learning rate of ~0 keeps the starting weights, so the first epoch scores what the start scored.
    assert result.best_val_dice == pytest.approx(trained_run.best_val_dice, abs=1e-4)
    tuned, info = load_model(tmp_path / "tuned" / "last.safetensors")
    original, _ = load_model(start)
    for name, tensor in original.state_dict().items():
        assert torch.allclose(tuned.state_dict()[name], tensor, atol=1e-6), name
    assert info.training["init"] == "best.safetensors"


def test_init_from_the_bundled_model(prepared_dir, tmp_path):
    result = train(TrainConfig(data=prepared_dir, out=tmp_path / "tuned", epochs=1, device="cpu", lr=1e-12,
                               warmup_epochs=0, max_train_images=4, init=Path("bundled")))
    tuned, info = load_model(result.run_dir / "last.safetensors")
    assert info.training["init"] == "bundled"
    bundled, _ = load_model(None)
    for name, tensor in bundled.state_dict().items():
        assert torch.allclose(tuned.state_dict()[name], tensor, atol=1e-6), name


def test_init_with_another_architecture_names_the_file(prepared_dir, trained_run, tmp_path):
    start = trained_run.run_dir / "best.safetensors"
    settings = TINY | {"base_filters": 8}
    with pytest.raises(SkinsegError, match="architecture") as error:
        train(TrainConfig(data=prepared_dir, out=tmp_path / "x", epochs=1, device="cpu", init=start, **settings))
    assert error.value.path == start


def test_segmentation_levels_are_a_setting(prepared_dir, tmp_path):
    result = train(TrainConfig(data=prepared_dir, out=tmp_path / "one", epochs=1, device="cpu", max_train_images=8,
                               segmentation_levels=1, **TINY))
    _, info = load_model(result.run_dir / "last.safetensors")
    assert info.config.segmentation_levels == 1
    with pytest.raises(SkinsegError, match="segmentation_levels"):
        train(TrainConfig(data=prepared_dir, out=tmp_path / "bad", epochs=1, device="cpu", segmentation_levels=5,
                          **TINY))


def test_an_interrupt_waits_until_the_epoch_files_are_written(prepared_dir, tmp_path, monkeypatch):
    """A Ctrl-C during the epoch's bookkeeping (here: drawing the curves, once a slow matplotlib import where a
    KeyboardInterrupt surfaced as a RuntimeError) is held back until every file of the epoch is written."""
    import os
    import signal

    import skinseg.figures as figures

    def plot_curves_interrupted(history, path):
        os.kill(os.getpid(), signal.SIGINT)
        Path(path).write_bytes(b"drawn after the interrupt arrived")

    monkeypatch.setattr(figures, "plot_curves", plot_curves_interrupted)
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train(TrainConfig(data=prepared_dir, out=run, epochs=3, device="cpu", max_train_images=8, **TINY))
    assert (run / "curves.png").read_bytes() == b"drawn after the interrupt arrived"
    assert json.loads((run / "state.json").read_text())["epoch"] == 1
