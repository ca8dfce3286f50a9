import pytest
import torch

from skinseg.models.config import ModelConfig
from skinseg.models.improved_unet import ContextModule, ImprovedUNet
from skinseg.models.layers import count_parameters

DEFAULT_PARAMETERS = 3_188_883  # stated in docs/model.md


def test_default_model_has_the_documented_parameter_count():
    assert count_parameters(ImprovedUNet()) == DEFAULT_PARAMETERS


@pytest.mark.parametrize("height,width", [(37, 51), (64, 64), (17, 100), (1, 1)])
def test_output_has_the_input_size_for_any_size(height, width):
    model = ImprovedUNet(ModelConfig(base_filters=4, depth=4)).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, height, width))
    assert logits.shape == (2, 1, height, width)


def test_predict_is_the_sigmoid_of_the_eval_mode_forward_even_from_training_mode():
    torch.manual_seed(0)
    model = ImprovedUNet(ModelConfig(base_filters=4, depth=3, dropout=0.5))
    x = torch.randn(2, 3, 24, 24)
    with torch.no_grad():
        expected = torch.sigmoid(model.eval()(x))
        assert not torch.allclose(torch.sigmoid(model.train()(x)), expected, atol=1e-3)  # dropout is on
    probs = model.predict(x)  # called in training mode
    assert not model.training  # predict switched to eval mode: no dropout
    assert torch.allclose(probs, expected, atol=1e-6)
    assert torch.equal(model.predict(x), probs)
    assert not probs.requires_grad


def test_gradients_reach_every_parameter():
    model = ImprovedUNet(ModelConfig(base_filters=4, depth=4))
    model(torch.randn(2, 3, 32, 32)).mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_deep_supervision_uses_three_heads_by_default():
    model = ImprovedUNet()
    assert len(model.segmentation_heads) == 3
    assert [h.in_channels for h in model.segmentation_heads] == [64, 32, 32]


def test_context_module_is_residual():
    block = ContextModule(8, dropout=0.0)
    for p in block.parameters():
        torch.nn.init.zeros_(p)
    x = torch.randn(1, 8, 6, 6)
    assert torch.equal(block(x), x)


def test_invalid_configs_are_rejected():
    with pytest.raises(ValueError):
        ImprovedUNet(ModelConfig(depth=1))
    with pytest.raises(ValueError):
        ImprovedUNet(ModelConfig(depth=3, segmentation_levels=3))
    with pytest.raises(ValueError):
        ModelConfig.from_dict({"base_filters": 8, "colour": "red"})
