"""The candidate operations of the U-shaped search space.

The paper (``shared/paper``, section 3.2) lists seven candidates for every edge of every cell:
conv 3x3, conv 5x5, dilated conv 3x3, dilated conv 5x5, MBConv 3x3, MBConv 5x5 (inverted
residual with Squeeze-and-Excitation, Sandler et al. 2018 / Hu et al. 2018 / Tan & Le 2019) and
identity. DARTS adds ``none`` (the zero op) so that the search can weigh "no connection".

Every op maps ``(B, C, H, W) -> (B, C, H, W)``: resolution and width changes happen outside the
cells (``udarts.nets.ushape``). The vocabulary is data: ``OPS`` maps a name to a factory
``factory(channels, settings) -> nn.Module``, and a config lists the names to search over, so
another op set (for example DARTS's separable convs, also in the table) needs no code change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import Tensor, nn


@dataclass(frozen=True)
class OpSettings:
    """Settings shared by every op of a network.

    ``affine``: learnable BatchNorm scale/shift. DARTS turns it off during search (the alphas
    should not compete with BN scales) and on for the retrained network.
    ``expand_ratio``: MBConv's hidden width is ``expand_ratio * channels`` (MobileNetV2 uses 6;
    the default 4 keeps the paper-scale supernet near 650 M parameters).
    ``se_ratio``: the Squeeze-and-Excitation bottleneck is ``se_ratio * channels`` wide.
    """

    affine: bool = True
    expand_ratio: int = 4
    se_ratio: float = 0.25

    def __post_init__(self) -> None:
        if self.expand_ratio < 1:
            raise ValueError(f"expand_ratio must be >= 1, got {self.expand_ratio}")
        if not 0 < self.se_ratio <= 1:
            raise ValueError(f"se_ratio must be in (0, 1], got {self.se_ratio}")


class ConvBnAct(nn.Sequential):
    """Conv -> BatchNorm -> ReLU (``act=False`` drops the ReLU)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        dilation: int = 1,
        groups: int = 1,
        affine: bool = True,
        act: bool = True,
    ) -> None:
        padding = dilation * (kernel_size - 1) // 2
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels, affine=affine),
        ]
        if act:
            layers.append(nn.ReLU(inplace=False))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Squeeze-and-Excitation (Hu et al., CVPR 2018): channel gates from global average pooling."""

    def __init__(self, channels: int, reduced_channels: int) -> None:
        super().__init__()
        self.conv_reduce = nn.Conv2d(channels, reduced_channels, 1)
        self.act = nn.ReLU(inplace=False)
        self.conv_expand = nn.Conv2d(reduced_channels, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        scale = x.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        scale = self.gate(self.conv_expand(self.act(self.conv_reduce(scale))))
        return x * scale


class MBConv(nn.Module):
    """Inverted residual with Squeeze-and-Excitation (MobileNetV2 / EfficientNet's MBConv).

    1x1 expand (``conv_pw``) -> depthwise kxk (``conv_dw``) -> SE (``se``) -> 1x1 project
    (``conv_pwl``, no activation), plus the identity shortcut.
    """

    def __init__(self, channels: int, kernel_size: int, settings: OpSettings) -> None:
        super().__init__()
        hidden = channels * settings.expand_ratio
        self.conv_pw = ConvBnAct(channels, hidden, 1, affine=settings.affine)
        self.conv_dw = ConvBnAct(hidden, hidden, kernel_size, groups=hidden, affine=settings.affine)
        self.se = SqueezeExcite(hidden, max(1, int(channels * settings.se_ratio)))
        self.conv_pwl = ConvBnAct(hidden, channels, 1, affine=settings.affine, act=False)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_pwl(self.se(self.conv_dw(self.conv_pw(x))))


class SepConv(nn.Sequential):
    """DARTS's separable conv: (ReLU, depthwise kxk, pointwise 1x1, BN) applied twice."""

    def __init__(self, channels: int, kernel_size: int, affine: bool) -> None:
        padding = (kernel_size - 1) // 2
        layers: list[nn.Module] = []
        for _ in range(2):
            layers += [
                nn.ReLU(inplace=False),
                nn.Conv2d(channels, channels, kernel_size, padding=padding, groups=channels, bias=False),
                nn.Conv2d(channels, channels, 1, bias=False),
                nn.BatchNorm2d(channels, affine=affine),
            ]
        super().__init__(*layers)


class Zero(nn.Module):
    """DARTS's ``none`` op: the edge contributes nothing (but keeps shape and graph)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mul(0.0)


class Pool(nn.Sequential):
    """3x3 pooling (stride 1) followed by BN, as in DARTS."""

    def __init__(self, channels: int, kind: str, affine: bool) -> None:
        pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False) if kind == "avg" else nn.MaxPool2d(3, 1, 1)
        super().__init__(pool, nn.BatchNorm2d(channels, affine=affine))


OpFactory = Callable[[int, OpSettings], nn.Module]

OPS: dict[str, OpFactory] = {
    "none": lambda channels, settings: Zero(),
    "identity": lambda channels, settings: nn.Identity(),
    "conv_3x3": lambda channels, settings: ConvBnAct(channels, channels, 3, affine=settings.affine),
    "conv_5x5": lambda channels, settings: ConvBnAct(channels, channels, 5, affine=settings.affine),
    "dil_conv_3x3": lambda channels, settings: ConvBnAct(channels, channels, 3, dilation=2, affine=settings.affine),
    "dil_conv_5x5": lambda channels, settings: ConvBnAct(channels, channels, 5, dilation=2, affine=settings.affine),
    "mbconv_3x3": lambda channels, settings: MBConv(channels, 3, settings),
    "mbconv_5x5": lambda channels, settings: MBConv(channels, 5, settings),
    # Not in the paper's set; available to a config (DARTS's own vocabulary).
    "sep_conv_3x3": lambda channels, settings: SepConv(channels, 3, settings.affine),
    "sep_conv_5x5": lambda channels, settings: SepConv(channels, 5, settings.affine),
    "avg_pool_3x3": lambda channels, settings: Pool(channels, "avg", settings.affine),
    "max_pool_3x3": lambda channels, settings: Pool(channels, "max", settings.affine),
}

# The paper's seven candidates (section 3.2), in its order.
PAPER_OPS: tuple[str, ...] = (
    "conv_3x3",
    "conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "mbconv_3x3",
    "mbconv_5x5",
    "identity",
)

NONE_OP = "none"
IDENTITY_OP = "identity"  # the op P-DARTS caps (``udarts.genotype.derive_cell``'s ``max_identity``)


def check_op_names(op_names: tuple[str, ...] | list[str], key: str = "ops") -> None:
    """Raise ``ValueError`` naming ``key`` if an op name is unknown, repeated, or the list is empty."""
    if len(op_names) == 0:
        raise ValueError(f"{key}: the op set is empty; expected names from {sorted(OPS)}")
    unknown = [name for name in op_names if name not in OPS]
    if unknown:
        raise ValueError(f"{key}: unknown op(s) {unknown}; expected names from {sorted(OPS)}")
    if len(set(op_names)) != len(op_names):
        raise ValueError(f"{key}: op names repeat in {list(op_names)}")


def build_op(name: str, channels: int, settings: OpSettings) -> nn.Module:
    if name not in OPS:
        raise ValueError(f"unknown op {name!r}; expected one of {sorted(OPS)}")
    return OPS[name](channels, settings)


