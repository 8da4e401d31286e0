"""Partial-channel connections (PC-DARTS: Xu, Xie, Zhang, Chen, Qi, Tian & Xiong, "PC-DARTS:
Partial Channel Connections for Memory-Efficient Architecture Search", ICLR 2020, section 3.2).

Only ``1/K`` of an edge's channels go through the mixed op; the other ``(K-1)/K`` bypass it
unchanged. The two parts are concatenated and channel-shuffled (ShuffleNet's shuffle with ``K``
groups), so that across edges and cells every channel gets its turn in the mixed op. Ops are built
``C/K`` channels wide, so a mixed op costs about ``1/K`` of the time and memory of a full one
(``1/K**2`` of the parameters for the convolutions).

The other half of PC-DARTS, edge normalisation (a softmax over each node's incoming edges of
learnt ``betas``, which steadies the edge choice that sampling channels makes noisy), lives in
``udarts.search.cell.SearchCell`` because it weighs whole edges.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from udarts.ops import OpSettings, build_op
from udarts.search.mixed_op import mixed_output


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """``(B, C, H, W)``: channel ``g * (C/groups) + i`` moves to ``i * groups + g`` (ShuffleNet)."""
    batch, channels, height, width = x.shape
    return x.reshape(batch, groups, channels // groups, height, width).transpose(1, 2).reshape(batch, channels, height, width)


class PartialChannelMixedOp(nn.Module):
    """A mixed op over the first ``channels / k`` channels; the rest bypass it; then a shuffle."""

    def __init__(
        self, channels: int, op_names: Sequence[str], settings: OpSettings, k: int, *, checkpoint_activations: bool = False,
    ) -> None:
        super().__init__()
        if k < 1 or channels % k:
            raise ValueError(
                f"search.partial_channel_k = {k} must be >= 1 and divide every cell's width; a cell has {channels} channels"
            )
        self.k = k
        self.partial_channels = channels // k
        self.op_names = tuple(op_names)
        self.ops = nn.ModuleList(build_op(name, self.partial_channels, settings) for name in self.op_names)
        self.checkpoint_activations = checkpoint_activations

    def forward(self, x: Tensor, weights: Tensor, op_indices: Sequence[int] | None = None) -> Tensor:
        mixed = mixed_output(self, x[:, : self.partial_channels], weights, op_indices)  # (B, C/k, H, W)
        return channel_shuffle(torch.cat([mixed, x[:, self.partial_channels :]], dim=1), self.k)  # (B, C, H, W)
