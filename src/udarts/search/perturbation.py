"""Perturbation-based architecture selection (DARTS-PT: Wang et al., "Rethinking Architecture
Selection in Differentiable NAS", ICLR 2021, Algorithm 1).

The magnitude of an op's alpha need not say how much the supernet relies on that op: DARTS-PT
instead removes each op from its edge and measures how much the supernet's validation metric
gets worse; the op whose removal hurts most is kept. Then, with every edge reduced to its kept
op, it removes each edge in turn and keeps, per node, the edges whose removal hurts most.

As in the paper, edges are decided one at a time in a random order (seeded), and a decided edge
stays reduced to its op while the later edges are scored. Where this differs from the paper,
for a CPU budget:

- the metric is the search loss (``search.loss``) on a fixed set of alpha-split batches, not
  the accuracy: the loss moves with every pixel, so a handful of batches separates the ops;
- the supernet is not fine-tuned between decisions (the paper tunes it for a few epochs after
  each edge; its ablation keeps most of the gain without, Table 5);
- an op is removed by masking it out of the edge's softmax (the remaining ops renormalised,
  ``SearchCell.set_op_mask``), an edge by reducing it to ``none``; the batch-norm layers use their
  running statistics (eval mode), so a removal is not absorbed by re-normalised activations.

``perturbation_weights`` returns, per cell, selection weights for ``udarts.genotype.select_cell``:
each edge's chosen op carries the edge's topology score and the edge's other ops smaller values
in the order of their own removal scores, so ``select_cell``'s rules (top-k edges per node,
every input read, the identity cap's runner-up op) apply unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from udarts.ops import NONE_OP


@dataclass(frozen=True)
class PerturbationScores:
    """One cell's scores. ``op_removal`` ``(num_edges, num_ops)``: the supernet's loss with the op
    removed from its edge (NaN where not scored: ``none``, pruned ops, an edge's only op), the
    edges decided before it reduced to their ops; ``chosen`` ``(num_edges,)``: the op each edge
    keeps (-1 for an edge pruning left only ``none``); ``edge_removal`` ``(num_edges,)``: the loss
    with the edge removed from the supernet of decided edges (NaN without a ``none`` op).
    Only the order of the losses matters: the higher, the more the supernet needs it."""

    op_removal: Tensor
    chosen: Tensor
    edge_removal: Tensor


def perturbation_scores(
    cells: Sequence,
    op_names: Sequence[str],
    loss_of_supernet: Callable[[], float],
    seed: int = 0,
    progress: Callable[[Iterable], Iterable] = lambda items: items,
) -> list[PerturbationScores]:
    """DARTS-PT's two passes over ``cells`` (``SearchCell``s of one supernet, in eval mode), with
    ``loss_of_supernet()`` the metric (lower is better) of the supernet as masked now. The cells'
    op masks are restored afterwards, also when the evaluation fails."""
    none_index = op_names.index(NONE_OP) if NONE_OP in op_names else None
    original = [cell.op_mask.detach().clone().cpu() for cell in cells]
    masks = [mask.clone() for mask in original]
    op_removal = [torch.full(mask.shape, float("nan")) for mask in masks]
    chosen = [torch.full(mask.shape[:1], -1, dtype=torch.long) for mask in masks]
    edge_removal = [torch.full(mask.shape[:1], float("nan")) for mask in masks]
    order = [(cell_index, edge) for cell_index, mask in enumerate(masks) for edge in range(mask.shape[0])]
    order = [order[index] for index in np.random.default_rng(seed).permutation(len(order))]
    try:
        with torch.no_grad():
            for cell_index, edge in progress(order):  # pass 1: each edge's op, one edge at a time
                cell, mask = cells[cell_index], masks[cell_index]
                candidates = [op for op in mask[edge].nonzero().flatten().tolist() if op != none_index]
                if not candidates:
                    continue  # pruning left this edge only 'none'
                if len(candidates) > 1:
                    for op in candidates:
                        trial = mask.clone()
                        trial[edge, op] = False
                        cell.set_op_mask(trial)
                        op_removal[cell_index][edge, op] = loss_of_supernet()
                best = max(candidates, key=lambda op: (float(torch.nan_to_num(op_removal[cell_index][edge, op])), -op))
                chosen[cell_index][edge] = best
                mask[edge] = False
                mask[edge, best] = True  # decided: the edge is its op from now on
                cell.set_op_mask(mask)
            if none_index is not None:  # pass 2: each edge removed from the decided supernet
                decided = [(cell_index, edge) for cell_index, edge in sorted(order) if int(chosen[cell_index][edge]) >= 0]
                for cell_index, edge in progress(decided):
                    trial = masks[cell_index].clone()
                    trial[edge] = False
                    trial[edge, none_index] = True
                    cells[cell_index].set_op_mask(trial)
                    edge_removal[cell_index][edge] = loss_of_supernet()
                    cells[cell_index].set_op_mask(masks[cell_index])
    finally:
        for cell, mask in zip(cells, original):
            cell.set_op_mask(mask)
    return [PerturbationScores(*scores) for scores in zip(op_removal, chosen, edge_removal)]


def selection_weights(scores: PerturbationScores) -> Tensor:
    """Selection weights ``(num_edges, num_ops)`` for ``select_cell`` from one cell's scores.

    An edge's decided op gets the edge's topology value, ``1 + its edge-removal loss scaled to
    [0, 1]`` over the cell (the decided op's own removal loss when the op set has no ``none``);
    the edge's other scored ops get less, in the order of their removal losses (the identity
    cap's runner-up); unscored ops 0."""
    op_removal, chosen = scores.op_removal, scores.chosen
    num_edges, num_ops = op_removal.shape
    op_values = torch.zeros(num_edges, num_ops)
    decided = chosen >= 0
    for edge in decided.nonzero().flatten().tolist():
        row = op_removal[edge]
        scored = ~torch.isnan(row)
        if bool(scored.any()):
            low, high = float(row[scored].min()), float(row[scored].max())
            op_values[edge, scored] = 0.01 + 0.5 * (row[scored] - low) / (high - low if high > low else 1.0)
        op_values[edge, int(chosen[edge])] = 1.0
    if bool(torch.isnan(scores.edge_removal[decided]).any()):  # no 'none' op: the decided op's own score
        edge_scores = torch.stack([op_removal[edge, int(chosen[edge])] if int(chosen[edge]) >= 0 else torch.tensor(0.0)
                                   for edge in range(num_edges)])
    else:
        edge_scores = scores.edge_removal.clone()
    edge_scores = torch.nan_to_num(edge_scores, nan=float(torch.nan_to_num(edge_scores[decided], nan=0.0).min())
                                   if bool(decided.any()) else 0.0)
    low, high = float(edge_scores.min()), float(edge_scores.max())
    edge_values = 1.0 + (edge_scores - low) / (high - low if high > low else 1.0)
    return op_values * edge_values.reshape(-1, 1)
