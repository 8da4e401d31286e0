"""The folder dataset (a user's own data described by dataset.yaml / dataset.json)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from udarts_data_fixtures import write_mask, write_rgb

from udarts.data.base import DatasetError
from udarts.data.folder import FolderDataset, load_folder_config


def test_reads_splits_classes_palette(folder_root: Path) -> None:
    train = FolderDataset(folder_root, "train", image_size=(16, 20))
    assert len(train) == 4 and len(FolderDataset(folder_root, "val")) == 2
    assert train.class_names == ("background", "road", "car") and train.ignore_index == 255
    assert train.palette == [(0, 0, 0), (128, 64, 128), (64, 0, 128)]
    assert [pair.image.name for pair in train.samples] == ["sample0.png", "sample1.jpg", "sample2.png", "sample3.jpg"]
    _, mask = train[1]
    stored = np.array(Image.open(folder_root / "train" / "masks" / "sample1.png"))
    assert np.array_equal(mask.numpy(), stored)  # 255 (ignore) kept as is


def test_root_may_be_the_config_file_and_json_works(folder_root: Path) -> None:
    config = yaml.safe_load((folder_root / "dataset.yaml").read_text())
    del config["palette"]
    config["ignore_index"] = None
    (folder_root / "dataset.yaml").unlink()
    (folder_root / "dataset.json").write_text(json.dumps(config))
    for mask_file in (folder_root / "val" / "masks").iterdir():
        write_mask(mask_file, np.ones((16, 20), np.uint8))
    dataset = FolderDataset(folder_root / "dataset.json", "val")
    assert dataset.ignore_index is None and len(dataset.palette) == 3  # generated palette


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dataset.yaml"):
        FolderDataset(tmp_path / "nowhere", "train")


def test_missing_config_shows_an_example(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"(?s)no dataset config.*classes:.*splits:"):
        FolderDataset(tmp_path, "train")


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"classes": []}, "'classes'"),
        ({"classes": ["a", "a", "b"]}, "duplicate"),
        ({"ignore_index": 1}, "is the index of class 'road'"),
        ({"palette": [[0, 0, 0]]}, "'palette'"),
        ({"palette": [[0, 0, 0], [1, 2, 300], [0, 0, 0]]}, "0-255"),
        ({"splits": {"train": {"images": "train/images"}}}, "split 'train'"),
    ],
)
def test_config_problems_name_the_file(folder_root: Path, change: dict, problem: str) -> None:
    config = yaml.safe_load((folder_root / "dataset.yaml").read_text())
    config.update(change)
    (folder_root / "dataset.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(DatasetError, match="dataset.yaml") as error:
        load_folder_config(folder_root)
    assert problem in str(error.value)


def test_unknown_split_lists_defined_ones(folder_root: Path) -> None:
    with pytest.raises(DatasetError, match="defines: train, val"):
        FolderDataset(folder_root, "test")


def test_missing_split_folder(folder_root: Path) -> None:
    (folder_root / "val" / "masks").rename(folder_root / "val" / "labels")
    with pytest.raises(DatasetError, match=r"val/masks"):
        FolderDataset(folder_root, "val")


def test_mask_value_outside_classes_names_the_file(folder_root: Path) -> None:
    mask = np.zeros((16, 20), np.uint8)
    mask[3, 4] = 7
    write_mask(folder_root / "train" / "masks" / "sample2.png", mask)
    with pytest.raises(DatasetError, match=r"sample2\.png.*outside the classes: 7.*0-2, 255"):
        FolderDataset(folder_root, "train")


def test_size_mismatch_names_the_file(folder_root: Path) -> None:
    write_mask(folder_root / "val" / "masks" / "sample0.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DatasetError, match=r"sample0\.png.*differs"):
        FolderDataset(folder_root, "val")


def test_corrupt_image_and_missing_mask_in_skip_mode(folder_root: Path) -> None:
    (folder_root / "train" / "images" / "sample1.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (folder_root / "train" / "masks" / "sample2.png").unlink()
    with pytest.raises(DatasetError, match=r"sample1\.jpg.*corrupt"):
        FolderDataset(folder_root, "train")
    dataset = FolderDataset(folder_root, "train", on_bad_sample="skip")
    assert [pair.image.name for pair in dataset.samples] == ["sample0.png", "sample3.jpg"]
    assert [bad.path.name for bad in dataset.skipped] == ["sample1.jpg", "sample2.png"]


def test_duplicate_image_stems_are_an_error(folder_root: Path) -> None:
    write_rgb(folder_root / "val" / "images" / "sample0.bmp", np.zeros((16, 20, 3), np.uint8))
    with pytest.raises(DatasetError, match="share the stem 'sample0'"):
        FolderDataset(folder_root, "val")


def test_empty_split_is_an_error(folder_root: Path) -> None:
    for image in (folder_root / "val" / "images").iterdir():
        image.unlink()
    with pytest.raises(DatasetError, match="empty"):
        FolderDataset(folder_root, "val")


def test_palette_mode_and_16_bit_masks_are_read_as_indices(folder_root: Path) -> None:
    indexed = Image.fromarray(np.full((16, 20), 2, np.uint8))
    indexed.putpalette([0, 0, 0, 10, 10, 10, 20, 20, 20] + [0] * 759)
    assert indexed.mode == "P"
    indexed.save(folder_root / "val" / "masks" / "sample0.png")
    Image.fromarray(np.full((16, 20), 255, np.uint16)).save(folder_root / "val" / "masks" / "sample1.png")
    dataset = FolderDataset(folder_root, "val", image_size=(16, 20))
    assert dataset[0][1].unique().tolist() == [2] and dataset[1][1].unique().tolist() == [255]
