"""Joint image/mask transforms for segmentation, built on ``torchvision.transforms.v2``.

Why transforms.v2 and not albumentations: albumentations' MIT-licensed line has been frozen since
2025 and its successor (AlbumentationsX) is AGPL, which this MIT project cannot depend on. The v2
API ships inside torchvision, which udarts needs anyway, and it transforms an image and its mask
together: a ``tv_tensors.Mask`` is always resized with nearest-neighbour, so a mask never gets
interpolated (invented) class values, and photometric transforms such as ``ColorJitter`` leave
masks untouched.

Every transform here takes an ``image`` (uint8 tensor ``(3, h, w)``) and a ``mask`` (integer
tensor ``(h, w)`` of class indices) and returns plain tensors: the image as float ``(3, H, W)``
normalised with the ImageNet mean and standard deviation, the mask as long ``(H, W)``.

- Training (:func:`train_transform`): random scale-and-crop (zoom in by a factor drawn from
  ``scale_range``, then a random ``(H, W)`` window), horizontal flip, colour jitter on the image
  only, then float conversion and normalisation.
- Evaluation (:func:`eval_transform`): a deterministic resize to ``(H, W)`` (mask nearest), then
  float conversion and normalisation.

Each transform states the ``input_size`` it wants its inputs resized to beforehand: ``(H, W)``
for evaluation, ``scale_range[1]`` times that for training, so that the largest zoom never
upsamples. Datasets resize (and optionally cache) their samples at that size once, before any
random augmentation.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

DEFAULT_SCALE_RANGE = (1.0, 1.5)
# brightness, contrast, saturation, hue (see torchvision.transforms.v2.ColorJitter)
DEFAULT_COLOR_JITTER = (0.3, 0.3, 0.3, 0.05)


def _checked_size(image_size: Sequence[int]) -> tuple[int, int]:
    if len(image_size) != 2:
        raise ValueError(f"image_size must be (height, width), got {image_size!r}")
    height, width = int(image_size[0]), int(image_size[1])
    if height < 1 or width < 1:
        raise ValueError(f"image_size must be positive, got {height}x{width}")
    return height, width


def resize_pair(image: Tensor, mask: Tensor | None, size: tuple[int, int]) -> tuple[Tensor, Tensor | None]:
    """Resize an image (bilinear, antialiased) and its mask (nearest) to ``size`` = (H, W).

    Inputs are plain tensors (uint8 image ``(3, h, w)``, integer mask ``(h, w)``); so are the
    outputs. Used to bring decoded samples to a transform's ``input_size`` before augmentation.
    """
    size_list = [int(size[0]), int(size[1])]
    resized_image = image
    if tuple(image.shape[-2:]) != tuple(size_list):
        resized_image = F.resize(tv_tensors.Image(image), size_list, antialias=True).as_subclass(Tensor)
    resized_mask = mask
    if mask is not None and tuple(mask.shape[-2:]) != tuple(size_list):
        resized_mask = F.resize(tv_tensors.Mask(mask), size_list).as_subclass(Tensor)
    return resized_image, resized_mask


class RandomScaleCrop:
    """Zoom in by a random factor in ``scale_range`` and cut a random ``size`` window.

    Both the image and the mask are resized to ``round(scale * size)`` (image bilinear, mask
    nearest: the v2 kernels pick the interpolation from the tv_tensor type) and then cropped at
    the same random offset. Factors are at least 1, so the crop never needs padding.
    Randomness comes from torch's global generator (seeded per DataLoader worker by torch; under
    ``torchrun`` offset per rank, see ``udarts.engine.distributed.rank_seed``).
    """

    def __init__(self, size: Sequence[int], scale_range: Sequence[float] = DEFAULT_SCALE_RANGE) -> None:
        self.size = _checked_size(size)
        low, high = float(scale_range[0]), float(scale_range[1])
        if not 1.0 <= low <= high:
            raise ValueError(f"scale_range must satisfy 1 <= low <= high, got {tuple(scale_range)}")
        self.scale_range = (low, high)

    def __call__(self, image: tv_tensors.Image, mask: tv_tensors.Mask) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
        height, width = self.size
        low, high = self.scale_range
        scale = low + (high - low) * torch.rand(()).item()
        scaled_height = max(height, round(height * scale))
        scaled_width = max(width, round(width * scale))
        image = F.resize(image, [scaled_height, scaled_width], antialias=True)
        mask = F.resize(mask, [scaled_height, scaled_width])
        top = int(torch.randint(0, scaled_height - height + 1, ()).item())
        left = int(torch.randint(0, scaled_width - width + 1, ()).item())
        return F.crop(image, top, left, height, width), F.crop(mask, top, left, height, width)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, scale_range={self.scale_range})"


class JointTransform:
    """Runs a v2 pipeline on an ``(image, mask)`` pair and returns plain tensors.

    ``input_size`` is the (H, W) the inputs should already have (datasets resize to it once,
    before augmentation); other sizes work too, only slower or softer. ``mask`` may be ``None``
    (prediction on bare images), in which case the returned mask is ``None`` too.
    """

    def __init__(self, pipeline: Callable, image_size: tuple[int, int], input_size: tuple[int, int]) -> None:
        self.pipeline = pipeline
        self.image_size = image_size
        self.input_size = input_size

    def __call__(self, image: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"expected a uint8 image of shape (3, H, W), got {image.dtype} {tuple(image.shape)}")
        if mask is None:
            # A dummy mask keeps the pipeline's random draws identical with and without a mask.
            mask = torch.zeros(image.shape[-2:], dtype=torch.uint8)
            out_image, _ = self.pipeline(tv_tensors.Image(image), tv_tensors.Mask(mask))
            return out_image.as_subclass(Tensor), None
        if tuple(mask.shape) != tuple(image.shape[-2:]):
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match image size {tuple(image.shape[-2:])}")
        out_image, out_mask = self.pipeline(tv_tensors.Image(image), tv_tensors.Mask(mask))
        return out_image.as_subclass(Tensor), out_mask.as_subclass(Tensor)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(image_size={self.image_size}, input_size={self.input_size}, {self.pipeline!r})"


def _to_float_normalized() -> list:
    return [
        v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.int64}, scale=True),
        v2.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
    ]


def train_transform(
    image_size: Sequence[int],
    *,
    scale_range: Sequence[float] = DEFAULT_SCALE_RANGE,
    flip_probability: float = 0.5,
    color_jitter: Sequence[float] | None = DEFAULT_COLOR_JITTER,
) -> JointTransform:
    """The training augmentation: random scale-crop, horizontal flip, colour jitter, normalise.

    ``color_jitter`` is ``(brightness, contrast, saturation, hue)`` or ``None`` for none. The
    result's ``input_size`` is ``ceil(scale_range[1] * image_size)``.
    """
    height, width = _checked_size(image_size)
    scale_crop = RandomScaleCrop((height, width), scale_range)
    steps: list = [scale_crop, v2.RandomHorizontalFlip(p=flip_probability)]
    if color_jitter is not None:
        brightness, contrast, saturation, hue = color_jitter
        steps.append(v2.ColorJitter(brightness=brightness, contrast=contrast, saturation=saturation, hue=hue))
    steps += _to_float_normalized()
    max_scale = scale_crop.scale_range[1]
    input_size = (math.ceil(height * max_scale), math.ceil(width * max_scale))
    return JointTransform(v2.Compose(steps), (height, width), input_size)


def eval_transform(image_size: Sequence[int]) -> JointTransform:
    """The evaluation transform: deterministic resize to ``image_size`` (mask nearest), normalise."""
    height, width = _checked_size(image_size)
    pipeline = v2.Compose([v2.Resize([height, width], antialias=True), *_to_float_normalized()])
    return JointTransform(pipeline, (height, width), (height, width))


def build_transform(image_size: Sequence[int], augment: bool) -> JointTransform:
    """:func:`train_transform` with its defaults when ``augment`` is true, else :func:`eval_transform`."""
    return train_transform(image_size) if augment else eval_transform(image_size)


def denormalize(image: Tensor) -> Tensor:
    """Undo the ImageNet normalisation: ``(..., 3, H, W)`` float -> same shape, clamped to [0, 1].

    For visualising dataset samples (the synthetic dataset uses its own normalisation, so this
    does not apply to it).
    """
    if image.dim() < 3 or image.shape[-3] != 3:
        raise ValueError(f"expected an image of shape (..., 3, H, W), got {tuple(image.shape)}")
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image * std + mean).clamp(0.0, 1.0)
