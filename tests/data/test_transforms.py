"""Joint augmentation keeps image and mask aligned, never invents mask values; eval is deterministic."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as functional

from udarts.data.camvid import CamVid
from udarts.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    RandomScaleCrop,
    denormalize,
    eval_transform,
    resize_pair,
    train_transform,
)

CLASS_VALUES = torch.tensor([0, 3, 7, 11])
# A distinct colour per class value (index = class value).
CLASS_COLOURS = torch.zeros(12, 3, dtype=torch.uint8)
CLASS_COLOURS[0] = torch.tensor([250, 10, 10])
CLASS_COLOURS[3] = torch.tensor([10, 250, 10])
CLASS_COLOURS[7] = torch.tensor([10, 10, 250])
CLASS_COLOURS[11] = torch.tensor([240, 240, 20])


def block_mask(height: int = 60, width: int = 80) -> torch.Tensor:
    """Asymmetric blocks of the four class values (a flip or shift changes it)."""
    mask = torch.zeros(height, width, dtype=torch.uint8)
    mask[:, width // 5 : width // 2] = 3
    mask[height // 3 :, width // 2 :] = 7
    mask[: height // 4, 3 * width // 4 :] = 11
    return mask


def image_from_mask(mask: torch.Tensor) -> torch.Tensor:
    return CLASS_COLOURS[mask.long()].permute(2, 0, 1).contiguous()


def uniform_interior(mask: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """Pixels whose (2r+1)^2 neighbourhood holds a single class."""
    values = mask.float()[None, None]
    size = 2 * radius + 1
    high = functional.max_pool2d(values, size, stride=1, padding=radius)
    low = -functional.max_pool2d(-values, size, stride=1, padding=radius)
    interior = (high == low)[0, 0]
    interior[:radius], interior[-radius:], interior[:, :radius], interior[:, -radius:] = False, False, False, False
    return interior


def test_augmentation_keeps_image_and_mask_aligned() -> None:
    mask = block_mask()
    image = image_from_mask(mask)
    transform = train_transform((32, 48), scale_range=(1.0, 1.6), color_jitter=None)
    torch.manual_seed(0)
    flipped_seen = set()
    for _ in range(30):
        resized_image, resized_mask = resize_pair(image, mask, transform.input_size)
        out_image, out_mask = transform(resized_image, resized_mask)
        assert out_image.shape == (3, 32, 48) and out_mask.shape == (32, 48)
        interior = uniform_interior(out_mask)
        assert interior.sum() > 200
        expected = CLASS_COLOURS[out_mask[interior]].float() / 255
        actual = denormalize(out_image).permute(1, 2, 0)[interior]
        assert (actual - expected).abs().max() < 0.03
        # Class 3 lies left of class 7 in the source; a flipped output puts it right.
        columns_3 = (out_mask == 3).nonzero()[:, 1].float()
        columns_7 = (out_mask == 7).nonzero()[:, 1].float()
        if len(columns_3) and len(columns_7):
            flipped_seen.add(bool(columns_3.mean() > columns_7.mean()))
    assert flipped_seen == {True, False}


def test_masks_never_get_interpolated_values() -> None:
    generator = torch.Generator().manual_seed(1)
    mask = CLASS_VALUES[torch.randint(0, 4, (37, 53), generator=generator)].to(torch.uint8)
    image = torch.randint(0, 256, (3, 37, 53), dtype=torch.uint8, generator=generator)
    allowed = set(CLASS_VALUES.tolist())
    torch.manual_seed(2)
    for transform in (train_transform((29, 41)), eval_transform((29, 41)), eval_transform((90, 70))):
        for _ in range(5):
            _, out_mask = transform(*resize_pair(image, mask, transform.input_size))
            assert out_mask.dtype == torch.int64
            assert set(out_mask.unique().tolist()) <= allowed


def test_colour_jitter_changes_the_image_only() -> None:
    mask = block_mask()
    image = image_from_mask(mask)
    with_jitter = train_transform((32, 48), color_jitter=(0.5, 0.5, 0.5, 0.1))
    without_jitter = train_transform((32, 48), color_jitter=None)
    torch.manual_seed(3)
    jittered_image, jittered_mask = with_jitter(image, mask)
    torch.manual_seed(3)
    plain_image, plain_mask = without_jitter(image, mask)
    assert torch.equal(jittered_mask, plain_mask)
    assert not torch.allclose(jittered_image, plain_image)


def test_eval_transform_is_deterministic_and_normalises() -> None:
    image = torch.full((3, 20, 30), 255, dtype=torch.uint8)
    mask = torch.ones(20, 30, dtype=torch.uint8)
    transform = eval_transform((10, 16))
    first, second = transform(image, mask), transform(image, mask)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(first[0][:, 0, 0], expected, atol=1e-5)
    assert transform(image)[1] is None


def test_denormalize_inverts_normalisation() -> None:
    pixels = torch.rand(2, 3, 5, 7)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    assert torch.allclose(denormalize((pixels - mean) / std), pixels, atol=1e-6)
    with pytest.raises(ValueError):
        denormalize(torch.zeros(4, 5, 5))


def test_input_sizes_and_bad_arguments() -> None:
    assert train_transform((96, 128)).input_size == (144, 192)
    assert eval_transform((96, 128)).input_size == (96, 128)
    with pytest.raises(ValueError, match="scale_range"):
        RandomScaleCrop((8, 8), scale_range=(0.5, 1.0))
    with pytest.raises(ValueError, match="shape"):
        eval_transform((8, 8))(torch.zeros(3, 4, 4, dtype=torch.uint8), torch.zeros(5, 5, dtype=torch.uint8))


def test_dataset_cache_matches_decoding_and_survives_deleted_files(camvid_root: Path) -> None:
    plain = CamVid(camvid_root, "val", image_size=(18, 20))
    cached = CamVid(camvid_root, "val", image_size=(18, 20), cache=True)
    for index in range(len(plain)):
        assert torch.equal(plain[index][0], cached[index][0]) and torch.equal(plain[index][1], cached[index][1])
    augmented = CamVid(camvid_root, "train", image_size=(18, 20), augment=True, cache=True)
    for pair in augmented.samples:
        pair.image.unlink()
    image, mask = augmented[0]
    assert image.shape == (3, 18, 20) and mask.shape == (18, 20)
    assert set(mask.unique().tolist()) <= set(range(12))
