"""Issue #35: prepare's short way for the usual pair (skinseg.data.decoding) makes, byte for byte, the cache that
the general way (the functions of skinseg.data.images) makes."""

from pathlib import Path

import numpy as np
from PIL import Image

from skinseg.data.config import PrepareConfig
from skinseg.data.dataset import open_prepared
from skinseg.data.prepare import prepare_dataset


def run(data, out, **settings):
    return prepare_dataset(PrepareConfig(data=data, out=out, workers=1, **settings))


def _usual_and_unusual_pairs(folder: Path) -> None:
    """JPEG images with 8-bit grey masks of every kind that prepare tells apart, and pairs of other formats."""
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    ramp = np.linspace(0, 255, 64 * 64 * 3).reshape(64, 64, 3)
    lesion = np.zeros((64, 64), np.uint8)
    lesion[16:48, 12:40] = 255
    three = lesion.copy()
    three[:4, :4] = 128
    masks = {
        "a_255": lesion,
        "b_zero_one": lesion // 255,  # scaled to 0/255 first
        "c_all_one": np.ones((64, 64), np.uint8),
        "d_two_levels": np.where(lesion > 0, 200, 30).astype(np.uint8),
        "e_none_over_128": np.where(lesion > 0, 100, 0).astype(np.uint8),
        "f_three_levels": three,
        "g_empty": np.zeros((64, 64), np.uint8),
        "h_other_size": lesion[:, :60],
        "i_all_255": np.full((64, 64), 255, np.uint8),
    }
    for name, mask in masks.items():
        Image.fromarray((ramp + 7 * len(name)).clip(0, 255).astype(np.uint8)).save(folder / "images" / f"{name}.jpg")
        Image.fromarray(mask).save(folder / "masks" / f"{name}.png")
    odd = np.zeros((50, 70), np.uint8)
    odd[10:40, 20:60] = 255
    wide = np.linspace(0, 255, 50 * 70 * 3).reshape(50, 70, 3).astype(np.uint8)
    Image.fromarray(wide).save(folder / "images" / "j_resized.jpg")
    Image.fromarray(odd).save(folder / "masks" / "j_resized.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # turned: the general way
    Image.fromarray(wide).save(folder / "images" / "k_turned.jpg", exif=exif)
    Image.fromarray(odd.T.copy()).save(folder / "masks" / "k_turned.png")
    Image.fromarray(ramp[..., 0].astype(np.uint8)).save(folder / "images" / "l_grey.jpg")
    Image.fromarray(lesion).convert("RGB").save(folder / "masks" / "l_grey.png")  # an RGB mask: the general way
    Image.fromarray(ramp.astype(np.uint8)).save(folder / "images" / "m_png.png")
    Image.fromarray(lesion).save(folder / "masks" / "m_png.png")


def test_the_usual_pairs_short_way_gives_what_the_general_way_gives(tmp_path, monkeypatch):
    """Issue #35: a JPEG image with an 8-bit grey mask is decoded without the copies of the general way (the
    functions of skinseg.data.images); the arrays, the manifest and the reasons for skipping are the same."""
    from skinseg.data import decoding

    _usual_and_unusual_pairs(tmp_path / "data")
    quick = decoding._quick
    taken = []
    monkeypatch.setattr(decoding, "_quick", lambda *args: taken.append(quick(*args)) or taken[-1])
    short = run(tmp_path / "data", tmp_path / "short", size=32, mask_suffix="")
    monkeypatch.setattr(decoding, "_quick", lambda *args: None)
    general = run(tmp_path / "data", tmp_path / "general", size=32, mask_suffix="")
    assert sum(result is not None for result in taken) == 9  # the JPEGs with 8-bit grey masks of two levels or one
    assert short.count == general.count == 9 and short.skipped == general.skipped and len(short.skipped) == 4
    a, b = open_prepared(tmp_path / "short"), open_prepared(tmp_path / "general")
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    assert a.manifest["items"] == b.manifest["items"] and a.manifest["normalisation"] == b.manifest["normalisation"]


def test_decoding_processes_give_what_the_general_way_gives_in_one(tmp_path, monkeypatch):
    """Issue #35: JPEG pairs decoded the short way by two worker processes (their memory kept between pairs, rows
    written with pwrite) make the cache that the general way makes in this process."""
    from skinseg.data import decoding
    from skinseg.data.synthetic import write_synthetic_dataset

    write_synthetic_dataset(tmp_path / "data", count=40, size=48, seed=3, image_format="jpg")
    prepare_dataset(PrepareConfig(data=tmp_path / "data", out=tmp_path / "pool", size=24, workers=2))
    monkeypatch.setattr(decoding, "_quick", lambda *args: None)
    run(tmp_path / "data", tmp_path / "general", size=24)
    a, b = open_prepared(tmp_path / "pool"), open_prepared(tmp_path / "general")
    assert a.images.shape == (40, 24, 24, 3) and a.masks.any()
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    assert a.manifest["items"] == b.manifest["items"] and a.manifest["normalisation"] == b.manifest["normalisation"]
