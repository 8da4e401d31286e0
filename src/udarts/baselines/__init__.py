"""Baseline segmentation networks the paper compares SEARCH-Net with (its Tables 1 and 2).

=================  ==========================================================================
name               network
=================  ==========================================================================
``unet``           classic UNet from scratch (Ronneberger et al., MICCAI 2015), :mod:`.unet`
``unet_resnet34``  UNet decoder on a ResNet encoder (smp), :mod:`.smp_models`
``unetpp``         UNet++ (Zhou et al., DLMIA 2018) on a ResNet encoder (smp)
``fpn``            FPN (Lin et al., CVPR 2017) on a ResNet encoder (smp)
``deeplabv3``      DeepLabV3 (Chen et al., 2017) on a dilated ResNet encoder (smp)
``setr``           SETR-PUP (Zheng et al., CVPR 2021), a ViT encoder, :mod:`.setr`
=================  ==========================================================================

and the light networks of :mod:`.light` (MobileNetV3 LR-ASPP and DeepLabV3 from torchvision;
UNets on MobileNetV2, EfficientNet-B0 and ResNet-18 encoders from smp), one size at both scales.

Every model maps a float batch (B, in_channels, H, W) to logits (B, num_classes, H, W) and
has a ``size_divisor`` attribute: 16 for ``unet``, the encoder's output stride for the smp
models (32; 8 or 16 for ``deeplabv3``), the patch size for ``setr``. Inputs of any size work:
sides that are not multiples of ``size_divisor`` are zero-padded on the bottom/right and the
logits cropped back (:mod:`.padding`), so feeding multiples of 32 avoids the padding for all.

``scale="paper"`` gives the paper-scale configuration and ``scale="cpu"`` a small one that
trains on a 2-core CPU; see each module and ``docs/baselines.md`` for the numbers.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from torch import nn

from udarts.baselines.light import LIGHT_BASELINES
from udarts.baselines.scales import SCALES
from udarts.baselines.setr import SETR, create_setr
from udarts.baselines.smp_models import SMP_BASELINES, SegmentationModelsNetwork, create_smp_model
from udarts.baselines.unet import UNet, create_unet

# name -> factory(in_channels=, num_classes=, scale=, **options)
BASELINES: dict[str, Callable[..., nn.Module]] = {
    "unet": create_unet,
    **{name: functools.partial(create_smp_model, name) for name in SMP_BASELINES},
    "setr": create_setr,
    **LIGHT_BASELINES,
}

__all__ = [
    "BASELINES",
    "SCALES",
    "SETR",
    "SegmentationModelsNetwork",
    "UNet",
    "create_model",
]


def create_model(name: str, *, in_channels: int = 3, num_classes: int, scale: str = "cpu", **options: Any) -> nn.Module:
    """Build baseline ``name`` (one of :data:`BASELINES`) at ``scale`` ("paper" or "cpu").

    ``options`` override the scale's defaults: ``width``/``bilinear`` for ``unet``; any smp
    constructor keyword (``encoder_name``, ``encoder_depth``, ``decoder_channels``,
    ``encoder_weights``, ...) for the smp models; ``embed_dim``, ``depth``, ``num_heads``,
    ``patch_size``, ``decoder_channels``, ``mlp_ratio``, ``position_grid`` for ``setr``.
    An unknown option raises ``TypeError``; an unknown name or scale raises ``ValueError``.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; valid names: {', '.join(BASELINES)}")
    return BASELINES[name](in_channels=in_channels, num_classes=num_classes, scale=scale, **options)
