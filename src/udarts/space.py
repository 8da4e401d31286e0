"""The structure of the search space, as data: the U's eight cell slots, the edges of a cell's
DAG, and where a supernet keeps each cell's architecture tensors in its state dict.

Layers: ``udarts.ops`` (the candidate ops) -> this module -> ``udarts.nets`` (the networks built
on it) -> ``udarts.genotype`` (genotypes derived from and checked against it) -> ``udarts.search``.

The U (the paper's Figure 2, wired by ``udarts.nets.ushape``) has eight cells over four scales;
scale ``s`` has width ``width * 2**s`` and resolution ``1 / 2**s``. Encoder cells C1..C4 take one
input, C5 one, decoder cells C6..C8 two (0 = the encoder skip, 1 = the upsampled decoder path).

A cell is a DAG: states ``0 .. num_inputs - 1`` are its inputs, ``num_inputs + j`` is intermediate
node ``j``; an edge ``(node, source)`` feeds state ``source`` into node ``node``. A cell spec
lists, per node, its edges as ``(op_name, source)`` pairs (a genotype's cell, or SEARCH-Net's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
from torch import Tensor

NUM_SCALES = 4
NUM_CELLS = 2 * NUM_SCALES
DOWNSAMPLING = 2 ** (NUM_SCALES - 1)  # input sides must be divisible by this

Edge = tuple[int, int]  # (node, source state)
EdgeGene = tuple[str, int]  # (op_name, source state)
CellSpec = Sequence[Sequence[EdgeGene]]  # per intermediate node: its edges


@dataclass(frozen=True)
class CellSlot:
    """Where a cell sits in the U: its name, index, role, scale, inputs and width."""

    index: int  # 0..7
    name: str  # "C1".."C8"
    role: str  # "encoder" | "decoder"
    scale: int  # 0 = input resolution .. 3 = 1/8
    num_inputs: int
    channels: int


def cell_slots(width: int) -> list[CellSlot]:
    """The eight cell positions of the U for a given base ``width``."""
    slots = []
    for scale in range(NUM_SCALES):  # C1..C4 go down
        slots.append(CellSlot(scale, f"C{scale + 1}", "encoder", scale, 1, width * 2**scale))
    for step, scale in enumerate(reversed(range(NUM_SCALES))):  # C5..C8 go up
        index = NUM_SCALES + step
        num_inputs = 1 if scale == NUM_SCALES - 1 else 2
        slots.append(CellSlot(index, f"C{index + 1}", "decoder", scale, num_inputs, width * 2**scale))
    return slots


# ---- a cell's edges ------------------------------------------------------------------------
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


def spec_edges(spec: CellSpec) -> list[Edge]:
    """A cell spec's ``(node, source)`` edges in a fixed order (node-major), matching ``spec_ops``."""
    return [(node, source) for node, genes in enumerate(spec) for _, source in genes]


def spec_ops(spec: CellSpec) -> list[str]:
    """A cell spec's op names, one per edge of ``spec_edges``."""
    return [op_name for genes in spec for op_name, _ in genes]


def softmax_per_node(scores: Tensor, edges: Sequence[Edge]) -> Tensor:
    """``(num_edges,)`` scores -> their softmax over the edges that enter the same node
    (PC-DARTS's edge normalisation, Xu et al., ICLR 2020)."""
    weights = torch.empty_like(scores)
    for node in sorted({target for target, _ in edges}):
        indices = [index for index, (target, _) in enumerate(edges) if target == node]
        weights[indices] = torch.softmax(scores[indices], dim=0)
    return weights


# ---- the supernet's state dict -------------------------------------------------------------
# ``UShapedNet.cells[index]`` holds cell ``index``; a search cell's architecture tensors are its
# ``alphas`` ``(num_edges, num_ops)``, PC-DARTS's ``betas`` ``(num_edges,)`` (pc modes only) and
# pruning's ``op_mask`` ``(num_edges, num_ops)`` (only when the supernet is prunable).
ARCH_TENSORS = ("alphas", "betas", "op_mask")


def cell_state_key(index: int, tensor: str) -> str:
    """The state-dict key of architecture tensor ``tensor`` (one of ``ARCH_TENSORS``) of cell ``index``."""
    if tensor not in ARCH_TENSORS:
        raise ValueError(f"unknown architecture tensor {tensor!r}; expected one of {ARCH_TENSORS}")
    return f"cells.{index}.{tensor}"


def cell_tensors(state_dict: Mapping[str, Tensor], tensor: str) -> list[Tensor] | None:
    """Architecture tensor ``tensor`` of each cell (C1..C8) of a supernet state dict, or ``None``
    when a cell lacks it (a search without betas, or without pruning)."""
    keys = [cell_state_key(slot.index, tensor) for slot in cell_slots(1)]
    if not all(key in state_dict for key in keys):
        return None
    return [state_dict[key] for key in keys]
