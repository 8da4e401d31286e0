"""Padding inputs up to a size a network accepts, and cropping its logits back.

Encoder-decoder networks that downsample by a total factor ``d`` (32 for the five-stage
ResNet encoders, 16 for the classic UNet, the patch size for SETR) only reproduce the input
size when ``H`` and ``W`` are multiples of ``d``. Every baseline in this package therefore
zero-pads the input on the bottom and right edges up to the next multiple of its
``size_divisor`` and crops the logits back to the original ``H x W``. For sizes that are
already multiples nothing is padded, so the common case costs nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_multiple(images: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad ``images`` (B, C, H, W) on the bottom/right so H and W are multiples of ``multiple``.

    Returns the padded batch and the original ``(H, W)``, to be passed to :func:`crop_to_size`.
    """
    if images.dim() != 4:
        raise ValueError(f"expected a (B, C, H, W) batch, got shape {tuple(images.shape)}")
    height, width = images.shape[-2:]
    pad_bottom = -height % multiple
    pad_right = -width % multiple
    if pad_bottom or pad_right:
        images = F.pad(images, (0, pad_right, 0, pad_bottom))
    return images, (height, width)


def crop_to_size(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Keep the top-left ``size = (H, W)`` window of ``logits`` (B, K, H', W')."""
    height, width = size
    if logits.shape[-2:] == (height, width):
        return logits
    return logits[..., :height, :width]
