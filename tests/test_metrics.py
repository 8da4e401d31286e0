import math

import pytest
import torch

from udarts.metrics import ConfusionMatrix, chance_miou, confusion_matrix, iou_per_class, mean_iou, pixel_accuracy


def test_hand_computed_confusion_matrix():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 2, 255]])
    prediction = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 1]])
    matrix = confusion_matrix(prediction, target, 3, ignore_index=255)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    # IoU: class 0 = 1 / (1 + 1 + 1) ; class 1 = 2 / (2 + 1 + 0) ; class 2 = 2 / (2 + 0 + 1)
    assert iou_per_class(matrix).tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    assert mean_iou(matrix) == pytest.approx(5 / 9)
    assert pixel_accuracy(matrix) == pytest.approx(5 / 7)  # the ignored pixel is not counted


def test_accumulating_over_batches_is_not_a_mean_of_batch_mious():
    metric = ConfusionMatrix(2)
    metric.update(torch.tensor([[0, 0, 0, 0]]), torch.tensor([[0, 0, 0, 0]]))  # batch mIoU 1.0
    metric.update(torch.tensor([[1, 1, 1, 1]]), torch.tensor([[0, 0, 0, 1]]))  # batch mIoU 0.125
    result = metric.compute()
    # split: class 0 TP 4, FN 3 -> 4/7; class 1 TP 1, FP 3 -> 1/4
    assert result["miou"] == pytest.approx((4 / 7 + 1 / 4) / 2)
    assert result["miou"] != pytest.approx((1.0 + 0.125) / 2)


def test_classes_absent_from_prediction_and_truth_are_left_out():
    matrix = confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 1]), 3)
    ious = iou_per_class(matrix)
    assert math.isnan(ious[2])
    assert mean_iou(matrix) == 1.0


def test_logits_and_unknown_labels():
    metric = ConfusionMatrix(3, ignore_index=255)
    logits = torch.zeros(1, 3, 2, 2)
    logits[:, 2] = 1.0
    metric.update(logits, torch.tensor([[[2, 2], [255, 0]]]))
    assert metric.matrix.sum() == 3
    with pytest.raises(ValueError, match="outside"):
        metric.update(logits, torch.tensor([[[7, 2], [2, 2]]]))


def test_chance_levels():
    matrix = torch.tensor([[6, 0], [0, 2]])  # frequencies 0.75, 0.25
    chance = chance_miou(matrix)
    assert chance["uniform"] == pytest.approx((0.75 / 1.75 + 0.25 / 1.25) / 2)
    assert chance["majority"] == pytest.approx(0.75 / 2)
