"""Colour masks and blend them over images, for predictions and dataset previews.

A palette is a list of RGB tuples, one per class (``dataset.palette`` or
``udarts.data.factory.palette_for(dataset)``). Mask values outside ``[0, len(palette))``, such as
an ignore index, are drawn black by :func:`colorize` and leave the image untouched in
:func:`overlay`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor


def _as_numpy(array: np.ndarray | Tensor) -> np.ndarray:
    return array.detach().cpu().numpy() if isinstance(array, Tensor) else np.asarray(array)


def _palette_array(palette: Sequence[Sequence[int]]) -> np.ndarray:
    colours = np.asarray(palette, dtype=np.int64)
    if colours.ndim != 2 or colours.shape[1] != 3 or len(colours) == 0:
        raise ValueError(f"palette must be a non-empty list of (R, G, B) colours, got shape {colours.shape}")
    if colours.min() < 0 or colours.max() > 255:
        raise ValueError("palette colours must lie in 0-255")
    return colours.astype(np.uint8)


def colorize(mask: np.ndarray | Tensor, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """Class-index mask ``(H, W)`` -> uint8 RGB ``(H, W, 3)``; values without a colour are black."""
    indices = _as_numpy(mask)
    if indices.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {indices.shape}")
    indices = indices.astype(np.int64, copy=False)
    colours = _palette_array(palette)
    coloured = np.zeros((*indices.shape, 3), dtype=np.uint8)
    valid = (indices >= 0) & (indices < len(colours))
    coloured[valid] = colours[indices[valid]]
    return coloured


def overlay(
    image: np.ndarray | Tensor,
    mask: np.ndarray | Tensor,
    palette: Sequence[Sequence[int]],
    alpha: float = 0.5,
) -> np.ndarray:
    """Blend the colour mask over ``image`` (uint8 ``(H, W, 3)``): ``(1 - alpha) * image + alpha * colour``.

    Pixels whose mask value has no colour (ignore) keep the image as is. Returns uint8 ``(H, W, 3)``.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    pixels = _as_numpy(image)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"image must be uint8 (H, W, 3), got {pixels.dtype} {pixels.shape}")
    indices = _as_numpy(mask)
    if indices.shape != pixels.shape[:2]:
        raise ValueError(f"mask shape {indices.shape} does not match image size {pixels.shape[:2]}")
    coloured = colorize(indices, palette).astype(np.float32)
    blended = (1.0 - alpha) * pixels.astype(np.float32) + alpha * coloured
    labelled = (indices >= 0) & (indices < len(palette))
    result = np.where(labelled[..., None], np.rint(blended), pixels.astype(np.float32))
    return result.clip(0, 255).astype(np.uint8)


def image_to_uint8(image: Tensor) -> np.ndarray:
    """A float image ``(3, H, W)`` with values in [0, 1] (e.g. from ``denormalize``) -> uint8 ``(H, W, 3)``."""
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected (3, H, W), got {tuple(image.shape)}")
    return (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
