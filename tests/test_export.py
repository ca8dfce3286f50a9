import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from skinseg.errors import SkinsegError  # noqa: E402
from skinseg.export import OnnxRunner, export_onnx, read_onnx_info  # noqa: E402
from skinseg.inference import Segmenter  # noqa: E402
from skinseg.weights import load_model  # noqa: E402


@pytest.fixture(scope="module")
def onnx_path(tiny_model_path, tmp_path_factory):
    return export_onnx(tiny_model_path, tmp_path_factory.mktemp("onnx") / "tiny.onnx")


@pytest.mark.parametrize("shape", [(1, 3, 48, 48), (3, 3, 37, 61)])
def test_onnx_and_torch_probabilities_agree(onnx_path, tiny_model_path, shape):
    model, _ = load_model(tiny_model_path)
    x = torch.randn(*shape)
    with torch.no_grad():
        expected = torch.sigmoid(model(x))
    got = torch.sigmoid(OnnxRunner(onnx_path)(x))
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-4


def test_onnx_file_carries_the_metadata(onnx_path, tiny_model_path):
    _, info = load_model(tiny_model_path)
    assert read_onnx_info(onnx_path) == info


def test_segment_backend_onnx_gives_the_same_masks(onnx_path, tiny_model_path):
    from skinseg.data.synthetic import synthetic_pair

    images = [synthetic_pair((45, 70), seed)[0] for seed in range(3)]
    torch_probs = Segmenter(tiny_model_path, "cpu").probabilities(images)
    onnx_probs = Segmenter(onnx_path, backend="onnx").probabilities(images)
    for a, b in zip(torch_probs, onnx_probs):
        assert np.abs(a - b).max() <= 1e-4


def test_onnx_file_without_metadata_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(SkinsegError, match="without skinseg metadata"):
        read_onnx_info(path)
