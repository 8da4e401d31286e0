"""The shared machinery of datasets stored as image/mask file pairs (Pets, CamVid, folders).

:class:`PairedFileDataset` takes a list of :class:`SamplePair` and

- validates every pair once, at construction (a threaded scan): the image must decode, the mask
  must be a single-channel image of the same size whose raw values all map to a class or to the
  ignore value. A bad pair raises :class:`~udarts.data.base.DatasetError` naming the file, or,
  with ``on_bad_sample="skip"``, is left out and recorded in ``skipped`` with the reason;
- optionally caches the decoded samples in memory, resized to the transform's ``input_size``
  (``image_size`` for evaluation, a bit larger for training so random zooms stay sharp);
- returns ``(image, mask)`` as the interface in :mod:`udarts.data.base` asks: a normalised float
  image ``(3, H, W)`` and a long mask ``(H, W)``.

Subclasses (one per layout) find the pairs and say how raw mask values map to class indices.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ContextManager, Mapping, NamedTuple, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from udarts.data.base import DatasetError
from udarts.data.transforms import build_transform, resize_pair
from udarts.efficiency import torch_threads

logger = logging.getLogger(__name__)

BAD_SAMPLE_POLICIES = ("error", "skip")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# PIL modes that hold one value per pixel (class indices); "P" is read as its palette indices.
SINGLE_CHANNEL_MODES = ("1", "L", "P", "I", "I;16", "I;16L", "I;16B", "I;16N")

Palette = list[tuple[int, int, int]]


@dataclass(frozen=True)
class SamplePair:
    """One sample on disk: an image file and its mask file."""

    image: Path
    mask: Path


@dataclass(frozen=True)
class LoadOptions:
    """Where a split lives and how to load it: the options every :class:`PairedFileDataset` takes.

    ``root`` and ``split`` name the split in messages; ``image_size``, ``augment``, ``cache`` and
    ``on_bad_sample`` are as :class:`PairedFileDataset` describes.
    """

    root: Path
    split: str
    image_size: tuple[int, int] = (64, 64)
    augment: bool = False
    cache: bool = False
    on_bad_sample: str = "error"


class BadSample(NamedTuple):
    """A sample left out by ``on_bad_sample="skip"``: the offending file and why."""

    path: Path
    reason: str


class _BadSampleFound(Exception):
    """Internal: a sample failed validation (carries the file to blame)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def single_threaded_torch() -> ContextManager[None]:
    """Run torch ops on one intra-op thread for the duration (then restore the setting).

    Per-sample resizes are far too small to gain from OpenMP, and on a busy 2-core machine
    multi-threaded small ops can run a hundred times slower (threads wait for each other at
    every barrier). DataLoader workers already run single-threaded; this makes loading in the
    main process (``num_workers=0``) and the construction scan behave the same.
    """
    return torch_threads(1)


def generated_palette(num_colours: int) -> Palette:
    """``num_colours`` distinct RGB colours, the PASCAL VOC bit-interleaved palette (0 is black)."""
    palette = []
    for index in range(num_colours):
        red = green = blue = 0
        value = index
        for bit in range(8):
            red |= ((value >> 0) & 1) << (7 - bit)
            green |= ((value >> 1) & 1) << (7 - bit)
            blue |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette.append((red, green, blue))
    return palette


def read_rgb(path: Path, *, fast_check: bool = False) -> Image.Image:
    """Open and fully decode an image as RGB (RGBA, grey, palette and CMYK files are converted).

    The format is detected from the content, not the extension (Pets' ``Abyssinian_5.jpg`` is a
    PNG with alpha). With ``fast_check`` a JPEG is decoded at reduced scale: every byte is still
    entropy-decoded, so a truncated or corrupt file still fails, at a fraction of the cost.
    Raises whatever PIL raises for an unreadable file.
    """
    with Image.open(path) as image:
        if fast_check and image.format == "JPEG":
            image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
        image.load()
        return image.convert("RGB")


def image_size_of(path: Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    with Image.open(path) as image:
        return image.size


class PairedFileDataset:
    """A validated list of image/mask file pairs; see the module docstring.

    Subclasses pass:

    - ``pairs``: the samples of the split, in a fixed order;
    - ``raw_to_class``: how raw mask values map to stored values (class indices, or the ignore
      value); any raw value not in it makes the sample bad;
    - ``class_names``, ``ignore_index``, ``palette``: the dataset's classes (``ignore_index`` is
      ``None`` when every pixel is labelled);
    - ``name``: for messages;
    - ``options``: a :class:`LoadOptions`, whose ``root`` and ``split`` are for messages.

    Of the options, ``image_size`` is the output (H, W); ``augment`` picks the training
    augmentation or the deterministic evaluation transform; ``cache`` keeps every decoded sample in
    memory, resized to the transform's ``input_size`` (uint8, about ``3 * H * W * scale**2`` bytes
    per image).
    """

    def __init__(
        self,
        pairs: Sequence[SamplePair],
        *,
        raw_to_class: Mapping[int, int],
        class_names: Sequence[str],
        ignore_index: int | None,
        palette: Sequence[Sequence[int]],
        name: str,
        options: LoadOptions,
    ) -> None:
        if options.on_bad_sample not in BAD_SAMPLE_POLICIES:
            raise ValueError(f"on_bad_sample must be one of {BAD_SAMPLE_POLICIES}, got {options.on_bad_sample!r}")
        self.name = name
        self.root = Path(options.root)
        self.split = options.split
        self.class_names = tuple(class_names)
        self.ignore_index = ignore_index
        self.palette: Palette = [tuple(int(channel) for channel in colour) for colour in palette]
        self.image_size = (int(options.image_size[0]), int(options.image_size[1]))
        self.augment = options.augment
        self.on_bad_sample = options.on_bad_sample
        self.transform = build_transform(self.image_size, options.augment)
        self._lookup = _build_lookup(raw_to_class)
        self._accepted_raw_values = sorted(raw_to_class)
        self._mask_dtype = torch.uint8 if max(raw_to_class.values()) <= 255 else torch.int32

        if not pairs:
            raise DatasetError(f"{self.describe()} is empty: no image/mask pairs were found")
        self.samples, self.skipped, cached = self._scan(list(pairs), options.cache)
        if self.skipped:
            logger.warning("%s: skipped %d bad sample(s) of %d", self.describe(), len(self.skipped), len(pairs))
        if not self.samples:
            reasons = "; ".join(f"{bad.path}: {bad.reason}" for bad in self.skipped[:3])
            raise DatasetError(f"{self.describe()} has no usable samples: all {len(pairs)} were bad ({reasons} ...)")
        self.cached = options.cache
        self._cached_images: Tensor | None = None
        self._cached_masks: Tensor | None = None
        if options.cache:
            with single_threaded_torch():
                self._cached_images = torch.stack([image for image, _ in cached])
                self._cached_masks = torch.stack([mask for _, mask in cached])

    # ------------------------------------------------------------------ interface
    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        if not -len(self.samples) <= index < len(self.samples):
            raise IndexError(f"index {index} out of range for {len(self.samples)} samples")
        with single_threaded_torch():
            if self._cached_images is not None and self._cached_masks is not None:
                image, mask = self._cached_images[index], self._cached_masks[index]
            else:
                pair = self.samples[index]
                try:
                    image, mask = self._decode(pair, fast_check=False)
                except _BadSampleFound as bad:  # the file changed since the scan
                    raise DatasetError(f"{self.describe()}: {bad.path}: {bad.reason}") from None
                image, mask = resize_pair(image, mask, self.transform.input_size)
            out_image, out_mask = self.transform(image, mask)
        assert out_mask is not None
        return out_image, out_mask

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def describe(self) -> str:
        """``"<name> split '<split>' at <root>"``, used in messages."""
        return f"{self.name} split '{self.split}' at {self.root}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, samples={len(self)}, "
            f"skipped={len(self.skipped)}, image_size={self.image_size}, augment={self.augment}, cached={self.cached})"
        )

    # ------------------------------------------------------------------ decoding and validation
    def _decode(self, pair: SamplePair, *, fast_check: bool) -> tuple[Tensor, Tensor]:
        """Decode and validate one pair: uint8 image ``(3, h, w)``, mask ``(h, w)`` of stored values."""
        for path, role in ((pair.image, "image"), (pair.mask, "mask")):
            if not path.is_file():
                raise _BadSampleFound(path, f"{role} file is missing")
        try:
            image = read_rgb(pair.image, fast_check=fast_check)
        except Exception as error:  # PIL raises OSError, SyntaxError, ValueError, ... for bad files
            raise _BadSampleFound(pair.image, f"image is corrupt or unreadable ({type(error).__name__}: {error})")
        try:
            with Image.open(pair.mask) as mask_file:
                mask_file.load()
                mode, mask_size = mask_file.mode, mask_file.size
                raw = np.array(mask_file) if mode in SINGLE_CHANNEL_MODES else None
        except Exception as error:
            raise _BadSampleFound(pair.mask, f"mask is corrupt or unreadable ({type(error).__name__}: {error})")
        if raw is None:
            raise _BadSampleFound(pair.mask, f"mask must be a single-channel image of class indices, got mode {mode}")
        # fast_check may have decoded a JPEG at reduced scale: compare the header's size.
        image_size = image_size_of(pair.image) if fast_check else image.size
        if mask_size != image_size:
            raise _BadSampleFound(
                pair.mask,
                f"mask size {mask_size[0]}x{mask_size[1]} differs from image size {image_size[0]}x{image_size[1]} "
                f"({pair.image.name})",
            )
        mask = self._map_mask_values(raw, pair.mask)
        image_tensor = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).contiguous()
        return image_tensor, mask

    def _map_mask_values(self, raw: np.ndarray, path: Path) -> Tensor:
        if raw.dtype == np.bool_:  # mode "1": a two-class mask
            raw = raw.astype(np.uint8)
        elif raw.dtype != np.uint8:
            raw = raw.astype(np.int64, copy=False)
        lookup = self._lookup
        if raw.dtype != np.uint8 and (raw.min() < 0 or raw.max() >= len(lookup)):
            bad_values = np.unique(raw[(raw < 0) | (raw >= len(lookup))])
            raise _BadSampleFound(path, self._bad_values_reason(bad_values))
        mapped = lookup[raw]
        invalid = mapped < 0
        if invalid.any():
            raise _BadSampleFound(path, self._bad_values_reason(np.unique(raw[invalid])))
        return torch.from_numpy(mapped.astype(np.uint8 if self._mask_dtype == torch.uint8 else np.int32))

    def _bad_values_reason(self, bad_values: np.ndarray) -> str:
        shown = ", ".join(str(int(value)) for value in bad_values[:10])
        more = " ..." if len(bad_values) > 10 else ""
        return f"mask holds values outside the classes: {shown}{more} (accepted raw values: {_ranges(self._accepted_raw_values)})"

    def _scan_one(self, pair: SamplePair, cache: bool) -> tuple[Tensor, Tensor] | BadSample:
        try:
            image, mask = self._decode(pair, fast_check=not cache)
        except _BadSampleFound as bad:
            return BadSample(bad.path, bad.reason)
        if not cache:
            return image[:, :0, :0], mask[:0, :0]  # only the verdict is needed: drop the pixels
        return resize_pair(image, mask, self.transform.input_size)

    def _scan(
        self, pairs: list[SamplePair], cache: bool
    ) -> tuple[list[SamplePair], list[BadSample], list[tuple[Tensor, Tensor]]]:
        """Validate every pair (threads: PIL and numpy release the GIL); keep the good ones in order."""
        workers = max(1, min(8, os.cpu_count() or 1))
        with single_threaded_torch(), ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(lambda pair: self._scan_one(pair, cache), pairs))
        samples: list[SamplePair] = []
        skipped: list[BadSample] = []
        cached: list[tuple[Tensor, Tensor]] = []
        for pair, result in zip(pairs, results):
            if isinstance(result, BadSample):
                if self.on_bad_sample == "error":
                    raise DatasetError(
                        f"{self.describe()}: bad sample {result.path}: {result.reason}. "
                        "Fix or remove the file, or pass on_bad_sample='skip' to leave such samples out."
                    )
                skipped.append(result)
            else:
                samples.append(pair)
                cached.append(result)
        return samples, skipped, cached


def _build_lookup(raw_to_class: Mapping[int, int]) -> np.ndarray:
    """A table from raw mask value to stored value; -1 marks values that are not allowed."""
    if not raw_to_class:
        raise ValueError("raw_to_class must not be empty")
    if min(raw_to_class) < 0:
        raise ValueError("raw mask values must be non-negative")
    lookup = np.full(max(256, max(raw_to_class) + 1), -1, dtype=np.int64)
    for raw_value, stored_value in raw_to_class.items():
        lookup[raw_value] = stored_value
    return lookup


def _ranges(values: Sequence[int]) -> str:
    """``[0, 1, 2, 3, 7]`` -> ``"0-3, 7"``."""
    parts: list[str] = []
    start = previous = None
    for value in values:
        if start is None:
            start = previous = value
        elif value == previous + 1:
            previous = value
        else:
            parts.append(f"{start}-{previous}" if previous != start else str(start))
            start = previous = value
    if start is not None:
        parts.append(f"{start}-{previous}" if previous != start else str(start))
    return ", ".join(parts)


def find_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder`` (see ``IMAGE_EXTENSIONS``), sorted by name."""
    return sorted(
        path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS
    )
