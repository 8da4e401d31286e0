"""Build datasets and loaders by name: the one entry point the CLI uses for data.

``build_split(name, split, ...)`` returns a dataset following :mod:`udarts.data.base`, carrying
``class_names``, ``ignore_index`` and ``palette``; ``make_loader`` wraps it in a DataLoader after
checking that it can fill a batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch
from torch.utils.data import DataLoader, default_collate

from udarts.data.base import DatasetError, SegmentationDataset, num_classes_of
from udarts.data.camvid import CamVid
from udarts.data.folder import FolderDataset
from udarts.data.pairs import Palette, generated_palette, single_threaded_torch
from udarts.data.pets import OxfordPets
from udarts.data.synthetic import SyntheticShapes

SYNTHETIC_SEED_OFFSETS = {"train": 0, "val": 1, "test": 2}


def _synthetic(split: str, *, image_size: tuple[int, int], seed: int, num_samples: int, **_: object) -> SegmentationDataset:
    if split not in SYNTHETIC_SEED_OFFSETS:
        raise DatasetError(f"synthetic has no split {split!r}; choose one of {tuple(SYNTHETIC_SEED_OFFSETS)}")
    count = num_samples if split == "train" else max(8, num_samples // 4)
    dataset = SyntheticShapes(count, image_size, seed=seed + SYNTHETIC_SEED_OFFSETS[split])
    dataset.palette = palette_for(dataset)
    return dataset


def _check_file_options(name: str, root: str | None, target: str, holdout: str | None) -> None:
    """The checks of the options every dataset read from files takes."""
    if root is None:
        raise DatasetError(f"dataset {name!r} needs a root folder (root=None was given; on the command line: --root DIR)")
    if name != "pets" and target != "binary":
        raise ValueError(f"target={target!r} applies to the pets dataset only")
    if name != "camvid" and holdout is not None:
        raise DatasetError(f"data.holdout={holdout!r} applies to the camvid dataset only (a held-out sequence)")


def _pets(split: str, *, root: str | None, target: str, download: bool, holdout: str | None, image_size: tuple[int, int],
          augment: bool, cache: bool, on_bad_sample: str, **_: object) -> SegmentationDataset:
    _check_file_options("pets", root, target, holdout)
    return OxfordPets(root, split, target=target, download=download, image_size=image_size, augment=augment, cache=cache,
                      on_bad_sample=on_bad_sample)


def _camvid(split: str, *, root: str | None, target: str, holdout: str | None, image_size: tuple[int, int],
            augment: bool, cache: bool, on_bad_sample: str, **_: object) -> SegmentationDataset:
    _check_file_options("camvid", root, target, holdout)
    return CamVid(root, split, holdout=holdout, image_size=image_size, augment=augment, cache=cache, on_bad_sample=on_bad_sample)


def _folder(split: str, *, root: str | None, target: str, holdout: str | None, image_size: tuple[int, int],
            augment: bool, cache: bool, on_bad_sample: str, **_: object) -> SegmentationDataset:
    _check_file_options("folder", root, target, holdout)
    return FolderDataset(root, split, image_size=image_size, augment=augment, cache=cache, on_bad_sample=on_bad_sample)


# name -> builder(split, *, root, image_size, augment, cache, on_bad_sample, download, target, seed,
# num_samples, holdout); each uses the options that apply to it (see ``build_split``)
DATASETS: dict[str, Callable[..., SegmentationDataset]] = {"synthetic": _synthetic, "pets": _pets, "camvid": _camvid, "folder": _folder}


def build_split(
    name: str,
    split: str,
    *,
    root: str | None = None,
    image_size: tuple[int, int] = (64, 64),
    augment: bool = False,
    cache: bool = False,
    on_bad_sample: str = "error",
    download: bool = False,
    target: str = "binary",
    seed: int = 0,
    num_samples: int = 256,
    holdout: str | None = None,
) -> SegmentationDataset:
    """One split of dataset ``name`` (one of ``DATASETS``).

    - ``synthetic``: ``SyntheticShapes`` of ``num_samples`` images for "train" and
      ``max(8, num_samples // 4)`` for "val"/"test", seeded ``seed + {train: 0, val: 1, test: 2}``;
      ``root``, ``augment``, ``cache``, ``download`` and ``target`` do not apply.
    - ``pets``: Oxford-IIIT Pet under ``root`` (the folder holding ``oxford-iiit-pet/``);
      ``target`` is "binary" or "trimap"; ``download`` fetches it when missing.
    - ``camvid``: CamVid in the SegNet layout at ``root``; ``holdout`` names a training sequence
      (e.g. "0006R0") left out of "train" and served as the split "holdout".
    - ``folder``: a folder dataset described by ``root/dataset.yaml``.

    ``augment`` selects the training augmentation, ``cache`` keeps decoded samples in memory and
    ``on_bad_sample`` ("error" or "skip") decides what a bad file does. Data problems raise
    :class:`~udarts.data.base.DatasetError` (a ``ValueError``).
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {tuple(DATASETS)}")
    return DATASETS[name](
        split, root=root, image_size=(int(image_size[0]), int(image_size[1])), augment=augment, cache=cache,
        on_bad_sample=on_bad_sample, download=download, target=target, seed=seed, num_samples=num_samples, holdout=holdout,
    )


def palette_for(dataset: SegmentationDataset) -> Palette:
    """The dataset's ``palette`` when it has one colour per class, else a generated one."""
    count = num_classes_of(dataset)
    palette: Sequence[Sequence[int]] | None = getattr(dataset, "palette", None)
    if palette is not None and len(palette) >= count:
        return [tuple(int(channel) for channel in colour) for colour in palette[:count]]
    return generated_palette(count)


def describe_dataset(dataset: object) -> str:
    """A short identification for messages: the dataset's own ``describe()`` or its type and root."""
    describe = getattr(dataset, "describe", None)
    if callable(describe):
        return str(describe())
    root = getattr(dataset, "root", None)
    return type(dataset).__name__ + (f" at {Path(root)}" if root is not None else "")


def collate_single_threaded(batch: list) -> object:
    """``default_collate`` on one torch thread: stacking a small batch gains nothing from threads,
    and with ``num_workers=0`` on a busy machine multi-threaded copies can stall (see
    :func:`udarts.data.pairs.single_threaded_torch`)."""
    with single_threaded_torch():
        return default_collate(batch)


def make_loader(
    dataset: SegmentationDataset,
    *,
    batch_size: int,
    shuffle: bool,
    num_workers: int = 0,
    pin_memory: bool = False,
    drop_last: bool = False,
    generator: torch.Generator | None = None,
) -> DataLoader:
    """A DataLoader over ``dataset``, after checking it can fill a batch.

    Raises DatasetError when the dataset is empty, or smaller than ``batch_size`` while
    ``drop_last`` (no batch at all) or ``shuffle`` (a training loader would never see a full
    batch). Workers stay alive between epochs (``persistent_workers``); with a ``generator`` the
    shuffling and the per-worker augmentation seeds are reproducible.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    size = len(dataset)
    if size == 0:
        raise DatasetError(f"{describe_dataset(dataset)} is empty: nothing to load")
    if size < batch_size and (drop_last or shuffle):
        raise DatasetError(
            f"{describe_dataset(dataset)} has {size} sample(s), fewer than one batch of {batch_size}: "
            "lower the batch size or add data"
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=drop_last,
        generator=generator,
        persistent_workers=num_workers > 0,
        collate_fn=collate_single_threaded,
    )
