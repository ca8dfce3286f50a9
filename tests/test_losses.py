import torch

from skinseg.training.losses import LOSSES, soft_dice_loss


def test_dice_loss_is_near_zero_for_confident_correct_logits():
    target = (torch.rand(2, 1, 8, 8) > 0.5).float()
    logits = (target * 2 - 1) * 20
    assert soft_dice_loss(logits, target) < 1e-3


def test_dice_bce_is_the_sum():
    target = (torch.rand(2, 1, 8, 8) > 0.5).float()
    logits = torch.randn(2, 1, 8, 8)
    total = LOSSES["dice_bce"](logits, target)
    assert torch.allclose(total, LOSSES["dice"](logits, target) + LOSSES["bce"](logits, target))
