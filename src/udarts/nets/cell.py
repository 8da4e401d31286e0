"""The cell: a DARTS DAG of ``num_nodes`` intermediate nodes (the paper's Figure 3).

A cell receives ``num_inputs`` feature maps, all already at the cell's width and resolution
(``udarts.nets.ushape`` resamples them). States are numbered as in ``udarts.space``: ``0 ..
num_inputs - 1`` are the inputs, ``num_inputs + j`` is intermediate node ``j``. Node ``j`` sums
its incoming edges, each an op applied to an earlier state. The cell output concatenates every
intermediate node and projects back to the cell's width with a 1x1 conv.

The same class builds the supernet's cells (every possible edge, each a mixed op,
``udarts.search.cell``) and SEARCH-Net's cells (only a cell spec's edges, each one op), so the
retrained network is exactly the searched topology.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from udarts.ops import ConvBnAct
from udarts.space import Edge


class Cell(nn.Module):
    """A DAG cell with the given ``edges``; ``make_op(edge_index)`` builds the module on each.

    ``forward(inputs, edge_args=(), edge_scales=None)``: edge ``k``'s module is called as
    ``op(x, *(arg[k] for arg in edge_args))``: ``op(x)`` in a discrete network; a search cell
    (``udarts.search.cell``) passes per-edge op weights and op indices for its mixed ops.
    ``edge_scales[k]`` multiplies edge ``k``'s output before the node sums it (PC-DARTS's edge
    normalisation).
    """

    def __init__(
        self,
        num_inputs: int,
        channels: int,
        num_nodes: int,
        edges: Sequence[Edge],
        make_op: Callable[[int], nn.Module],
        affine: bool = True,
    ) -> None:
        super().__init__()
        if num_inputs < 1 or num_nodes < 1:
            raise ValueError(f"a cell needs >= 1 input and >= 1 node, got {num_inputs} and {num_nodes}")
        for node, source in edges:
            if not (0 <= node < num_nodes and 0 <= source < num_inputs + node):
                raise ValueError(f"edge (node {node}, source {source}) is not in a {num_inputs}-input, {num_nodes}-node DAG")
        nodes_without_input = sorted(set(range(num_nodes)) - {node for node, _ in edges})
        if nodes_without_input:
            raise ValueError(f"node(s) {nodes_without_input} have no incoming edge")
        self.num_inputs = num_inputs
        self.num_nodes = num_nodes
        self.channels = channels
        self.edges: list[Edge] = [tuple(edge) for edge in edges]
        self.ops = nn.ModuleList(make_op(index) for index in range(len(self.edges)))
        self.project = ConvBnAct(num_nodes * channels, channels, 1, affine=affine)

    def forward(
        self,
        inputs: Sequence[Tensor],
        edge_args: Sequence[Sequence[Any]] = (),
        edge_scales: Tensor | None = None,
    ) -> Tensor:
        if len(inputs) != self.num_inputs:
            raise ValueError(f"cell expects {self.num_inputs} input(s), got {len(inputs)}")
        states = list(inputs)  # each (B, C, H, W)
        for node in range(self.num_nodes):
            node_sum = None
            for index, (target, source) in enumerate(self.edges):
                if target != node:
                    continue
                out = self.ops[index](states[source], *(arg[index] for arg in edge_args))
                if edge_scales is not None:
                    out = edge_scales[index] * out
                node_sum = out if node_sum is None else node_sum + out
            states.append(node_sum)
        return self.project(torch.cat(states[self.num_inputs :], dim=1))  # (B, C, H, W)
