"""Segmentation metrics from a confusion matrix accumulated over a whole split.

mIoU is computed once from the split's confusion matrix, never averaged over batches:
``IoU_c = TP_c / (TP_c + FP_c + FN_c)`` and ``mIoU = mean_c IoU_c``. A class absent from both
the predictions and the truth of the split (TP + FP + FN = 0) has an undefined IoU: it is
reported as NaN and left out of the mean. Pixels whose truth equals ``ignore_index`` are not
counted at all. Pixel accuracy is ``trace / total`` over the counted pixels.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def confusion_matrix(prediction: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = None) -> Tensor:
    """``(K, K)`` int64 counts: row = true class, column = predicted class."""
    prediction = prediction.reshape(-1).long()
    target = target.reshape(-1).long()
    valid = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    prediction, target = prediction[valid], target[valid]
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= num_classes):
        raise ValueError(
            f"target holds labels outside [0, {num_classes}) that are not the ignore index {ignore_index}: "
            f"found {sorted(set(target.unique().tolist()) - set(range(num_classes)))}"
        )
    counts = torch.bincount(target * num_classes + prediction, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def iou_per_class(matrix: Tensor) -> Tensor:
    """IoU of each class (float64); NaN where the class is absent from prediction and truth."""
    matrix = matrix.double()
    true_positive = matrix.diag()
    union = matrix.sum(0) + matrix.sum(1) - true_positive
    return torch.where(union > 0, true_positive / union.clamp_min(1), torch.full_like(union, math.nan))


def mean_iou(matrix: Tensor) -> float:
    ious = iou_per_class(matrix)
    present = ~torch.isnan(ious)
    return float(ious[present].mean()) if present.any() else math.nan


def pixel_accuracy(matrix: Tensor) -> float:
    total = int(matrix.sum())
    return float(matrix.diag().sum()) / total if total else math.nan


class ConfusionMatrix:
    """Accumulates a confusion matrix over batches; ``compute()`` gives the split's metrics."""

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.long)

    def update(self, logits_or_prediction: Tensor, target: Tensor) -> None:
        """Takes logits ``(B, K, H, W)`` or a prediction ``(B, H, W)`` and the truth ``(B, H, W)``."""
        prediction = logits_or_prediction.argmax(1) if logits_or_prediction.dim() == 4 else logits_or_prediction
        self.matrix += confusion_matrix(prediction.cpu(), target.cpu(), self.num_classes, self.ignore_index)

    def compute(self) -> dict[str, float | list[float]]:
        return {
            "miou": mean_iou(self.matrix),
            "pixel_accuracy": pixel_accuracy(self.matrix),
            "iou_per_class": iou_per_class(self.matrix).tolist(),
        }


def chance_miou(matrix: Tensor) -> dict[str, float]:
    """Reference scores from the truth alone (the confusion matrix's row sums).

    ``uniform``: the expected mIoU of a guess drawn uniformly over the K classes per pixel
    (IoU_c = f_c / (1 + f_c (K - 1)) for class frequency f_c). ``majority``: the mIoU of
    predicting the most frequent class everywhere.
    """
    truth = matrix.double().sum(1)
    present = truth > 0
    frequencies = truth / truth.sum().clamp_min(1)
    num_classes = matrix.shape[0]
    uniform = frequencies / (1 + frequencies * (num_classes - 1))
    majority = torch.zeros(num_classes, num_classes, dtype=torch.long)
    majority[:, int(torch.argmax(truth))] = matrix.sum(1)
    majority_ious = iou_per_class(majority)
    return {"uniform": float(uniform[present].mean()), "majority": float(majority_ious[~torch.isnan(majority_ious)].mean())}
