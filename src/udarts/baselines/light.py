"""Light networks a user who needs a fast segmenter would pick instead of a search, all from
random initialisation (no downloads), one size at both scales (``scale`` is accepted and ignored):

========================================  ===========================================================
name                                      network
========================================  ===========================================================
``lraspp_mobilenet_v3_large``             LR-ASPP on MobileNetV3-Large (Howard et al., "Searching for
                                          MobileNetV3", ICCV 2019), torchvision's
``deeplabv3_mobilenet_v3_large``          DeepLabV3 (Chen et al., 2017) on MobileNetV3-Large, torchvision's
``unet_mobilenet_v2``                     UNet decoder (smp's default, 256-16 channels) on MobileNetV2
                                          (Sandler et al., CVPR 2018)
``unet_efficientnet_b0``                  ... on EfficientNet-B0 (Tan & Le, ICML 2019)
``unet_resnet18``                         ... on ResNet-18 (He et al., CVPR 2016)
========================================  ===========================================================

Options are passed to the constructor (torchvision's ``lraspp_mobilenet_v3_large(...)`` /
``deeplabv3_mobilenet_v3_large(...)``, smp's ``Unet(...)``); the torchvision models' auxiliary
head is off. Inputs are padded to a multiple of 32 and the logits cropped back
(:mod:`udarts.baselines.padding`).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import segmentation_models_pytorch as smp
import torch
import torchvision
from torch import nn

from udarts.baselines.padding import crop_to_size, pad_to_multiple
from udarts.baselines.scales import SCALES
from udarts.baselines.smp_models import SegmentationModelsNetwork

SIZE_DIVISOR = 32


class TorchvisionSegmentation(nn.Module):
    """A torchvision segmentation model (which returns ``{"out": logits}``) as ``images -> logits``."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.size_divisor = SIZE_DIVISOR

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images, original_size = pad_to_multiple(images, self.size_divisor)
        return crop_to_size(self.network(images)["out"], original_size)  # (B, classes, H, W)


def _check_arguments(constructor: Callable[..., Any], scale: str, options: dict[str, Any], fixed: set[str]) -> None:
    """Refuse an unknown scale (``ValueError``) and options the constructor does not name (``TypeError``,
    rather than a silent ``**kwargs``)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    parameters = inspect.signature(constructor).parameters
    accepted = {name for name, item in parameters.items() if item.kind is not item.VAR_KEYWORD} - fixed - {"self"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise TypeError(f"unknown option(s) {unknown}; accepted: {sorted(accepted)}")


def create_torchvision_model(builder: Callable[..., nn.Module], *, in_channels: int = 3, num_classes: int,
                             scale: str = "cpu", **options: Any) -> TorchvisionSegmentation:
    _check_arguments(builder, scale, options, {"num_classes"})
    settings = {"weights": None, "weights_backbone": None, "num_classes": num_classes, **options}
    network = builder(**settings)
    if in_channels != 3:  # the stem convolution of MobileNetV3's first block takes the input
        stem = network.backbone["0"][0]
        network.backbone["0"][0] = nn.Conv2d(in_channels, stem.out_channels, stem.kernel_size, stem.stride,
                                             stem.padding, bias=stem.bias is not None)
    return TorchvisionSegmentation(network)


def create_light_unet(encoder_name: str, *, in_channels: int = 3, num_classes: int, scale: str = "cpu",
                      **options: Any) -> SegmentationModelsNetwork:
    _check_arguments(smp.Unet.__init__, scale, options, {"encoder_name", "in_channels", "classes"})
    settings = {"encoder_name": encoder_name, "encoder_weights": None, **options}
    network = smp.Unet(in_channels=in_channels, classes=num_classes, **settings)
    for name in UNUSED_ENCODER_MODULES.get(encoder_name, ()):  # the classifier's head, which no feature passes through
        setattr(network.encoder, name, nn.Identity())
    return SegmentationModelsNetwork(network)


# smp's EfficientNet encoders keep the classification network's last 1x1 conv and BN, which the
# UNet never reads: parameters without gradients (DistributedDataParallel refuses them).
UNUSED_ENCODER_MODULES = {"efficientnet-b0": ("_conv_head", "_bn1")}


LIGHT_BASELINES: dict[str, Callable[..., nn.Module]] = {
    "lraspp_mobilenet_v3_large": functools.partial(create_torchvision_model,
                                                   torchvision.models.segmentation.lraspp_mobilenet_v3_large),
    "deeplabv3_mobilenet_v3_large": functools.partial(create_torchvision_model,
                                                      torchvision.models.segmentation.deeplabv3_mobilenet_v3_large),
    "unet_mobilenet_v2": functools.partial(create_light_unet, "mobilenet_v2"),
    "unet_efficientnet_b0": functools.partial(create_light_unet, "efficientnet-b0"),
    "unet_resnet18": functools.partial(create_light_unet, "resnet18"),
}
