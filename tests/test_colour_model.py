"""skinseg.measurement.colour_model: the learned per-pixel model of white and red, its features, its file, and
how its probabilities become the colour columns (colour.colour_fractions)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from safetensors.numpy import save_file

from lesions import SIZE, disc, paint, palette_srgb
from skinseg.measurement import measure_lesion
from skinseg.measurement.colour import COLOUR_NAMES, colour_fractions, present_shares
from skinseg.measurement.colour_model import (
    FEATURES,
    LEARNED,
    MODEL_PIXELS,
    PixelModel,
    bundled_pixel_model,
    load_pixel_model,
    pixel_features,
)

BROWN = palette_srgb("light_brown")


def random_model(seed: int = 0, members: int = 2, hidden: int = 3) -> PixelModel:
    rng = np.random.default_rng(seed)
    colours, features = len(LEARNED), len(FEATURES)
    return PixelModel(
        feature_mean=rng.normal(size=features).astype(np.float32),
        feature_scale=rng.uniform(1, 3, features).astype(np.float32),
        hidden_weight=rng.normal(size=(colours, members, features, hidden)).astype(np.float32),
        hidden_bias=rng.normal(size=(colours, members, hidden)).astype(np.float32),
        out_weight=rng.normal(size=(colours, members, hidden)).astype(np.float32),
        out_bias=rng.normal(size=(colours, members)).astype(np.float32),
        present_share=rng.uniform(0, 0.1, colours).astype(np.float32),
    )


def test_a_model_saved_and_loaded_gives_the_same_probabilities(tmp_path):
    model = random_model()
    save_file(model.tensors(), str(tmp_path / "m.safetensors"))
    loaded = load_pixel_model(tmp_path / "m.safetensors")
    x = np.random.default_rng(1).normal(size=(50, len(FEATURES))).astype(np.float32)
    assert np.array_equal(loaded.probabilities(x), model.probabilities(x))
    assert np.array_equal(loaded.present_share, model.present_share)


def test_the_probability_is_the_members_mean():
    model = random_model(members=2)
    x = np.random.default_rng(2).normal(size=(20, len(FEATURES))).astype(np.float32)
    layers = ("hidden_weight", "hidden_bias", "out_weight", "out_bias")
    alone = [dataclasses.replace(model, **{k: getattr(model, k)[:, [m]] for k in layers}) for m in range(2)]
    assert np.allclose(model.probabilities(x), (alone[0].probabilities(x) + alone[1].probabilities(x)) / 2)


def test_features_of_a_flat_lesion_are_its_colour_no_texture_and_its_depth():
    lesion = disc(40, size=100)
    lab = np.zeros((100, 100, 3), np.float32)
    lab[...] = (70.0, 9.0, 9.0)
    lab[lesion] = (50.0, 20.0, 25.0)
    features = pixel_features(lab, lesion, lesion, most=None)
    assert features.shape == (lesion.sum(), len(FEATURES))
    column = dict(zip(FEATURES, features.T, strict=True))
    assert np.allclose(column["lightness"], 50.0) and np.allclose(column["lightness_from_lesion"], 0.0)
    inner = pixel_features(lab, lesion, disc(30, size=100), most=None)
    assert np.allclose(dict(zip(FEATURES, inner.T, strict=True))["texture"], 0.0, atol=1e-2)  # far from the edge
    assert column["depth"].min() > 0 and column["depth"].max() == pytest.approx(1.0)


def test_the_bundled_model_gives_a_probability_of_each_learned_colour():
    model = bundled_pixel_model()
    x = np.random.default_rng(3).normal(size=(100, len(FEATURES))).astype(np.float32) * 20
    p = model.probabilities(x)
    assert p.shape == (100, len(LEARNED)) and ((p >= 0) & (p <= 1)).all()
    assert ((model.present_share > 0) & (model.present_share < 0.5)).all()
    assert [present_shares()[name] for name in LEARNED] == pytest.approx(model.present_share.tolist())


def test_white_and_red_are_the_learned_mean_and_the_others_the_rules_fractions():
    lab = np.array([[55.0, 18.0, 26.0], [55.0, 18.0, 26.0], [70.0, 9.0, 9.0], [12.0, 3.0, 3.0]])  # 2 light brown
    learned = np.array([[0.2, 0.1], [0.6, 0.3], [0.0, 0.0], [0.0, 0.2]])
    row = colour_fractions(lab, learned, lab)
    assert (row["colour_white"], row["colour_red"]) == pytest.approx((0.2, 0.15))
    assert (row["colour_light_brown"], row["colour_black"], row["colour_skin"]) == (0.5, 0.25, 0.25)
    present = present_shares()
    expected = sum(row[f"colour_{name}"] >= present[name] for name in COLOUR_NAMES)
    assert row["colour_count"] == expected == 4  # white and red over the bundled model's shares (3% and 10%)


def test_a_pixel_the_rules_call_skin_is_not_red_but_may_be_white():
    skin = np.array([[70.0, 9.0, 9.0], [55.0, 18.0, 26.0]])  # the normalised skin, and a light brown
    row = colour_fractions(skin, np.array([[0.4, 0.5], [0.2, 0.3]]), skin)
    assert row["colour_red"] == pytest.approx(0.15) and row["colour_white"] == pytest.approx(0.3)


def test_a_mask_over_plain_skin_has_no_red():  # it had 9-15%, counted (a trial of 2026-12-07)
    image = paint([], noise=6.0, seed=5)
    mask = np.zeros((SIZE, SIZE), bool)
    mask[60:180, 50:170] = True
    row = measure_lesion(image, mask)
    assert row["colour_skin"] > 0.8 and row["colour_red"] < present_shares()["red"] / 2  # far from counting


def test_a_one_pixel_lesion_is_measured():
    mask = np.zeros((SIZE, SIZE), bool)
    mask[100, 100] = True
    row = measure_lesion(paint([(mask, BROWN)]), mask)
    rules = sum(row[f"colour_{n}"] for n in COLOUR_NAMES if n not in LEARNED) + row["colour_skin"]
    assert rules == pytest.approx(1.0, abs=1e-3) and 0 <= row["colour_white"] <= 1 and 0 <= row["colour_red"] <= 1


def test_a_large_lesions_features_are_of_pixels_on_a_lattice():
    lesion = disc(40, (50, 50), size=100)
    lab = np.random.default_rng(4).normal(50, 10, (100, 100, 3)).astype(np.float32)
    every = pixel_features(lab, lesion, lesion, most=None)
    some = pixel_features(lab, lesion, lesion, most=1000)  # 5,025 pixels: every third row and column
    lattice = np.zeros_like(lesion)
    lattice[::3, ::3] = True
    assert len(some) == (lesion & lattice).sum() <= 1000
    on_lattice = (lesion & lattice)[lesion]  # which of every's rows (row-major) lie on the lattice
    assert np.array_equal(some[:, :3], every[on_lattice, :3]) and np.array_equal(some[:, 6:], every[on_lattice, 6:])
    assert len(pixel_features(lab, lesion, lesion)) <= MODEL_PIXELS


def test_a_lesion_filling_its_cut_is_deepest_in_the_middle():  # EDT of no background measured from nowhere
    lab = np.full((21, 21, 3), 50.0, np.float32)
    full = np.ones((21, 21), bool)
    depth = pixel_features(lab, full, full, most=None)[:, FEATURES.index("depth")].reshape(21, 21)
    assert depth[10, 10] == 1.0 and depth[0, 0] == depth[0, 20] == depth[20, 0] == pytest.approx(1 / 11)
    assert np.allclose(depth, depth[::-1, ::-1])  # the cut's border is the edge all round


def test_no_counted_pixel_is_refused():
    lesion = disc(5, size=20)
    with pytest.raises(ValueError, match="no pixel is counted"):
        pixel_features(np.zeros((20, 20, 3), np.float32), lesion, np.zeros_like(lesion))


def test_a_file_that_does_not_fit_the_features_is_refused(tmp_path):
    model = random_model()
    save_file({**model.tensors(), "feature_mean": np.zeros(3, np.float32)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match="`feature_mean` is"):
        load_pixel_model(tmp_path / "bad.safetensors")
    save_file({"feature_mean": np.zeros(8, np.float32)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a colour model"):
        load_pixel_model(tmp_path / "other.safetensors")


def test_the_fitting_features_are_those_measured():
    from skinseg.measurement.lesion import lesion_colour_features

    mask = disc(60)
    image = paint([(mask, BROWN), (disc(20, (110, 130)), palette_srgb("red"))])
    features = lesion_colour_features(image, mask)
    assert features.shape[1] == len(FEATURES) and 0 < len(features) <= MODEL_PIXELS
    p = bundled_pixel_model().probabilities(features)
    assert measure_lesion(image, mask)["colour_red"] == pytest.approx(
        float(p[:, LEARNED.index("red")].mean()), abs=1e-4
    )
