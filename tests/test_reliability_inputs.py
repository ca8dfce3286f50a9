"""Issue 13, part B: what the tool reads (weights, zips, prepared sets, prediction folders) is checked, and
what it cannot use is said in one line naming the file, never passed on silently."""

from __future__ import annotations

import json
import math
import shutil
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from filelock import FileLock
from PIL import Image
from safetensors.torch import save_file

from skinseg.data import layouts
from skinseg.data.cache import MANIFEST, MARKER
from skinseg.data.config import PrepareConfig
from skinseg.data.dataset import open_prepared
from skinseg.data.prepare import prepare_dataset
from skinseg.data.sources import split_pairs
from skinseg.errors import SkinsegError
from skinseg.evaluation.scoring import evaluate_folders
from skinseg.models import architectures
from skinseg.models.config import ModelConfig
from skinseg.models.weights import ModelInfo, bundled_model_path, load_model, read_info
from skinseg.training.config import TrainConfig

CONFIG = ModelConfig(base_filters=4, depth=3)


def write_model(path: Path, meta: dict | None = None, tensors: dict | None = None, config: dict | None = None) -> Path:
    """A tiny model file; `meta` replaces top-level metadata entries, `config` entries of its model config."""
    torch.manual_seed(0)
    state = {k: v.contiguous() for k, v in architectures.create_model(CONFIG).state_dict().items()}
    info = ModelInfo(config=CONFIG, input_size=32, mean=(120.0, 100.0, 90.0), std=(50.0, 45.0, 40.0))
    metadata = json.loads(info.to_json()) | (meta or {})
    metadata["config"] = metadata["config"] | (config or {})
    save_file(state if tensors is None else tensors(state), str(path), metadata={"skinseg": json.dumps(metadata)})
    return path


# ------------------------------------------------------------------------------------------ weights on load
def test_a_well_formed_tiny_model_loads(tmp_path):
    model, info = load_model(write_model(tmp_path / "m.safetensors"))
    assert info.input_size == 32 and model.config == CONFIG


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_weights_with_nan_or_inf_are_refused(tmp_path, bad):
    def poison(state):
        name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
        state[name] = state[name].clone()
        state[name].view(-1)[1] = bad
        return state

    path = write_model(tmp_path / "m.safetensors", tensors=poison)
    with pytest.raises(SkinsegError, match="NaN or infinite") as error:
        load_model(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_a_missing_metadata_entry_is_named(tmp_path):
    """The attacker trial of issue #21: a missing entry said "('config')"."""
    metadata = json.loads(ModelInfo(config=CONFIG, input_size=32, mean=(1.0, 2.0, 3.0), std=(4.0, 5.0, 6.0)).to_json())
    del metadata["config"]
    path = tmp_path / "m.safetensors"
    save_file({"x": torch.zeros(1)}, str(path), metadata={"skinseg": json.dumps(metadata)})
    with pytest.raises(SkinsegError, match="the entry 'config' is missing"):
        read_info(path)


@pytest.mark.parametrize(
    ("meta", "config", "words"),
    [
        ({"input_size": 100000}, None, "input_size must be between 8 and 4096"),
        ({"input_size": -5}, None, "input_size must be between 8 and 4096"),
        ({"input_size": 32.5}, None, "input_size must be a whole number"),
        ({"normalisation": {"mean": [0, 0, 0], "std": [0, 0, 0]}}, None, "std must be between 0.1 and 255"),
        ({"normalisation": {"mean": [0, 0, 0], "std": [1, float("nan"), 1]}}, None, "std must be between 0.1 and 255"),
        ({"normalisation": {"mean": [0, 0, 0], "std": [1, float("inf"), 1]}}, None, "std must be between 0.1 and 255"),
        ({"normalisation": {"mean": [0, 0, 0], "std": [1, 1e-30, 1]}}, None, "std must be between 0.1 and 255"),
        ({"normalisation": {"mean": [-1, 0, 300], "std": [1, 1, 1]}}, None, "mean must be in"),
        ({"threshold": 0}, None, "threshold must be between 0 and 1"),
        ({"threshold": 1.5}, None, "threshold must be between 0 and 1"),
        (None, {"depth": 40}, "depth must be between 2 and 8"),
        (None, {"depth": 3.5}, "depth must be a whole number"),
        (None, {"in_channels": 4}, "expected 3 input channels"),
        (None, {"base_filters": 0}, "base_filters must be between"),
        # the attacker trial of issue #21: these said "'<=' not supported between ...", "('config')", "not enough
        # values to unpack", or were accepted (a threshold given as a string)
        (None, {"base_filters": "16"}, "config base_filters must be a whole number, got '16'"),
        (None, {"dropout": "0.3"}, "config dropout must be a number, got '0.3'"),
        ({"threshold": "0.5"}, None, "threshold must be a number, got '0.5'"),
        ({"normalisation": {"mean": [1], "std": [1, 1, 1]}}, None, "normalisation mean must be a list of three"),
        ({"normalisation": {"mean": 5, "std": [1, 1, 1]}}, None, "normalisation mean must be a list of three"),
        ({"normalisation": {"mean": [1, 2, 3]}}, None, "normalisation std must be a list of three numbers, got None"),
        ({"normalisation": [1, 2]}, None, "config and normalisation must be JSON objects"),
    ],
)
def test_metadata_out_of_range_is_refused_before_the_model_is_built(tmp_path, monkeypatch, meta, config, words):
    path = write_model(tmp_path / "m.safetensors", meta, config=config)
    built = []
    monkeypatch.setattr(architectures, "create_model", lambda c: built.append(c))
    for read in (read_info, load_model):
        with pytest.raises(SkinsegError, match=words) as error:
            read(path)
        assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value)
    assert built == []


def test_weights_cast_to_integers_are_refused(tmp_path):
    """Issue #21: weights cast to int64 loaded as zeros and scored Dice 0.0 without a word."""
    path = write_model(tmp_path / "m.safetensors", tensors=lambda state: {k: v.long() for k, v in state.items()})
    with pytest.raises(SkinsegError, match=r"do not match the architecture .*dtype I64, expected a floating-point"):
        load_model(path)


def test_a_huge_architecture_in_the_metadata_allocates_nothing(tmp_path, monkeypatch):
    """base_filters 1024 at depth 8 passes the config's ranges but would take terabytes: it is built on the meta
    device only, found not to match the file's tensors, and refused."""
    devices = []
    real = architectures.create_model

    def recording(config):
        devices.append(torch.empty(0).device.type)
        return real(config)

    path = write_model(tmp_path / "m.safetensors", config={"base_filters": 1024, "depth": 8})
    monkeypatch.setattr(architectures, "create_model", recording)
    with pytest.raises(SkinsegError, match="do not match the architecture"):
        load_model(path)
    assert devices == ["meta"]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda s: {k: v for k, v in list(s.items())[1:]}, "missing"),
        (lambda s: s | {"extra.weight": torch.zeros(2)}, "not in the architecture"),
        (lambda s: {k: (torch.zeros(7) if i == 0 else v) for i, (k, v) in enumerate(s.items())}, "shape"),
    ],
)
def test_tensors_must_match_the_architecture(tmp_path, change, words):
    path = write_model(tmp_path / "m.safetensors", tensors=change)
    with pytest.raises(SkinsegError, match=f"do not match the architecture.*{words}") as error:
        load_model(path)
    assert str(path) in str(error.value)


def test_bundled_names_the_bundled_model():
    assert read_info("bundled") == read_info(None) == read_info(bundled_model_path())
    model, info = load_model("bundled")
    assert info == read_info(None) and not model.training


# ------------------------------------------------------------------------------------------------ zips
def _zip_of_zeros(path: Path, size: int) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("images/zeros.bin", bytes(size))
    return path


def test_a_zip_that_expands_enormously_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(layouts, "ZIP_BOMB_BYTES", 100_000)
    archive = _zip_of_zeros(tmp_path / "bomb.zip", 1_000_000)  # about 1,000x
    with pytest.raises(SkinsegError, match="zip bomb") as error:
        layouts.unpack_zips(archive, tmp_path / "cache")
    assert str(error.value).startswith(f"{archive}: ")
    assert not (tmp_path / "cache" / "bomb").exists()


def test_a_compressible_zip_below_the_size_floor_is_unpacked(tmp_path):
    archive = _zip_of_zeros(tmp_path / "small.zip", 1_000_000)  # 1,000x but far below 1 GiB
    assert layouts.unpack_zips(archive, tmp_path / "cache") == [tmp_path / "cache" / "small"]


def test_a_zip_larger_than_the_free_space_is_refused(tmp_path, monkeypatch):
    archive = _zip_of_zeros(tmp_path / "big.zip", 10_000)
    monkeypatch.setattr(layouts.shutil, "disk_usage", lambda path: SimpleNamespace(free=1000))
    with pytest.raises(SkinsegError, match="GiB free") as error:
        layouts.unpack_zips(archive, tmp_path / "cache")
    assert str(archive) in str(error.value)


# ------------------------------------------------------------------------------------ manifests and hashes
@pytest.fixture
def own_raw(raw_dir, tmp_path) -> Path:
    """A copy of the synthetic raw set that a test may change."""
    return Path(shutil.copytree(raw_dir, tmp_path / "work" / "raw"))


def test_manifest_paths_are_absolute_and_evaluate_works_from_another_folder(own_raw, tmp_path, monkeypatch):
    monkeypatch.chdir(own_raw.parent)
    prepare_dataset(PrepareConfig(data=Path("raw"), out=Path("prepared"), size=32, workers=1))
    manifest = json.loads((own_raw.parent / "prepared" / MANIFEST).read_text())
    assert all(Path(item["image"]).is_absolute() and Path(item["mask"]).is_absolute() for item in manifest["items"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    pairs, _ = split_pairs(own_raw.parent / "prepared", "test")
    assert pairs and all(p.image.is_file() for p in pairs)


def test_an_older_manifest_with_relative_paths_is_read_from_another_folder(own_raw, tmp_path, monkeypatch):
    monkeypatch.chdir(own_raw.parent)
    prepare_dataset(PrepareConfig(data=Path("raw"), out=Path("prepared"), size=32, workers=1))
    path = own_raw.parent / "prepared" / MANIFEST
    manifest = json.loads(path.read_text())
    for item in manifest["items"]:  # as skinseg wrote them before: relative to where prepare ran
        item["image"] = str(Path(item["image"]).relative_to(own_raw.parent))
        item["mask"] = str(Path(item["mask"]).relative_to(own_raw.parent))
    path.write_text(json.dumps(manifest))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    pairs, _ = split_pairs(own_raw.parent / "prepared", "test")
    assert all(p.image.is_file() and p.image.is_relative_to(own_raw) for p in pairs)

    shutil.rmtree(own_raw)  # and when the files are gone, the message says why relative paths may miss them
    with pytest.raises(SkinsegError, match=r"source files of the prepared dataset are gone.*older skinseg"):
        split_pairs(own_raw.parent / "prepared", "test")


def test_a_changed_source_image_makes_evaluate_say_the_cache_is_stale(own_raw, tmp_path):
    out = tmp_path / "prepared"
    prepare_dataset(PrepareConfig(data=own_raw, out=out, size=32, workers=1))
    first_test = next(i for i in json.loads((out / MANIFEST).read_text())["items"] if i["split"] == "test")
    image = Path(first_test["image"])
    Image.fromarray(np.full((48, 48, 3), 7, np.uint8)).save(image)
    with pytest.raises(SkinsegError, match="stale; re-run `skinseg prepare`") as error:
        split_pairs(out, "test")
    assert str(error.value).startswith(f"{image}: ")
    assert split_pairs(out, "train")[0]  # only the split that is read is checked


# --------------------------------------------------------------------------------- concurrent prepare runs
def test_prepare_is_refused_while_another_run_holds_the_folder(raw_dir, tmp_path):
    out = tmp_path / "prepared"
    out.mkdir()
    refused = pytest.raises(SkinsegError, match="another skinseg command is writing it now")
    with FileLock(out / ".lock"), refused:  # what another process's prepare holds
        prepare_dataset(PrepareConfig(data=raw_dir, out=out, size=32, workers=1))
    assert not (out / MANIFEST).exists()
    prepare_dataset(PrepareConfig(data=raw_dir, out=out, size=32, workers=1))  # once it is released
    assert open_prepared(out).size == 32


def test_prepare_removes_a_killed_runs_leftovers(raw_dir, tmp_path, monkeypatch):
    out = tmp_path / "prepared"
    out.mkdir()
    (out / MARKER).touch()  # a killed run leaves its marker and its temporary arrays
    (out / ".images.tmp.npy").write_bytes(b"left by a killed run")
    prepare_dataset(PrepareConfig(data=raw_dir, out=out, size=32, workers=1))
    assert not list(out.glob(".*.npy"))
    assert open_prepared(out).size == 32


def test_an_interrupted_prepare_leaves_no_temporaries_and_the_previous_cache_whole(raw_dir, tmp_path, monkeypatch):
    """Issue #20: a killed prepare of 3,200 pairs left ~840 MB of hidden temporaries and had already removed the
    previous valid cache. Now the old cache stays whole until the new one replaces it in one step, and an
    interrupt (Ctrl-C, SIGTERM) removes the temporaries on the way out."""
    from skinseg.data import prepare

    out = tmp_path / "prepared"
    prepare_dataset(PrepareConfig(data=raw_dir, out=out, size=32, workers=1))
    before = {name: (out / name).read_bytes() for name in ("manifest.json", "images.npy", "masks.npy")}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare, "_channel_stats", interrupted)  # after every pair is decoded
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(PrepareConfig(data=raw_dir, out=out, size=40, workers=1))
    assert not [p.name for p in out.iterdir() if p.name.endswith(".npy") and p.name.startswith(".")]
    assert {name: (out / name).read_bytes() for name in before} == before
    assert open_prepared(out).size == 32  # still the whole previous cache


def test_arrays_of_another_size_than_the_manifest_says_are_refused(prepared_dir, tmp_path):
    copy = Path(shutil.copytree(prepared_dir, tmp_path / "p"))
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["size"] = 32  # the arrays are 48 px
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(SkinsegError, match="do not match the manifest"):
        open_prepared(copy)


# ------------------------------------------------------------------------------------- no validation split
def test_training_without_a_validation_split_says_it_selects_on_training_dice(raw_dir, tmp_path):
    from skinseg.training.loop import train

    out = tmp_path / "prepared"
    prepare_dataset(PrepareConfig(data=raw_dir, out=out, size=32, split=(0.8, 0.0, 0.2), workers=1))
    assert open_prepared(out).indices("val").size == 0
    config = TrainConfig(data=out, out=tmp_path / "run", epochs=1, batch_size=8, device="cpu", model=CONFIG)
    notes: list[str] = []
    result = train(config, on_start=lambda line, said: notes.extend(said))
    assert any("selected on training Dice" in note for note in notes)
    assert result.selected_on == "train_dice" and result.best_dice == result.history[0]["train_dice"]
    assert math.isnan(result.history[0]["val_dice"])  # no validation: the column says so, it holds no other Dice
    training = read_info(result.run_dir / "best.safetensors").training
    assert training["selected_on"] == "train_dice" and "val_dice" not in training
    assert training["train_dice"] == round(result.best_dice, 4)


def test_training_with_a_validation_split_has_no_such_note(prepared_dir, tmp_path):
    from skinseg.training.loop import train

    notes: list[str] = []
    config = TrainConfig(
        data=prepared_dir, out=tmp_path / "run", epochs=1, device="cpu", max_train_images=8, model=CONFIG
    )
    result = train(config, on_start=lambda line, said: notes.extend(said))
    assert result.selected_on == "val_dice" and not any("training Dice" in note for note in notes)


# ----------------------------------------------------------------------------- evaluate --pred/--truth
def test_predictions_without_a_true_mask_are_reported(tmp_path):
    mask = np.zeros((16, 16), np.uint8)
    mask[4:12, 4:12] = 255
    for folder, ids in (("truth", ["a", "b"]), ("pred", ["a", "b", "extra"])):
        (tmp_path / folder).mkdir()
        for image_id in ids:
            Image.fromarray(mask).save(tmp_path / folder / f"{image_id}_segmentation.png")
    for picture in ("a_overlay.png", "b_probability.png"):  # segment's pictures beside its masks (README's command)
        Image.fromarray(mask).save(tmp_path / "pred" / picture)
    report = evaluate_folders(tmp_path / "pred", tmp_path / "truth")
    assert len(report.per_image) == 2
    assert report.unmatched_predictions == ["extra"]  # issue #21: the overlays were counted as predictions
    assert report.to_json()["unmatched_predictions"] == ["extra"]
    from typer.testing import CliRunner

    from skinseg.cli import app

    result = CliRunner().invoke(app, ["evaluate", "--pred", str(tmp_path / "pred"), "--truth", str(tmp_path / "truth")])
    assert result.exit_code == 0 and "1 prediction(s) have no true mask, not scored (first: extra)" in result.output
    with_model = [
        "evaluate",
        "--pred",
        str(tmp_path / "pred"),
        "--truth",
        str(tmp_path / "truth"),
        "--model",
        "bundled",
    ]
    refused = CliRunner().invoke(app, with_model)
    assert refused.exit_code == 1 and "--data and --model do not apply" in refused.output


def test_file_names_that_are_not_utf8_are_written_with_their_own_bytes(tiny_model_path, tmp_path):
    """Issue #21: a name like latin\\xe9.png stopped `segment --summary` (after 6 of 18 images), the reports and
    prepare's fingerprint with UnicodeEncodeError."""
    import os

    from skinseg.data.synthetic import write_synthetic_dataset
    from skinseg.evaluation.reports import write_reports
    from skinseg.evaluation.scoring import evaluate_folders
    from skinseg.inference.config import SegmentConfig
    from skinseg.inference.model_run import ModelRun
    from skinseg.inference.segment import segment_paths
    from skinseg.reporting.html import ReportCases

    raw = write_synthetic_dataset(tmp_path / "raw", count=4, size=32)
    name = os.fsdecode(b"latin\xe9")
    (raw / "images" / "case_000.png").rename(raw / "images" / f"{name}.png")
    (raw / "masks" / "case_000_segmentation.png").rename(raw / "masks" / f"{name}_segmentation.png")
    for summary in ("s.csv", "s.json"):
        config = SegmentConfig(
            inputs=(raw / "images",),
            output=tmp_path / f"out-{summary}",
            summary=tmp_path / summary,
            report=tmp_path / f"{summary}.html",
            run=ModelRun(model=tiny_model_path, device="cpu"),
        )
        assert len(segment_paths(config).written) == 4
    assert b"latin\xe9.png" in (tmp_path / "s.csv").read_bytes()
    assert any(
        os.fsencode(row["image"]).endswith(b"latin\xe9.png") for row in json.loads((tmp_path / "s.json").read_text())
    )
    assert b"latin\xe9" in (tmp_path / "s.csv.html").read_bytes()
    report = evaluate_folders(tmp_path / "out-s.csv", raw / "masks", ReportCases())
    write_reports(report, json_file=tmp_path / "e.json", csv_file=tmp_path / "e.csv", html_file=tmp_path / "e.html")
    assert (
        b"latin\xe9" in (tmp_path / "e.csv").read_bytes()
        and len(json.loads((tmp_path / "e.json").read_text())["per_image"]) == 4
    )
    assert prepare_dataset(PrepareConfig(data=raw, out=tmp_path / "prepared", size=32, workers=1)).count == 4


@pytest.mark.slow
def test_a_3_by_20_million_png_is_segmented_without_a_huge_allocation(tiny_model_path, tmp_path):
    """Issue #21: a 3 x 20,000,000 PNG (77 kB, under Pillow's bomb limit) had `_to_input` allocate 30 GB of floats
    for a torch resize; the model's input is now made by Pillow from the uint8 image (about 5 s here)."""
    from skinseg.inference.segmenter import Segmenter

    Image.fromarray(np.zeros((3, 20_000_000), np.uint8)).save(tmp_path / "thin.png")
    segmenter = Segmenter(tiny_model_path, device="cpu", precision="fp32")
    model_input, shape = segmenter.read(tmp_path / "thin.png")
    assert model_input.shape == (48, 48, 3) and shape == (3, 20_000_000)
    (mask,) = segmenter.masks_from(segmenter.probabilities_of([model_input], [shape]))
    assert mask.shape == (3, 20_000_000) and mask.dtype == bool


def test_issue_33_non_finite_numbers_and_a_huge_pixel_size_are_refused_in_one_line(tmp_path):
    """Issue #33, cases 10 and 11: `train --lr inf` was accepted (nan refused); `--pixel-size 1e200` skipped
    every image with an OverflowError and wrote an empty list."""
    from skinseg.errors import ConfigError
    from skinseg.inference.config import MeasureConfig
    from skinseg.training.config import TrainConfig
    from test_cli import invoke

    for lr in (float("inf"), float("nan")):
        with pytest.raises(ConfigError, match=f"^`lr` must be a finite number, got {lr}$"):
            TrainConfig(data=tmp_path, lr=lr)
    result = invoke("train", "--data", tmp_path, "--lr", "inf")
    assert result.exit_code == 1 and "--lr must be a finite number, got inf" in result.output
    with pytest.raises(ConfigError, match=r"`pixel_size` must be a number of mm from 0.0001 to 10, got 1e"):
        MeasureConfig(inputs=(tmp_path,), csv_file=tmp_path / "m.csv", pixel_size=1e200)
    with pytest.raises(ConfigError, match=r"from 0.0001 to 10, got 1e-30"):  # every mm value read 0.0
        MeasureConfig(inputs=(tmp_path,), csv_file=tmp_path / "m.csv", pixel_size=1e-30)


def test_issue_33_evaluate_refuses_one_folder_as_both_prediction_and_truth(tmp_path):
    """Issue #33, case 2: `evaluate --pred truth --truth truth` gave Dice 1.0 on every image, exit 0."""
    from test_cli import invoke

    truth = tmp_path / "truth"
    truth.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(truth / "a_segmentation.png")
    (tmp_path / "link").symlink_to(truth)
    for pred in (truth, tmp_path / "link"):
        result = invoke("evaluate", "--pred", pred, "--truth", truth)
        assert result.exit_code == 1
        assert "--pred and --truth are one folder: the masks would be scored against themselves" in result.output


def test_issue_33_a_png_with_a_bad_checksum_is_called_damaged_not_foreign(tmp_path):
    """Issue #33, case 12: a PNG whose header checksum is wrong was called "not an image file"."""
    from skinseg.data.images import load_rgb

    good = tmp_path / "good.png"
    Image.fromarray(np.full((20, 20, 3), 100, np.uint8)).save(good)
    data = bytearray(good.read_bytes())
    data[29] ^= 0xFF  # the last byte of the IHDR chunk's CRC
    bad = tmp_path / "bad.png"
    bad.write_bytes(bytes(data))
    with pytest.raises(SkinsegError, match=r"bad.png: damaged PNG file: it cannot be decoded"):
        load_rgb(bad)
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(SkinsegError, match="not an image file"):
        load_rgb(text)


def test_issue_33_a_floating_point_tiff_of_0_to_1_is_read_as_such(tmp_path):
    """Issue #33, case 5: a float32 TIFF with values in 0-1 loaded nearly black without a word."""
    from skinseg.data.images import load_mask, load_rgb

    ramp = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(ramp, mode="F").save(tmp_path / "unit.tif")
    assert load_rgb(tmp_path / "unit.tif")[..., 0].max() == 255
    Image.fromarray(ramp * 255, mode="F").save(tmp_path / "bytes.tif")
    assert np.array_equal(load_rgb(tmp_path / "bytes.tif"), load_rgb(tmp_path / "unit.tif"))
    Image.fromarray((ramp > 0.5).astype(np.float32), mode="F").save(tmp_path / "mask.tif")
    assert load_mask(tmp_path / "mask.tif").sum() == 32
    Image.fromarray(ramp - 0.5, mode="F").save(tmp_path / "bad.tif")
    with pytest.raises(SkinsegError, match=r"bad.tif: cannot decode image \(floating-point values from -0.5 to 0.5"):
        load_rgb(tmp_path / "bad.tif")
    one_nan = ramp.copy()
    one_nan[0, 0] = np.nan  # said so, not "from nan to nan" (found by the fresh-eyes trial)
    Image.fromarray(one_nan, mode="F").save(tmp_path / "bad.tif")
    with pytest.raises(SkinsegError, match=r"\(1 of its floating-point values are NaN \(not a number\)\)"):
        load_rgb(tmp_path / "bad.tif")


def test_issue_33_a_manifest_that_is_not_json_is_named_not_read_as_raw_data(raw_dir, prepared_dir, tmp_path):
    """Issue #33, case 5: a `manifest.json` that is not JSON made a folder read as raw ("no image/mask pairs")."""
    from test_cli import invoke

    broken = tmp_path / "prepared"
    shutil.copytree(prepared_dir, broken)
    (broken / MANIFEST).write_text("{not json")
    with pytest.raises(SkinsegError, match=r"manifest.json: damaged prepared set: manifest.json is not JSON \("):
        split_pairs(broken, "test")
    result = invoke("evaluate", "--data", broken, "--model", bundled_model_path())
    assert result.exit_code == 1 and "damaged prepared set: manifest.json is not JSON" in result.output
    again = invoke("prepare", "--data", raw_dir, "--out", broken, "--size", 32, "--force")  # prepare replaces it
    assert again.exit_code == 0, again.output
    assert split_pairs(broken, "test")


@pytest.mark.parametrize("text", ["[1, 2]", '{"items": [1, 2]}', '{"format": "skinseg"}'])
def test_issue_33_a_manifest_of_another_shape_beside_the_arrays_is_named(prepared_dir, tmp_path, text):
    """Found by the fresh-eyes trial: such a manifest beside prepare's arrays gave "no image/mask pairs"."""
    broken = tmp_path / "prepared"
    shutil.copytree(prepared_dir, broken)
    (broken / MANIFEST).write_text(text)
    with pytest.raises(SkinsegError, match=r"damaged prepared set: manifest.json is not a skinseg manifest: prepare"):
        split_pairs(broken, "test")


def test_two_threads_opening_images_over_the_size_limit_both_refuse_them(tmp_path, monkeypatch):
    """Opening set a warnings filter that two threads restored over each other: the second image was decoded."""
    import threading
    import time
    import warnings

    from PIL import Image as PILImage

    from skinseg.data import images as images_module

    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 3000)  # 4096 pixels: over the limit, under twice it
    real_open = PILImage.open

    def slow_open(*args, **kwargs):
        time.sleep(0.1)  # the two threads' opening overlaps
        return real_open(*args, **kwargs)

    monkeypatch.setattr(images_module.Image, "open", slow_open)
    filters_before = list(warnings.filters)
    outcomes: list[str] = []

    def load() -> None:
        try:
            images_module.load_rgb(tmp_path / "big.png")
            outcomes.append("decoded")
        except SkinsegError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=load) for _ in range(2)]
    for thread in threads:
        thread.start()
        time.sleep(0.03)
    for thread in threads:
        thread.join()
    assert len(outcomes) == 2 and all("too large" in outcome for outcome in outcomes), outcomes
    assert warnings.filters == filters_before
