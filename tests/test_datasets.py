"""Grouped splits (HAM10000's lesions), training on several data sets, and training on a time budget."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY
from helpers import write_pair
from skinseg.data.arrays import SplitArrays
from skinseg.data.config import PrepareConfig
from skinseg.data.dataset import open_prepared
from skinseg.data.layouts import discover_pairs
from skinseg.data.prepare import prepare_dataset
from skinseg.data.splits import assign_splits
from skinseg.errors import ConfigError, SkinsegError
from skinseg.training.batches import epoch_rows, load_data
from skinseg.training.config import TrainConfig, parse_data_set, parse_duration, train_config
from skinseg.training.loop import train
from skinseg.training.optim import lr_at_fraction

CPU = torch.device("cpu")


def ham10000_tree(root: Path, lesions: int = 12, images_per_lesion: int = 3, size: int = 24) -> Path:
    """The official HAM10000 names: images in two parts, masks in the tschandl folder, and the metadata CSV
    that names each image's lesion."""
    rows = []
    for lesion in range(lesions):
        for k in range(images_per_lesion):
            image_id = f"ISIC_{lesion * 10 + k:07d}"
            part = "HAM10000_images_part_1" if lesion % 2 else "HAM10000_images_part_2"
            write_pair(
                root / part / f"{image_id}.jpg",
                root / "HAM10000_segmentations_lesion_tschandl" / f"{image_id}_segmentation.png",
                size,
                lesion * 10 + k,
            )
            rows.append({"lesion_id": f"HAM_{lesion:07d}", "image_id": image_id, "dx": "nv"})
    with (root / "HAM10000_metadata.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["lesion_id", "image_id", "dx"])
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture(scope="module")
def ham_dir(tmp_path_factory) -> Path:
    return ham10000_tree(tmp_path_factory.mktemp("ham"))


def _splits_by_group(manifest: dict) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for item in manifest["items"]:
        found.setdefault(item["group"], set()).add(item["split"])
    return found


def test_the_ham10000_layout_is_detected_and_no_lesion_straddles_two_splits(ham_dir, tmp_path):
    assert discover_pairs(ham_dir).layout == "ham10000"
    result = prepare_dataset(PrepareConfig(data=ham_dir, out=tmp_path / "cache", size=16, workers=1))
    manifest = open_prepared(tmp_path / "cache").manifest
    assert result.layout == "ham10000" and result.count == 36
    assert manifest["groups"] == {"file": str(ham_dir / "HAM10000_metadata.csv"), "column": "lesion_id", "count": 12}
    by_group = _splits_by_group(manifest)
    assert len(by_group) == 12 and all(len(splits) == 1 for splits in by_group.values())
    assert len({s for splits in by_group.values() for s in splits}) > 1  # and the lesions do spread over splits


def test_group_by_none_splits_images_one_by_one(ham_dir, tmp_path):
    prepare_dataset(PrepareConfig(data=ham_dir, out=tmp_path / "cache", size=16, workers=1, group_by="none"))
    manifest = open_prepared(tmp_path / "cache").manifest
    assert manifest["groups"] is None and "group" not in manifest["items"][0]
    by_lesion: dict[str, set[str]] = {}
    for item in manifest["items"]:
        by_lesion.setdefault(item["id"][:-1], set()).add(item["split"])
    assert any(len(splits) > 1 for splits in by_lesion.values())  # what grouping prevents


def test_group_by_a_csv_column_groups_a_generic_folder(tmp_path):
    for i in range(24):
        write_pair(tmp_path / "raw" / "images" / f"img{i}.png", tmp_path / "raw" / "masks" / f"img{i}.png", 16, i)
    lines = ["patient,file"] + [f"p{i // 4},img{i}" for i in range(24)]  # the id column is found by its values
    (tmp_path / "raw" / "patients.csv").write_text("\n".join(lines) + "\n")
    config = PrepareConfig(
        data=tmp_path / "raw", out=tmp_path / "cache", size=16, workers=1, group_by="patients.csv:patient"
    )
    prepare_dataset(config)
    by_group = _splits_by_group(open_prepared(tmp_path / "cache").manifest)
    assert set(by_group) == {f"p{i}" for i in range(6)} and all(len(s) == 1 for s in by_group.values())


@pytest.mark.parametrize(
    ("group_by", "message"),
    [("missing.csv:lesion_id", "grouping file not found"), ("HAM10000_metadata.csv:patient", "no column 'patient'")],
)
def test_a_bad_group_by_names_the_file_and_the_problem(ham_dir, tmp_path, group_by, message):
    with pytest.raises(SkinsegError, match=message):
        prepare_dataset(PrepareConfig(data=ham_dir, out=tmp_path / "cache", size=16, workers=1, group_by=group_by))
    with pytest.raises(SkinsegError, match=r"FILE\.csv:COLUMN"):
        PrepareConfig(data=ham_dir, out=tmp_path, group_by="no-colon")


def test_a_group_keeps_its_split_as_images_are_added():
    groups = {f"img{i}": f"lesion{i // 3}" for i in range(300)}
    before = assign_splits(list(groups)[:150], (0.6, 0.2, 0.2), 0, groups=groups)
    after = assign_splits(list(groups), (0.6, 0.2, 0.2), 0, groups=groups)
    assert after[:150] == before
    assert 0.45 < after.count("train") / 300 < 0.75


# ------------------------------------------------------------------------------------------- several data sets
def test_data_set_and_duration_options_parse():
    assert parse_data_set("prepared/ham:0.5") == (Path("prepared/ham"), 0.5)
    assert parse_data_set("prepared/ham") == (Path("prepared/ham"), None)
    assert parse_duration("2h") == 7200 and parse_duration("1h30m") == 5400 and parse_duration("45s") == 45
    assert parse_duration("90m") == 5400 and parse_duration("600") == 600
    with pytest.raises(ConfigError, match="time_budget"):
        parse_duration("soon")
    for weight in ("0", "inf", "1e308", "nan", "-inf"):  # issue #21: inf was a ValueError traceback, nan accepted
        with pytest.raises(ConfigError, match="weight must be a number > 0 and <= 1e"):
            train_config(["a", f"b:{weight}"])
    assert parse_data_set("no/such/v:2") == (Path("no/such/v"), 2.0)
    config = train_config(["a", "b:3"])
    assert config.data_sets == (Path("a"), Path("b")) and config.set_weights == (0.25, 0.75)
    assert TrainConfig.from_dict(config.to_dict()).data_weights == (1.0, 3.0)
    with pytest.raises(ConfigError, match="2 data-set weights for 1"):
        TrainConfig(data=Path("a"), data_weights=(1.0, 2.0))


def test_a_folder_whose_name_ends_in_a_number_after_a_colon_is_taken_as_it_is(tmp_path):
    """Issue #21: a folder named prep/v:2 was read as prep/v weighted 2, with no escape."""
    (tmp_path / "v:2").mkdir()
    assert parse_data_set(tmp_path / "v:2") == (tmp_path / "v:2", None)
    assert parse_data_set(f"{tmp_path / 'v:2'}:3") == (tmp_path / "v:2", 3.0)


def test_an_interrupted_prepare_says_so(tmp_path):
    """Issue #21: a folder left by an interrupted prepare was 'not a prepared dataset', no more."""
    (tmp_path / ".images.abc.tmp.npy").write_bytes(b"")
    with pytest.raises(SkinsegError, match=r"did not finish .* run the same prepare again"):
        open_prepared(tmp_path)


def test_zero_time_budgets_are_refused():
    for nothing in ("0", "0s", "0h0m", "0.0"):  # issue #21: a budget of 0 trained the default 40 epochs
        with pytest.raises(ConfigError, match="`time_budget` must be more than 0"):
            parse_duration(nothing)
    with pytest.raises(ConfigError, match="must look like"):
        parse_duration("")


@pytest.fixture(scope="module")
def two_sets(prepared_dir, ham_dir, tmp_path_factory) -> tuple[Path, Path]:
    ham = tmp_path_factory.mktemp("ham-cache") / "cache"
    prepare_dataset(PrepareConfig(data=ham_dir, out=ham, size=48, workers=1))
    return prepared_dir, ham


def test_an_epoch_draws_each_set_by_its_weight_and_its_images_evenly(two_sets):
    sets = [open_prepared(p) for p in two_sets]
    data = load_data(sets, CPU, weights=(0.75, 0.25))
    first, second = (s.train_images for s in data.sets)
    torch.manual_seed(0)
    rows = epoch_rows(data)
    assert len(rows) == first + second
    from_first = rows[rows < first]
    assert len(from_first) == round(0.75 * (first + second))
    drawn = torch.bincount(from_first, minlength=first)
    assert drawn.max() - drawn.min() <= 1  # every image of the oversampled set as often as the others, +-1
    assert len(set(rows[rows >= first].tolist())) == len(rows[rows >= first])  # the other set: no repeats


def test_memory_mapped_batches_equal_the_in_memory_ones(two_sets):
    sets = [open_prepared(p) for p in two_sets]
    parts = [(p, p.indices("train")) for p in sets]
    rows = torch.tensor([5, 0, len(parts[0][1]) + 2, 3, len(parts[0][1])])
    in_memory = SplitArrays(parts, CPU, in_memory=True).take(rows)
    mapped = SplitArrays(parts, CPU, in_memory=False).take(rows)
    assert all(torch.equal(a, b) for a, b in zip(in_memory, mapped, strict=True))
    assert torch.equal(mapped[0][2], torch.from_numpy(np.array(sets[1].images[parts[1][1][2]])))


def test_sets_prepared_at_different_sizes_are_refused(prepared_dir, ham_dir, tmp_path):
    prepare_dataset(PrepareConfig(data=ham_dir, out=tmp_path / "ham16", size=16, workers=1))
    with pytest.raises(SkinsegError, match="different sizes"):
        load_data([open_prepared(prepared_dir), open_prepared(tmp_path / "ham16")], CPU)


def test_a_run_on_two_sets_validates_each_and_names_them_in_its_weights(two_sets, tmp_path):
    from skinseg.models.weights import load_model

    config = replace(
        train_config([str(two_sets[0]), f"{two_sets[1]}:0.5"], epochs=2, device="cpu", **TINY), out=tmp_path
    )
    result = train(config)
    row = result.history[-1]
    names = [k.removeprefix("val_dice_") for k in row if k.startswith("val_dice_")]
    assert len(names) == 2
    assert row["val_dice"] == pytest.approx(np.mean([row[f"val_dice_{n}"] for n in names]))
    assert json.loads((tmp_path / "config.json").read_text())["size"] == 48  # as prepared, not the default 256
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert [f"val_dice_{n}" for n in names] == header[-2:]
    _, info = load_model(tmp_path / "best.safetensors", CPU)
    sets = info.training["data_sets"]
    assert [s["weight"] for s in sets] == [pytest.approx(2 / 3, abs=1e-4), pytest.approx(1 / 3, abs=1e-4)]
    assert [s["name"] for s in sets] == names and all("val_dice" in s for s in sets)


# ------------------------------------------------------------------------------------------------ time budget
def test_the_budget_schedule_warms_up_then_follows_the_clock():
    assert lr_at_fraction(0, 0.0, 1.0, 10, "cosine") == pytest.approx(0.1)
    assert lr_at_fraction(100, 0.0, 1.0, 10, "cosine") == pytest.approx(1.0)
    assert lr_at_fraction(100, 0.5, 1.0, 10, "cosine") == pytest.approx(0.5)
    assert lr_at_fraction(100, 1.5, 1.0, 10, "cosine") == pytest.approx(0.0)


def test_a_time_budget_stops_the_run_and_a_larger_one_resumes_it(prepared_dir, tmp_path, monkeypatch):
    import skinseg.training.loop as training
    from skinseg.training.runs import load_run

    clock = {"now": 0.0}
    monkeypatch.setattr(training.time, "perf_counter", lambda: clock["now"])
    original = training.train_step

    def step_of_one_second(*args, **kwargs):
        clock["now"] += 1.0
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "train_step", step_of_one_second)
    steps = -(-len(open_prepared(prepared_dir).indices("train")) // TINY["batch_size"])  # seconds per epoch
    budget = 2 * steps + 1  # ends in the third epoch, after its first step
    config = TrainConfig(data=prepared_dir, out=tmp_path, epochs=1, time_budget=budget, device="cpu", **TINY)
    first = train(config)
    assert [round(r["seconds"]) for r in first.history] == [steps, steps, 1]
    assert first.history[-1]["lr"] == pytest.approx(
        lr_at_fraction(2 * steps, 2 * steps / budget, config.lr, steps, "cosine")
    )
    assert json.loads((tmp_path / "config.json").read_text())["time_budget"] == budget

    with pytest.raises(SkinsegError, match=r"has trained for .* min; `time_budget` sets its new total, so give more"):
        load_run(tmp_path, time_budget=budget / 2)  # issue #21: accepted, rewrote config.json, trained nothing
    again = train(load_run(tmp_path))  # the budget is spent: nothing to do
    assert len(again.history) == 3
    more = train(load_run(tmp_path, time_budget=budget + steps))
    assert [round(r["seconds"]) for r in more.history] == [steps, steps, 1, steps]


def test_evaluate_scores_each_set_on_its_own_row_and_keeps_them_apart(two_sets, tiny_model_path, tmp_path):
    from typer.testing import CliRunner

    from skinseg.cli import app

    args = ["evaluate", "--model", tiny_model_path, "--data", two_sets[0], "--data", two_sets[1], "--device", "cpu"]
    args += ["--json", tmp_path / "r.json", "--csv", tmp_path / "r.csv", "--report", tmp_path / "report.html"]
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    sets = json.loads((tmp_path / "r.json").read_text())["sets"]
    names = [s["name"] for s in sets]
    assert len(names) == 2 and names[1].startswith("ham")  # the raw folder's name, not the cache's
    assert "per data set" in result.output and all(name in result.output for name in names)
    counts = [len(open_prepared(p).indices("test")) for p in two_sets]
    assert [s["count"] for s in sets] == counts
    settings = sets[1]["settings"]
    assert settings["split"] == "test" and settings["postprocess"] is True and settings["tta"] is False
    assert settings["data"] == str(two_sets[1].resolve()) and settings["model"] == str(tiny_model_path)
    assert settings["threshold"] == 0.5 and settings["skinseg_version"]
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert [sum(r["set"] == name for r in rows) for name in names] == counts
    mean = np.mean([float(r["dice"]) for r in rows if r["set"] == names[1]])
    assert sets[1]["macro_average"]["dice"] == pytest.approx(mean)
    pages = sorted(p.name for p in tmp_path.glob("report*.html"))
    assert pages == sorted(f"report-{name}.html" for name in names)
