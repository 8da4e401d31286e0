"""Oxford-IIIT Pet loader: real subset (when present) and a tiny copy of the official layout."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from udarts_data_fixtures import PETS_TEST, PETS_TRAINVAL, pets_trimap

from udarts.data.base import DatasetError, SegmentationDataset
from udarts.data.pets import (
    BINARY_CLASS_NAMES,
    TRIMAP_CLASS_NAMES,
    VAL_FRACTION,
    OxfordPets,
    breed_of,
    carve_val,
    read_split_list,
)


def sample_named(dataset: OxfordPets, file_name: str) -> tuple[torch.Tensor, torch.Tensor]:
    index = [pair.image.name for pair in dataset.samples].index(file_name)
    return dataset[index]


# ---------------------------------------------------------------- shared real subset
def test_shared_pets_binary_trainval_and_test(shared_data: Path) -> None:
    train = OxfordPets(shared_data, "train", image_size=(32, 32))
    val = OxfordPets(shared_data, "val", image_size=(32, 32))
    test = OxfordPets(shared_data, "test", image_size=(32, 32))
    lists = {name: read_split_list(shared_data / "oxford-iiit-pet" / "annotations" / f"{name}.txt")
             for name in ("trainval", "test")}
    # the structure, whatever copy of the release is there (the subset or the full ~7,400 images)
    assert len(train) + len(val) == len(lists["trainval"]) and len(test) == len(lists["test"])
    assert len(val) == int(VAL_FRACTION * len(lists["trainval"]) + 0.5)  # 20%, rounded half up
    names = {split: {pair.image.stem for pair in dataset.samples} for split, dataset in
             (("train", train), ("val", val), ("test", test))}
    assert not names["train"] & names["val"] and not (names["train"] | names["val"]) & names["test"]
    breeds, in_val = Counter(map(breed_of, lists["trainval"])), Counter(map(breed_of, names["val"]))
    assert all(abs(in_val[breed] - VAL_FRACTION * count) < 1 for breed, count in breeds.items())  # stratified by breed
    if (len(lists["trainval"]), len(lists["test"])) == (393, 99):  # the subset the project's numbers were measured on
        assert (len(train), len(val), len(test)) == (314, 79, 99)
        assert in_val["Bengal"] == 20  # the three breeds with 100 trainval images each give exactly 20 to val
    assert train.skipped == [] and test.skipped == []
    assert isinstance(train, SegmentationDataset)
    assert train.class_names == BINARY_CLASS_NAMES and train.ignore_index is None
    image, mask = train[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert mask.shape == (32, 32) and mask.dtype == torch.int64
    assert set(mask.unique().tolist()) == {0, 1}


def test_shared_pets_trimap_and_png_in_jpg(shared_data: Path) -> None:
    test = OxfordPets(shared_data, "test", target="trimap", image_size=(40, 40))
    assert test.class_names == TRIMAP_CLASS_NAMES
    image, mask = sample_named(test, "Abyssinian_5.jpg")  # an RGBA PNG in the release
    assert image.shape == (3, 40, 40) and torch.isfinite(image).all()
    assert set(mask.unique().tolist()) <= {0, 1, 2}
    assert {0, 1, 2} <= set(torch.cat([test[i][1].flatten() for i in range(5)]).unique().tolist())


# ---------------------------------------------------------------- tiny official layout
def test_fixture_splits_and_targets(pets_root: Path) -> None:
    train = OxfordPets(pets_root, "train", image_size=(20, 24))
    stems = lambda split: [pair.image.stem for pair in OxfordPets(pets_root, split).samples]  # noqa: E731
    # 20% of 6 trainval images rounds to 1, from Abyssinian or Bengal (the largest remainders)
    assert [pair.image.stem for pair in train.samples] == carve_val(PETS_TRAINVAL)[0] == stems("train")
    assert len(stems("train")) == 5 and len(stems("val")) == 1
    assert stems("val")[0] in ("Abyssinian_1", "Abyssinian_4", "Bengal_2", "Bengal_6")
    assert sorted(stems("train") + stems("val")) == sorted(PETS_TRAINVAL) == sorted(stems("trainval"))
    assert stems("test") == PETS_TEST
    trimap = pets_trimap(20, 24)
    _, binary_mask = train[0]  # same size as the files: the eval transform keeps the pixels
    expected_binary = np.where(trimap == 2, 0, 1)
    assert np.array_equal(binary_mask.numpy(), expected_binary)
    _, trimap_mask = OxfordPets(pets_root, "train", target="trimap", image_size=(20, 24))[0]
    assert np.array_equal(trimap_mask.numpy(), trimap.astype(np.int64) - 1)


def test_carve_val_is_stratified_seeded_and_order_free() -> None:
    names = [f"Breed{breed}_{index}" for breed, size in enumerate((50, 10, 7, 3, 2, 1)) for index in range(size)]
    train, val = carve_val(names)
    assert sorted(train + val) == sorted(names) and not set(train) & set(val)
    assert len(val) == round(0.2 * len(names))  # 73 names -> 15
    per_breed = Counter(breed_of(name) for name in val)
    assert per_breed["Breed0"] == 10 and per_breed["Breed1"] == 2  # 20% of the large breeds exactly
    assert per_breed["Breed5"] == 0  # a breed's only image stays in train
    assert all(breed_of(name) in {breed_of(other) for other in train} for name in val)
    assert train == [name for name in names if name in set(train)]  # list order kept
    assert set(carve_val(list(reversed(names)))[1]) == set(val)  # the order of the lines does not matter
    assert carve_val(names, seed=1)[1] != val  # the seed chooses the images
    assert len(carve_val(names, fraction=0.5)[1]) == 37  # 36.5 rounds up; the lone image still stays
    with pytest.raises(ValueError, match="fraction"):
        carve_val(names, fraction=1.0)


def test_fixture_rgba_png_named_jpg_is_read_as_rgb(pets_root: Path) -> None:
    test = OxfordPets(pets_root, "test", image_size=(20, 24))
    image, _ = sample_named(test, "Abyssinian_5.jpg")
    assert image.shape == (3, 20, 24)


def test_root_may_be_the_pets_folder_itself(pets_root: Path) -> None:
    assert len(OxfordPets(pets_root / "oxford-iiit-pet", "trainval")) == len(PETS_TRAINVAL)


def test_unknown_split_and_target(pets_root: Path) -> None:
    with pytest.raises(DatasetError, match="no split"):
        OxfordPets(pets_root, "holdout")
    with pytest.raises(ValueError, match="target"):
        OxfordPets(pets_root, "train", target="species")


# ---------------------------------------------------------------- bad input
def test_missing_root_lists_expected_layout_and_source(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as error:
        OxfordPets(tmp_path / "nowhere", "train")
    message = str(error.value)
    for expected in ("images", "trimaps", "trainval.txt", "test.txt", "download=True", "robots.ox.ac.uk"):
        assert expected in message


def test_missing_split_list(pets_root: Path) -> None:
    (pets_root / "oxford-iiit-pet" / "annotations" / "test.txt").unlink()
    with pytest.raises(DatasetError, match="test.txt"):
        OxfordPets(pets_root, "test")


def test_corrupt_image_names_the_file(pets_root: Path) -> None:
    path = pets_root / "oxford-iiit-pet" / "images" / "Bengal_2.jpg"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # truncated JPEG
    with pytest.raises(DatasetError, match="Bengal_2.jpg"):
        OxfordPets(pets_root, "train")


def test_image_mask_size_mismatch_names_the_file(pets_root: Path) -> None:
    trimap_path = pets_root / "oxford-iiit-pet" / "annotations" / "trimaps" / "Bengal_6.png"
    Image.fromarray(pets_trimap(10, 12)).save(trimap_path)
    with pytest.raises(DatasetError, match=r"Bengal_6\.png.*size"):
        OxfordPets(pets_root, "train")


def test_trimap_value_outside_the_classes_names_the_file(pets_root: Path) -> None:
    trimap_path = pets_root / "oxford-iiit-pet" / "annotations" / "trimaps" / "Persian_7.png"
    trimap = pets_trimap(20, 24)
    trimap[0, 0] = 4
    Image.fromarray(trimap).save(trimap_path)
    with pytest.raises(DatasetError, match=r"Persian_7\.png.*outside the classes: 4"):
        OxfordPets(pets_root, "train")


def test_skip_mode_leaves_bad_samples_out_and_records_them(pets_root: Path) -> None:
    images = pets_root / "oxford-iiit-pet" / "images"
    (images / "Bengal_2.jpg").write_bytes(b"not an image at all")
    (images / "Abyssinian_4.jpg").unlink()
    dataset = OxfordPets(pets_root, "trainval", on_bad_sample="skip")
    assert len(dataset) == len(PETS_TRAINVAL) - 2
    assert sorted(bad.path.name for bad in dataset.skipped) == ["Abyssinian_4.jpg", "Bengal_2.jpg"]
    assert any("missing" in bad.reason for bad in dataset.skipped)
    assert all(pair.image.name not in {"Bengal_2.jpg", "Abyssinian_4.jpg"} for pair in dataset.samples)
    dataset[len(dataset) - 1]


def test_empty_list_is_an_error(pets_root: Path) -> None:
    (pets_root / "oxford-iiit-pet" / "annotations" / "test.txt").write_text("\n")
    with pytest.raises(DatasetError, match="empty"):
        OxfordPets(pets_root, "test")


def test_all_samples_bad_in_skip_mode_is_an_error(pets_root: Path) -> None:
    for name in PETS_TEST:
        (pets_root / "oxford-iiit-pet" / "annotations" / "trimaps" / f"{name}.png").unlink()
    with pytest.raises(DatasetError, match="no usable samples"):
        OxfordPets(pets_root, "test", on_bad_sample="skip")


def test_download_only_when_asked_and_missing(pets_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    class OfflinePets:
        def __init__(self, root: str, **options: object) -> None:
            calls.append(root)
            raise OSError("no network")

    monkeypatch.setattr("torchvision.datasets.OxfordIIITPet", OfflinePets)
    assert len(OxfordPets(pets_root, "test", download=True)) == len(PETS_TEST)  # present: no download
    with pytest.raises(DatasetError, match="robots.ox.ac.uk"):
        OxfordPets(tmp_path / "fresh", "test")  # missing, not asked: no download
    assert calls == []
    with pytest.raises(DatasetError, match="downloading Oxford-IIIT Pet.*no network"):
        OxfordPets(tmp_path / "fresh", "test", download=True)
    assert calls == [str(tmp_path / "fresh")]
