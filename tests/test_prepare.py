import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import isic2018_tree, write_pair
from skinseg.data.config import PrepareConfig
from skinseg.data.dataset import open_prepared
from skinseg.data.prepare import MANIFEST, prepare_dataset
from skinseg.data.splits import assign_splits, parse_fractions, read_split_file
from skinseg.errors import SkinsegError


def run(data, out, **settings):
    return prepare_dataset(PrepareConfig(data=data, out=out, workers=1, **settings))


def test_generic_layout_is_prepared_and_split(raw_dir, tmp_path):
    result = run(raw_dir, tmp_path / "p", size=32)
    assert result.layout == "generic" and result.count == 30 and not result.skipped
    assert sum(result.split_sizes.values()) == 30
    data = open_prepared(tmp_path / "p")
    assert data.images.shape == (30, 32, 32, 3) and data.images.dtype == np.uint8
    assert data.masks.shape == (30, 32, 32) and set(np.unique(data.masks)) <= {0, 1}
    manifest = json.loads((tmp_path / "p" / MANIFEST).read_text())
    item = manifest["items"][0]
    assert item["original_size"] == [48, 48] and len(item["sha256"]) == 64 and item["split"] in ("train", "val", "test")
    assert len(manifest["normalisation"]["mean"]) == 3


def test_prepared_mask_matches_the_source_mask(raw_dir, tmp_path):
    run(raw_dir, tmp_path / "p", size=48)
    data = open_prepared(tmp_path / "p")
    index = [i["id"] for i in data.manifest["items"]].index("case_003")
    source = np.asarray(Image.open(raw_dir / "masks" / "case_003_segmentation.png")) > 128
    assert np.array_equal(data.masks[index].astype(bool), source)


def test_isic2018_layout_is_recognised(tmp_path):
    root = isic2018_tree(tmp_path / "isic", count=5)
    result = run(root, tmp_path / "p", size=32)
    assert result.layout == "isic2018" and result.count == 5


def test_parallel_workers_give_the_same_cache(raw_dir, tmp_path):
    prepare_dataset(PrepareConfig(data=raw_dir, out=tmp_path / "a", size=32, workers=1))
    prepare_dataset(PrepareConfig(data=raw_dir, out=tmp_path / "b", size=32, workers=2))
    a, b = open_prepared(tmp_path / "a"), open_prepared(tmp_path / "b")
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)


def test_the_cache_has_the_permissions_of_any_new_file(raw_dir, tmp_path):
    """Issue #21: images.npy and masks.npy were written 0600 (mkstemp's), manifest.json 0644."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    out = run(raw_dir, tmp_path / "p", size=32).out_dir
    modes = {name: (out / name).stat().st_mode & 0o777 for name in ("images.npy", "masks.npy", "manifest.json")}
    assert set(modes.values()) == {0o666 & ~umask}


def test_more_decoding_processes_than_four_a_core_are_refused(raw_dir, tmp_path):
    """Issue #21: --workers 1000 was accepted, and took 70 times as long."""
    import os

    most = 4 * (os.cpu_count() or 1)
    with pytest.raises(SkinsegError, match=f"`workers` must be between 0 and {most}, got 1000"):
        PrepareConfig(data=raw_dir, out=tmp_path / "p", workers=1000)
    assert PrepareConfig(data=raw_dir, out=tmp_path / "p", workers=most).workers == most


def test_second_run_reuses_the_cache_and_changes_rebuild_it(raw_dir, tmp_path):
    first = run(raw_dir, tmp_path / "p", size=32)
    again = run(raw_dir, tmp_path / "p", size=32)
    assert not first.reused and again.reused
    other_size = run(raw_dir, tmp_path / "p", size=24)
    assert not other_size.reused and open_prepared(tmp_path / "p").size == 24


def test_splits_are_stable_when_images_are_added():
    ids = [f"img{i}" for i in range(200)]
    before = dict(zip(ids, assign_splits(ids, (0.6, 0.2, 0.2), seed=3), strict=False))
    more = ids + [f"new{i}" for i in range(50)]
    after = dict(zip(more, assign_splits(more, (0.6, 0.2, 0.2), seed=3), strict=False))
    assert all(after[i] == before[i] for i in ids)
    counts = {s: list(before.values()).count(s) for s in ("train", "val", "test")}
    assert 95 <= counts["train"] <= 145 and 20 <= counts["val"] <= 60
    assert assign_splits(ids, (0.6, 0.2, 0.2), seed=4) != list(before.values())


def test_split_file_overrides(tmp_path):
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"val": ["a", "b"], "train": ["c"]}))
    assert assign_splits(["a", "b", "c"], (1.0, 0.0, 0.0), 0, path) == ["val", "val", "train"]
    csv_path = tmp_path / "split.csv"
    csv_path.write_text("id,split\na,test\n")
    assert read_split_file(csv_path) == {"a": "test"}
    csv_path.write_text("id,split\na,test\nb,validation\nc,holdout\n")  # issue #21: name the id and its split
    with pytest.raises(SkinsegError, match="2 ids with another split name; first: b -> 'validation'"):
        read_split_file(csv_path)


def test_split_fractions_parse():
    assert parse_fractions("60/20/20") == pytest.approx((0.6, 0.2, 0.2))
    assert parse_fractions("3,1,1") == pytest.approx((0.6, 0.2, 0.2))
    with pytest.raises(SkinsegError):
        parse_fractions("60/40")
    for bad in ("nan/50/50", "inf/1/1", "60/inf/20", "-1/1/1"):  # issue #21: nan gave 0/0/40 without a word
        with pytest.raises(SkinsegError, match="finite, non-negative"):
            parse_fractions(bad)


@pytest.fixture
def messy_dir(tmp_path):
    root = tmp_path / "messy"
    for i in range(4):
        write_pair(root / "images" / f"good {i} é.png", root / "masks" / f"good {i} é_mask.png", seed=i)
    (root / "images" / "zero.jpg").write_bytes(b"")
    (root / "masks" / "zero_mask.png").write_bytes(b"")
    (root / "images" / "text.jpg").write_text("not an image")
    write_pair(root / "tmp" / "x.png", root / "masks" / "text_mask.png")
    write_pair(root / "images" / "bigmask.png", root / "tmp" / "m.png", size=32)
    write_pair(root / "tmp" / "y.png", root / "masks" / "bigmask_mask.png", size=40)
    write_pair(root / "images" / "empty.png", root / "masks" / "empty_mask.png", mask_values=(0, 0))
    write_pair(root / "images" / "grey.png", root / "masks" / "grey_mask.png")
    Image.fromarray(np.arange(32 * 32, dtype=np.uint8).reshape(32, 32) % 7 * 30).save(root / "masks" / "grey_mask.png")
    truncated = root / "images" / "cut.jpg"
    write_pair(truncated, root / "masks" / "cut_mask.png", image_format="JPEG")
    truncated.write_bytes(truncated.read_bytes()[:200])
    write_pair(root / "images" / "lonely.png", root / "tmp" / "z.png")
    return root


def test_bad_pairs_are_skipped_and_reported(messy_dir, tmp_path):
    result = run(messy_dir, tmp_path / "p", size=32)
    assert result.count == 4
    reasons = {p.split("/")[-1]: r for p, r in result.skipped}
    assert "empty file" in reasons["zero.jpg"]
    assert "not an image" in reasons["text.jpg"]
    assert "mask is 40x40 but its image is 32x32" in reasons["bigmask_mask.png"]
    assert "empty mask" in reasons["empty_mask.png"]
    assert "grey levels" in reasons["grey_mask.png"]
    assert "cut.jpg" in reasons
    assert reasons["lonely.png"] == "image without a mask"


def test_strict_fails_on_the_first_problem(messy_dir, tmp_path):
    with pytest.raises(SkinsegError):
        run(messy_dir, tmp_path / "p", size=32, strict=True)
    assert not (tmp_path / "p" / MANIFEST).exists()


def test_nothing_usable_is_an_error(tmp_path):
    root = tmp_path / "d"
    write_pair(root / "images" / "a.png", root / "masks" / "a.png", mask_values=(0, 0))
    with pytest.raises(SkinsegError, match="no usable image/mask pairs"):
        run(root, tmp_path / "p")


def test_empty_folder_and_images_without_masks(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SkinsegError, match="no files found"):
        run(tmp_path / "empty", tmp_path / "p")
    write_pair(tmp_path / "only" / "images" / "a.png", tmp_path / "elsewhere" / "a.png")
    with pytest.raises(SkinsegError, match="no image/mask pairs found"):
        run(tmp_path / "only", tmp_path / "p")


def test_zero_one_masks_are_scaled_first(tmp_path):
    root = tmp_path / "d"
    write_pair(root / "images" / "a.png", root / "masks" / "a.png", mask_values=(0, 1))
    result = run(root, tmp_path / "p", size=32)
    assert result.count == 1 and open_prepared(tmp_path / "p").masks[0].any()


def test_a_folder_that_a_killed_prepare_left_is_never_read_as_a_cache(raw_dir, tmp_path):
    """kill -9 can land in the few renames that replace a cache: the folder has its marker and no manifest."""
    run(raw_dir, tmp_path / "p", size=32)
    (tmp_path / "p" / MANIFEST).unlink()
    with pytest.raises(SkinsegError, match="did not finish"):
        open_prepared(tmp_path / "p")
    assert run(raw_dir, tmp_path / "p", size=32).count == 30  # and the next prepare rebuilds it


@pytest.mark.parametrize(
    "builder,layout",
    [("isic2018_tree", "isic2018"), ("isic2017_tree", "isic2017"), ("isic2016_tree", "isic2016"), ("ph2_tree", "ph2")],
)
def test_every_challenge_layout_is_recognised(tmp_path, builder, layout):
    import helpers

    root = getattr(helpers, builder)(tmp_path / "data", count=4)
    result = run(root, tmp_path / "p", size=32)
    assert result.layout == layout and result.count == 4, result.skipped
    assert not result.skipped
    data = open_prepared(tmp_path / "p")
    assert all(data.masks[i].any() for i in range(4))
    named = run(root, tmp_path / "q", size=32, layout=layout)
    assert named.count == 4


def test_zip_files_are_read_without_unpacking_by_hand(tmp_path):
    import shutil

    from helpers import isic2018_tree

    root = isic2018_tree(tmp_path / "tree", count=4)
    shutil.make_archive(str(tmp_path / "zips" / "inputs"), "zip", root, "ISIC2018_Task1-2_Training_Input")
    shutil.make_archive(str(tmp_path / "zips" / "truth"), "zip", root, "ISIC2018_Task1_Training_GroundTruth")
    result = run(tmp_path / "zips", tmp_path / "p", size=32)
    assert result.layout == "isic2018" and result.count == 4
    assert run(tmp_path / "zips", tmp_path / "p", size=32).reused


def test_mask_suffix_option(tmp_path):
    root = tmp_path / "d"
    for i in range(3):
        write_pair(root / "images" / f"a{i}.png", root / "masks" / f"a{i}-GT.png", seed=i)
    assert run(root, tmp_path / "p", size=32, mask_suffix="-gt").count == 3


def test_decompression_bomb_is_refused_by_name(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    root = tmp_path / "d"
    write_pair(root / "images" / "huge.png", root / "masks" / "huge.png", size=64)
    write_pair(root / "images" / "ok.png", root / "masks" / "ok.png", size=32)
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1500)  # 64x64 = 4096 pixels is then "too large"
    result = run(root, tmp_path / "p", size=32)
    assert result.count == 1
    assert any("huge.png" in p and "decompression-bomb" in r for p, r in result.skipped)


def test_symlink_loop_in_the_data_folder_is_harmless(raw_dir, tmp_path):
    import shutil

    root = tmp_path / "d"
    shutil.copytree(raw_dir, root)
    (root / "images" / "loop").symlink_to(root / "images", target_is_directory=True)
    assert run(root, tmp_path / "p", size=32).count == 30


def test_a_link_to_nothing_or_to_itself_is_skipped_and_reported(raw_dir, tmp_path):
    """#21's attacker trial: one dangling or self link among the images stopped the whole prepare."""
    import shutil

    root = tmp_path / "d"
    shutil.copytree(raw_dir, root)
    (root / "images" / "case_101.png").symlink_to(root / "images" / "nothing.png")
    (root / "masks" / "case_101_segmentation.png").symlink_to(root / "masks" / "case_000_segmentation.png")
    (root / "images" / "case_102.png").symlink_to(root / "images" / "case_102.png")
    (root / "masks" / "case_102_segmentation.png").symlink_to(root / "masks" / "case_000_segmentation.png")
    result = run(root, tmp_path / "p", size=32)
    assert result.count == 30
    assert sorted(Path(p).name for p, reason in result.skipped if "link" in reason) == ["case_101.png", "case_102.png"]


def test_a_zip_that_fails_to_unpack_leaves_nothing_under_the_real_names(tmp_path):
    """#21's attacker trial: a member with a bad CRC was left as a 0-byte file under its real name."""
    import zipfile

    root = tmp_path / "d"
    write_pair(root / "images" / "a.png", root / "masks" / "a_segmentation.png", size=32)
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zipped:
        for path in sorted(root.rglob("*.png")):
            zipped.write(path, path.relative_to(root))
    content = bytearray(archive.read_bytes())
    start = content.index(b"IDAT") + 8  # a byte inside the first stored PNG's data: its CRC no longer matches
    content[start] ^= 0xFF
    archive.write_bytes(bytes(content))
    with pytest.raises(SkinsegError, match=r"not a valid zip file .*CRC"):
        run(archive, tmp_path / "p", size=32)
    assert not [p for p in (tmp_path / "p").rglob("*.png")]


def test_an_empty_split_is_said(raw_dir, tmp_path):
    """Issue #21: `--split 100/0/0` (or a grouping that takes every image to one side) left the validation and
    test splits empty without a word."""
    result = run(raw_dir, tmp_path / "p", size=32, split=(1.0, 0.0, 0.0))
    assert result.split_sizes == {"train": 30, "val": 0, "test": 0}
    assert result.notes == [
        "the val split is empty: training selects on training Dice",
        "the test split is empty: nothing to test",
    ]
    assert run(raw_dir, tmp_path / "q", size=32).notes == []


def test_a_split_file_that_names_no_image_or_contradicts_itself_is_refused(tmp_path):
    """#21's attacker trial: ids with their extension matched nothing and the hash split was used without a word;
    an id in both train and test went through."""
    named = tmp_path / "named.json"
    named.write_text(json.dumps({"test": ["a.png", "b.png"]}))
    with pytest.raises(SkinsegError, match=r"none of the split file's 2 ids names an image here \(first: a.png"):
        assign_splits(["a", "b", "c"], (0.6, 0.2, 0.2), 0, named)
    both = tmp_path / "both.csv"
    both.write_text("id,split\na,train\nb,val\na,test\n")
    with pytest.raises(SkinsegError, match="split file puts a in both train and test"):
        read_split_file(both)


@pytest.mark.parametrize(
    "name,content",
    [
        ("empty.csv", b""),
        ("header.csv", b"id,split\n"),
        ("semicolons.csv", b"a;train\nb;test\n"),
        ("list.json", b"[1, 2, 3]"),
        ("string.json", b'"x"'),
        ("empty_lists.json", b'{"train": [], "val": [], "test": []}'),
        ("utf16.csv", "id,split\na,train\n".encode("utf-16")),
    ],
)
def test_a_split_file_without_usable_rows_is_one_line(tmp_path, name, content):
    """The attacker trial of issue #21: these gave a StopIteration or UnicodeDecodeError traceback."""
    path = tmp_path / name
    path.write_bytes(content)
    words = r"split file (must map ids to train/val/test \(no rows found\)|is not UTF-8)"
    with pytest.raises(SkinsegError, match=words):
        read_split_file(path)


@pytest.mark.parametrize("damage", [{"items": None}, {"items": "x"}, {"items": [{"id": 1}]}, {"split_sizes": []}])
def test_a_damaged_manifest_names_what_is_wrong(raw_dir, tmp_path, damage):
    """The attacker trial of issue #21: a manifest without its items crashed evaluate with KeyError/TypeError."""
    from skinseg.data.prepare import load_manifest

    out = run(raw_dir, tmp_path / "p", size=32).out_dir
    manifest = json.loads((out / MANIFEST).read_text())
    (out / MANIFEST).write_text(json.dumps(manifest | damage))
    with pytest.raises(SkinsegError, match=r"manifest.json: damaged prepared set: .* is missing or malformed"):
        load_manifest(out)


def test_images_of_one_grey_give_a_normalisation_that_a_model_may_keep(tmp_path):
    """A review: a std of 0.001 from uniform images went into the model file, which save_model now refuses (and
    load_model always did): a run on such images crashed on its first save."""
    from skinseg.errors import MIN_NORMALISATION_STD

    raw = tmp_path / "raw"
    for i in range(12):
        (raw / "images").mkdir(parents=True, exist_ok=True)
        (raw / "masks").mkdir(exist_ok=True)
        Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(raw / "images" / f"g{i}.png")
        mask = np.zeros((32, 32), np.uint8)
        mask[8:24, 8:24] = 255
        Image.fromarray(mask).save(raw / "masks" / f"g{i}_segmentation.png")
    prepare_dataset(PrepareConfig(data=raw, out=tmp_path / "p", size=16))
    std = json.loads((tmp_path / "p" / MANIFEST).read_text())["normalisation"]["std"]
    assert std == [MIN_NORMALISATION_STD] * 3
