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
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from udarts import __version__
from udarts.nets.cell import all_edges, softmax_per_node
from udarts.nets.ushape import NUM_CELLS, cell_slots
from udarts.ops import NONE_OP, OPS, OpSettings

GENOTYPE_FORMAT = "udarts-genotype"
GENOTYPE_VERSION = 1
SOURCES_LEGEND = (
    "source 0..num_inputs-1 = cell inputs (decoder cells: 0 = encoder skip, 1 = upsampled decoder path); "
    "source num_inputs+j = intermediate node j"
)

EdgeGene = tuple[str, int]  # (op_name, source)


class GenotypeError(ValueError):
    """A genotype (file) is wrong; the message names the file and the key."""


@dataclass(frozen=True)
class CellGenotype:
    name: str
    num_inputs: int
    nodes: tuple[tuple[EdgeGene, ...], ...]  # per intermediate node: its kept edges

    def edges(self) -> list[tuple[int, int]]:
        """``(node, source)`` pairs in a fixed order (node-major), matching ``ops()``."""
        return [(node, source) for node, genes in enumerate(self.nodes) for _, source in genes]

    def ops(self) -> list[str]:
        return [op_name for genes in self.nodes for op_name, _ in genes]


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
        """Write the JSON atomically (temp file + rename) and return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(to_json(self.to_dict()) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def from_dict(cls, data: Any, origin: str = "genotype") -> "Genotype":
        return _parse(data, origin)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Genotype":
        path = Path(path)
        if not path.is_file():
            raise GenotypeError(f"{path}: genotype file not found")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise GenotypeError(f"{path}: not valid JSON ({error})") from error
        return _parse(data, str(path))


def to_json(data: dict[str, Any]) -> str:
    """Indented JSON with each edge ``["op", source]`` and each node's edge list on one line."""
    text = json.dumps(data, indent=2)
    flat_list = re.compile(r"\[\s*([^\[\]{}]*?)\s*\]")  # a list of scalars
    text = flat_list.sub(lambda match: "[" + re.sub(r"\s*\n\s*", " ", match.group(1)) + "]", text)
    list_of_flat_lists = re.compile(r"\[\s*((?:\[[^\[\]\n]*\],?\s*)+)\]")
    return list_of_flat_lists.sub(lambda match: "[" + re.sub(r"\s*\n\s*", " ", match.group(1)).strip() + "]", text)


# ---- derivation ----------------------------------------------------------------------------
IDENTITY_OP = "identity"


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
    if max_identity is not None and max_identity < 0:
        raise ValueError(f"max_identity must be >= 0 or None, got {max_identity}")
    logits = alphas.detach().float()
    if op_mask is not None:
        logits = logits.masked_fill(~torch.as_tensor(op_mask, dtype=torch.bool, device=logits.device), float("-inf"))
    weights = torch.softmax(logits, dim=-1)
    if edge_scales is not None:
        weights = weights * edge_scales.detach().float().reshape(-1, 1)
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
                row = row.masked_fill(~edge_active, -1.0)
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
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if max_identity is not None and max_identity < 0:
        raise ValueError(f"max_identity must be >= 0 or None, got {max_identity}")
    slots = cell_slots(1)
    if len(alphas) != len(slots):
        raise ValueError(f"expected alphas for {len(slots)} cells, got {len(alphas)}")
    for label, per_cell in (("edge scales", edge_scales), ("op masks", op_masks)):
        if per_cell is not None and len(per_cell) != len(slots):
            raise ValueError(f"expected {label} for {len(slots)} cells, got {len(per_cell)}")
    cells = tuple(
        derive_cell(
            slot.name, cell_alphas, op_names, slot.num_inputs, num_nodes, top_k,
            edge_scales=None if edge_scales is None else edge_scales[slot.index],
            op_mask=None if op_masks is None else op_masks[slot.index], max_identity=max_identity,
        )
        for slot, cell_alphas in zip(slots, alphas)
    )
    return Genotype(
        cells=cells,
        op_set=tuple(op_names),
        num_nodes=num_nodes,
        expand_ratio=settings.expand_ratio,
        se_ratio=settings.se_ratio,
        search=dict(search or {}),
    )


# ---- validation ----------------------------------------------------------------------------
_TOP_LEVEL_KEYS = {"format", "version", "op_set", "num_nodes", "op_settings", "sources", "cells", "search", "udarts_version"}
_REQUIRED_KEYS = {"format", "version", "op_set", "num_nodes", "cells"}


def _parse(data: Any, origin: str) -> Genotype:
    def fail(key: str, message: str) -> GenotypeError:
        return GenotypeError(f"{origin}: {key}: {message}")

    if not isinstance(data, dict):
        raise fail("(top level)", f"expected a JSON object, got {type(data).__name__}")
    if data.get("format") != GENOTYPE_FORMAT:
        raise fail("format", f"expected {GENOTYPE_FORMAT!r}, got {data.get('format')!r} (is this a udarts genotype?)")
    missing = sorted(_REQUIRED_KEYS - data.keys())
    if missing:
        raise fail(",".join(missing), "missing")
    unknown = sorted(data.keys() - _TOP_LEVEL_KEYS)
    if unknown:
        raise fail(",".join(unknown), f"unknown key(s); expected only {sorted(_TOP_LEVEL_KEYS)}")
    if data["version"] != GENOTYPE_VERSION:
        raise fail("version", f"version {data['version']!r} is not supported (this udarts reads {GENOTYPE_VERSION})")

    op_set = data["op_set"]
    if not (isinstance(op_set, list) and op_set and all(isinstance(name, str) for name in op_set)):
        raise fail("op_set", f"expected a non-empty list of op names, got {op_set!r}")
    unknown_ops = [name for name in op_set if name not in OPS]
    if unknown_ops:
        raise fail("op_set", f"unknown op(s) {unknown_ops}; known ops are {sorted(OPS)}")

    num_nodes = data["num_nodes"]
    if not (isinstance(num_nodes, int) and not isinstance(num_nodes, bool) and num_nodes >= 1):
        raise fail("num_nodes", f"expected an integer >= 1, got {num_nodes!r}")

    op_settings = data.get("op_settings", {})
    if not isinstance(op_settings, dict) or set(op_settings) - {"expand_ratio", "se_ratio"}:
        raise fail("op_settings", f"expected an object with 'expand_ratio' and 'se_ratio', got {op_settings!r}")
    expand_ratio = op_settings.get("expand_ratio", 4)
    se_ratio = op_settings.get("se_ratio", 0.25)
    if isinstance(expand_ratio, bool) or not isinstance(expand_ratio, int):
        raise fail("op_settings.expand_ratio", f"expected an integer >= 1, got {expand_ratio!r}")
    if isinstance(se_ratio, bool) or not isinstance(se_ratio, (int, float)):
        raise fail("op_settings.se_ratio", f"expected a number in (0, 1], got {se_ratio!r}")
    try:
        OpSettings(expand_ratio=expand_ratio, se_ratio=se_ratio)
    except (ValueError, TypeError) as error:
        raise fail("op_settings", str(error)) from error

    cells_data = data["cells"]
    slots = cell_slots(1)
    if not isinstance(cells_data, list) or len(cells_data) != NUM_CELLS:
        count = len(cells_data) if isinstance(cells_data, list) else type(cells_data).__name__
        raise fail("cells", f"expected a list of {NUM_CELLS} cells (C1..C8), got {count}")
    cells = []
    for position, (cell_data, slot) in enumerate(zip(cells_data, slots)):
        key = f"cells[{position}]"
        if not isinstance(cell_data, dict):
            raise fail(key, "expected an object with 'name', 'num_inputs' and 'nodes'")
        if cell_data.get("name") != slot.name:
            raise fail(f"{key}.name", f"expected {slot.name!r} (cells are listed C1..C8), got {cell_data.get('name')!r}")
        if cell_data.get("num_inputs") != slot.num_inputs:
            raise fail(
                f"{key}.num_inputs",
                f"cell {slot.name} has {slot.num_inputs} input(s) in the U wiring, got {cell_data.get('num_inputs')!r}",
            )
        nodes_data = cell_data.get("nodes")
        if not isinstance(nodes_data, list) or len(nodes_data) != num_nodes:
            raise fail(f"{key}.nodes", f"expected a list of {num_nodes} nodes (num_nodes), got {nodes_data!r:.80}")
        nodes = []
        for node, genes_data in enumerate(nodes_data):
            node_key = f"{key}.nodes[{node}]"
            if not isinstance(genes_data, list) or not genes_data:
                raise fail(node_key, "expected a non-empty list of [op_name, source] edges")
            genes = []
            for gene_index, gene in enumerate(genes_data):
                gene_key = f"{node_key}[{gene_index}]"
                if not (isinstance(gene, list) and len(gene) == 2 and isinstance(gene[0], str) and type(gene[1]) is int):
                    raise fail(gene_key, f"expected [op_name, source], got {gene!r}")
                op_name, source = gene
                if op_name not in op_set:
                    raise fail(gene_key, f"op {op_name!r} is not in op_set {op_set}")
                if op_name == NONE_OP:
                    raise fail(gene_key, "'none' cannot be a kept edge; remove the edge instead")
                if not 0 <= source < slot.num_inputs + node:
                    raise fail(gene_key, f"source {source} out of range: node {node} of {slot.name} reads states 0..{slot.num_inputs + node - 1}")
                genes.append((op_name, source))
            sources = [source for _, source in genes]
            if len(set(sources)) != len(sources):
                raise fail(node_key, f"repeated source in {sources}")
            nodes.append(tuple(genes))
        cells.append(CellGenotype(slot.name, slot.num_inputs, tuple(nodes)))

    search = data.get("search", {})
    if not isinstance(search, dict):
        raise fail("search", f"expected an object, got {type(search).__name__}")
    return Genotype(
        cells=tuple(cells),
        op_set=tuple(op_set),
        num_nodes=num_nodes,
        expand_ratio=expand_ratio,
        se_ratio=se_ratio,
        search=search,
        udarts_version=str(data.get("udarts_version", "unknown")),
    )



def architecture_from_state(state_dict: dict[str, Tensor], num_nodes: int) -> dict[str, list[Tensor] | None]:
    """The architecture tensors of a supernet state dict (a search checkpoint's ``model``):
    ``{"alphas": [8 tensors], "edge_scales": [8] or None, "op_masks": [8] or None}``, ready for
    ``derive(alphas, ..., edge_scales=..., op_masks=...)``. ``edge_scales`` are the softmax of
    PC-DARTS's betas over each node's incoming edges; ``op_masks`` are pruning's masks."""
    slots = cell_slots(1)
    alphas = [state_dict[f"cells.{slot.index}.alphas"] for slot in slots]
    edge_scales = None
    if all(f"cells.{slot.index}.betas" in state_dict for slot in slots):
        edge_scales = [
            softmax_per_node(state_dict[f"cells.{slot.index}.betas"].detach().float(), all_edges(slot.num_inputs, num_nodes))
            for slot in slots
        ]
    op_masks = None
    if all(f"cells.{slot.index}.op_mask" in state_dict for slot in slots):
        op_masks = [state_dict[f"cells.{slot.index}.op_mask"].bool() for slot in slots]
    return {"alphas": alphas, "edge_scales": edge_scales, "op_masks": op_masks}
