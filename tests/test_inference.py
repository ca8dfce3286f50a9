import numpy as np
import pytest
from PIL import Image

from skinseg.config import SegmentConfig
from skinseg.data.synthetic import synthetic_pair
from skinseg.errors import SkinsegError
from skinseg.inference import Segmenter, collect_inputs, output_paths, segment_paths


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
    result = segment_paths(SegmentConfig(inputs=(tmp_path / "in",), output=tmp_path / "out", model=tiny_model_path,
                                         device="cpu"))
    assert sorted(p.name for p in result.written) == ["a_segmentation.png", "b_segmentation.png"]
    for source in sources:
        mask = Image.open(tmp_path / "out" / f"{source.stem}_segmentation.png")
        assert mask.mode == "L" and mask.size == Image.open(source).size
        assert set(np.unique(np.asarray(mask))) <= {0, 255}


def test_single_output_file_and_overlay(tiny_model_path, tmp_path):
    source = _image(tmp_path / "one.png")
    segment_paths(SegmentConfig(inputs=(source,), output=tmp_path / "mask.png", model=tiny_model_path,
                                device="cpu", overlay=True))
    assert Image.open(tmp_path / "mask.png").size == (40, 30)
    assert Image.open(tmp_path / "one_overlay.png").size == (40, 30)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_other_image_modes_are_converted(tiny_model_path, tmp_path, mode):
    suffix = ".jpg" if mode == "CMYK" else ".png"
    source = _image(tmp_path / f"m{suffix}", mode=mode)
    result = segment_paths(SegmentConfig(inputs=(source,), output=tmp_path / "o", model=tiny_model_path,
                                         device="cpu"))
    assert len(result.written) == 1 and not result.failed


def test_unreadable_files_are_reported_and_the_rest_go_on(tiny_model_path, tmp_path):
    _image(tmp_path / "in" / "good.png")
    (tmp_path / "in" / "bad.jpg").write_text("not an image")
    result = segment_paths(SegmentConfig(inputs=(tmp_path / "in",), output=tmp_path / "out", model=tiny_model_path,
                                         device="cpu"))
    assert [p.name for p in result.written] == ["good_segmentation.png"]
    assert result.failed[0][0].name == "bad.jpg" and "not an image" in result.failed[0][1]
    assert not (tmp_path / "out" / "bad_segmentation.png").exists()


def test_existing_outputs_are_kept_unless_overwrite(tiny_model_path, tmp_path):
    source = _image(tmp_path / "a.png")
    target = tmp_path / "a_mask.png"
    target.write_bytes(b"keep me")
    config = dict(inputs=(source,), output=target, model=tiny_model_path, device="cpu")
    result = segment_paths(SegmentConfig(**config))
    assert result.failed and target.read_bytes() == b"keep me"
    segment_paths(SegmentConfig(**config, overwrite=True))
    assert Image.open(target).size == (40, 30)


def test_input_is_never_overwritten(tiny_model_path, tmp_path):
    source = _image(tmp_path / "a.png")
    before = source.read_bytes()
    with pytest.raises(SkinsegError, match="refusing to overwrite an input"):
        segment_paths(SegmentConfig(inputs=(source,), output=source, model=tiny_model_path, device="cpu",
                                    overwrite=True))
    assert source.read_bytes() == before


def test_inputs_from_globs_and_missing_paths(tmp_path):
    _image(tmp_path / "x1.png")
    _image(tmp_path / "x2.png")
    assert [p.name for p in collect_inputs([tmp_path / "x*.png"])] == ["x1.png", "x2.png"]
    with pytest.raises(SkinsegError, match="input not found"):
        collect_inputs([tmp_path / "missing.png"])
    with pytest.raises(SkinsegError, match="no images found"):
        collect_inputs([tmp_path / "*.tif"])


def test_output_paths_for_many_inputs_go_to_a_folder(tmp_path):
    targets = output_paths([tmp_path / "a.jpg", tmp_path / "b.png"], tmp_path / "out")
    assert [t.name for t in targets] == ["a_segmentation.png", "b_segmentation.png"]
    with pytest.raises(SkinsegError, match="same mask"):
        output_paths([tmp_path / "a.jpg", tmp_path / "sub" / "a.png"], tmp_path / "out")


def test_probabilities_are_in_range_and_sized(tiny_model_path):
    segmenter = Segmenter(tiny_model_path, "cpu")
    image, _ = synthetic_pair((33, 57), 0)
    (prob,) = segmenter.probabilities([image])
    assert prob.shape == (33, 57) and 0 <= prob.min() and prob.max() <= 1
    with pytest.raises(SkinsegError, match="threshold"):
        Segmenter(tiny_model_path, "cpu", threshold=1.5)
