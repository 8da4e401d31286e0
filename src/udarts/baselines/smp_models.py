"""Encoder-decoder baselines from segmentation-models-pytorch (smp).

* ``unet_resnet34``: UNet (Ronneberger et al., MICCAI 2015) decoder on a ResNet encoder
  (He et al., CVPR 2016);
* ``unetpp``: UNet++ (Zhou et al., "UNet++: A Nested U-Net Architecture for Medical Image
  Segmentation", DLMIA 2018);
* ``fpn``: Feature Pyramid Network (Lin et al., CVPR 2017) used as a segmentation decoder
  (Kirillov et al.'s panoptic-FPN semantic head);
* ``deeplabv3``: DeepLabV3 (Chen et al., "Rethinking Atrous Convolution for Semantic Image
  Segmentation", 2017) with an ASPP head on a dilated ResNet.

Configurations (every entry can be overridden by a keyword option of the same name, which
is passed to the smp constructor):

* ``scale="paper"``: ResNet-34 encoder with smp's default decoders, as in the paper's
  comparison (UNet/UNet++ decoder channels (256, 128, 64, 32, 16); FPN pyramid 256,
  segmentation 128; DeepLabV3 ASPP 256 channels at output stride 8).
* ``scale="cpu"``: ResNet-18 encoder (about half of ResNet-34's cost) and decoders with half
  the channels (DeepLabV3 at output stride 16), small enough to train on a 2-core CPU at
  around 96x128. ``unet_resnet34`` keeps its paper name at this scale although its encoder
  is a ResNet-18; pass ``encoder_name="resnet34"`` to keep the paper's encoder.

Encoders start from random weights (``encoder_weights=None``). Pretrained weights are used
only when the caller passes ``encoder_weights`` (e.g. ``"imagenet"``); smp then loads them
from its cache or downloads them, so only do that with the weights on disk or a network.

The smp networks need height and width divisible by the encoder's output stride (32 for a
5-stage ResNet, 16 for DeepLabV3 at cpu scale, 8 at paper scale); :class:`SegmentationModelsNetwork`
pads other sizes and crops the logits back (see :mod:`udarts.baselines.padding`).
"""

from __future__ import annotations

import inspect
from typing import Any

import segmentation_models_pytorch as smp
import torch
from torch import nn

from udarts.baselines.padding import crop_to_size, pad_to_multiple

SMP_BASELINES = ("unet_resnet34", "unetpp", "fpn", "deeplabv3")

PAPER_ENCODER = "resnet34"
CPU_ENCODER = "resnet18"


def smp_architecture(name: str) -> type[nn.Module]:
    """The smp model class behind a baseline name."""
    if name == "unet_resnet34":
        return smp.Unet
    elif name == "unetpp":
        return smp.UnetPlusPlus
    elif name == "fpn":
        return smp.FPN
    elif name == "deeplabv3":
        return smp.DeepLabV3
    raise ValueError(f"unknown smp baseline {name!r}; valid names: {', '.join(SMP_BASELINES)}")


# scale -> its encoder; the scales' order is that of the value pairs in DECODER_OPTIONS
SCALE_ENCODERS = {"paper": PAPER_ENCODER, "cpu": CPU_ENCODER}
_UNET_DECODER = {"decoder_channels": ((256, 128, 64, 32, 16), (128, 64, 32, 16, 16))}
# baseline -> smp decoder keyword -> (value at "paper", value at "cpu")
DECODER_OPTIONS: dict[str, dict[str, tuple[Any, Any]]] = {
    "unet_resnet34": _UNET_DECODER,
    "unetpp": _UNET_DECODER,
    "fpn": {"decoder_pyramid_channels": (256, 128), "decoder_segmentation_channels": (128, 64)},
    "deeplabv3": {"decoder_channels": (256, 128), "encoder_output_stride": (8, 16)},
}


def default_options(name: str, scale: str) -> dict[str, Any]:
    """The smp constructor keywords of baseline ``name`` at ``scale`` ("paper" or "cpu")."""
    if scale not in SCALE_ENCODERS:
        raise ValueError(f"scale must be 'paper' or 'cpu', got {scale!r}")
    smp_architecture(name)  # rejects unknown names
    column = list(SCALE_ENCODERS).index(scale)
    decoder = {keyword: values[column] for keyword, values in DECODER_OPTIONS[name].items()}
    return {"encoder_name": SCALE_ENCODERS[scale], **decoder, "encoder_weights": None}


class SegmentationModelsNetwork(nn.Module):
    """Thin wrapper around an smp model: pads the input to ``size_divisor`` and crops the logits.

    The smp model is kept whole as ``self.network`` so its state dict (under ``network.``)
    matches smp's own layout.
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.size_divisor = int(network.encoder.output_stride)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images, original_size = pad_to_multiple(images, self.size_divisor)
        return crop_to_size(self.network(images), original_size)


def create_smp_model(
    name: str, *, in_channels: int = 3, num_classes: int, scale: str = "cpu", **options: Any
) -> SegmentationModelsNetwork:
    """Build smp baseline ``name`` (one of :data:`SMP_BASELINES`) at ``scale``.

    ``options`` override the scale's defaults and must be keyword arguments of the smp class
    (e.g. ``encoder_name``, ``encoder_depth``, ``decoder_channels``, ``encoder_weights``);
    anything else raises ``TypeError`` instead of being silently ignored by smp.
    """
    architecture = smp_architecture(name)
    accepted = set(inspect.signature(architecture.__init__).parameters) - {"self", "kwargs", "in_channels", "classes"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for {name!r}; accepted: {sorted(accepted)}")
    configuration = default_options(name, scale)
    configuration.update(options)
    encoder_depth = configuration.get("encoder_depth", 5)
    if name in ("unet_resnet34", "unetpp") and "decoder_channels" not in options:
        # smp needs one decoder stage per encoder stage: keep the deepest-last channel plan.
        configuration["decoder_channels"] = tuple(configuration["decoder_channels"][-encoder_depth:])
    network = architecture(in_channels=in_channels, classes=num_classes, **configuration)
    return SegmentationModelsNetwork(network)
