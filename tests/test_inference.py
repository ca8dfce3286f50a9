import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from skinseg.data.synthetic import synthetic_pair, write_synthetic_dataset
from skinseg.errors import SkinsegError
from skinseg.inference.config import SegmentConfig
from skinseg.inference.model_run import ModelRun
from skinseg.inference.segment import segment_paths
from skinseg.inference.segmenter import Segmenter


def _image(path, size=(40, 30), mode="RGB"):
    image, _ = synthetic_pair((size[1], size[0]), 3)
    picture = Image.fromarray(image)
    if mode != "RGB":
        picture = picture.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
    return path


def test_masks_have_each_input_size_and_are_binary(tiny_model_path, tmp_path):
    sources = [_image(tmp_path / "in" / "a.png", (40, 30)), _image(tmp_path / "in" / "b.jpg", (97, 61))]
    result = segment_paths(
        SegmentConfig(
            inputs=(tmp_path / "in",), output=tmp_path / "out", run=ModelRun(model=tiny_model_path, device="cpu")
        )
    )
    assert sorted(p.name for p in result.written) == ["a_segmentation.png", "b_segmentation.png"]
    for source in sources:
        mask = Image.open(tmp_path / "out" / f"{source.stem}_segmentation.png")
        assert mask.mode == "L" and mask.size == Image.open(source).size
        assert set(np.unique(np.asarray(mask))) <= {0, 255}


def test_single_output_file_and_overlay(tiny_model_path, tmp_path):
    source = _image(tmp_path / "one.png")
    segment_paths(
        SegmentConfig(
            inputs=(source,),
            output=tmp_path / "mask.png",
            overlay=True,
            run=ModelRun(model=tiny_model_path, device="cpu"),
        )
    )
    assert Image.open(tmp_path / "mask.png").size == (40, 30)
    assert Image.open(tmp_path / "one_overlay.png").size == (40, 30)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_other_image_modes_are_converted(tiny_model_path, tmp_path, mode):
    suffix = ".jpg" if mode == "CMYK" else ".png"
    source = _image(tmp_path / f"m{suffix}", mode=mode)
    result = segment_paths(
        SegmentConfig(inputs=(source,), output=tmp_path / "o", run=ModelRun(model=tiny_model_path, device="cpu"))
    )
    assert len(result.written) == 1 and not result.failed


def test_unreadable_files_are_reported_and_the_rest_go_on(tiny_model_path, tmp_path):
    _image(tmp_path / "in" / "good.png")
    (tmp_path / "in" / "bad.jpg").write_text("not an image")
    result = segment_paths(
        SegmentConfig(
            inputs=(tmp_path / "in",), output=tmp_path / "out", run=ModelRun(model=tiny_model_path, device="cpu")
        )
    )
    assert [p.name for p in result.written] == ["good_segmentation.png"]
    assert result.failed[0][0].name == "bad.jpg" and "not an image" in result.failed[0][1]
    assert not (tmp_path / "out" / "bad_segmentation.png").exists()


def test_existing_outputs_are_kept_unless_overwrite(tiny_model_path, tmp_path):
    source = _image(tmp_path / "a.png")
    target = tmp_path / "a_mask.png"
    target.write_bytes(b"keep me")
    config = dict(inputs=(source,), output=target, run=ModelRun(model=tiny_model_path, device="cpu"))
    result = segment_paths(SegmentConfig(**config))
    assert result.failed and target.read_bytes() == b"keep me"
    segment_paths(SegmentConfig(**config, overwrite=True))
    assert Image.open(target).size == (40, 30)


def test_input_is_never_overwritten(tiny_model_path, tmp_path):
    source = _image(tmp_path / "a.png")
    before = source.read_bytes()
    with pytest.raises(SkinsegError, match="an input of this command: refusing to write over it"):
        segment_paths(
            SegmentConfig(
                inputs=(source,), output=source, overwrite=True, run=ModelRun(model=tiny_model_path, device="cpu")
            )
        )
    assert source.read_bytes() == before


def test_probabilities_are_in_range_and_sized(tiny_model_path):
    segmenter = Segmenter(tiny_model_path, device="cpu")
    image, _ = synthetic_pair((33, 57), 0)
    (prob,) = segmenter.probabilities([image])
    assert prob.shape == (33, 57) and prob.min() >= 0 and prob.max() <= 1
    with pytest.raises(SkinsegError, match="threshold"):
        Segmenter(tiny_model_path, device="cpu", threshold=1.5)


def test_probabilities_summary_tta_and_postprocess(tiny_model_path, tmp_path):
    import csv
    import json

    _image(tmp_path / "in" / "a.png", (40, 30))
    _image(tmp_path / "in" / "b.png", (20, 50))
    config = SegmentConfig(
        inputs=(tmp_path / "in",),
        output=tmp_path / "out",
        probabilities=True,
        summary=tmp_path / "s.csv",
        run=ModelRun(model=tiny_model_path, device="cpu", tta=True, postprocess=True),
    )
    segment_paths(config)
    prob = Image.open(tmp_path / "out" / "a_probability.png")
    assert prob.mode == "L" and prob.size == (40, 30)
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert [r["image"].endswith(n) for r, n in zip(rows, ("a.png", "b.png"), strict=False)] == [True, True]
    for row in rows:
        mask = np.asarray(Image.open(row["mask"])) > 0
        assert int(row["lesion_pixels"]) == mask.sum()
        assert float(row["lesion_fraction"]) == pytest.approx(mask.mean(), abs=1e-6)
        if mask.any():
            ys, xs = np.nonzero(mask)
            assert (int(row["bbox_x0"]), int(row["bbox_y1"])) == (xs.min(), ys.max() + 1)
    segment_paths(
        SegmentConfig(
            inputs=(tmp_path / "in",),
            output=tmp_path / "out2",
            summary=tmp_path / "s.json",
            run=ModelRun(model=tiny_model_path, device="cpu"),
        )
    )
    assert len(json.loads((tmp_path / "s.json").read_text())) == 2


COMPILED_LABEL_CHECK = """
import sys
import numpy as np
from skinseg.inference import postprocess
assert "scipy.ndimage" not in sys.modules
assert postprocess.compiled_label() is not None, "scipy's labelling file was not found"
rng = np.random.default_rng(4)
cases = []
for shape, density in (((60, 80), 0.5), ((33, 17), 0.2), ((1, 9), 0.5), ((128, 128), 0.7)):
    mask = rng.random(shape) < density
    for structure in (postprocess.EIGHT_CONNECTED, postprocess.FOUR_CONNECTED):
        cases.append((mask, structure, postprocess.label(mask, structure)))
from scipy import ndimage  # later, as --measure or a boundary offset imports it: the same module, working
for mask, structure, (labels, count) in cases:
    expected, expected_count = ndimage.label(mask, structure=structure)
    assert count == expected_count and np.array_equal(labels, expected)
assert postprocess.compiled_label() is not None and "_ni_label" in repr(ndimage._measurements._ni_label)
print("same")
"""


def test_the_compiled_labelling_is_scipys_label():
    """In a fresh process, as a cold segment loads it: scipy.ndimage not imported, then imported after."""
    done = subprocess.run([sys.executable, "-c", COMPILED_LABEL_CHECK], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "same", done.stderr


def test_the_labelling_falls_back_to_scipys_public_label(monkeypatch):
    from scipy import ndimage

    from skinseg.inference import postprocess

    mask = np.random.default_rng(5).random((40, 50)) < 0.5
    expected = ndimage.label(mask, structure=postprocess.EIGHT_CONNECTED)[0]
    postprocess._loaded_label.cache_clear()  # whatever an earlier test loaded
    assert postprocess.compiled_label() is None  # scipy.ndimage is imported here: its module is not loaded twice

    def another_signature(*arguments):
        raise TypeError("_label() takes 2 arguments")

    for compiled in (None, another_signature):
        monkeypatch.setattr(postprocess, "compiled_label", lambda compiled=compiled: compiled)
        assert np.array_equal(postprocess.label(mask, postprocess.EIGHT_CONNECTED)[0], expected)


def test_postprocess_keeps_the_largest_component_and_fills_holes():
    from skinseg.inference.postprocess import postprocess_mask

    mask = np.zeros((20, 20), bool)
    mask[2:12, 2:12] = True
    mask[5:7, 5:7] = False  # a hole
    mask[15:18, 15:18] = True  # a smaller blob
    cleaned = postprocess_mask(mask)
    assert cleaned[5:7, 5:7].all() and not cleaned[15:18, 15:18].any() and cleaned[2:12, 2:12].all()
    assert not postprocess_mask(np.zeros((4, 4), bool)).any()


def test_tta_is_flip_equivariant(tiny_model_path):
    image, _ = synthetic_pair(32, 5)
    plain = Segmenter(tiny_model_path, device="cpu", precision="fp32")
    tta = Segmenter(tiny_model_path, device="cpu", tta=True, precision="fp32")
    mirrored = np.ascontiguousarray(image[:, ::-1])
    assert np.allclose(tta.probabilities([mirrored])[0][:, ::-1], tta.probabilities([image])[0], atol=1e-5)
    assert not np.allclose(plain.probabilities([mirrored])[0][:, ::-1], plain.probabilities([image])[0], atol=1e-5)


def test_torchrun_ranks_split_the_inputs(tiny_model_path, tmp_path, monkeypatch):
    for i in range(5):
        _image(tmp_path / "in" / f"i{i}.png")
    written = []
    for rank in (0, 1):
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", str(rank))
        result = segment_paths(
            SegmentConfig(
                inputs=(tmp_path / "in",),
                output=tmp_path / "out",
                summary=tmp_path / "s.csv",
                run=ModelRun(model=tiny_model_path, device="cpu"),
            )
        )
        written.append(sorted(p.name for p in result.written))
    assert written == [
        ["i0_segmentation.png", "i2_segmentation.png", "i4_segmentation.png"],
        ["i1_segmentation.png", "i3_segmentation.png"],
    ]
    assert (tmp_path / "s.rank0.csv").is_file() and (tmp_path / "s.rank1.csv").is_file()


def test_a_file_reaches_the_model_as_training_saw_it_and_an_array_nearly_so(tiny_model_path, tmp_path):
    """One preprocessing for training and inference: a file's model input is the prepared cache's array, bit for
    bit (JPEG decoded at a reduced scale, then resize_rgb); an array given to `probabilities` (no file, so no
    reduced-scale decoding) differs from it by at most a few grey levels."""
    from skinseg.data.config import PrepareConfig
    from skinseg.data.dataset import open_prepared
    from skinseg.data.images import load_rgb, resize_rgb
    from skinseg.data.prepare import prepare_dataset

    write_synthetic_dataset(tmp_path / "raw", count=4, size=400, seed=2, image_format="jpg")
    prepared = open_prepared(prepare_dataset(PrepareConfig(tmp_path / "raw", tmp_path / "cache", size=48)).out_dir)
    segmenter = Segmenter(tiny_model_path, device="cpu", precision="fp32")
    assert segmenter.info.input_size == 48
    for row, item in enumerate(prepared.manifest["items"]):
        model_input, shape = segmenter.read(item["image"])
        assert shape == (400, 400) and np.array_equal(model_input, prepared.images[row])
        from_array = resize_rgb(load_rgb(item["image"]), 48).astype(int)
        difference = np.abs(from_array - model_input)
        assert difference.mean() <= 1.0 and difference.max() <= 24
    path = prepared.manifest["items"][0]["image"]
    model_input, shape = segmenter.read(path)
    by_file = segmenter.probabilities_of([model_input], [shape])[0]
    assert np.abs(segmenter.probabilities([load_rgb(path)])[0] - by_file).max() <= 0.05


@pytest.mark.parametrize("name", ["rep.png", "rep.jpg", "report"])
def test_segment_report_must_be_named_html(tiny_model_path, tmp_path, name):
    """Issue #20/#21: `segment --report rep.png` wrote HTML into a .png."""
    _image(tmp_path / "in" / "a.png")
    config = SegmentConfig(
        inputs=(tmp_path / "in",),
        output=tmp_path / "out",
        report=tmp_path / name,
        run=ModelRun(model=tiny_model_path, device="cpu"),
    )
    with pytest.raises(SkinsegError, match=r"`report` writes HTML: name the file \.html"):
        segment_paths(config)
    assert not (tmp_path / "out").exists() and not (tmp_path / name).exists()


def test_arrays_other_than_uint8_rgb_are_refused_not_converted(tiny_model_path):
    """A Python trial: a float image (0-1) or a 16-bit one was converted to uint8 on the way and segmented wrong,
    without a word; grey, RGBA and channels-first arrays failed inside torch or Pillow."""
    from skinseg.errors import ConfigError

    segmenter = Segmenter(tiny_model_path, device="cpu")
    image, _ = synthetic_pair(48, 0)
    assert segmenter.masks([image])[0].shape == (48, 48)
    wrong = {
        "float": image.astype(np.float32) / 255,
        "16-bit": image.astype(np.uint16) * 256,
        "grey": image[..., 0],
        "RGBA": np.dstack([image, image[..., :1]]),
        "channels first": np.ascontiguousarray(image.transpose(2, 0, 1)),
        "empty": image[:0],
    }
    for name, array in wrong.items():
        with pytest.raises(ConfigError, match=r"`image` must be a uint8 RGB array \(height, width, 3\)") as refused:
            segmenter.masks([array])
        assert str(array.shape) in str(refused.value), name
    with pytest.raises(ConfigError, match=r"`images` is a list of images: give one image as \[image\]"):
        segmenter.masks(image)
    stacked = segmenter.masks(np.stack([image, image]))  # a stack (n, h, w, 3) is n images, as before (a review)
    assert len(stacked) == 2 and np.array_equal(stacked[0], segmenter.masks([image])[0])


def test_configs_take_paths_given_as_text(tiny_model_path, tmp_path):
    """A Python trial: `SegmentConfig(inputs=("a.png",), output="o")` failed with an AttributeError."""
    image, _ = synthetic_pair(48, 0)
    Image.fromarray(image).save(tmp_path / "a.png")
    config = SegmentConfig(
        inputs=(str(tmp_path / "a.png"),), output=str(tmp_path / "o"), run=ModelRun(model=str(tiny_model_path))
    )
    assert config.inputs == (tmp_path / "a.png",) and config.output == tmp_path / "o"
    assert config.run.model == tiny_model_path
    assert SegmentConfig(inputs=str(tmp_path), output=tmp_path / "o").inputs == (tmp_path,)  # one folder, as text
    assert ModelRun(model="").model == ""  # left for its own check: Path("") would be the current folder
    assert len(segment_paths(config).written) == 1
