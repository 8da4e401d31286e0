"""SETR with the progressive upsampling decoder (SETR-PUP).

S. Zheng, J. Lu, H. Zhao, X. Zhu, Z. Luo, Y. Wang, Y. Fu, J. Feng, T. Xiang, P. H. S. Torr,
L. Zhang, "Rethinking Semantic Segmentation from a Sequence-to-Sequence Perspective with
Transformers", CVPR 2021.

The image is cut into ``patch_size x patch_size`` patches by a strided convolution (the
patch embedding), a learnable position embedding is added, and a stack of pre-norm ViT
blocks (Dosovitskiy et al., ICLR 2021; timm's ``Block``) encodes the token sequence. The
PUP decoder reshapes the tokens back to a (H/p, W/p) feature map and alternates
3x3 conv + batch norm + ReLU with 2x bilinear upsampling, ``log2(patch_size)`` times, back to
the input resolution, where a 1x1 convolution gives the class logits (the order used by the
reference implementation's ``SETRUPHead``).

The position embedding is stored on a reference grid (``position_grid`` x ``position_grid``
patches) and bilinearly interpolated to the input's patch grid, so any input whose sides are
multiples of ``patch_size`` works; other sizes are zero-padded up to a multiple and the
logits cropped back (see :mod:`udarts.baselines.padding`).

Configurations: ``scale="paper"`` is ViT-Base-sized (embed 768, depth 12, 12 heads, patch 16,
decoder 256 channels). SETR itself used ViT-Large (embed 1024, depth 24, 16 heads) with
ImageNet-21k pre-training; ViT-Base is the smaller of the standard ViTs and here starts from
random weights. ``scale="cpu"`` is embed 128, depth 4, 4 heads, patch 8, decoder 64 channels.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block
from torch import nn

from udarts.baselines.padding import crop_to_size, pad_to_multiple
from udarts.baselines.scales import configuration_for

PAPER_CONFIG: dict[str, Any] = dict(
    embed_dim=768, depth=12, num_heads=12, patch_size=16, decoder_channels=256, mlp_ratio=4.0, position_grid=32
)
CPU_CONFIG: dict[str, Any] = dict(
    embed_dim=128, depth=4, num_heads=4, patch_size=8, decoder_channels=64, mlp_ratio=4.0, position_grid=16
)


class ProgressiveUpsamplingDecoder(nn.Module):
    """SETR-PUP head: (3x3 conv -> BN -> ReLU -> 2x bilinear upsampling) per stage, then a 1x1 classifier."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, num_stages: int) -> None:
        super().__init__()
        stages = []
        for stage in range(num_stages):
            stages.append(
                nn.Sequential(
                    OrderedDict(
                        conv=nn.Conv2d(in_channels if stage == 0 else channels, channels, 3, padding=1, bias=False),
                        norm=nn.BatchNorm2d(channels),
                        relu=nn.ReLU(inplace=True),
                        upsample=nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                    )
                )
            )
        self.stages = nn.Sequential(*stages)
        self.classifier = nn.Conv2d(channels, num_classes, kernel_size=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.stages(features))


class SETR(nn.Module):
    """SETR-PUP (Zheng et al., CVPR 2021): ViT encoder + progressive upsampling decoder.

    Args:
        in_channels: channels of the input image.
        num_classes: number of output classes.
        embed_dim: token width of the transformer.
        depth: number of transformer blocks.
        num_heads: attention heads per block (must divide ``embed_dim``).
        patch_size: side of the square patches; a power of two (the decoder upsamples 2x per stage).
        decoder_channels: channels of the PUP decoder's conv stages.
        mlp_ratio: hidden width of each block's MLP relative to ``embed_dim``.
        position_grid: side of the patch grid on which the position embedding is stored.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 2,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        patch_size: int = 16,
        decoder_channels: int = 256,
        mlp_ratio: float = 4.0,
        position_grid: int = 32,
    ) -> None:
        super().__init__()
        if patch_size < 2 or patch_size & (patch_size - 1):
            raise ValueError(f"patch_size must be a power of two >= 2, got {patch_size}")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.size_divisor = patch_size
        self.patch_embedding = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.position_embedding = nn.Parameter(torch.zeros(1, embed_dim, position_grid, position_grid))
        self.blocks = nn.Sequential(
            *(Block(dim=embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=True) for _ in range(depth))
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.decoder = ProgressiveUpsamplingDecoder(
            embed_dim, decoder_channels, num_classes, num_stages=int(math.log2(patch_size))
        )
        self._initialize()

    def _initialize(self) -> None:
        nn.init.trunc_normal_(self.position_embedding, std=0.02)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def position_embedding_for(self, grid_height: int, grid_width: int) -> torch.Tensor:
        """The position embedding resized to a (grid_height, grid_width) patch grid, as (1, D, h, w)."""
        if self.position_embedding.shape[-2:] == (grid_height, grid_width):
            return self.position_embedding
        return F.interpolate(
            self.position_embedding, size=(grid_height, grid_width), mode="bilinear", align_corners=False
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images, original_size = pad_to_multiple(images, self.size_divisor)
        patches = self.patch_embedding(images)  # (B, D, h, w)
        batch, channels, grid_height, grid_width = patches.shape
        patches = patches + self.position_embedding_for(grid_height, grid_width)
        tokens = self.norm(self.blocks(patches.flatten(2).transpose(1, 2)))  # (B, h*w, D)
        features = tokens.transpose(1, 2).reshape(batch, channels, grid_height, grid_width)
        return crop_to_size(self.decoder(features), original_size)


def create_setr(*, in_channels: int = 3, num_classes: int, scale: str = "cpu", **options: Any) -> SETR:
    """SETR-PUP at ``scale`` ("paper": ViT-Base-sized, "cpu": small); ``options`` override :class:`SETR` arguments."""
    configuration = configuration_for(scale, PAPER_CONFIG, CPU_CONFIG, options)
    return SETR(in_channels=in_channels, num_classes=num_classes, **configuration)
