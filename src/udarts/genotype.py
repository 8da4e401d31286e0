"""Genotypes: the discrete architecture derived from the supernet's alphas, as a versioned JSON
file a person can read and edit.

A cell's genotype lists, for each intermediate node, its kept edges as ``(op_name, source)``
pairs (the original DARTS notation). Sources number the cell's states: ``0 .. num_inputs - 1``
are the cell inputs (for decoder cells C6..C8: 0 = the encoder skip, 1 = the upsampled decoder
path) and ``num_inputs + j`` is intermediate node ``j``.

Example (abridged)::

    {"format": "udarts-genotype", "version": 1,
     "op_set": ["none", "conv_3x3", ...], "num_nodes": 4,
     "op_settings": {"expand_ratio": 4, "se_ratio": 0.25},
     "cells": [{"name": "C1", "role": "encoder", "scale": 0, "num_inputs": 1,
                "nodes": [[["mbconv_3x3", 0]], [["conv_3x3", 0], ["identity", 1]], ...]}, ...],
     "search": {"width": 16, "seed": 0, ...}, "udarts_version": "0.1.0"}

The checks a file must pass and its JSON layout live in ``udarts.genotype_format``; the cell
slots and edge numbering in ``udarts.space``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from udarts import __version__
from udarts.genotype_format import (
    GENOTYPE_FORMAT, GENOTYPE_VERSION, SOURCES_LEGEND, GenotypeError, check_genotype_data, to_json
)
from udarts.io import atomic_write_text
from udarts.ops import IDENTITY_OP, NONE_OP, OpSettings
from udarts.space import (
    Edge, EdgeGene, all_edges, cell_slots, cell_state_key, cell_tensors, softmax_per_node, spec_edges, spec_ops
)


@dataclass(frozen=True)
class CellGenotype:
    name: str
    num_inputs: int
    nodes: tuple[tuple[EdgeGene, ...], ...]  # per intermediate node: its kept edges

    def edges(self) -> list[Edge]:
        """``(node, source)`` pairs in a fixed order (node-major), matching ``ops()``."""
        return spec_edges(self.nodes)

    def ops(self) -> list[str]:
        return spec_ops(self.nodes)


@dataclass(frozen=True)
class Genotype:
    cells: tuple[CellGenotype, ...]
    op_set: tuple[str, ...]
    num_nodes: int
    expand_ratio: int = 4
    se_ratio: float = 0.25
    search: dict[str, Any] = field(default_factory=dict, compare=False)
    udarts_version: str = __version__

    def op_settings(self, affine: bool = True) -> OpSettings:
        return OpSettings(affine=affine, expand_ratio=self.expand_ratio, se_ratio=self.se_ratio)

    def cell(self, name: str) -> CellGenotype:
        for cell in self.cells:
            if cell.name == name:
                return cell
        raise KeyError(name)

    # ---- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        slots = cell_slots(1)
        return {
            "format": GENOTYPE_FORMAT,
            "version": GENOTYPE_VERSION,
            "op_set": list(self.op_set),
            "num_nodes": self.num_nodes,
            "op_settings": {"expand_ratio": self.expand_ratio, "se_ratio": self.se_ratio},
            "sources": SOURCES_LEGEND,
            "cells": [
                {
                    "name": cell.name,
                    "role": slot.role,
                    "scale": slot.scale,
                    "num_inputs": cell.num_inputs,
                    "nodes": [[[op_name, source] for op_name, source in genes] for genes in cell.nodes],
                }
                for cell, slot in zip(self.cells, slots)
            ],
            "search": dict(self.search),
            "udarts_version": self.udarts_version,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the JSON atomically (``udarts.io.atomic_write``) and return the path."""
        return atomic_write_text(path, to_json(self.to_dict()) + "\n", make_parent=True)

    @classmethod
    def from_dict(cls, data: Any, origin: str = "genotype") -> "Genotype":
        """The genotype of a parsed JSON document; ``GenotypeError`` names ``origin`` and the key."""
        fields = check_genotype_data(data, origin)
        cells = tuple(CellGenotype(slot.name, slot.num_inputs, nodes) for slot, nodes in zip(cell_slots(1), fields.pop("cells")))
        return cls(cells=cells, **fields)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Genotype":
        path = Path(path)
        if not path.is_file():
            raise GenotypeError(f"{path}: genotype file not found")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise GenotypeError(f"{path}: not valid JSON ({error})") from error
        return cls.from_dict(data, str(path))


def agreement(first: Genotype, second: Genotype) -> dict[str, float]:
    """How much two genotypes of one space agree, over all cells: ``edges``, the share of the first
    one's kept ``(node, source)`` edges that the second keeps too; ``ops``, on those shared edges,
    the share with the same op; ``genes``, the share of its ``(node, source, op)`` genes the second
    has (= edges x ops). Two searches of one setting that found a signal agree beyond two random
    draws (``bench/bench_seed_agreement.py`` measures both)."""
    if len(first.cells) != len(second.cells) or first.num_nodes != second.num_nodes:
        raise ValueError("the genotypes come from different spaces (cells or nodes differ)")
    kept = shared = same_op = 0
    for cell_a, cell_b in zip(first.cells, second.cells):
        ops_b = dict(zip(cell_b.edges(), cell_b.ops()))
        for edge, op in zip(cell_a.edges(), cell_a.ops()):
            kept += 1
            if edge in ops_b:
                shared += 1
                same_op += ops_b[edge] == op
    return {"edges": shared / kept if kept else 0.0, "ops": same_op / shared if shared else 0.0,
            "genes": same_op / kept if kept else 0.0}


# ---- derivation ----------------------------------------------------------------------------
def derive_cell(
    name: str,
    alphas: Tensor,
    op_names: Sequence[str],
    num_inputs: int,
    num_nodes: int,
    top_k: int = 2,
    edge_scales: Tensor | None = None,
    op_mask: Tensor | None = None,
    max_identity: int | None = None,
) -> CellGenotype:
    """One cell's genotype from its alphas ``(num_edges, num_ops)``.

    Each edge is ranked by its strongest non-``none`` op (softmax weight over the edge's ops);
    each node keeps its ``top_k`` strongest incoming edges (all of them when it has fewer), each
    with that op. Ties go to the lower source.

    ``edge_scales`` ``(num_edges,)``: PC-DARTS's edge normalisation (``softmax(betas)`` over each
    node's incoming edges); an edge's op weights are multiplied by its scale before edges are
    ranked, as PC-DARTS derives. ``op_mask`` ``(num_edges, num_ops)``: the ops progressive
    pruning kept; dropped ops leave the softmax and are never chosen.

    Every cell input stays read. This only acts when ``top_k`` is small, e.g. ``top_k=1``: with
    ``top_k >= 2`` node 0 keeps both inputs of a two-input cell, so nothing changes (unless
    pruning left one of them only ``none``). For each
    input that no kept edge reads, in input order: over every node, the edge from that input is
    scored as above, and the node with the strongest such edge (ties: the lower node) whose kept
    edges include one that can go (one whose source is not an input read by that edge alone)
    swaps its weakest such edge (ties: the higher source) for the edge from the unread input.
    Nodes keep their edge count. When no node can swap, a ``ValueError`` names the cell.

    ``max_identity`` (None = off): at most that many kept edges of the cell are ``identity``
    (P-DARTS's cap on skip-connections, Chen et al. 2019). The weakest kept identity edges (by
    their ranking score, the identity weight times the edge scale; ties: the later node, then
    the higher source) keep their place in the cell but take that edge's strongest op besides
    ``identity`` and ``none``. (P-DARTS instead zeroes the extra skips' weights and re-ranks the
    node's edges; keeping the edge keeps every input read.) An edge whose only op left by
    pruning is ``identity`` cannot change and stays, so with pruning a cell may end above the cap.
    The cap is applied after the input rule above, and edges keep their sources, so it never
    leaves an input unread.
    """
    edges = all_edges(num_inputs, num_nodes)
    if tuple(alphas.shape) != (len(edges), len(op_names)):
        raise ValueError(f"{name}: alphas of shape {tuple(alphas.shape)}, expected {(len(edges), len(op_names))}")
    return select_cell(name, alpha_selection_weights(alphas, edge_scales, op_mask), op_names, num_inputs, num_nodes,
                       top_k, op_mask=op_mask, max_identity=max_identity)


def alpha_selection_weights(alphas: Tensor, edge_scales: Tensor | None = None, op_mask: Tensor | None = None) -> Tensor:
    """DARTS's selection weights of one cell, ``(num_edges, num_ops)``: ``softmax(alpha)`` per edge
    (ops outside ``op_mask`` at 0), times the edge's PC-DARTS scale when given."""
    logits = alphas.detach().float()
    if op_mask is not None:
        logits = logits.masked_fill(~torch.as_tensor(op_mask, dtype=torch.bool, device=logits.device), float("-inf"))
    weights = torch.softmax(logits, dim=-1)
    if edge_scales is not None:
        weights = weights * edge_scales.detach().float().reshape(-1, 1)
    return weights


def select_cell(
    name: str,
    weights: Tensor,
    op_names: Sequence[str],
    num_inputs: int,
    num_nodes: int,
    top_k: int = 2,
    *,
    op_mask: Tensor | None = None,
    max_identity: int | None = None,
) -> CellGenotype:
    """One cell's genotype from selection weights ``(num_edges, num_ops)``, larger = stronger:
    ``alpha_selection_weights`` for DARTS, or another selection rule's scores
    (``udarts.search.perturbation``). The rules are ``derive_cell``'s: each edge takes its
    strongest non-``none`` op among those ``op_mask`` keeps, each node keeps its ``top_k``
    strongest edges, every input stays read, and ``max_identity`` caps the identity edges."""
    edges = all_edges(num_inputs, num_nodes)
    if tuple(weights.shape) != (len(edges), len(op_names)):
        raise ValueError(f"{name}: selection weights of shape {tuple(weights.shape)}, expected {(len(edges), len(op_names))}")
    if max_identity is not None and max_identity < 0:
        raise ValueError(f"max_identity must be >= 0 or None, got {max_identity}")
    weights = weights.detach().float()
    candidates = [index for index, op_name in enumerate(op_names) if op_name != NONE_OP]
    if not candidates:
        raise ValueError(f"{name}: the op set has no op besides 'none'")
    active = None if op_mask is None else torch.as_tensor(op_mask, dtype=torch.bool).cpu()
    # per node, every candidate edge as (-score, source, op_name, edge_index): sorting ranks them
    scored: list[list[tuple[float, int, str, int]]] = []
    kept: list[list[tuple[float, int, str, int]]] = []
    for node in range(num_nodes):
        node_scored = []
        for edge_index, (target, source) in enumerate(edges):
            if target != node:
                continue
            row = weights[edge_index, candidates]
            if active is not None:
                edge_active = active[edge_index, candidates].to(row.device)
                if not bool(edge_active.any()):
                    continue  # pruning left this edge only 'none'
                row = row.masked_fill(~edge_active, -math.inf)
            best = int(torch.argmax(row))
            node_scored.append((-float(row[best]), source, op_names[candidates[best]], edge_index))
        if not node_scored:
            raise ValueError(f"{name}: node {node} has no incoming edge with an op besides 'none'")
        scored.append(node_scored)
        kept.append(sorted(node_scored)[:top_k])
    _read_every_input(name, num_inputs, scored, kept)
    if max_identity is not None:
        _cap_identity(name, max_identity, kept, weights, op_names, candidates, active)
    nodes = tuple(tuple((op_name, source) for _, source, op_name, _ in sorted(genes, key=lambda item: item[1])) for genes in kept)
    return CellGenotype(name, num_inputs, nodes)


def _read_every_input(name: str, num_inputs: int, scored: list[list[tuple]], kept: list[list[tuple]]) -> None:
    """Make every cell input read by some kept edge, in place (the rule in ``derive_cell``)."""
    readers = [sum(1 for genes in kept for gene in genes if gene[1] == source) for source in range(num_inputs)]
    for source in range(num_inputs):
        if readers[source]:
            continue
        options = []
        for node, node_scored in enumerate(scored):
            edge = next((gene for gene in node_scored if gene[1] == source), None)
            if edge is None:  # pruning left this edge only 'none'
                continue
            # a kept edge may go unless it is the only reader of an input
            removable = [gene for gene in kept[node] if not (gene[1] < num_inputs and readers[gene[1]] == 1)]
            if removable:
                options.append((edge[0], node, edge, max(removable)))  # max: the weakest, ties the higher source
        if not options:
            raise ValueError(
                f"{name}: no kept edge reads input {source}, and no node can swap an edge for it without cutting off "
                f"another input (top_k too small for {num_inputs} inputs and {len(kept)} nodes?)"
            )
        _, node, edge, dropped = min(options)
        kept[node].remove(dropped)
        kept[node].append(edge)
        readers[source] += 1
        if dropped[1] < num_inputs:
            readers[dropped[1]] -= 1


def _cap_identity(
    name: str, max_identity: int, kept: list[list[tuple]], weights: Tensor, op_names: Sequence[str],
    candidates: list[int], active: Tensor | None,
) -> None:
    """Replace the op of the weakest kept identity edges, in place (the rule in ``derive_cell``)."""
    identities = [(gene[0], node, gene[1]) for node, genes in enumerate(kept) for gene in genes if gene[2] == IDENTITY_OP]
    excess = len(identities) - max_identity
    # weakest first: the largest -score; ties: the later node, then the higher source
    for _, node, source in sorted(identities, reverse=True):
        if excess <= 0:
            break
        position = next(index for index, gene in enumerate(kept[node]) if gene[1] == source)
        negative_score, _, _, edge_index = kept[node][position]
        others = [index for index in candidates if op_names[index] != IDENTITY_OP
                  and (active is None or bool(active[edge_index, index]))]
        if not others:
            continue  # pruning left this edge identity alone: it stays (see derive_cell)
        best = max(others, key=lambda index: (float(weights[edge_index, index]), -index))
        kept[node][position] = (negative_score, source, op_names[best], edge_index)
        excess -= 1


def derive(
    alphas: Sequence[Tensor],
    op_names: Sequence[str],
    num_nodes: int,
    top_k: int = 2,
    settings: OpSettings = OpSettings(),
    search: dict[str, Any] | None = None,
    edge_scales: Sequence[Tensor] | None = None,
    op_masks: Sequence[Tensor] | None = None,
    max_identity: int | None = None,
) -> Genotype:
    """The genotype of the whole U from the eight cells' alphas (cell order C1..C8); optionally
    each cell's PC-DARTS edge scales and pruning op mask, and a cap on the identity edges of
    each cell (see ``derive_cell``: every cell input stays read, whatever ``top_k``)."""
    _check_derive_arguments(top_k, max_identity)
    slots = cell_slots(1)
    if len(alphas) != len(slots):
        raise ValueError(f"expected alphas for {len(slots)} cells, got {len(alphas)}")
    for label, per_cell in (("edge scales", edge_scales), ("op masks", op_masks)):
        if per_cell is not None and len(per_cell) != len(slots):
            raise ValueError(f"expected {label} for {len(slots)} cells, got {len(per_cell)}")
    weights = []
    for slot, cell_alphas in zip(slots, alphas):
        expected = (len(all_edges(slot.num_inputs, num_nodes)), len(op_names))
        if tuple(cell_alphas.shape) != expected:
            raise ValueError(f"{slot.name}: alphas of shape {tuple(cell_alphas.shape)}, expected {expected}")
        weights.append(alpha_selection_weights(cell_alphas, None if edge_scales is None else edge_scales[slot.index],
                                               None if op_masks is None else op_masks[slot.index]))
    return derive_from_weights(weights, op_names, num_nodes, top_k, settings, search, op_masks, max_identity)


def _check_derive_arguments(top_k: int, max_identity: int | None) -> None:
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if max_identity is not None and max_identity < 0:
        raise ValueError(f"max_identity must be >= 0 or None, got {max_identity}")


def derive_from_weights(
    cell_weights: Sequence[Tensor],
    op_names: Sequence[str],
    num_nodes: int,
    top_k: int = 2,
    settings: OpSettings = OpSettings(),
    search: dict[str, Any] | None = None,
    op_masks: Sequence[Tensor] | None = None,
    max_identity: int | None = None,
) -> Genotype:
    """The genotype of the whole U from each cell's selection weights ``(num_edges, num_ops)``
    (cell order C1..C8; ``select_cell`` keeps the strongest)."""
    _check_derive_arguments(top_k, max_identity)
    slots = cell_slots(1)
    if len(cell_weights) != len(slots):
        raise ValueError(f"expected selection weights for {len(slots)} cells, got {len(cell_weights)}")
    if op_masks is not None and len(op_masks) != len(slots):
        raise ValueError(f"expected op masks for {len(slots)} cells, got {len(op_masks)}")
    cells = tuple(
        select_cell(slot.name, weights, op_names, slot.num_inputs, num_nodes, top_k,
                    op_mask=None if op_masks is None else op_masks[slot.index], max_identity=max_identity)
        for slot, weights in zip(slots, cell_weights)
    )
    return Genotype(
        cells=cells,
        op_set=tuple(op_names),
        num_nodes=num_nodes,
        expand_ratio=settings.expand_ratio,
        se_ratio=settings.se_ratio,
        search=dict(search or {}),
    )


def architecture_from_state(state_dict: dict[str, Tensor], num_nodes: int) -> dict[str, list[Tensor] | None]:
    """The architecture tensors of a supernet state dict (a search checkpoint's ``model``):
    ``{"alphas": [8 tensors], "edge_scales": [8] or None, "op_masks": [8] or None}``, ready for
    ``derive(alphas, ..., edge_scales=..., op_masks=...)``. ``edge_scales`` are the softmax of
    PC-DARTS's betas over each node's incoming edges; ``op_masks`` are pruning's masks."""
    slots = cell_slots(1)
    alphas = [state_dict[cell_state_key(slot.index, "alphas")] for slot in slots]
    betas, masks = cell_tensors(state_dict, "betas"), cell_tensors(state_dict, "op_mask")
    edge_scales = None if betas is None else [
        softmax_per_node(cell_betas.detach().float(), all_edges(slot.num_inputs, num_nodes)) for slot, cell_betas in zip(slots, betas)
    ]
    op_masks = None if masks is None else [mask.bool() for mask in masks]
    return {"alphas": alphas, "edge_scales": edge_scales, "op_masks": op_masks}
