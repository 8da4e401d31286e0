"""DARTS's continuous relaxation of one edge (Liu et al., ICLR 2019, eq. 2): the edge's output is
the softmax(alpha)-weighted sum of every candidate op applied to its input."""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from udarts.ops import OpSettings, build_op


class MixedOp(nn.Module):
    def __init__(self, channels: int, op_names: Sequence[str], settings: OpSettings) -> None:
        super().__init__()
        self.op_names = tuple(op_names)
        self.ops = nn.ModuleList(build_op(name, channels, settings) for name in self.op_names)

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:  # weights: (num_ops,)
        return sum(weight * op(x) for weight, op in zip(weights, self.ops))
