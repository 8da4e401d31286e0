"""How determined is a derived genotype? Diagnostics of a search's architecture weights, and the
warnings ``udarts derive`` and the end of a search print.

Everything here is a pure function of a cell's softmax weights (``(num_edges, num_ops)``, one
row per edge in :func:`udarts.space.all_edges` order: the rows ``SuperNet.alphas_softmax()``
gives and ``alphas.jsonl`` stores), optionally its PC-DARTS edge weights (``softmax(betas)``
over each node's incoming edges, ``edge_weights`` in ``alphas.jsonl``), and the cell's derived
genotype. Per cell:

- ``entropy``: the mean over the cell's edges of each row's entropy, divided by
  ``log(num_ops)`` (all ops of the row, ``none`` included): 1 = every edge uniform, 0 = every
  edge one-hot.
- ``min_margin``, ``mean_margin``: over the cell's kept edges, the top-1 margin: the weight of
  the edge's strongest op besides ``none`` (the op derivation keeps) minus the runner-up op's
  (besides ``none``). It is the edge's own decision, so an edge whose op the identity cap
  changed keeps the margin of its alphas.
- ``edge_margin``: how firmly the edges were chosen: over the nodes that had more incoming
  edges than the ``k`` they kept, the smallest gap between the ``k``-th and the ``k+1``-th
  strongest incoming edge (score: the edge's strongest op besides ``none`` times its PC-DARTS
  edge weight, as derivation ranks them); ``None`` when no node had a choice.
- ``identity_share``: the fraction of the cell's kept edges whose op is ``identity``.
- ``unread_inputs``: the cell inputs no kept edge reads (for a decoder cell C6..C8: 0 = the
  encoder skip, 1 = the upsampled decoder path).

:func:`genotype_warnings` turns them into readable warnings naming the cells.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, TextIO

import torch
from torch import Tensor

from udarts.genotype import CellGenotype, Genotype, derive
from udarts.ops import IDENTITY_OP, NONE_OP
from udarts.space import all_edges, cell_slots, nodes_for_edges

ENTROPY_WARNING = 0.95
"""A cell whose normalised alpha entropy is above this is weakly determined: its weights are
barely away from uniform (with 8 ops, 0.95 is every edge at 0.3 on one op and 0.1 on each of the
7 others; weights within 0.11-0.14 give about 0.999), so its derived ops and edges are close to
a random draw from the space."""

MARGIN_WARNING = 0.01
"""A cell with a kept edge whose top-1 margin (kept op's weight minus the runner-up's, in softmax
weight) is below this is weakly determined: a small push on the alphas would change that op
(0.01 is 8% of the uniform weight 0.125 of 8 ops)."""


@dataclass(frozen=True)
class CellDiagnostics:
    name: str
    num_inputs: int
    entropy: float
    min_margin: float
    mean_margin: float
    edge_margin: float | None
    identity_share: float
    kept_edges: int
    unread_inputs: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON record logged per cell in ``alphas.jsonl`` (``diagnostics``)."""
        return {
            "entropy": self.entropy,
            "min_margin": self.min_margin,
            "mean_margin": self.mean_margin,
            "edge_margin": self.edge_margin,
            "identity_share": self.identity_share,
            "unread_inputs": list(self.unread_inputs),
        }

    @property
    def all_identity(self) -> bool:
        return self.kept_edges > 0 and self.identity_share == 1.0


def normalized_entropy(weights: Tensor) -> float:
    """Mean over rows of ``H(row) / log(num_ops)``; 1 = uniform rows, 0 = one-hot rows."""
    weights = torch.as_tensor(weights, dtype=torch.float64)
    num_ops = weights.shape[-1]
    if num_ops < 2:
        return 0.0
    terms = torch.where(weights > 0, weights * torch.log(weights.clamp_min(1e-300)), torch.zeros_like(weights))
    return float((-terms.sum(-1) / math.log(num_ops)).mean())


def _candidates(op_names: Sequence[str]) -> list[int]:
    return [index for index, op_name in enumerate(op_names) if op_name != NONE_OP]


def top1_margin(row: Tensor, op_names: Sequence[str]) -> float:
    """An edge's strongest weight besides ``none`` minus its runner-up's (besides ``none``)."""
    values = sorted((float(row[index]) for index in _candidates(op_names)), reverse=True)
    return values[0] - (values[1] if len(values) > 1 else 0.0)


def cell_diagnostics(
    weights: Tensor, op_names: Sequence[str], cell: CellGenotype, edge_weights: Tensor | None = None,
) -> CellDiagnostics:
    """The diagnostics of one cell (see the module docstring) from its softmax weights, its
    optional PC-DARTS edge weights and its derived genotype."""
    weights = torch.as_tensor(weights, dtype=torch.float64).detach().cpu()
    num_nodes = len(cell.nodes)
    edges = all_edges(cell.num_inputs, num_nodes)
    if tuple(weights.shape) != (len(edges), len(op_names)):
        raise ValueError(f"{cell.name}: weights of shape {tuple(weights.shape)}, expected {(len(edges), len(op_names))}")
    index_of = {edge: index for index, edge in enumerate(edges)}
    margins = [top1_margin(weights[index_of[edge]], op_names) for edge in cell.edges()]

    candidates = _candidates(op_names)
    scales = None if edge_weights is None else torch.as_tensor(edge_weights, dtype=torch.float64).reshape(-1).cpu()
    scores = weights[:, candidates].max(dim=1).values
    if scales is not None:
        scores = scores * scales
    gaps = []
    for node, genes in enumerate(cell.nodes):
        ranked = sorted((float(scores[index]) for index, (target, _) in enumerate(edges) if target == node), reverse=True)
        if len(ranked) > len(genes):
            gaps.append(ranked[len(genes) - 1] - ranked[len(genes)])

    ops = cell.ops()
    read = {source for _, source in cell.edges()}
    return CellDiagnostics(
        name=cell.name,
        num_inputs=cell.num_inputs,
        entropy=normalized_entropy(weights),
        min_margin=min(margins) if margins else 0.0,
        mean_margin=sum(margins) / len(margins) if margins else 0.0,
        edge_margin=min(gaps) if gaps else None,
        identity_share=sum(op == IDENTITY_OP for op in ops) / len(ops) if ops else 0.0,
        kept_edges=len(ops),
        unread_inputs=tuple(source for source in range(cell.num_inputs) if source not in read),
    )


def diagnose(
    weights: Sequence[Tensor], op_names: Sequence[str], genotype: Genotype, edge_weights: Sequence[Tensor] | None = None,
) -> list[CellDiagnostics]:
    """Per cell (C1..C8), the diagnostics of ``weights`` (the eight cells' softmax weights) and
    the ``genotype`` derived from them."""
    if len(weights) != len(genotype.cells):
        raise ValueError(f"expected weights for {len(genotype.cells)} cells, got {len(weights)}")
    return [
        cell_diagnostics(cell_weights, op_names, cell, None if edge_weights is None else edge_weights[index])
        for index, (cell_weights, cell) in enumerate(zip(weights, genotype.cells))
    ]


def softmax_weights(alphas: Sequence[Tensor], op_masks: Sequence[Tensor] | None = None) -> list[Tensor]:
    """``softmax(alpha)`` per cell with pruned ops at 0, as ``SuperNet.alphas_softmax()`` gives."""
    rows = []
    for index, cell_alphas in enumerate(alphas):
        logits = cell_alphas.detach().float()
        if op_masks is not None:
            logits = logits.masked_fill(~torch.as_tensor(op_masks[index], dtype=torch.bool), float("-inf"))
        rows.append(torch.softmax(logits, dim=-1))
    return rows


def diagnose_record(
    record: Mapping[str, Any], num_nodes: int | None = None, top_k: int = 2, max_identity: int | None = None,
) -> tuple[Genotype, list[CellDiagnostics]]:
    """The genotype and diagnostics of one ``alphas.jsonl`` line, derived from its stored
    weights alone (old lines without a ``diagnostics`` key work alike) with ``top_k`` and
    ``max_identity``; pruned ops (weight 0) stay out of the derivation."""
    op_names = list(record["op_names"])
    slots = cell_slots(1)
    weights = [torch.tensor(record["cells"][slot.name], dtype=torch.float64) for slot in slots]
    if num_nodes is None:
        num_nodes = nodes_for_edges(slots[0].num_inputs, weights[0].shape[0])
    stored_edges = record.get("edge_weights")
    edge_weights = None if not stored_edges else [torch.tensor(stored_edges[slot.name], dtype=torch.float64) for slot in slots]
    masks = [cell_weights > 0 for cell_weights in weights]
    any_pruned = not all(bool(mask.all()) for mask in masks)
    alphas = [torch.log(cell_weights.clamp_min(1e-300)) for cell_weights in weights]
    genotype = derive(alphas, op_names, num_nodes, top_k, edge_scales=edge_weights,
                      op_masks=masks if any_pruned else None, max_identity=max_identity)
    return genotype, diagnose(weights, op_names, genotype, edge_weights)


def input_name(cell_name: str, source: int) -> str:
    """Where input ``source`` of a cell comes from, in words (``"the encoder skip from C3"``)."""
    slots = cell_slots(1)
    slot = next(slot for slot in slots if slot.name == cell_name)
    if slot.index == 0:
        return "the stem"
    previous = slots[slot.index - 1].name
    if slot.num_inputs == 1:
        return f"{previous}"
    if source == 0:
        encoder = next(other.name for other in slots if other.role == "encoder" and other.scale == slot.scale)
        return f"the encoder skip from {encoder}"
    return f"the upsampled decoder path from {previous}"


def genotype_warnings(
    diagnostics: Sequence[CellDiagnostics],
    entropy_threshold: float = ENTROPY_WARNING,
    margin_threshold: float = MARGIN_WARNING,
) -> list[str]:
    """Readable warnings, each naming its cells, when the genotype is weakly determined (a
    cell's normalised entropy above ``entropy_threshold`` or a kept edge's top-1 margin below
    ``margin_threshold``) or degenerate (a cell whose kept edges are all ``identity``; a cell
    with an input that no kept edge reads). Empty when nothing is wrong."""
    warnings = []
    flat = [item for item in diagnostics if item.entropy > entropy_threshold]
    if flat:
        cells = ", ".join(f"{item.name} ({item.entropy:.3f})" for item in flat)
        warnings.append(
            f"weakly determined cells {cells}: the alphas are barely away from uniform (normalised entropy above "
            f"{entropy_threshold}; 1 = uniform), so their derived ops and edges are close to a random draw; "
            "search longer or with larger alpha steps (search.alpha_travel), and with search.alpha_weight_decay at 0 "
            "(the default: a decay stops the logits where it cancels their gradient)"
        )
    close = [item for item in diagnostics if item.kept_edges and item.min_margin < margin_threshold]
    if close:
        cells = ", ".join(f"{item.name} ({item.min_margin:.4f})" for item in close)
        warnings.append(
            f"weakly determined cells {cells}: a kept edge's op is barely ahead of the runner-up (smallest top-1 "
            f"margin below {margin_threshold}), so a small change of the alphas would change it"
        )
    identity = [item for item in diagnostics if item.all_identity]
    if identity:
        warnings.append(
            f"degenerate cells {_names(identity)}: every kept edge is 'identity', so the cell computes no features "
            "(DARTS's collapse); derive with --max-identity N or search with search.max_identity"
        )
    for item in diagnostics:
        if item.unread_inputs:
            cut = " and ".join(f"input {source} ({input_name(item.name, source)})" for source in item.unread_inputs)
            warnings.append(f"degenerate cell {item.name}: no kept edge reads its {cut}: that path is cut off")
    return warnings


def _names(items: Sequence[CellDiagnostics]) -> str:
    return ", ".join(item.name for item in items)


def print_warnings(warnings: Sequence[str], stream: TextIO | None = None) -> None:
    """Print each warning as ``warning: ...`` on ``stream`` (default: stderr)."""
    stream = sys.stderr if stream is None else stream
    for warning in warnings:
        print(f"warning: {warning}", file=stream)
