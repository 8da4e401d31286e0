"""Perturbation-based architecture selection (DARTS-PT: Wang et al., "Rethinking Architecture
Selection in Differentiable NAS", ICLR 2021).

The magnitude of an op's alpha need not say how much the supernet relies on that op. DARTS-PT
instead removes each op from its edge and measures how much worse the supernet gets; the op
whose removal hurts most is kept. Then it removes each edge of a node and keeps the ``top_k``
edges whose removal hurts most. Both passes are progressive, as in the paper: edges (then
nodes) are visited in a random order drawn from a seed, and each decision stays in force while
the later ones are measured (a decided edge is reduced to its op; a decided node loses its other
edges).

Where this differs from the paper's algorithm and code, for a CPU budget:

- the metric is the search loss on a fixed set of alpha-split batches (the reference code offers
  the loss as a criterion too; the paper reports accuracy): it moves with every pixel, so a few
  batches separate the ops;
- the supernet is not fine-tuned between decisions (the paper tunes it for a few epochs after
  each one);
- an op is removed by masking it out of the edge's softmax, the remaining ops renormalised
  (``SearchCell.set_op_mask``); the reference multiplies its weight by 0 without renormalising.
  An edge is removed whole (``SearchCell.set_edge_mask``: its output times 0, PC-DARTS's
  bypassed channels included, the other edges keeping their scales);
- the batch-norm layers use their running statistics (the caller evaluates in eval mode), where
  the reference uses the batch's statistics.

``selection_weights`` turns one cell's scores into selection weights for
``udarts.genotype.select_cell``, so derivation's own rules (top-k edges per node, every input
read, the identity cap's runner-up op) apply unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from udarts.ops import NONE_OP

Progress = Callable[[Iterable, str], Iterable]


@dataclass(frozen=True)
class PerturbationScores:
    """One cell's scores, as supernet losses (only their order matters: the higher, the more the
    supernet needs what was removed).

    ``op_removal`` ``(num_edges, num_ops)``: the loss with the op removed from its edge, the edges
    decided before it reduced to their ops (NaN where not measured: ``none``, pruned ops, an
    edge's only op). ``chosen`` ``(num_edges,)``: the op each edge keeps (-1: pruning left the edge
    only ``none``). ``edge_removal`` ``(num_edges,)``: the loss with the edge removed, every edge
    reduced to its op and the nodes decided before its own reduced to their kept edges (NaN for
    an edge with no op)."""

    op_removal: Tensor
    chosen: Tensor
    edge_removal: Tensor


def perturbation_scores(
    cells: Sequence,
    op_names: Sequence[str],
    loss_of_supernet: Callable[[], float],
    top_k: int = 2,
    seed: int = 0,
    progress: Progress = lambda items, description: items,
) -> list[PerturbationScores]:
    """DARTS-PT's two passes over ``cells`` (the ``SearchCell``s of one supernet, with ``edges``,
    ``op_mask``, ``set_op_mask`` and ``set_edge_mask``), where ``loss_of_supernet()`` is the loss
    of the supernet as masked now (lower is better; a non-finite loss raises
    ``FloatingPointError``). The cells' op and edge masks are restored afterwards, also on error."""
    none_index = op_names.index(NONE_OP) if NONE_OP in op_names else None
    original = [cell.op_mask.detach().clone().cpu() for cell in cells]
    op_masks = [mask.clone() for mask in original]
    edge_masks = [torch.ones(len(cell.edges), dtype=torch.bool) for cell in cells]
    op_removal = [torch.full(mask.shape, math.nan) for mask in op_masks]
    chosen = [torch.full(mask.shape[:1], -1, dtype=torch.long) for mask in op_masks]
    edge_removal = [torch.full(mask.shape[:1], math.nan) for mask in op_masks]
    rng = np.random.default_rng(seed)

    def measure(what: str) -> float:
        loss = float(loss_of_supernet())
        if not math.isfinite(loss):
            raise FloatingPointError(f"the supernet's loss is {loss} with {what} removed; perturbation scores need finite losses")
        return loss

    edges = [(cell_index, edge) for cell_index, cell in enumerate(cells) for edge in range(len(cell.edges))]
    try:
        with torch.no_grad():
            for index in progress(rng.permutation(len(edges)).tolist(), "ops of each edge"):  # pass 1
                cell_index, edge = edges[index]
                cell, mask = cells[cell_index], op_masks[cell_index]
                candidates = [op for op in mask[edge].nonzero().flatten().tolist() if op != none_index]
                if not candidates:
                    continue  # pruning left this edge only 'none'
                if len(candidates) > 1:
                    for op in candidates:
                        trial = mask.clone()
                        trial[edge, op] = False
                        cell.set_op_mask(trial)
                        op_removal[cell_index][edge, op] = measure(f"op {op_names[op]} of cell {cell_index + 1} edge {edge}")
                    cell.set_op_mask(mask)
                best = max(candidates, key=lambda op: (float(torch.nan_to_num(op_removal[cell_index][edge, op])), -op))
                chosen[cell_index][edge] = best
                mask[edge] = False
                mask[edge, best] = True  # decided: the edge is its op from now on
                cell.set_op_mask(mask)
            nodes = [(cell_index, target) for cell_index, cell in enumerate(cells)
                     for target in sorted({target for target, _ in cell.edges})]
            for index in progress(rng.permutation(len(nodes)).tolist(), "edges of each node"):  # pass 2
                cell_index, node = nodes[index]
                cell, kept = cells[cell_index], edge_masks[cell_index]
                incoming = [edge for edge, (target, _) in enumerate(cell.edges)
                            if target == node and int(chosen[cell_index][edge]) >= 0]
                for edge in incoming:
                    trial = kept.clone()
                    trial[edge] = False
                    cell.set_edge_mask(trial)
                    edge_removal[cell_index][edge] = measure(f"edge {edge} of cell {cell_index + 1}")
                ranked = sorted(incoming, key=lambda edge: (-float(edge_removal[cell_index][edge]), cell.edges[edge][1]))
                kept[ranked[top_k:]] = False  # decided: the node keeps its top_k edges from now on
                cell.set_edge_mask(kept)
    finally:
        for cell, mask in zip(cells, original):
            cell.set_op_mask(mask)
            cell.set_edge_mask(torch.ones(len(cell.edges), dtype=torch.bool))
    return [PerturbationScores(*scores) for scores in zip(op_removal, chosen, edge_removal)]


def selection_weights(scores: PerturbationScores) -> Tensor:
    """Selection weights ``(num_edges, num_ops)`` for ``select_cell`` from one cell's scores.

    An edge's decided op gets the edge's value, ``1 + its edge-removal loss scaled to [0, 1]`` over
    the cell's edges; the edge's other measured ops get at most half of it, in the order of their
    removal losses (the identity cap's runner-up); ops not measured, and edges without an op, 0."""
    op_removal, chosen, edge_removal = scores.op_removal, scores.chosen, scores.edge_removal
    num_edges, num_ops = op_removal.shape
    decided = (chosen >= 0).nonzero().flatten().tolist()
    op_values = torch.zeros(num_edges, num_ops)
    if not decided:
        return op_values
    losses = edge_removal[decided]
    low, high = float(losses.min()), float(losses.max())
    for edge in decided:
        row = op_removal[edge]
        measured = ~torch.isnan(row)
        if bool(measured.any()):
            row_low, row_high = float(row[measured].min()), float(row[measured].max())
            op_values[edge, measured] = 0.01 + 0.49 * (row[measured] - row_low) / (row_high - row_low or 1.0)
        op_values[edge, int(chosen[edge])] = 1.0
        op_values[edge] *= 1.0 + (float(edge_removal[edge]) - low) / (high - low or 1.0)
    return op_values
