"""DARTS's continuous relaxation of one edge (Liu et al., ICLR 2019, eq. 2): the edge's output is
the softmax(alpha)-weighted sum of every candidate op applied to its input.

``op_indices`` restricts the sum to some ops: the cheaper search modes use it to compute only the
op a GDAS step sampled (``udarts.search.sampling``) or only the ops progressive pruning kept
(``udarts.search.pruning``). An op left out of the sum costs nothing, neither time nor memory.

``checkpoint_activations`` (``SuperNet(checkpoint_edges=True)`` builds its mixed ops with it) keeps only the edge's
input and output for the backward pass and recomputes the ops' inner activations there
(``torch.utils.checkpoint``): the finest-grained checkpointing of the search, at the cost of one
more forward pass of the mixed ops.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from udarts.ops import OpSettings, build_op


def weighted_sum(ops: nn.ModuleList, x: Tensor, weights: Tensor, op_indices: Sequence[int] | None) -> Tensor:
    """``sum_i weights[i] * ops[i](x)`` over ``op_indices`` (all ops when ``None``)."""
    if op_indices is None:
        return sum(weight * op(x) for weight, op in zip(weights, ops))
    return sum(weights[index] * ops[index](x) for index in op_indices)


def mixed_output(mixed_op: nn.Module, x: Tensor, weights: Tensor, op_indices: Sequence[int] | None) -> Tensor:
    """``weighted_sum`` of ``mixed_op.ops``, recomputed in the backward pass when
    ``mixed_op.checkpoint_activations``."""
    if mixed_op.checkpoint_activations and torch.is_grad_enabled():
        return checkpoint(weighted_sum, mixed_op.ops, x, weights, op_indices, use_reentrant=False)
    return weighted_sum(mixed_op.ops, x, weights, op_indices)


class MixedOp(nn.Module):
    def __init__(self, channels: int, op_names: Sequence[str], settings: OpSettings, *, checkpoint_activations: bool = False) -> None:
        super().__init__()
        self.op_names = tuple(op_names)
        self.ops = nn.ModuleList(build_op(name, channels, settings) for name in self.op_names)
        self.checkpoint_activations = checkpoint_activations

    def forward(self, x: Tensor, weights: Tensor, op_indices: Sequence[int] | None = None) -> Tensor:
        """``weights``: ``(num_ops,)``; ``op_indices``: the ops to compute (default: all)."""
        return mixed_output(self, x, weights, op_indices)
