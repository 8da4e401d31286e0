"""Oxford-IIIT Pet (Parkhi et al., CVPR 2012) in the official layout, as a segmentation dataset.

Layout (what ``torchvision.datasets.OxfordIIITPet`` downloads and reads)::

    <root>/oxford-iiit-pet/images/<NAME>.jpg
    <root>/oxford-iiit-pet/annotations/trimaps/<NAME>.png    (1 pet, 2 background, 3 border)
    <root>/oxford-iiit-pet/annotations/trainval.txt          (lines "NAME CLASS-ID SPECIES BREED-ID")
    <root>/oxford-iiit-pet/annotations/test.txt

``root`` may also be the ``oxford-iiit-pet`` folder itself. With ``download=True`` (and only
then) torchvision downloads and extracts the release into ``<root>/oxford-iiit-pet``.

Splits: the release has only two lists, so ``"train"`` (alias ``"trainval"``) reads
``trainval.txt`` and both ``"val"`` and ``"test"`` read ``test.txt``.

Targets:

- ``"binary"`` (default): 0 background, 1 pet, where the pet includes its border pixels. This is
  the target the project's evaluation protocol scores (pet incl. border vs background).
- ``"trimap"``: the three trimap classes as indices 0 pet, 1 background, 2 border.

Neither target has ignored pixels (``ignore_index`` is ``None``). Images are decoded from their
content, not their extension: ``Abyssinian_5.jpg`` in the release is a PNG with an alpha
channel, and is read as RGB like every other image.
"""

from __future__ import annotations

from pathlib import Path

from udarts.data.base import DatasetError
from udarts.data.pairs import PairedFileDataset, SamplePair

PETS_URL = "https://www.robots.ox.ac.uk/~vgg/data/pets/"
FOLDER_NAME = "oxford-iiit-pet"
TARGETS = ("binary", "trimap")
SPLIT_LISTS = {"train": "trainval", "trainval": "trainval", "val": "test", "test": "test"}

BINARY_CLASS_NAMES = ("background", "pet")
BINARY_PALETTE = [(0, 0, 0), (255, 200, 0)]
TRIMAP_CLASS_NAMES = ("pet", "background", "border")
TRIMAP_PALETTE = [(255, 200, 0), (0, 0, 0), (0, 160, 255)]

# Raw trimap values (1 pet, 2 background, 3 border) -> class index, per target.
RAW_TO_CLASS = {
    "binary": {1: 1, 2: 0, 3: 1},
    "trimap": {1: 0, 2: 1, 3: 2},
}


def find_pets_folder(root: Path) -> Path | None:
    """``root/oxford-iiit-pet`` or ``root`` itself, whichever holds ``images/`` and ``annotations/``."""
    for candidate in (root / FOLDER_NAME, root):
        if (candidate / "images").is_dir() and (candidate / "annotations").is_dir():
            return candidate
    return None


def _missing_message(root: Path) -> str:
    base = root / FOLDER_NAME
    expected = [
        base / "images" / "<NAME>.jpg",
        base / "annotations" / "trimaps" / "<NAME>.png",
        base / "annotations" / "trainval.txt",
        base / "annotations" / "test.txt",
    ]
    lines = "\n".join(f"  {path}" for path in expected)
    return (
        f"Oxford-IIIT Pet not found under {root}. Expected the official layout:\n{lines}\n"
        f"Get it with download=True (on the command line: --set data.download=true), or download images.tar.gz and "
        f"annotations.tar.gz from {PETS_URL} and extract both into {base}."
    )


def _download(root: Path) -> None:
    from torchvision.datasets import OxfordIIITPet

    try:
        OxfordIIITPet(str(root), split="trainval", target_types="segmentation", download=True)
    except Exception as error:  # network errors, checksum mismatches, a full disk ...
        raise DatasetError(f"downloading Oxford-IIIT Pet into {root / FOLDER_NAME} failed: {error}\n"
                           f"{_missing_message(root)}") from error


def read_split_list(path: Path) -> list[str]:
    """Image names from an official split list (first token per line; blanks and ``#`` skipped)."""
    names = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.append(line.split()[0])
    return names


class OxfordPets(PairedFileDataset):
    """Oxford-IIIT Pet segmentation; see the module docstring for layout, splits and targets."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        target: str = "binary",
        image_size: tuple[int, int] = (128, 128),
        augment: bool = False,
        cache: bool = False,
        on_bad_sample: str = "error",
        download: bool = False,
    ) -> None:
        if split not in SPLIT_LISTS:
            raise DatasetError(f"Oxford-IIIT Pet has no split {split!r}; choose one of {tuple(SPLIT_LISTS)}")
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        root = Path(root).expanduser()
        if download and find_pets_folder(root) is None:
            _download(root)
        folder = find_pets_folder(root)
        if folder is None:
            raise DatasetError(_missing_message(root))
        list_path = folder / "annotations" / f"{SPLIT_LISTS[split]}.txt"
        trimap_folder = folder / "annotations" / "trimaps"
        missing = [path for path in (list_path, trimap_folder) if not path.exists()]
        if missing:
            raise DatasetError(
                f"Oxford-IIIT Pet at {folder} is incomplete: missing {', '.join(map(str, missing))}.\n"
                f"{_missing_message(folder.parent)}"
            )
        self.target = target
        self.list_file = list_path
        names = read_split_list(list_path)
        pairs = [SamplePair(folder / "images" / f"{name}.jpg", trimap_folder / f"{name}.png") for name in names]
        super().__init__(
            pairs,
            raw_to_class=RAW_TO_CLASS[target],
            class_names=BINARY_CLASS_NAMES if target == "binary" else TRIMAP_CLASS_NAMES,
            ignore_index=None,
            palette=BINARY_PALETTE if target == "binary" else TRIMAP_PALETTE,
            name="Oxford-IIIT Pet",
            root=folder,
            split=split,
            image_size=image_size,
            augment=augment,
            cache=cache,
            on_bad_sample=on_bad_sample,
        )
