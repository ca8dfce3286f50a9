"""`skinseg adapt` (skinseg.adaptation): the plan and errors of the command, the never-worse rule, the metadata
round trip, and the cross-validation's arithmetic, on tiny synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skinseg.adaptation import AdaptConfig, adapt, crossval, pipeline
from skinseg.adaptation.examples import MIN_PAIRS
from skinseg.adaptation.finetune import Recipe
from skinseg.adaptation.pipeline import MIN_STEPS
from skinseg.adaptation.scoring import dice
from skinseg.data.images import decode_rgb, load_mask, save_mask_png
from skinseg.data.synthetic import write_synthetic_dataset
from skinseg.errors import ConfigError
from skinseg.inference import Segmenter
from skinseg.inference.postprocess import offset_boundary
from skinseg.models.weights import load_model, read_info
from test_cli import invoke


def own_masks_set(folder: Path, model: Path, count: int = 10, offset: float = 0.0) -> Path:
    """Synthetic images whose masks are `model`'s own predictions (nothing can score better than the model), or
    those predictions with their outlines moved by `offset` of the lesion's diameter."""
    raw = write_synthetic_dataset(folder / "raw", count=count + 6, size=48, seed=7)
    segmenter = Segmenter(model, device="cpu")
    kept = 0
    for image in sorted((raw / "images").iterdir()):
        mask_path = raw / "masks" / f"{image.stem}_segmentation.png"
        mask = segmenter.masks([decode_rgb(image)[0]])[0]
        if mask.any() and kept < count:
            save_mask_png(offset_boundary(mask, offset), mask_path)
            kept += 1
        else:
            image.unlink()
            mask_path.unlink()
    assert kept == count
    return raw


def test_a_set_where_adapting_cannot_help_gets_the_starting_model_back(tmp_path, tiny_model_path):
    data = own_masks_set(tmp_path, tiny_model_path)
    out = tmp_path / "adapted.safetensors"
    result = adapt(AdaptConfig(data=data, out=out, model=tiny_model_path, device="cpu", folds=3, time_budget=60))
    assert result.chosen == crossval.UNCHANGED
    unchanged = next(e for e in result.estimates if e.name == crossval.UNCHANGED)
    assert unchanged.dice == pytest.approx(1.0)
    assert all(e.gain <= 1e-9 for e in result.estimates)
    start, start_info = load_model(tiny_model_path)
    adapted, adapted_info = load_model(out)
    assert adapted_info.threshold == start_info.threshold
    assert adapted_info.boundary_offset == start_info.boundary_offset == 0.0
    for name, tensor in start.state_dict().items():
        assert np.array_equal(tensor.numpy(), adapted.state_dict()[name].numpy()), name


def test_the_written_model_records_where_it_came_from(tmp_path, tiny_model_path, raw_dir, monkeypatch):
    monkeypatch.setattr(pipeline, "recipe_for", lambda count, folds: Recipe(steps=MIN_STEPS))  # a short fine-tune
    out = tmp_path / "adapted.safetensors"
    result = invoke(
        "adapt",
        "--data",
        raw_dir,
        "--out",
        out,
        "--model",
        tiny_model_path,
        "--folds",
        3,
        "--time-budget",
        "10m",
        "--json",
        tmp_path / "a.json",
        "--report",
        tmp_path / "a.html",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    adapted = read_info(out).training["adapted"]
    assert adapted["start_model"] == str(tiny_model_path)
    assert adapted["images"] == 30 and len(adapted["data_fingerprint"]) == 64
    assert set(adapted["cross_validation"]) == set(crossval.CANDIDATES)
    assert adapted["recipe"] == Recipe(steps=MIN_STEPS).to_dict()  # the fine-tune was tried, in every fold
    assert adapted["chosen"] in crossval.CANDIDATES and adapted["folds"] == 3
    assert read_info(out).threshold == adapted["threshold"]
    written = json.loads((tmp_path / "a.json").read_text())
    assert written["data_fingerprint"] == adapted["data_fingerprint"] and len(written["cases"]) == 30
    assert (tmp_path / "a.html").read_text().count('<img src="data:') == 60  # before and after, each image
    assert "Cross-validated Dice on 30 of your images" in result.output
    segmented = invoke("segment", raw_dir / "images" / "case_000.png", "-o", tmp_path / "m.png", "--model", out)
    assert segmented.exit_code == 0, segmented.output


def test_outlines_drawn_looser_are_learned_as_an_offset_and_the_file_reproduces_what_was_scored(
    tmp_path, tiny_model_path
):
    data = own_masks_set(tmp_path, tiny_model_path, count=10, offset=0.04)
    out = tmp_path / "looser.safetensors"
    result = adapt(AdaptConfig(data=data, out=out, model=tiny_model_path, device="cpu", folds=5, time_budget=1))
    assert "no fine-tune tried" in " ".join(result.notes)
    assert result.chosen == crossval.CALIBRATED and result.boundary_offset == 0.04
    assert read_info(out).boundary_offset == 0.04 and read_info(out).threshold == result.threshold
    segmenter = Segmenter(out, device="cpu")
    images = sorted((data / "images").iterdir())
    masks = segmenter.masks([decode_rgb(image)[0] for image in images])
    truths = [load_mask(data / "masks" / f"{image.stem}_segmentation.png") for image in images]
    assert np.mean([dice(m, t) for m, t in zip(masks, truths, strict=True)]) > 0.99


def test_the_same_data_gives_the_same_fingerprint_in_any_order(tmp_path, tiny_model_path):
    data = own_masks_set(tmp_path, tiny_model_path, count=6)
    first = adapt(AdaptConfig(data=data, out=tmp_path / "a.safetensors", model=tiny_model_path, folds=2, time_budget=1))
    assert "no fine-tune tried" in " ".join(first.notes)
    for name in ("images", "masks"):  # the same pairs under other names of the folders' files, listed in reverse
        for path in (data / name).iterdir():
            path.rename(path.with_name(path.name.replace("case_", "zz_case_")))
    again = adapt(AdaptConfig(data=data, out=tmp_path / "b.safetensors", model=tiny_model_path, folds=2, time_budget=1))
    assert first.metadata["data_fingerprint"] != again.metadata["data_fingerprint"]  # the ids are part of it
    for name in ("images", "masks"):
        for path in (data / name).iterdir():
            path.rename(path.with_name(path.name.replace("zz_case_", "case_")))
    third = adapt(AdaptConfig(data=data, out=tmp_path / "c.safetensors", model=tiny_model_path, folds=3, time_budget=1))
    assert third.metadata["data_fingerprint"] == first.metadata["data_fingerprint"]


def test_fewer_than_the_minimum_of_pairs_is_one_line_naming_the_folder(tmp_path, tiny_model_path):
    data = write_synthetic_dataset(tmp_path / "few", count=MIN_PAIRS - 1, size=48)
    result = invoke("adapt", "--data", data, "--out", tmp_path / "a.safetensors", "--model", tiny_model_path)
    assert result.exit_code == 1
    assert f"{data}: {MIN_PAIRS - 1} usable image/mask pairs, adapting needs at least {MIN_PAIRS}" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "a.safetensors").exists()


def test_bad_pairs_are_skipped_and_named(tmp_path, tiny_model_path):
    data = write_synthetic_dataset(tmp_path / "raw", count=MIN_PAIRS + 2, size=48)
    wrong = data / "masks" / "case_000_segmentation.png"
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(wrong)
    photo = data / "masks" / "case_001_segmentation.png"
    Image.fromarray(np.arange(48 * 48, dtype=np.uint16).reshape(48, 48).astype(np.uint8)).save(photo)
    result = adapt(
        AdaptConfig(data=data, out=tmp_path / "a.safetensors", model=tiny_model_path, folds=2, time_budget=1)
    )
    reasons = {Path(p).name: r for p, r in result.skipped}
    assert reasons[wrong.name] == "mask is 30x20 but its image is 48x48"
    assert reasons[photo.name] == "mask has 256 grey levels, expected 2 (a binary mask)"
    assert result.images == MIN_PAIRS


def test_the_plan_refuses_before_any_work(tmp_path, tiny_model_path, raw_dir):
    out = tmp_path / "a.safetensors"
    out.write_bytes(b"mine")
    result = invoke("adapt", "--data", raw_dir, "--out", out, "--model", tiny_model_path)
    assert result.exit_code == 1 and "--overwrite" in result.output and out.read_bytes() == b"mine"
    inside = invoke("adapt", "--data", raw_dir, "--out", raw_dir / "a.safetensors", "--model", tiny_model_path)
    assert inside.exit_code == 1 and not (raw_dir / "a.safetensors").exists()
    named = invoke("adapt", "--data", raw_dir, "--out", tmp_path / "a.onnx", "--model", tiny_model_path)
    assert named.exit_code == 1 and "name the file .safetensors" in named.output
    not_a_model = tmp_path / "photo.safetensors"
    not_a_model.write_bytes(b"\x00" * 64)
    bad = invoke("adapt", "--data", raw_dir, "--out", tmp_path / "b.safetensors", "--model", not_a_model)
    assert bad.exit_code == 1 and str(not_a_model) in bad.output and "Traceback" not in bad.output


def test_settings_out_of_range_name_their_field():
    with pytest.raises(ConfigError, match="`folds` must be between 2 and 10, got 1"):
        AdaptConfig(data=Path("d"), out=Path("o.safetensors"), folds=1)
    with pytest.raises(ConfigError, match="`time_budget`"):
        AdaptConfig(data=Path("d"), out=Path("o.safetensors"), time_budget=float("inf"))


def test_only_a_sure_gain_is_chosen():
    unchanged = np.full(20, 0.9)
    noisy = unchanged + np.where(np.arange(20) % 2 == 0, 0.03, -0.029)  # a mean gain of 0.0005, not sure
    sure = unchanged + 0.01 + 0.002 * np.sin(np.arange(20))
    worse = unchanged - 0.01
    estimates = [
        crossval.estimate(crossval.UNCHANGED, unchanged, unchanged),
        crossval.estimate(crossval.CALIBRATED, noisy, unchanged),
        crossval.estimate(crossval.FINE_TUNED, worse, unchanged),
    ]
    assert crossval.choose(estimates).name == crossval.UNCHANGED
    estimates[2] = crossval.estimate(crossval.FINE_TUNED, sure, unchanged)
    assert crossval.choose(estimates).name == crossval.FINE_TUNED
    assert estimates[2].gain_interval[0] > 0 > estimates[1].gain_interval[0]


def test_out_of_fold_settings_never_see_their_own_fold():
    settings = ((0.3, 0.0), (0.5, 0.0), (0.5, -0.03))
    fold = crossval.folds_of(6, 2, seed=0)
    table = np.zeros((3, 6))
    table[0, fold == 0] = 1.0  # (0.3, 0) is best on fold 0 alone, (0.5, -0.03) on fold 1 alone
    table[2, fold == 1] = 1.0
    scores, picked = crossval.out_of_fold_setting(table, fold, settings, own=(0.5, 0.0))
    assert [picked[i] for i in np.flatnonzero(fold == 0)] == [(0.5, -0.03)] * 3
    assert [picked[i] for i in np.flatnonzero(fold == 1)] == [(0.3, 0.0)] * 3
    assert not scores.any()
    assert sorted(np.bincount(crossval.folds_of(11, 3, seed=1))) == [3, 4, 4]


def test_a_setting_barely_better_than_the_models_own_is_not_picked():
    settings = ((0.5, 0.0), (0.7, -0.04))
    table = np.array([[0.90, 0.90], [0.901, 0.9014]])  # 0.0012 better: within the tolerance
    assert crossval.best_setting(table, settings, own=(0.5, 0.0)) == (0.5, 0.0)
    table[1] += 0.01
    assert crossval.best_setting(table, settings, own=(0.5, 0.0)) == (0.7, -0.04)


def test_ctrl_c_says_that_nothing_was_written(tmp_path, tiny_model_path, monkeypatch):
    """A trial's Ctrl-C printed a bare `interrupted`; it now says what segment and measure say: what is on disk."""

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline._CrossValidation, "decide", interrupted)
    data = own_masks_set(tmp_path, tiny_model_path, count=5)
    out = tmp_path / "adapted.safetensors"
    result = invoke("adapt", "--data", data, "-o", out, "--model", tiny_model_path, "--json", tmp_path / "a.json")
    assert result.exit_code == 130
    assert "error: interrupted before anything was written (--out, --json and --report are written" in result.output
    assert not out.exists() and not (tmp_path / "a.json").exists()
