"""build_split / make_loader / palette_for: the data entry points the CLI uses."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from udarts.data.base import DatasetError
from udarts.data.factory import DATASETS, build_split, make_loader, palette_for
from udarts.data.synthetic import SyntheticShapes


def test_synthetic_splits_sizes_seeds_and_palette() -> None:
    train = build_split("synthetic", "train", num_samples=40, image_size=(32, 32), seed=5)
    val = build_split("synthetic", "val", num_samples=40, image_size=(32, 32), seed=5)
    test = build_split("synthetic", "test", num_samples=16, seed=5)
    assert (len(train), len(val), len(test)) == (40, 10, 8)
    assert isinstance(train, SyntheticShapes)
    assert (train.seed, val.seed, test.seed) == (5, 6, 7)
    assert len(train.palette) == len(train.class_names) and len(set(train.palette)) == len(train.palette)


def test_real_datasets_need_a_root_and_known_names() -> None:
    assert tuple(DATASETS) == ("synthetic", "pets", "camvid", "folder")
    for name in ("pets", "camvid", "folder"):
        with pytest.raises(DatasetError, match="root"):
            build_split(name, "train")
    with pytest.raises(DatasetError, match="unknown dataset"):
        build_split("cityscapes", "train", root="/tmp")
    with pytest.raises(DatasetError, match="split"):
        build_split("synthetic", "holdout")


def test_builds_each_real_layout(pets_root: Path, camvid_root: Path, folder_root: Path) -> None:
    pets = build_split("pets", "train", root=str(pets_root), image_size=(16, 16), target="trimap", augment=True)
    camvid = build_split("camvid", "test", root=str(camvid_root), image_size=(16, 24), cache=True)
    folder = build_split("folder", "val", root=str(folder_root), image_size=(8, 8))
    assert pets.class_names == ("pet", "background", "border") and pets[0][0].shape == (3, 16, 16)
    assert camvid.ignore_index == 11 and camvid[1][1].shape == (16, 24)
    assert folder.ignore_index == 255 and len(folder) == 2
    for dataset in (pets, camvid, folder):
        assert len(palette_for(dataset)) == len(dataset.class_names)
    with pytest.raises(ValueError, match="target"):
        build_split("camvid", "test", root=str(camvid_root), target="trimap")


def test_palette_for_falls_back_to_a_generated_palette() -> None:
    dataset = SyntheticShapes(4, (16, 16))
    palette = palette_for(dataset)
    assert len(palette) == 4 and palette[0] == (0, 0, 0) and len(set(palette)) == 4


def test_make_loader_batches_and_shuffles_reproducibly(folder_root: Path) -> None:
    dataset = build_split("folder", "train", root=str(folder_root), image_size=(8, 8))
    orders = []
    for _ in range(2):
        loader = make_loader(dataset, batch_size=2, shuffle=True, generator=torch.Generator().manual_seed(0))
        orders.append(torch.cat([images.flatten(1)[:, 0] for images, _ in loader]))
    assert torch.equal(orders[0], orders[1])
    images, masks = next(iter(loader))
    assert images.shape == (2, 3, 8, 8) and masks.shape == (2, 8, 8) and masks.dtype == torch.int64


def test_make_loader_with_workers(camvid_root: Path) -> None:
    dataset = build_split("camvid", "train", root=str(camvid_root), image_size=(8, 8), augment=True, cache=True)
    loader = make_loader(dataset, batch_size=2, shuffle=True, num_workers=2, drop_last=True)
    assert sum(len(images) for images, _ in loader) == 4


def test_make_loader_rejects_empty_datasets() -> None:
    with pytest.raises(DatasetError, match="empty"):
        make_loader([], batch_size=1, shuffle=False)


def test_make_loader_rejects_fewer_samples_than_a_batch(camvid_root: Path) -> None:
    dataset = build_split("camvid", "val", root=str(camvid_root), image_size=(8, 8))
    for options in ({"shuffle": True}, {"shuffle": False, "drop_last": True}):
        with pytest.raises(DatasetError, match=rf"CamVid split 'val' at {camvid_root}.*fewer than one batch of 4"):
            make_loader(dataset, batch_size=4, **options)
    assert len(make_loader(dataset, batch_size=4, shuffle=False)) == 1  # an eval loader may be short
