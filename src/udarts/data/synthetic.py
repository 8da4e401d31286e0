"""A procedural segmentation dataset, generated from a seed, so that everything runs with nothing
downloaded.

Each sample is a textured background (two oriented sinusoidal gratings plus smooth noise) with
several shapes drawn on it at random positions and scales: discs, rectangles and triangles, one
class each. Every class has a base hue that is jittered per shape, every shape carries its own
grating texture, and the whole image gets pixel noise, so a model must use colour, texture and
outline together. Sample ``i`` depends only on ``(seed, i)``: the dataset is never stored, and
two datasets with the same arguments are identical.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from udarts.data.transforms import IMAGENET_MEAN, IMAGENET_STD

_MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)
CLASS_NAMES = ("background", "disc", "rectangle", "triangle")
# Base colour of each shape class (RGB in [0, 1]); jittered per shape.
_CLASS_COLOURS = torch.tensor([[0.85, 0.25, 0.20], [0.20, 0.75, 0.30], [0.25, 0.35, 0.90]])


class SyntheticShapes:
    """``num_samples`` images of ``image_size`` (H, W) with up to ``max_shapes`` shapes each.

    ``noise`` is the standard deviation of the Gaussian pixel noise (image values lie in [0, 1]
    before normalisation). Images are normalised with the ImageNet mean and std, like every
    other dataset of udarts, so ``udarts predict`` treats them alike.
    """

    class_names = CLASS_NAMES
    ignore_index = None

    def __init__(
        self,
        num_samples: int = 256,
        image_size: tuple[int, int] = (64, 64),
        seed: int = 0,
        max_shapes: int = 4,
        noise: float = 0.08,
    ) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {num_samples}")
        height, width = image_size
        if height < 16 or width < 16:
            raise ValueError(f"image_size must be at least 16x16, got {height}x{width}")
        self.num_samples = num_samples
        self.image_size = (int(height), int(width))
        self.seed = seed
        self.max_shapes = max_shapes
        self.noise = noise

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        image, mask = render_sample(self.image_size, generator, self.max_shapes, self.noise)
        return (image - _MEAN) / _STD, mask


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


def _grating(ys: Tensor, xs: Tensor, generator: torch.Generator) -> Tensor:
    """A sinusoidal grating of random orientation and frequency, values in [-1, 1]."""
    angle = _uniform(generator, 0.0, math.pi)
    frequency = _uniform(generator, 0.15, 0.6)
    phase = _uniform(generator, 0.0, 2 * math.pi)
    return torch.sin(frequency * (xs * math.cos(angle) + ys * math.sin(angle)) + phase)


def _smooth_noise(height: int, width: int, generator: torch.Generator) -> Tensor:
    """Low-frequency noise: a coarse random grid upsampled bilinearly, values roughly in [-1, 1]."""
    coarse = torch.rand(1, 3, max(2, height // 8), max(2, width // 8), generator=generator) * 2 - 1
    return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)[0]


def render_sample(
    image_size: tuple[int, int], generator: torch.Generator, max_shapes: int, noise: float
) -> tuple[Tensor, Tensor]:
    """Draw one image ``(3, H, W)`` in [0, 1] and its mask ``(H, W)`` (long, class indices)."""
    height, width = image_size
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij"
    )
    background_colour = torch.rand(3, 1, 1, generator=generator) * 0.5 + 0.25
    image = background_colour + 0.12 * _grating(ys, xs, generator) + 0.12 * _smooth_noise(height, width, generator)
    mask = torch.zeros(height, width, dtype=torch.long)

    num_shapes = int(torch.randint(1, max_shapes + 1, (), generator=generator))
    short_side = min(height, width)
    for _ in range(num_shapes):
        shape_class = int(torch.randint(1, len(CLASS_NAMES), (), generator=generator))
        size = _uniform(generator, 0.12, 0.35) * short_side  # several scales
        centre_y = _uniform(generator, size, height - size)
        centre_x = _uniform(generator, size, width - size)
        dy, dx = ys - centre_y, xs - centre_x
        if shape_class == 1:  # disc
            inside = dy**2 + dx**2 <= size**2
        elif shape_class == 2:  # rectangle, random aspect
            aspect = _uniform(generator, 0.5, 1.5)
            inside = (dy.abs() <= size / aspect) & (dx.abs() <= size * aspect * 0.8)
        else:  # upright isosceles triangle
            inside = (dy <= size * 0.8) & (dy >= -size) & (dx.abs() <= (dy + size) * 0.6)
        colour = (_CLASS_COLOURS[shape_class - 1] + 0.15 * (torch.rand(3, generator=generator) - 0.5)).view(3, 1, 1)
        texture = colour + 0.1 * _grating(ys, xs, generator)
        image = torch.where(inside, texture, image)
        mask[inside] = shape_class

    image = image + noise * torch.randn(image.shape, generator=generator)
    return image.clamp(0.0, 1.0), mask
