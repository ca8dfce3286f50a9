"""augment_batch: one geometry for image and mask, colour on the image alone."""

import math

import numpy as np
import torch

from skinseg.data.synthetic import synthetic_pair
from skinseg.training.augment import augment_batch

SIZE = 48


def lesion_mask(size: int = SIZE) -> torch.Tensor:
    """(1, 1, size, size) float {0, 1}: a disc off the centre with a bar sticking out of it, so that neither a
    flip nor a turn maps the shape onto itself, and clear of the border, so that reflection padding adds nothing."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    cy, cx, r = 0.35 * size, 0.6 * size, 0.12 * size
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    bar = (yy >= cy - 1) & (yy <= cy + 2) & (xx >= cx - 2.2 * r) & (xx <= cx)
    return (disc | bar).float()[None, None]


def batch(n: int):
    """Images that are their masks (three equal channels): what the augmentation does to one, it must do to both."""
    masks = lesion_mask().repeat(n, 1, 1, 1)
    return masks.repeat(1, 3, 1, 1), masks


def centroid_angles(masks: torch.Tensor) -> torch.Tensor:
    """The angle of each mask's centroid around the image centre, in degrees."""
    yy, xx = torch.meshgrid(torch.arange(SIZE) + 0.5, torch.arange(SIZE) + 0.5, indexing="ij")
    area = masks.sum(dim=(1, 2, 3))
    cy = (masks[:, 0] * yy).sum(dim=(1, 2)) / area - SIZE / 2
    cx = (masks[:, 0] * xx).sum(dim=(1, 2)) / area - SIZE / 2
    return torch.rad2deg(torch.atan2(cy, cx))


def test_mask_is_the_thresholded_image_under_every_transform():
    """The image is the mask in every channel. Colour jitter (brightness, contrast, saturation, gamma) is monotonic
    and equal on the three channels, so an aligned pair has every mask pixel brighter than every background pixel:
    the augmented mask is exactly the augmented image above a threshold."""
    torch.manual_seed(0)
    images, masks = batch(32)
    out_images, out_masks = augment_batch(images, masks)
    assert out_images.shape == images.shape and out_masks.shape == masks.shape
    changed = 0
    for image, mask in zip(out_images, out_masks, strict=False):
        inside, outside = image[0][mask[0] > 0.5], image[0][mask[0] < 0.5]
        assert inside.numel() and outside.numel()
        assert inside.min() >= outside.max()
        threshold = (inside.min() + outside.max()) / 2
        assert torch.equal(mask[0] > 0.5, image[0] > threshold)
        assert torch.allclose(image[1], image[0], atol=1e-5) and torch.allclose(image[2], image[0], atol=1e-5)
        changed += not torch.equal(mask, masks[0])
    assert changed == len(out_masks)


def test_without_rotation_and_zoom_each_pair_is_the_original_or_its_mirror():
    torch.manual_seed(1)
    images, masks = batch(32)
    out_images, out_masks = augment_batch(images, masks, scale=(1.0, 1.0), max_rotation_deg=0.0)
    original = masks[0]
    mirrored = torch.flip(original, dims=[-1])
    flipped = [torch.equal(mask, mirrored) for mask in out_masks]
    assert all(f or torch.equal(mask, original) for f, mask in zip(flipped, out_masks, strict=False))
    assert 0 < sum(flipped) < len(flipped)  # both happen
    for image, mask in zip(
        out_images, out_masks, strict=False
    ):  # the image went the same way: bright exactly on the mask
        assert image[0][mask[0] > 0.5].min() > image[0][mask[0] < 0.5].max() + 0.1


def test_turns_happen_in_every_direction():
    torch.manual_seed(2)
    images, masks = batch(64)
    _, out_masks = augment_batch(images, masks)
    before = centroid_angles(masks[:1])[0]
    turned = (centroid_angles(out_masks) - before + 180) % 360 - 180  # in [-180, 180)
    quadrants = torch.div(turned + 180, 90, rounding_mode="floor").long().clamp(0, 3)
    assert set(quadrants.tolist()) == {0, 1, 2, 3}


def test_zoom_changes_the_lesion_area_within_the_scale_range():
    torch.manual_seed(3)
    images, masks = batch(64)
    _, out_masks = augment_batch(images, masks, scale=(0.8, 1.25), max_rotation_deg=0.0)
    ratio = out_masks.sum(dim=(1, 2, 3)) / masks[0].sum()
    # Area scales with the square of the zoom (a pixel or so of rounding at the outline aside).
    assert ratio.min() > 0.8**2 * 0.85 and ratio.max() < 1.25**2 * 1.15
    assert ratio.min() < 0.85 and ratio.max() > 1.2


def test_real_looking_batches_stay_in_range_and_binary():
    torch.manual_seed(4)
    pairs = [synthetic_pair(SIZE, seed) for seed in range(8)]
    images = torch.from_numpy(np.stack([p[0] for p in pairs])).permute(0, 3, 1, 2).float() / 255
    masks = torch.from_numpy(np.stack([p[1] for p in pairs]))[:, None].float()
    out_images, out_masks = augment_batch(images, masks)
    assert out_images.dtype == out_masks.dtype == torch.float32
    assert out_images.min() >= 0 and out_images.max() <= 1
    assert set(out_masks.unique().tolist()) <= {0.0, 1.0}
    assert not torch.allclose(out_images, images, atol=0.05)  # something was done
    assert math.isclose(out_masks.mean().item(), masks.mean().item(), rel_tol=0.5)  # lesions kept, not lost
