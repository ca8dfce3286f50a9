import csv
import itertools
import json
import re
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY
from skinseg.errors import SkinsegError, TrainingInterrupted
from skinseg.models.config import ModelConfig
from skinseg.models.weights import load_model
from skinseg.training.config import TrainConfig, train_config
from skinseg.training.loop import train
from skinseg.training.optim import lr_at
from skinseg.training.runs import load_run


def test_run_folder_has_every_output(trained_run):
    run = trained_run.run_dir
    for name in (
        "best.safetensors",
        "last.safetensors",
        "state.safetensors",
        "state.json",
        "metrics.csv",
        "curves.png",
        "config.json",
    ):
        assert (run / name).is_file(), name
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert {
        "train_loss",
        "val_loss",
        "train_accuracy",
        "val_accuracy",
        "train_dice",
        "val_dice",
        "lr",
        "seconds",
    } <= set(rows[0])
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert all(0 < row["train_seconds"] <= row["seconds"] for row in trained_run.history)
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((run / "config.json").read_text())["epochs"] == 4
    _, info = load_model(run / "best.safetensors")
    assert info.training["best_epoch"] == trained_run.best_epoch
    assert info.training["val_dice"] == pytest.approx(trained_run.best_dice, abs=1e-4)


def test_tiny_model_learns_the_synthetic_lesions(trained_run):
    assert trained_run.selected_on == "val_dice" and trained_run.best_dice > 0.6


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


@pytest.mark.parametrize("ema", [0.0, 0.9], ids=["plain", "ema"])
def test_interrupted_and_resumed_run_ends_like_an_uninterrupted_one(prepared_dir, tmp_path, monkeypatch, ema):
    # Two epochs: the interrupt comes in the first step of the second, the resumed run finishes it. With --ema the
    # average and the trained weights are both saved and resumed.
    settings = dict(data=prepared_dir, epochs=2, device="cpu", seed=7, max_train_images=12, ema=ema, **TINY)
    whole = train(TrainConfig(out=tmp_path / "whole", **settings))

    calls = {"epochs": 0}

    def interrupt_in_second_epoch(step, steps, loss, dice):
        if calls["epochs"] == 1 and step == 1:
            raise KeyboardInterrupt

    def count(row):
        calls["epochs"] += 1

    with pytest.raises(TrainingInterrupted, match="--resume"):
        train(TrainConfig(out=tmp_path / "split", **settings), on_epoch=count, on_step=interrupt_in_second_epoch)
    resumed = train(load_run(tmp_path / "split"))
    assert [r["val_dice"] for r in resumed.history] == [r["val_dice"] for r in whole.history]
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in whole.history]
    a, _ = load_model(tmp_path / "whole" / "last.safetensors")
    b, _ = load_model(tmp_path / "split" / "last.safetensors")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=False))


def test_the_weight_average_is_what_a_run_validates_and_saves(prepared_dir, tmp_path):
    from skinseg.training.engine import WeightAverage

    model, other = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    average = WeightAverage(model, 0.75)  # type: ignore[arg-type]
    expected = 0.75 * model.weight.detach() + 0.25 * other.weight.detach()
    average.update(other)  # type: ignore[arg-type]
    assert torch.allclose(average.model.weight, expected) and not average.model.weight.requires_grad

    run = train(
        TrainConfig(data=prepared_dir, out=tmp_path, epochs=1, device="cpu", max_train_images=8, ema=0.9, **TINY)
    )
    saved, info = load_model(tmp_path / "last.safetensors")
    trained = {
        k.removeprefix("model."): v for k, v in load_file(tmp_path / "state.safetensors").items() if "model." in k
    }
    assert trained.keys() == saved.state_dict().keys()
    assert any(not torch.equal(v, trained[k]) for k, v in saved.state_dict().items())  # the average, not the weights
    assert "EMA 0.9" in info.training["recipe"] and run.epochs_done == 1
    assert json.loads((tmp_path / "config.json").read_text())["ema"] == 0.9
    with pytest.raises(SkinsegError, match=r"`ema` must be in \[0, 1\)"):
        train_config(tmp_path, ema=1.0)


def test_nan_loss_stops_with_a_clear_message_and_keeps_good_weights(prepared_dir, tmp_path, monkeypatch):
    from skinseg.training.losses import LOSSES

    real_loss = LOSSES["dice_bce"]
    calls = {"n": 0}

    def loss_that_turns_nan(logits, target):
        calls["n"] += 1
        value = real_loss(logits, target)
        return value * float("nan") if calls["n"] > 4 else value

    monkeypatch.setitem(LOSSES, "dice_bce", loss_that_turns_nan)
    with pytest.raises(SkinsegError, match="loss became nan"):
        train(TrainConfig(data=prepared_dir, out=tmp_path / "nan", epochs=3, device="cpu", max_train_images=16, **TINY))
    model, _info = load_model(tmp_path / "nan" / "last.safetensors")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_presets_give_way_to_explicit_options_and_defaults_fill_the_rest(tmp_path):
    seed = train_config(tmp_path, "seed")
    assert (seed.lr, seed.optimizer, seed.loss, seed.augment, seed.epochs) == (1e-4, "adam", "dice", False, 10)
    mixed = train_config(tmp_path, "seed", lr=3e-4, epochs=None, depth=4)
    assert (mixed.lr, mixed.epochs, mixed.optimizer, mixed.model.depth) == (3e-4, 10, "adam", 4)
    default = train_config(tmp_path, batch_size=8, base_filters=4)
    assert (default.lr, default.batch_size, default.model.base_filters) == (TrainConfig.lr, 8, 4)
    with pytest.raises(SkinsegError, match="unknown preset 'fast'; choose one of default, seed"):
        train_config(tmp_path, "fast")


@pytest.mark.parametrize(
    "setting,message",
    [
        ({"loss": "focal"}, "unknown loss 'focal'; choose one of dice, bce, dice_bce"),
        ({"optimizer": "lion"}, "unknown optimizer 'lion'; choose one of adamw, adam, sgd"),
        ({"schedule": "step"}, "unknown schedule 'step'; choose one of cosine, constant, poly"),
        ({"architecture": "resnet"}, "unknown architecture 'resnet'; choose one of improved_unet, unet"),
        ({"precision": "fp16"}, "unknown precision 'fp16'"),
        ({"epochs": 0}, "`epochs` must be >= 1, got 0"),
        ({"batch_size": -3}, "`batch_size` must be >= 1, got -3"),
        ({"lr": -1.0}, "`lr` must be > 0, got -1.0"),
        ({"base_filters": 0}, "base_filters must be between 1 and 1024"),
        ({"segmentation_levels": 0}, "segmentation_levels must be between 1 and depth - 1 (4), got 0"),  # issue #21
        ({"segmentation_levels": 0, "depth": 3}, "segmentation_levels must be between 1 and depth - 1 (2), got 0"),
    ],
)
def test_unknown_or_out_of_range_settings_are_refused_when_the_config_is_built(tmp_path, setting, message):
    with pytest.raises(SkinsegError, match=re.escape(message)):
        train_config(tmp_path, **setting)


def test_resume_without_a_run_folder_is_a_clear_error(prepared_dir, tmp_path):
    with pytest.raises(SkinsegError, match=r"no config\.json"):
        train(TrainConfig(data=prepared_dir, resume=tmp_path / "nothing"))


def test_a_resumed_run_takes_its_settings_from_load_run_never_from_behind_the_callers_back(trained_run):
    """train() does not reload a run's config.json over the config it is given: a config whose settings differ
    from the run's own is refused, naming them; load_run gives the run's settings with the changes allowed."""
    from dataclasses import replace

    from skinseg.training.runs import check_resumable, load_run

    own = load_run(trained_run.run_dir)
    assert own.resume == trained_run.run_dir and own.epochs == 4 and own.model == TINY["model"]
    check_resumable(load_run(trained_run.run_dir, epochs=6, device="cpu"))  # changes that a resume may make
    with pytest.raises(SkinsegError, match="trains for a number of epochs: give it a new total with `epochs`"):
        load_run(trained_run.run_dir, time_budget=3600)  # issue #21: it became a budgeted run for good
    with pytest.raises(SkinsegError, match=r"differ from the run's own \(lr, seed\).*load_run"):
        train(replace(own, lr=own.lr * 2, seed=7))


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_the_optimizer_setting_picks_the_optimizer(prepared_dir, tmp_path, optimizer):
    import skinseg.training.optim as optim

    made = []
    real = optim.create_optimizer

    def spy(name, *args):
        made.append(real(name, *args))
        return made[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("skinseg.training.engine.create_optimizer", spy)
        train(
            TrainConfig(
                data=prepared_dir,
                out=tmp_path / optimizer,
                epochs=1,
                device="cpu",
                max_train_images=8,
                optimizer=optimizer,
                **TINY,
            )
        )
    expected = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[optimizer]
    assert type(made[0]) is expected
    state = json.loads((tmp_path / optimizer / "state.json").read_text())
    assert ("momentum" in state["param_groups"][0]) == (optimizer == "sgd")


def test_patience_stops_a_run_that_no_longer_improves(prepared_dir, tmp_path):
    # lr ~0: validation Dice never improves after epoch 1, so patience 2 stops after epoch 3.
    result = train(
        TrainConfig(
            data=prepared_dir,
            out=tmp_path / "p",
            epochs=10,
            device="cpu",
            max_train_images=8,
            lr=1e-12,
            warmup_epochs=0,
            patience=2,
            **TINY,
        )
    )
    assert result.stopped_early and result.epochs_done == 3 and result.best_epoch == 1


def test_every_schedule_warms_up_then_decays_from_the_peak():
    from skinseg.training.optim import SCHEDULES

    for name in SCHEDULES:
        values = [lr_at(step, 100, 1.0, 10, name) for step in range(101)]
        assert values[0] == pytest.approx(0.1) and values[10] == pytest.approx(1.0), name
        assert all(a >= b - 1e-12 for a, b in itertools.pairwise(values[10:])), name
    assert lr_at(100, 100, 1.0, 10, "poly") == pytest.approx(0.0)


@pytest.mark.slow
def test_two_process_gloo_run_trains_and_only_rank_0_writes(prepared_dir, tmp_path):
    """Two ranks given the environment that torchrun gives its workers. They are forked from a server that has
    imported torch (helpers.forked_processes), where `torchrun --standalone --nproc_per_node 2 -m skinseg train`
    starts three fresh interpreters, seconds each; the launcher is torch's, the environment is what skinseg reads."""
    import socket

    from helpers import end_processes, start_cli

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = tmp_path / "ddp"
    args = ["train", "--data", str(prepared_dir), "--out", str(run), "--epochs", "2", "--base-filters", "4"]
    args += ["--depth", "3", "--batch-size", "4", "--device", "cpu"]
    ranks = []
    for rank in range(2):
        env = {"RANK": rank, "LOCAL_RANK": rank, "GROUP_RANK": 0, "WORLD_SIZE": 2, "LOCAL_WORLD_SIZE": 2}
        env |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "TORCHELASTIC_RUN_ID": "test"}
        ranks.append(start_cli(args, tmp_path, f"rank{rank}", env))
    try:  # as torchrun does: the first rank to fail ends the others (which would wait for it in a collective)
        from multiprocessing.connection import wait

        deadline, running = time.monotonic() + 600, {p.sentinel: p for p, _, _ in ranks}
        while running and time.monotonic() < deadline:
            for sentinel in wait(list(running), timeout=deadline - time.monotonic()):
                if running.pop(sentinel).exitcode != 0:
                    deadline = 0
    finally:
        end_processes([p for p, _, _ in ranks])
    assert [p.exitcode for p, _, _ in ranks] == [0, 0], [err.read_text()[-2000:] for _, _, err in ranks]
    assert "".join(out.read_text() for _, out, _ in ranks).count("best validation Dice") == 1
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
    result = train(
        TrainConfig(
            data=prepared_dir,
            out=tmp_path / "tuned",
            epochs=1,
            device="cpu",
            lr=1e-12,
            warmup_epochs=0,
            init=start,
            **TINY,
        )
    )
    # A learning rate of ~0 keeps the starting weights, so the first epoch scores what the start scored.
    assert result.best_dice == pytest.approx(trained_run.best_dice, abs=1e-4)
    tuned, info = load_model(tmp_path / "tuned" / "last.safetensors")
    original, _ = load_model(start)
    for name, tensor in original.state_dict().items():
        assert torch.allclose(tuned.state_dict()[name], tensor, atol=1e-6), name
    assert info.training["init"] == "best.safetensors"


def test_init_from_the_bundled_model(prepared_dir, tmp_path):
    result = train(
        TrainConfig(
            data=prepared_dir,
            out=tmp_path / "tuned",
            epochs=1,
            device="cpu",
            lr=1e-12,
            warmup_epochs=0,
            max_train_images=4,
            init=Path("bundled"),
        )
    )
    tuned, info = load_model(result.run_dir / "last.safetensors")
    assert info.training["init"] == "bundled"
    bundled, _ = load_model(None)
    for name, tensor in bundled.state_dict().items():
        assert torch.allclose(tuned.state_dict()[name], tensor, atol=1e-6), name


def test_init_with_another_architecture_names_the_file(prepared_dir, trained_run, tmp_path):
    start = trained_run.run_dir / "best.safetensors"
    settings = TINY | {"model": ModelConfig(base_filters=8, depth=3)}
    with pytest.raises(SkinsegError, match="architecture") as error:
        train(TrainConfig(data=prepared_dir, out=tmp_path / "x", epochs=1, device="cpu", init=start, **settings))
    assert error.value.path == start


def test_segmentation_levels_are_a_setting(prepared_dir, tmp_path):
    result = train(
        train_config(
            prepared_dir,
            out=tmp_path / "one",
            epochs=1,
            device="cpu",
            max_train_images=8,
            batch_size=8,
            base_filters=4,
            depth=3,
            segmentation_levels=1,
        )
    )
    _, info = load_model(result.run_dir / "last.safetensors")
    assert info.config.segmentation_levels == 1
    with pytest.raises(SkinsegError, match="segmentation_levels"):
        train_config(prepared_dir, base_filters=4, depth=3, segmentation_levels=5)


def test_an_interrupt_waits_until_the_epoch_files_are_written(prepared_dir, tmp_path, monkeypatch):
    """A Ctrl-C during the epoch's bookkeeping (here: drawing the curves, once a slow matplotlib import where a
    KeyboardInterrupt surfaced as a RuntimeError) is held back until every file of the epoch is written."""
    import os
    import signal

    import skinseg.reporting.figures as figures

    def plot_curves_interrupted(history, path):
        os.kill(os.getpid(), signal.SIGINT)
        Path(path).write_bytes(b"drawn after the interrupt arrived")

    monkeypatch.setattr(figures, "plot_curves", plot_curves_interrupted)
    monkeypatch.setattr("skinseg.training.runs.CURVES_EVERY", 0.0)  # drawn at every epoch, as in a run of long epochs
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train(TrainConfig(data=prepared_dir, out=run, epochs=3, device="cpu", max_train_images=8, **TINY))
    assert (run / "curves.png").read_bytes() == b"drawn after the interrupt arrived"
    assert json.loads((run / "state.json").read_text())["epoch"] == 1


@pytest.mark.parametrize("every, drawn", [(0.0, [1, 2, 3]), (1e9, [3])])
def test_curves_are_drawn_every_so_often_and_when_the_run_ends(every, drawn, prepared_dir, tmp_path, monkeypatch):
    epochs_drawn = record_curves(monkeypatch, every)
    train(TrainConfig(data=prepared_dir, out=tmp_path / "run", epochs=3, device="cpu", max_train_images=8, **TINY))
    assert epochs_drawn == drawn


@pytest.mark.parametrize("error, raised", [(KeyboardInterrupt, TrainingInterrupted), (RuntimeError, RuntimeError)])
def test_an_interrupted_or_failed_run_draws_the_curves_of_its_saved_epochs(
    error, raised, prepared_dir, tmp_path, monkeypatch
):
    epochs_drawn = record_curves(monkeypatch, every=1e9)

    def stop_after_epoch_2(row):
        if row["epoch"] == 2:
            raise error

    config = TrainConfig(data=prepared_dir, out=tmp_path / "run", epochs=4, device="cpu", max_train_images=8, **TINY)
    with pytest.raises(raised):
        train(config, on_epoch=stop_after_epoch_2)
    assert epochs_drawn == [2]


def test_a_ctrl_c_while_the_last_curves_are_drawn_leaves_the_run_complete(prepared_dir, tmp_path, monkeypatch):
    import os
    import signal

    epochs_drawn = record_curves(monkeypatch, every=1e9, then=lambda: os.kill(os.getpid(), signal.SIGINT))
    result = train(TrainConfig(data=prepared_dir, out=tmp_path / "run", epochs=2, device="cpu", **TINY))
    assert result.epochs_done == 2 and epochs_drawn == [2]


def record_curves(monkeypatch, every: float, then=None) -> list[int]:
    """Curves redrawn every `every` seconds of training, each drawing replaced by a record of how many epochs it
    shows (and a call of `then`). Returns the records."""
    import skinseg.reporting.figures as figures

    epochs_drawn: list[int] = []

    def record(history, path):
        epochs_drawn.append(len(history))
        if then:
            then()

    monkeypatch.setattr(figures, "plot_curves", record)
    monkeypatch.setattr("skinseg.training.runs.CURVES_EVERY", every)
    return epochs_drawn


def test_a_second_architecture_trains_through_the_registry(prepared_dir, tmp_path):
    from skinseg.models.unet import UNet

    result = train(
        train_config(
            prepared_dir,
            out=tmp_path / "unet",
            epochs=2,
            device="cpu",
            batch_size=8,
            lr=5e-3,
            architecture="unet",
            base_filters=4,
            depth=3,
        )
    )
    model, info = load_model(result.run_dir / "best.safetensors")
    assert isinstance(model, UNet) and info.config.architecture == "unet"
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_the_split_seed_is_its_own_setting_and_part_of_the_cache_key(raw_dir, tmp_path, monkeypatch):
    from skinseg.data.dataset import ensure_prepared

    monkeypatch.setenv("SKINSEG_CACHE", str(tmp_path / "cache"))
    first = ensure_prepared(raw_dir, 32, split_seed=0)
    other = ensure_prepared(raw_dir, 32, split_seed=1)
    assert first.root != other.root
    assert [i["split"] for i in first.manifest["items"]] != [i["split"] for i in other.manifest["items"]]
    stamp = (first.root / "manifest.json").stat().st_mtime_ns
    assert ensure_prepared(raw_dir, 32, split_seed=0).root == first.root  # reused, not rebuilt
    assert (first.root / "manifest.json").stat().st_mtime_ns == stamp
    # The training seed does not move images between splits.
    for seed in (0, 5):
        train(
            TrainConfig(
                data=raw_dir,
                out=tmp_path / f"s{seed}",
                size=32,
                epochs=1,
                device="cpu",
                seed=seed,
                max_train_images=4,
                **TINY,
            )
        )
    assert len(list((tmp_path / "cache" / "prepared").iterdir())) == 2


@pytest.mark.parametrize("damaged", ["config.json", "state.json"])
def test_a_damaged_run_file_is_one_line_on_resume(trained_run, tmp_path, damaged):
    import shutil

    from skinseg.training.runs import load_run

    run = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, run)
    (run / damaged).write_text('{"epoch": 4, "histo')  # cut off mid-write by hand
    with pytest.raises(SkinsegError, match=rf"{damaged}: cannot read"):
        train(load_run(run, epochs=5))
