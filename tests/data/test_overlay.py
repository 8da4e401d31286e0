"""colorize / overlay: palette lookup, ignore pixels, blending."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from udarts.viz.overlay import colorize, image_to_uint8, overlay

PALETTE = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


def test_colorize_maps_classes_and_blacks_out_ignore() -> None:
    mask = torch.tensor([[0, 1], [2, 255]])
    coloured = colorize(mask, PALETTE)
    assert coloured.dtype == np.uint8 and coloured.shape == (2, 2, 3)
    assert coloured[0, 0].tolist() == [255, 0, 0] and coloured[1, 0].tolist() == [0, 0, 255]
    assert coloured[1, 1].tolist() == [0, 0, 0]
    assert colorize(np.array([[-1, 1]]), PALETTE)[0, 0].tolist() == [0, 0, 0]


def test_overlay_blends_and_leaves_ignore_pixels_alone() -> None:
    image = np.full((2, 2, 3), 100, np.uint8)
    mask = np.array([[0, 1], [11, 2]])
    blended = overlay(image, mask, PALETTE, alpha=0.5)
    assert blended.dtype == np.uint8
    assert blended[0, 0].tolist() == [178, 50, 50]  # (100 + 255) / 2 rounded to even
    assert blended[1, 0].tolist() == [100, 100, 100]
    assert np.array_equal(overlay(image, mask, PALETTE, alpha=0.0), image)


def test_overlay_checks_its_inputs() -> None:
    with pytest.raises(ValueError, match="uint8"):
        overlay(np.zeros((2, 2, 3), np.float32), np.zeros((2, 2), int), PALETTE)
    with pytest.raises(ValueError, match="does not match"):
        overlay(np.zeros((2, 2, 3), np.uint8), np.zeros((3, 2), int), PALETTE)
    with pytest.raises(ValueError, match="palette"):
        colorize(np.zeros((2, 2), int), [(1, 2)])


def test_image_to_uint8() -> None:
    image = torch.zeros(3, 2, 4)
    image[0] = 1.0
    pixels = image_to_uint8(image)
    assert pixels.shape == (2, 4, 3) and pixels.dtype == np.uint8 and pixels[0, 0].tolist() == [255, 0, 0]
