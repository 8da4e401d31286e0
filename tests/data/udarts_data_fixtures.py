"""Helpers for the data tests: writers of tiny images and masks in each official layout.

Kept out of conftest.py (which holds the fixtures) so that test modules can import them under a
unique module name."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    """``$UDARTS_SHARED_DATA``, or ``<repo>/../shared/data``."""
    return Path(os.environ.get("UDARTS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def random_image(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def write_mask(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8)).save(path)


def write_rgb(path: Path, pixels: np.ndarray, format: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=format)


PETS_TRAINVAL = ["Abyssinian_1", "Bengal_2", "american_bulldog_3", "Abyssinian_4", "Bengal_6", "Persian_7"]
PETS_TEST = ["Abyssinian_5", "Bengal_8", "american_bulldog_9"]


def pets_trimap(height: int, width: int) -> np.ndarray:
    """1 pet (a centred box), 3 its border, 2 background, as in the release."""
    trimap = np.full((height, width), 2, dtype=np.uint8)
    trimap[height // 4 - 1 : 3 * height // 4 + 1, width // 4 - 1 : 3 * width // 4 + 1] = 3
    trimap[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 1
    return trimap


def camvid_mask(height: int, width: int, seed: int) -> np.ndarray:
    """Values 0-11 (11 = void) in horizontal bands."""
    rows = np.random.default_rng(seed).integers(0, 12, height // 4 + 1)
    return np.repeat(rows, 4)[:height, None].repeat(width, axis=1).astype(np.uint8)


FOLDER_YAML = """\
classes: [background, road, car]
ignore_index: 255
palette: [[0, 0, 0], [128, 64, 128], [64, 0, 128]]
splits:
  train: {images: train/images, masks: train/masks}
  val: {images: val/images, masks: val/masks}
"""
