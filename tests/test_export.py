import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from skinseg.cli import app
from skinseg.errors import SkinsegError
from skinseg.inference.onnx import METADATA_KEY, OnnxRunner, read_onnx_info
from skinseg.inference.segmenter import Segmenter
from skinseg.models.weights import info_from_json, load_model

# The export is the slow part (tracing with dynamic batch, height and width: ~15 s at depth 2, ~22 s at depth 3):
# this module makes it once, and conftest.ONE_WORKER_MODULES keeps the module on one pytest-xdist worker so that it
# is not made once per worker. The model is a small untrained one made here (no wait for the trained fixture run);
# depth 2 still has every kind of layer the exporter meets (convolutions, instance norm, nearest upsampling, padding
# to a multiple, concatenation, the crop back to the input size).


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A depth-2 model with metadata that differs from every default, so that the round trip below means something."""
    from skinseg.models.config import ModelConfig
    from skinseg.models.improved_unet import ImprovedUNet
    from skinseg.models.weights import ModelInfo, save_model

    config = ModelConfig(base_filters=4, depth=2)
    torch.manual_seed(0)
    info = ModelInfo(
        config=config,
        input_size=48,
        mean=(120.0, 100.0, 90.0),
        std=(50.0, 45.0, 40.0),
        threshold=0.4,
        training={"epochs": 4, "best_epoch": 3, "val_dice": 0.8},
    )
    return save_model(ImprovedUNet(config), tmp_path_factory.mktemp("model") / "tiny.safetensors", info)


@pytest.fixture(scope="module", autouse=True)
def onnx_extra():
    """Without the onnx extra the module is skipped. Imported here rather than at collection, where every
    pytest-xdist worker would spend a second on onnxscript."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")


def export_command(*args):
    return CliRunner().invoke(app, ["export", *map(str, args)], catch_exceptions=False)


@pytest.fixture(scope="module")
def exported(model_path, tmp_path_factory):
    """`skinseg export` of the tiny model, run once: (the command's result, the .onnx path)."""
    target = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    return export_command(model_path, "-o", target), target


@pytest.fixture(scope="module")
def onnx_path(exported):
    result, target = exported
    assert result.exit_code == 0, result.output
    return target


def test_export_command_writes_a_valid_onnx_file_with_the_metadata(exported, model_path):
    import onnx
    import onnxruntime as ort

    result, target = exported
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"wrote {target}"
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary file left beside it
    graph = onnx.load(str(target))
    onnx.checker.check_model(graph)
    _, info = load_model(model_path)
    metadata = {p.key: p.value for p in graph.metadata_props}
    assert info_from_json(metadata[METADATA_KEY], target) == info
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    (image,) = session.get_inputs()
    assert image.name == "image" and image.shape == ["batch", 3, "height", "width"]  # dynamic batch and size
    assert [o.name for o in session.get_outputs()] == ["logits"]


def test_export_command_refuses_another_format(model_path, tmp_path):
    result = export_command(model_path, "-o", tmp_path / "m.tflite", "--format", "tflite")
    assert result.exit_code == 1 and "unknown export format 'tflite'" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("shape", [(1, 3, 48, 48), (3, 3, 37, 61)])
def test_onnx_and_torch_probabilities_agree(onnx_path, model_path, shape):
    model, _ = load_model(model_path)
    x = torch.randn(*shape)
    with torch.no_grad():
        expected = torch.sigmoid(model(x))
    got = torch.sigmoid(OnnxRunner(onnx_path)(x))
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-4


def test_onnx_file_carries_the_metadata(onnx_path, model_path):
    _, info = load_model(model_path)
    assert read_onnx_info(onnx_path) == info


def test_segment_backend_onnx_gives_the_same_masks(onnx_path, model_path):
    from skinseg.data.synthetic import synthetic_pair

    images = [synthetic_pair((45, 70), seed)[0] for seed in range(3)]
    torch_probs = Segmenter(model_path, device="cpu", precision="fp32").probabilities(images)
    onnx_probs = Segmenter(onnx_path, backend="onnx").probabilities(images)
    for a, b in zip(torch_probs, onnx_probs, strict=False):
        assert np.abs(a - b).max() <= 1e-4


def test_onnx_agrees_with_torch_at_the_precision_auto_picks(onnx_path, model_path, cpu_kind):
    """ONNX Runtime computes in fp32; the torch backend in whatever `auto` picks on this kind of CPU."""
    from skinseg.data.synthetic import synthetic_pair

    images = [synthetic_pair((45, 70), seed)[0] for seed in range(3)]
    segmenter = Segmenter(model_path, device="cpu")
    assert segmenter.precision.name == ("fp32" if cpu_kind == "emulated" else "bf16")
    tolerance = 1e-4 if segmenter.precision.name == "fp32" else 0.02  # bf16 keeps 8 bits of mantissa
    onnx = Segmenter(onnx_path, backend="onnx")
    for a, b in zip(segmenter.probabilities(images), onnx.probabilities(images), strict=True):
        assert np.abs(a - b).max() <= tolerance


def test_settings_onnx_runtime_cannot_use_are_said_not_dropped(onnx_path):
    """Issue #21: `--backend onnx --device cuda` ran on the CPU without a word."""
    assert Segmenter(onnx_path, backend="onnx").notes == []
    said = Segmenter(onnx_path, backend="onnx", device="cuda", precision="bf16").notes
    assert any("`device=cuda` is ignored with `backend=onnx`" in note for note in said)
    assert any("`precision=bf16` is ignored with `backend=onnx`" in note for note in said)


def test_onnx_file_without_metadata_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(SkinsegError, match="without skinseg metadata"):
        read_onnx_info(path)


def test_the_exporter_says_nothing_of_torchvision():
    """Issue #21: every export printed four "torchvision is not installed" warnings from torch.onnx's logger."""
    import logging

    from skinseg.inference.onnx import quiet_exporter

    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    assert registration.isEnabledFor(logging.WARNING)
    with quiet_exporter():
        assert not registration.isEnabledFor(logging.WARNING) and registration.isEnabledFor(logging.ERROR)
    assert registration.isEnabledFor(logging.WARNING)


def _identity_onnx(path, input_shape, output_shape, nodes=None):
    """A graph with skinseg's metadata that gives back its input (three channels out where the metadata says one),
    or computes `nodes` from "image" to "logits"."""
    import onnx
    from onnx import TensorProto, helper

    from skinseg.models.weights import ModelInfo

    graph = helper.make_graph(
        nodes or [helper.make_node("Identity", ["image"], ["logits"])],
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, output_shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, ModelInfo(input_size=32).to_json()
    onnx.save(model, str(path))
    return path


def test_an_onnx_graph_whose_outputs_differ_from_its_metadata_is_refused(tmp_path):
    """Issue #33, case 4: a graph with skinseg's metadata whose output is (N, 3, H, W) was accepted by segment
    and measure, and masks were written. Checked against the metadata when loaded where the dimensions are numbers,
    and on the first batch where they are named."""
    numbered = _identity_onnx(tmp_path / "numbered.onnx", ["N", 3, "H", "W"], ["N", 3, "H", "W"])
    with pytest.raises(SkinsegError, match=r"output has the shape \['N', 3, 'H', 'W'\]; its metadata says \(N, 1,"):
        OnnxRunner(numbered)
    named = _identity_onnx(tmp_path / "named.onnx", ["N", "C", "H", "W"], ["N", "C", "H", "W"])
    with pytest.raises(SkinsegError, match=r"gave an output of shape \(1, 3, 32, 32\) .* says \(1, 1, 32, 32\)"):
        OnnxRunner(named)(torch.zeros(1, 3, 32, 32))
    image = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(image)
    for model in (numbered, named):
        summary = ["--summary", str(tmp_path / "s.csv")]
        result = CliRunner().invoke(
            app,
            ["segment", str(image), "-o", str(tmp_path / "m"), "--model", str(model), "--backend", "onnx", *summary],
        )
        assert result.exit_code == 1 and "ONNX graph" in result.output and result.output.count("\n") <= 3
        assert not (tmp_path / "m").exists() and not (tmp_path / "s.csv").exists()  # no summary of a header alone


def test_an_onnx_model_that_gives_nan_is_refused_not_read_as_no_lesion(tmp_path):
    """Found by the fresh-eyes trial: an ONNX graph whose output is NaN gave empty masks, exit 0."""
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Constant", [], ["axes"], value=helper.make_tensor("axes", TensorProto.INT64, [1], [1])),
        helper.make_node("ReduceMean", ["image", "axes"], ["mean"], keepdims=1),
        helper.make_node("Sub", ["mean", "mean"], ["zero"]),
        helper.make_node("Div", ["zero", "zero"], ["logits"]),
    ]
    model = _identity_onnx(tmp_path / "nan.onnx", ["N", 3, "H", "W"], ["N", 1, "H", "W"], nodes)
    segmenter = Segmenter(model, backend="onnx")
    with pytest.raises(SkinsegError, match=r"nan.onnx: the model gave probabilities that are NaN or infinite"):
        segmenter.probabilities_of([np.zeros((32, 32, 3), np.uint8)], [(40, 40)])
