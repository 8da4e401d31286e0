"""The cell: a DARTS DAG of ``num_nodes`` intermediate nodes (the paper's Figure 3).

A cell receives ``num_inputs`` feature maps, all already at the cell's width and resolution
(``udarts.nets.ushape`` resamples them). States are numbered: ``0 .. num_inputs - 1`` are the
inputs, ``num_inputs + j`` is intermediate node ``j``. Node ``j`` sums its incoming edges, each
an op applied to an earlier state. The cell output concatenates every intermediate node and
projects back to the cell's width with a 1x1 conv.

The same class builds the supernet's cells (every possible edge, each a ``MixedOp``) and the
retrained network's cells (only the genotype's edges, each one op), so the retrained network is
exactly the searched topology.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from udarts.ops import ConvBnAct

Edge = tuple[int, int]  # (node, source state)


def all_edges(num_inputs: int, num_nodes: int) -> list[Edge]:
    """Every edge of a full DAG: node ``j`` may read each input and each earlier node."""
    return [(node, source) for node in range(num_nodes) for source in range(num_inputs + node)]


def nodes_for_edges(num_inputs: int, num_edges: int) -> int:
    """The node count of a full DAG with ``num_inputs`` inputs and ``num_edges`` edges."""
    nodes, edges = 0, 0
    while edges < num_edges:
        edges += num_inputs + nodes
        nodes += 1
    if edges != num_edges:
        raise ValueError(f"{num_edges} edges do not form a full DAG over {num_inputs} input(s)")
    return nodes


def softmax_per_node(scores: Tensor, edges: Sequence[Edge]) -> Tensor:
    """``(num_edges,)`` scores -> their softmax over the edges that enter the same node
    (PC-DARTS's edge normalisation, Xu et al., ICLR 2020)."""
    weights = torch.empty_like(scores)
    for node in sorted({target for target, _ in edges}):
        indices = [index for index, (target, _) in enumerate(edges) if target == node]
        weights[indices] = torch.softmax(scores[indices], dim=0)
    return weights


class Cell(nn.Module):
    """A DAG cell with the given ``edges``; ``make_op(edge_index)`` builds the module on each.

    ``forward(inputs, edge_weights=None, edge_ops=None, edge_scales=None)``: with ``edge_weights``
    (one row per edge) each edge module is called as ``op(x, edge_weights[k])`` (a mixed op);
    without, as ``op(x)``. Two options serve the cheaper search modes (``udarts.search``):
    ``edge_ops[k]`` lists the op indices edge ``k``'s mixed op computes (a sampled or pruned edge;
    called as ``op(x, edge_weights[k], edge_ops[k])``), and ``edge_scales[k]`` multiplies edge
    ``k``'s output before the node sums it (PC-DARTS's edge normalisation).
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
        edge_weights: Tensor | None = None,
        edge_ops: Sequence[Sequence[int]] | None = None,
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
                op = self.ops[index]
                if edge_weights is None:
                    out = op(states[source])
                elif edge_ops is None:
                    out = op(states[source], edge_weights[index])
                else:
                    out = op(states[source], edge_weights[index], edge_ops[index])
                if edge_scales is not None:
                    out = edge_scales[index] * out
                node_sum = out if node_sum is None else node_sum + out
            states.append(node_sum)
        return self.project(torch.cat(states[self.num_inputs :], dim=1))  # (B, C, H, W)
