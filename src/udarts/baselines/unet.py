"""The classic UNet, built from scratch.

O. Ronneberger, P. Fischer, T. Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015.

The layout follows the paper: an encoder of five double-conv blocks separated by four 2x2
max-pool downsamplings (``width``, 2, 4, 8 and 16 times ``width`` channels; 64 -> 1024 at
``width=64``), a mirrored decoder of four upsampling steps, each followed by concatenation
with the encoder features of the same scale and a double-conv block, and a 1x1 classifier.

Two deliberate departures from the 2015 paper, both now standard:

* convolutions are *padded* (the paper used unpadded "valid" convolutions and cropped the
  skip features), so each block keeps its spatial size and the output matches the input;
* each 3x3 convolution is followed by batch normalisation (not in the paper) before the ReLU.

Upsampling is the paper's "up-convolution" (a 2x2 transposed convolution that halves the
channels) by default; with ``bilinear=True`` it is a 2x bilinear interpolation followed by
a 1x1 convolution that halves the channels, so both variants have the same channel plan.

Inputs whose height or width are not multiples of 16 are zero-padded and the logits cropped
back (see :mod:`udarts.baselines.padding`).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from udarts.baselines.padding import crop_to_size, pad_to_multiple
from udarts.baselines.scales import configuration_for

NUM_DOWNSAMPLINGS = 4


class DoubleConv(nn.Sequential):
    """(3x3 conv -> batch norm -> ReLU) twice: the basic UNet block."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            OrderedDict(
                conv1=nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
                norm1=nn.BatchNorm2d(out_channels),
                relu1=nn.ReLU(inplace=True),
                conv2=nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
                norm2=nn.BatchNorm2d(out_channels),
                relu2=nn.ReLU(inplace=True),
            )
        )


class DownBlock(nn.Sequential):
    """2x2 max pooling (halves H and W) followed by a :class:`DoubleConv`."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            OrderedDict(
                pool=nn.MaxPool2d(kernel_size=2),
                convs=DoubleConv(in_channels, out_channels),
            )
        )


class UpBlock(nn.Module):
    """Upsample 2x halving the channels, concatenate the skip features, then a :class:`DoubleConv`."""

    def __init__(self, in_channels: int, out_channels: int, bilinear: bool = False) -> None:
        super().__init__()
        if bilinear:
            self.upsample = nn.Sequential(
                OrderedDict(
                    interpolate=nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                    reduce=nn.Conv2d(in_channels, in_channels // 2, kernel_size=1),
                )
            )
        else:
            self.upsample = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.convs = DoubleConv(in_channels // 2 + out_channels, out_channels)

    def forward(self, features: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        upsampled = self.upsample(features)
        return self.convs(torch.cat([skip, upsampled], dim=1))


class UNet(nn.Module):
    """Ronneberger et al. (2015) UNet mapping (B, in_channels, H, W) to logits (B, num_classes, H, W).

    Args:
        in_channels: channels of the input image.
        num_classes: number of output classes (logit maps).
        width: channels of the first block; block ``i`` (0-based) has ``width * 2**i``.
            64 is the paper's configuration (64 -> 1024 channels).
        bilinear: use bilinear upsampling + 1x1 conv instead of 2x2 transposed convolutions.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 2, width: int = 64, bilinear: bool = False) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be positive, got {width}")
        channels = [width * 2**level for level in range(NUM_DOWNSAMPLINGS + 1)]
        self.size_divisor = 2**NUM_DOWNSAMPLINGS
        self.input_block = DoubleConv(in_channels, channels[0])
        self.down_blocks = nn.ModuleList(
            DownBlock(channels[level], channels[level + 1]) for level in range(NUM_DOWNSAMPLINGS)
        )
        self.up_blocks = nn.ModuleList(
            UpBlock(channels[level + 1], channels[level], bilinear=bilinear)
            for level in reversed(range(NUM_DOWNSAMPLINGS))
        )
        self.classifier = nn.Conv2d(channels[0], num_classes, kernel_size=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images, original_size = pad_to_multiple(images, self.size_divisor)
        features = self.input_block(images)
        skips = []
        for down_block in self.down_blocks:
            skips.append(features)
            features = down_block(features)
        for up_block, skip in zip(self.up_blocks, reversed(skips)):
            features = up_block(features, skip)
        return crop_to_size(self.classifier(features), original_size)


PAPER_CONFIG = dict(width=64, bilinear=False)
CPU_CONFIG = dict(width=16, bilinear=False)


def create_unet(*, in_channels: int = 3, num_classes: int, scale: str = "cpu", **options) -> UNet:
    """UNet at ``scale`` ("paper": width 64, i.e. 64 -> 1024 channels; "cpu": width 16);
    ``options`` (``width``, ``bilinear``) override the scale's defaults."""
    configuration = configuration_for(scale, PAPER_CONFIG, CPU_CONFIG, options)
    return UNet(in_channels=in_channels, num_classes=num_classes, **configuration)
