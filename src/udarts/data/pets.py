"""Oxford-IIIT Pet (Parkhi et al., CVPR 2012) in the official layout, as a segmentation dataset.

Layout (what ``torchvision.datasets.OxfordIIITPet`` downloads and reads)::

    <root>/oxford-iiit-pet/images/<NAME>.jpg
    <root>/oxford-iiit-pet/annotations/trimaps/<NAME>.png    (1 pet, 2 background, 3 border)
    <root>/oxford-iiit-pet/annotations/trainval.txt          (lines "NAME CLASS-ID SPECIES BREED-ID")
    <root>/oxford-iiit-pet/annotations/test.txt

``root`` may also be the ``oxford-iiit-pet`` folder itself. With ``download=True`` (and only
then) torchvision downloads and extracts the release into ``<root>/oxford-iiit-pet``.

Splits: the release has only two lists (``trainval.txt``, ``test.txt``); a validation split is
carved out of trainval so that no choice (``best.pt``, settings) is ever made on the test list:

- ``"val"``: ``VAL_FRACTION`` (20%) of ``trainval.txt``, stratified by breed, chosen by a fixed
  seed (``VAL_SEED``), the same in every run whatever the run's ``--seed``;
- ``"train"``: the rest of ``trainval.txt`` (the search halves it into its weight and alpha halves);
- ``"test"``: ``test.txt``, the official test list: for reporting only;
- ``"trainval"``: the whole of ``trainval.txt`` (train + val together).

The carving (:func:`carve_val`): an image's breed is its file name without the trailing
``_<number>`` (``Bengal_2`` -> ``Bengal``, one breed per class id in the release). The split takes
``VAL_FRACTION x N`` images in all, rounded half up (at least 1 when N >= 2), apportioned to the
breeds by largest remainder of ``VAL_FRACTION x`` (breed size) (ties by breed name), never a
breed's last image; within a breed it takes the images with the smallest SHA-256 of
``"<seed>:<name>"``. So the choice depends only on the list, the fraction and the seed (not on
numpy's or Python's random generators, nor on the order of the lines). On the shared 393-image
subset: 79 val, 314 train.

Targets:

- ``"binary"`` (default): 0 background, 1 pet, where the pet includes its border pixels. This is
  the target the project's evaluation protocol scores (pet incl. border vs background).
- ``"trimap"``: the three trimap classes as indices 0 pet, 1 background, 2 border.

Neither target has ignored pixels (``ignore_index`` is ``None``). Images are decoded from their
content, not their extension: ``Abyssinian_5.jpg`` in the release is a PNG with an alpha
channel, and is read as RGB like every other image.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from udarts.data.base import DatasetError
from udarts.data.pairs import LoadOptions, PairedFileDataset, SamplePair

PETS_URL = "https://www.robots.ox.ac.uk/~vgg/data/pets/"
FOLDER_NAME = "oxford-iiit-pet"
TARGETS = ("binary", "trimap")
SPLIT_LISTS = {"train": "trainval", "val": "trainval", "trainval": "trainval", "test": "test"}
VAL_FRACTION = 0.2  # share of trainval.txt carved out as "val", stratified by breed
VAL_SEED = 0  # fixed: every run, whatever its --seed, validates on the same images

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


def breed_of(name: str) -> str:
    """The breed of an image name of the release: the name without its trailing ``_<number>``."""
    return name.rsplit("_", 1)[0]


def carve_val(names: list[str], fraction: float = VAL_FRACTION, seed: int = VAL_SEED) -> tuple[list[str], list[str]]:
    """``(train, val)``: ``names`` (trainval, in list order) split by breed, as the module says.

    Both keep the order of ``names``. ``fraction x len(names)`` names, rounded half up, go to val
    (at least one when there are two or more), apportioned to the breeds by largest remainder of
    ``fraction x`` breed size, never a breed's last name; within a breed the names with the
    smallest SHA-256 of ``"<seed>:<name>"`` are taken.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the val fraction must be in (0, 1), got {fraction}")
    breeds: dict[str, list[str]] = {}
    for name in names:
        breeds.setdefault(breed_of(name), []).append(name)
    total = int(fraction * len(names) + 0.5)
    if len(names) >= 2:
        total = max(total, 1)
    counts = {breed: min(int(fraction * len(members)), len(members) - 1) for breed, members in breeds.items()}
    by_remainder = sorted(breeds, key=lambda breed: (-(fraction * len(breeds[breed]) - counts[breed]), breed))
    for breed in by_remainder:
        if sum(counts.values()) >= total:
            break
        if counts[breed] < len(breeds[breed]) - 1:
            counts[breed] += 1
    rank = lambda name: hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()  # noqa: E731
    chosen = {name for breed, members in breeds.items() for name in sorted(members, key=rank)[: counts[breed]]}
    return [name for name in names if name not in chosen], [name for name in names if name in chosen]


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
        if split in ("train", "val"):
            names = carve_val(names)[split == "val"]
        pairs = [SamplePair(folder / "images" / f"{name}.jpg", trimap_folder / f"{name}.png") for name in names]
        super().__init__(
            pairs,
            raw_to_class=RAW_TO_CLASS[target],
            class_names=BINARY_CLASS_NAMES if target == "binary" else TRIMAP_CLASS_NAMES,
            ignore_index=None,
            palette=BINARY_PALETTE if target == "binary" else TRIMAP_PALETTE,
            name="Oxford-IIIT Pet",
            options=LoadOptions(folder, split, image_size, augment, cache, on_bad_sample),
        )
