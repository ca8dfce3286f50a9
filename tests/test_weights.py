import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from skinseg.errors import SkinsegError
from skinseg.models.architectures import ARCHITECTURES
from skinseg.models.config import ModelConfig
from skinseg.models.improved_unet import ImprovedUNet
from skinseg.models.weights import ModelInfo, bundled_model_path, load_model, read_info, save_model

CONFIG = ModelConfig(base_filters=4, depth=3, segmentation_levels=2)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = ImprovedUNet(CONFIG).eval()
    info = ModelInfo(
        config=CONFIG, input_size=64, mean=(1.0, 2.0, 3.0), std=(4.0, 5.0, 6.0), threshold=0.4, training={"epochs": 3}
    )
    path = save_model(model, tmp_path / "m.safetensors", info)
    return model, info, path


def test_round_trip_gives_identical_outputs(saved):
    model, info, path = saved
    loaded, loaded_info = load_model(path)
    x = torch.randn(2, 3, 40, 40)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded_info == info
    assert not loaded.training


def test_fp16_file_is_smaller_and_close(saved, tmp_path):
    model, info, path = saved
    half = save_model(model, tmp_path / "half.safetensors", info, dtype=torch.float16)
    assert half.stat().st_size < path.stat().st_size * 0.6
    loaded, _ = load_model(half)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(torch.sigmoid(model(x)), torch.sigmoid(loaded(x)), atol=2e-2)


def _rewrite_metadata(path, target, change):
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 (safe_open is not iterable)
        meta = handle.metadata()
    save_file(tensors, str(target), metadata=change(meta))
    return target


def test_other_architecture_is_refused(saved, tmp_path):
    _, _, path = saved
    other = _rewrite_metadata(
        path,
        tmp_path / "o.safetensors",
        lambda m: {"skinseg": json.dumps({**json.loads(m["skinseg"]), "architecture": "ResNet50"})},
    )
    with pytest.raises(SkinsegError, match="architecture is 'ResNet50'; this skinseg knows improved_unet, unet"):
        load_model(other)


def test_metadata_that_is_not_json_is_refused(saved, tmp_path):
    _, _, path = saved
    bad = _rewrite_metadata(path, tmp_path / "b.safetensors", lambda m: {"skinseg": "{not json"})
    with pytest.raises(SkinsegError, match="not valid JSON"):
        read_info(bad)


def test_wrong_tensor_shapes_are_refused(saved, tmp_path):
    _, _, path = saved
    bigger = _rewrite_metadata(
        path,
        tmp_path / "w.safetensors",
        lambda m: {
            "skinseg": json.dumps({**json.loads(m["skinseg"]), "config": {**CONFIG.to_dict(), "base_filters": 8}})
        },
    )
    with pytest.raises(SkinsegError, match="do not match the architecture"):
        load_model(bigger)


def test_truncated_file_is_refused(saved, tmp_path):
    _, _, path = saved
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(SkinsegError, match=r"cut\.safetensors"):
        load_model(cut)


def test_plain_safetensors_without_metadata_is_refused(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(path))
    with pytest.raises(SkinsegError, match="not a skinseg model"):
        load_model(path)


def test_pickle_renamed_is_refused_without_unpickling(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(SkinsegError, match=r"evil\.safetensors"):
        load_model(path)


@pytest.mark.parametrize("content", [b"", b"hello world, not weights", b"\x00" * 64])
def test_garbage_files_are_refused(tmp_path, content):
    path = tmp_path / "g.safetensors"
    path.write_bytes(content)
    with pytest.raises(SkinsegError):
        load_model(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SkinsegError, match="model file not found"):
        load_model(tmp_path / "nope.safetensors")


def test_bundled_model_loads_and_says_what_it_is():
    path = bundled_model_path()
    if not path.is_file():
        pytest.skip("no bundled model in this checkout")
    model, info = load_model(path)
    assert info.config.depth == 5 and info.input_size >= 64
    assert info.training["epochs"] > 0 and 0.5 < info.training["val_dice"] <= 1
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_every_registered_architecture_round_trips_through_a_model_file(architecture, tmp_path):
    from skinseg.models.architectures import ARCHITECTURES, create_model

    config = ModelConfig(architecture=architecture, base_filters=4, depth=3)
    torch.manual_seed(1)
    model = create_model(config).eval()
    path = save_model(model, tmp_path / f"{architecture}.safetensors", ModelInfo(config=config, input_size=32))
    loaded, info = load_model(path)
    assert type(loaded) is ARCHITECTURES[architecture] and info.config == config
    assert json.loads(read_info_raw(path))["architecture"] == architecture
    x = torch.randn(1, 3, 29, 35)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def read_info_raw(path):
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        return handle.metadata()["skinseg"]


def test_files_from_before_the_registry_load_as_the_improved_unet(saved, tmp_path):
    model, _, path = saved
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    meta = json.loads(read_info_raw(path))
    meta["architecture"] = "ImprovedUNet"
    meta["config"].pop("architecture")
    old = tmp_path / "old.safetensors"
    save_file(tensors, str(old), metadata={"skinseg": json.dumps(meta)})
    loaded, info = load_model(old)
    assert type(loaded) is ImprovedUNet and info.config == CONFIG


def test_a_model_option_naming_a_folder_an_onnx_file_or_nothing_says_so(trained_run, tmp_path):
    """Issue #21: `--model runs/r1`, `--model ""` and `--model m.onnx` without `--backend onnx` said less than this."""
    with pytest.raises(SkinsegError, match=r"is a folder \(a training run\): give a file, e.g. .*best\.safetensors"):
        load_model(trained_run.run_dir)
    with pytest.raises(SkinsegError, match=r"is a folder: give a skinseg \.safetensors file"):
        load_model(tmp_path)
    with pytest.raises(SkinsegError, match="`model` is empty"):
        load_model("")
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    with pytest.raises(SkinsegError, match=r"is an ONNX file: segment with it through `backend=onnx`"):
        load_model(tmp_path / "m.onnx")


def test_a_model_that_load_model_would_refuse_is_not_saved(tmp_path):
    """A Python trial: save_model wrote files (threshold 3, or a config that the weights do not fit) that
    load_model then refused."""
    small = ModelConfig(base_filters=2, depth=2)
    with pytest.raises(ValueError, match=r"threshold must be between 0 and 1, got 3\.0"):
        save_model(ImprovedUNet(small), tmp_path / "a.safetensors", ModelInfo(config=small, threshold=3.0))
    with pytest.raises(ValueError, match=r"the weights do not fit `info.config` \(first: "):
        save_model(ImprovedUNet(small), tmp_path / "b.safetensors", ModelInfo())
    assert list(tmp_path.iterdir()) == []
    save_model(ImprovedUNet(small), tmp_path / "c.safetensors", ModelInfo(config=small))
    assert load_model(tmp_path / "c.safetensors")[1].config == small


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_a_device_that_is_not_there_is_one_error_not_torchs_assertion():
    """A Python trial: load_model(None, "cuda") on a CPU build raised `AssertionError: Torch not compiled with CUDA
    enabled`."""
    with pytest.raises(SkinsegError, match="no CUDA GPU is available"):
        load_model(None, "cuda")
    assert next(load_model(None, "auto")[0].parameters()).device.type in ("cpu", "mps")
