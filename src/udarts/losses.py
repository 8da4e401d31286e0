"""Segmentation losses: the paper's soft Dice loss (its eq. 3), cross-entropy, and their sum.

Math lives in pure functions; the ``nn.Module`` classes are thin wrappers that carry settings.

Dice (Milletari et al., V-Net 2016), for class ``c`` with predicted probabilities ``p`` and the
one-hot truth ``q`` over all valid pixels of the batch::

    dice_c = 2 * sum(p * q) / (sum(p^2) + sum(q^2))        loss = 1 - mean_c dice_c

The mean runs over the classes present in the batch's truth: a class that is absent contributes
no term of its own (its dice would be 0 / sum(p^2) whatever the network does), but probability
mass put on it still lowers the other classes' dice. Pixels equal to ``ignore_index`` are
removed from every sum.

Precision: half and bfloat16 logits (mixed precision) are upcast to float32 before the softmax
and the sums; float32 and float64 logits keep their dtype, so a float64 gradient check tests the
code that runs.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def soft_dice_score(probs: Tensor, one_hot: Tensor, dims: tuple[int, ...], eps: float = 1e-7) -> Tensor:
    """``2 * sum(p*q) / (sum(p^2) + sum(q^2))`` reduced over ``dims``."""
    intersection = (probs * one_hot).sum(dims)
    denominator = (probs * probs).sum(dims) + (one_hot * one_hot).sum(dims)
    return 2.0 * intersection / denominator.clamp_min(eps)


def dice_loss_from_probs(probs: Tensor, target: Tensor, ignore_index: int | None = None) -> Tensor:
    """Soft Dice loss of class probabilities ``(B, K, H, W)`` against a long mask ``(B, H, W)``."""
    num_classes = probs.shape[1]
    valid = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    safe_target = torch.where(valid, target, torch.zeros_like(target))
    one_hot = F.one_hot(safe_target, num_classes).permute(0, 3, 1, 2).to(probs.dtype)  # (B, K, H, W)
    weight = valid.unsqueeze(1).to(probs.dtype)  # (B, 1, H, W)
    dice = soft_dice_score(probs * weight, one_hot * weight, dims=(0, 2, 3))  # (K,)
    present = (one_hot * weight).sum(dim=(0, 2, 3)) > 0
    if not present.any():  # every pixel ignored: nothing to learn from
        return probs.sum() * 0.0
    return 1.0 - dice[present].mean()


def at_least_float32(logits: Tensor) -> Tensor:
    """``logits`` in float32 when they are half or bfloat16; float32 and float64 unchanged."""
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def dice_loss(logits: Tensor, target: Tensor, ignore_index: int | None = None) -> Tensor:
    """Soft Dice loss of logits ``(B, K, H, W)`` (softmax over K) against ``(B, H, W)``."""
    return dice_loss_from_probs(at_least_float32(logits).softmax(dim=1), target, ignore_index)


def cross_entropy(logits: Tensor, target: Tensor, ignore_index: int | None = None) -> Tensor:
    return F.cross_entropy(at_least_float32(logits), target, ignore_index=-100 if ignore_index is None else ignore_index)


class _SegmentationLoss(nn.Module):
    """A loss of logits ``(B, K, H, W)`` against ``(B, H, W)`` that skips ``ignore_index``."""

    def __init__(self, ignore_index: int | None = None) -> None:
        super().__init__()
        self.ignore_index = ignore_index


class DiceLoss(_SegmentationLoss):
    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return dice_loss(logits, target, self.ignore_index)


class CrossEntropyLoss(_SegmentationLoss):
    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return cross_entropy(logits, target, self.ignore_index)


class DiceCELoss(_SegmentationLoss):
    """``dice_weight * Dice + ce_weight * cross-entropy``."""

    def __init__(self, ignore_index: int | None = None, dice_weight: float = 1.0, ce_weight: float = 1.0) -> None:
        super().__init__(ignore_index)
        self.dice_weight = dice_weight
        self.ce_weight = ce_weight

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.dice_weight * dice_loss(logits, target, self.ignore_index) + self.ce_weight * cross_entropy(
            logits, target, self.ignore_index
        )


# name -> loss class, built as ``LOSSES[name](ignore_index)``
LOSSES: dict[str, Callable[[int | None], nn.Module]] = {"dice": DiceLoss, "ce": CrossEntropyLoss, "dice_ce": DiceCELoss}


def build_loss(name: str, ignore_index: int | None = None) -> nn.Module:
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {tuple(LOSSES)}")
    return LOSSES[name](ignore_index)
