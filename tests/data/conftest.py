"""Fixtures for the data tests: the shared real data (skipped when absent) and tiny copies of each
official layout written into ``tmp_path``, so that every loader is tested everywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from udarts_data_fixtures import (
    FOLDER_YAML,
    PETS_TEST,
    PETS_TRAINVAL,
    camvid_mask,
    pets_trimap,
    random_image,
    shared_data_dir,
    write_mask,
    write_rgb,
)


@pytest.fixture
def shared_data() -> Path:
    folder = shared_data_dir()
    if not folder.is_dir():
        pytest.skip(f"shared data not found at {folder} (set UDARTS_SHARED_DATA to the folder holding camvid/ and oxford-iiit-pet/)")
    return folder


@pytest.fixture
def pets_root(tmp_path: Path) -> Path:
    """``<root>/oxford-iiit-pet`` with 6 trainval and 3 test images of 20x24; ``Abyssinian_5.jpg``
    is an RGBA PNG, as in the release."""
    base = tmp_path / "oxford-iiit-pet"
    for index, name in enumerate(PETS_TRAINVAL + PETS_TEST):
        height, width = 20, 24
        if name == "Abyssinian_5":
            rgba = np.dstack([random_image(height, width, index), np.full((height, width), 200, np.uint8)])
            (base / "images").mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgba).save(base / "images" / f"{name}.jpg", format="PNG")
        else:
            write_rgb(base / "images" / f"{name}.jpg", random_image(height, width, index), format="JPEG")
        write_mask(base / "annotations" / "trimaps" / f"{name}.png", pets_trimap(height, width))
    lines = lambda names: "".join(f"{name} 1 1 1\n" for name in names)  # noqa: E731
    (base / "annotations" / "trainval.txt").write_text(lines(PETS_TRAINVAL))
    (base / "annotations" / "test.txt").write_text(lines(PETS_TEST))
    return tmp_path


@pytest.fixture
def camvid_root(tmp_path: Path) -> Path:
    """A SegNet-layout CamVid of 24x32 images: train (4, list with SegNet's absolute paths),
    val (2, no list: paired by name), test (2, list with relative paths)."""
    root = tmp_path / "CamVid"
    counts = {"train": 4, "val": 2, "test": 2}
    seed = 0
    for split, count in counts.items():
        names = [f"{split}_{index:04d}.png" for index in range(count)]
        for name in names:
            seed += 1
            write_rgb(root / split / name, random_image(24, 32, seed))
            write_mask(root / f"{split}annot" / name, camvid_mask(24, 32, seed))
        if split == "train":
            listing = "".join(f"/SegNet/CamVid/train/{name} /SegNet/CamVid/trainannot/{name}\n" for name in names)
            (root / "train.txt").write_text(listing)
        elif split == "test":
            (root / "test.txt").write_text("".join(f"test/{name} testannot/{name}\n" for name in names))
    return root


@pytest.fixture
def folder_root(tmp_path: Path) -> Path:
    """A folder dataset (3 classes, ignore 255): 4 train (.jpg and .png images), 2 val, 16x20."""
    root = tmp_path / "mydata"
    root.mkdir()
    (root / "dataset.yaml").write_text(FOLDER_YAML)
    seed = 0
    for split, count in (("train", 4), ("val", 2)):
        for index in range(count):
            seed += 1
            mask = np.random.default_rng(seed).choice(np.array([0, 1, 2, 255], np.uint8), (16, 20))
            extension = ".jpg" if index % 2 else ".png"
            write_rgb(root / split / "images" / f"sample{index}{extension}", random_image(16, 20, seed))
            write_mask(root / split / "masks" / f"sample{index}.png", mask)
    return root
