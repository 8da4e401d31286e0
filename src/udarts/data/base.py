"""The dataset interface every udarts dataset follows.

A dataset yields ``(image, mask)`` pairs: ``image`` a float tensor ``(3, H, W)`` (normalised),
``mask`` a long tensor ``(H, W)`` whose values are class indices in ``[0, num_classes)`` or the
dataset's ``ignore_index``. It declares its ``class_names`` and ``ignore_index`` so that losses,
metrics, heads and reports need nothing else.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from torch import Tensor


class DatasetError(ValueError):
    """Bad or missing data: the message names the file or folder and what was expected."""


@runtime_checkable
class SegmentationDataset(Protocol):
    class_names: Sequence[str]
    ignore_index: int | None

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]: ...


def num_classes_of(dataset: SegmentationDataset) -> int:
    return len(dataset.class_names)
