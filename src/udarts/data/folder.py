"""A user's own segmentation data: folders of images and masks described by a ``dataset.yaml``.

``root`` is a folder holding ``dataset.yaml`` (or ``dataset.yml`` / ``dataset.json``), or the path
of that file itself. Example::

    classes: [background, road, car]     # class names; index i = pixel value i in the masks
    ignore_index: 255                    # optional: mask value to ignore (null or absent: none)
    palette: [[0, 0, 0], [128, 64, 128], [64, 0, 128]]   # optional: one RGB colour per class
    splits:
      train: {images: train/images, masks: train/masks}
      val:   {images: val/images, masks: val/masks}

Folders are relative to the config file. Images are .png .jpg .jpeg .bmp .tif .tiff files
(any channels: converted to RGB); masks are single-channel images (PNG recommended, mode L, P or
16-bit) of class indices, matched to images by file stem (``a.jpg`` <-> ``a.png``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from udarts.data.base import DatasetError
from udarts.data.pairs import LoadOptions, PairedFileDataset, SamplePair, find_images, generated_palette

CONFIG_NAMES = ("dataset.yaml", "dataset.yml", "dataset.json")
MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class FolderConfig:
    """A parsed and checked ``dataset.yaml``; split folders are absolute paths."""

    path: Path
    classes: tuple[str, ...]
    ignore_index: int | None
    palette: list[tuple[int, int, int]]
    splits: dict[str, tuple[Path, Path]]  # split -> (images folder, masks folder)


def find_config(root: Path) -> Path:
    """The config file: ``root`` itself if it is a file, else the first of ``CONFIG_NAMES`` in it."""
    if root.is_file():
        return root
    for name in CONFIG_NAMES:
        if (root / name).is_file():
            return root / name
    raise DatasetError(
        f"no dataset config found at {root}: expected one of {', '.join(str(root / name) for name in CONFIG_NAMES)}.\n"
        "Write one naming the classes and the image/mask folders of each split, e.g.\n"
        "  classes: [background, foreground]\n  ignore_index: 255\n"
        "  splits:\n    train: {images: train/images, masks: train/masks}\n"
        "    val: {images: val/images, masks: val/masks}\n"
        "(see docs/data.md)."
    )


def load_folder_config(root: str | Path) -> FolderConfig:
    """Read and check a folder dataset's config; every problem is a DatasetError naming the file."""
    path = find_config(Path(root).expanduser())
    try:
        text = path.read_text()
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise DatasetError(f"{path}: cannot read the dataset config: {error}") from error

    def fail(problem: str) -> DatasetError:
        return DatasetError(f"{path}: {problem}")

    if not isinstance(raw, dict):
        raise fail("expected a mapping with 'classes' and 'splits'")
    classes = raw.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(name, str) for name in classes):
        raise fail("'classes' must be a non-empty list of class names")
    if len(set(classes)) != len(classes):
        raise fail(f"'classes' has duplicate names: {classes}")
    ignore_index = raw.get("ignore_index")
    if ignore_index is not None:
        if not isinstance(ignore_index, int) or isinstance(ignore_index, bool) or ignore_index < 0:
            raise fail(f"'ignore_index' must be a non-negative integer or null, got {ignore_index!r}")
        if ignore_index < len(classes):
            raise fail(f"'ignore_index' {ignore_index} is the index of class {classes[ignore_index]!r}")
    palette = _check_palette(raw.get("palette"), len(classes), fail)
    splits = raw.get("splits")
    if not isinstance(splits, dict) or not splits:
        raise fail("'splits' must map split names to {images: folder, masks: folder}")
    folders: dict[str, tuple[Path, Path]] = {}
    for split, entry in splits.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("images"), str) or not isinstance(entry.get("masks"), str):
            raise fail(f"split {split!r} must be {{images: folder, masks: folder}}, got {entry!r}")
        folders[str(split)] = (path.parent / entry["images"], path.parent / entry["masks"])
    return FolderConfig(path, tuple(classes), ignore_index, palette, folders)


def _check_palette(palette: Any, num_classes: int, fail) -> list[tuple[int, int, int]]:
    if palette is None:
        return generated_palette(num_classes)
    if not isinstance(palette, list) or len(palette) != num_classes:
        raise fail(f"'palette' must list one [R, G, B] colour per class ({num_classes})")
    colours = []
    for colour in palette:
        if (
            not isinstance(colour, list)
            or len(colour) != 3
            or not all(isinstance(channel, int) and 0 <= channel <= 255 for channel in colour)
        ):
            raise fail(f"palette colour {colour!r} is not [R, G, B] with values 0-255")
        colours.append((colour[0], colour[1], colour[2]))
    return colours


def pair_by_stem(image_folder: Path, mask_folder: Path) -> list[SamplePair]:
    """Each image with the mask of the same stem; a missing mask is left to the scan to report."""
    masks: dict[str, Path] = {}
    for mask in sorted(mask_folder.iterdir()):
        if mask.is_file() and mask.suffix.lower() in MASK_EXTENSIONS:
            if mask.stem in masks:
                raise DatasetError(f"{mask_folder}: two masks share the stem {mask.stem!r}: {masks[mask.stem].name}, {mask.name}")
            masks[mask.stem] = mask
    pairs: list[SamplePair] = []
    seen: dict[str, Path] = {}
    for image in find_images(image_folder):
        if image.stem in seen:
            raise DatasetError(f"{image_folder}: two images share the stem {image.stem!r}: {seen[image.stem].name}, {image.name}")
        seen[image.stem] = image
        pairs.append(SamplePair(image, masks.get(image.stem, mask_folder / f"{image.stem}.png")))
    return pairs


class FolderDataset(PairedFileDataset):
    """A dataset described by a ``dataset.yaml``; see the module docstring for the format."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        image_size: tuple[int, int] = (64, 64),
        augment: bool = False,
        cache: bool = False,
        on_bad_sample: str = "error",
    ) -> None:
        root = Path(root).expanduser()
        if not root.exists():
            raise DatasetError(
                f"dataset folder {root} does not exist. Expected {root / CONFIG_NAMES[0]} naming the classes and "
                "each split's image and mask folders (see docs/data.md)."
            )
        self.config = load_folder_config(root)
        if split not in self.config.splits:
            raise DatasetError(
                f"{self.config.path} has no split {split!r}; it defines: {', '.join(self.config.splits)}"
            )
        image_folder, mask_folder = self.config.splits[split]
        missing = [str(folder) for folder in (image_folder, mask_folder) if not folder.is_dir()]
        if missing:
            raise DatasetError(f"{self.config.path}, split {split!r}: folder(s) not found: {', '.join(missing)}")
        classes = self.config.classes
        raw_to_class = {index: index for index in range(len(classes))}
        if self.config.ignore_index is not None:
            raw_to_class[self.config.ignore_index] = self.config.ignore_index
        super().__init__(
            pair_by_stem(image_folder, mask_folder),
            raw_to_class=raw_to_class,
            class_names=classes,
            ignore_index=self.config.ignore_index,
            palette=self.config.palette,
            name=f"folder dataset {self.config.path.parent.name!r}",
            options=LoadOptions(self.config.path.parent, split, image_size, augment, cache, on_bad_sample),
        )

