"""One-shot scores of discrete genotypes: each one evaluated as a sub-network of a trained supernet,
with the supernet's weights (random search with weight sharing: Li & Talwalkar, "Random Search and
Reproducibility for Neural Architecture Search", UAI 2019; Bender et al., "Understanding and
Simplifying One-Shot Architecture Search", ICML 2018).

A genotype is laid onto the supernet by masks, without copying a weight: on every edge it keeps,
the edge's mixed op is reduced to the kept op (``SearchCell.set_op_mask``: the softmax over one op
is 1); every other edge is removed whole (``SearchCell.set_edge_mask``, PC-DARTS's bypassed
channels included). PC-DARTS's edge-normalisation weights of the kept edges stay as trained (not
renormalised over the kept edges), as in ``udarts.search.perturbation``: the sub-network is scored
as the supernet computes it, so the betas (not the alphas) weigh in on the score. A removed edge
keeps only ``none`` when it was searched, so it computes nothing; without ``none`` it computes its
first op and multiplies it by 0.

The supernet's batch-norm statistics were gathered on the mixture of every op, not on one
sub-network, so before it is scored each genotype gets its own: the running statistics are reset
and re-estimated on a few training batches (a cumulative average, in train mode, without
gradients), as single-path one-shot NAS does (Guo et al., "Single Path One-Shot Neural
Architecture Search with Uniform Sampling", ECCV 2020). The score is the mIoU over the evaluation
batches in eval mode. The supernet's masks, batch-norm buffers and (sampled modes) the sampler's
random state are restored afterwards, also on error.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import torch
from torch import Tensor, nn

from udarts.genotype import Genotype
from udarts.metrics import ConfusionMatrix
from udarts.ops import NONE_OP

Batches = Sequence[tuple[Tensor, Tensor]]  # (images (B, 3, H, W), masks (B, H, W)) on the model's device
Progress = Callable[[Iterable, str], Iterable]


@dataclass(frozen=True)
class OneShotScore:
    """A genotype's score as a sub-network of the supernet: mIoU and mean loss on the evaluation batches."""

    miou: float
    loss: float


def genotype_masks(genotype_cell, cell_edges: Sequence[tuple[int, int]], op_names: Sequence[str],
                   searched_ops: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``(op mask (num_edges, num_ops), edge mask (num_edges,))`` that reduce a search cell with
    ``cell_edges`` to ``genotype_cell``: a kept edge computes only its op; a removed edge keeps only
    ``none`` (when searched: nothing is computed) or its first op, and adds nothing either way.
    ``searched_ops``, the cell's own op mask, refuses an op that progressive pruning removed."""
    index_of_edge = {edge: index for index, edge in enumerate(cell_edges)}
    op_mask = torch.zeros(len(cell_edges), len(op_names), dtype=torch.bool)
    edge_mask = torch.zeros(len(cell_edges), dtype=torch.bool)
    for edge, op in zip(genotype_cell.edges(), genotype_cell.ops()):
        if edge not in index_of_edge:
            raise ValueError(f"cell {genotype_cell.name}: edge {edge} (node, input) is not an edge of the supernet's cell")
        if op not in op_names:
            raise ValueError(f"cell {genotype_cell.name}: op {op!r} was not searched (ops: {list(op_names)})")
        if searched_ops is not None and not bool(searched_ops[index_of_edge[edge], op_names.index(op)]):
            raise ValueError(f"cell {genotype_cell.name}: op {op!r} on edge {edge} was pruned from the supernet "
                             "(its weights stopped training there)")
        op_mask[index_of_edge[edge], op_names.index(op)] = True
        edge_mask[index_of_edge[edge]] = True
    filler = op_names.index(NONE_OP) if NONE_OP in op_names else 0
    op_mask[~edge_mask, filler] = True
    return op_mask, edge_mask


@contextlib.contextmanager
def laid_onto(model: nn.Module, genotype: Genotype) -> Iterator[nn.Module]:
    """The supernet ``model`` reduced to ``genotype`` inside the block; its masks restored after."""
    if len(genotype.cells) != len(model.cells):
        raise ValueError(f"the genotype has {len(genotype.cells)} cells, the supernet {len(model.cells)}")
    if genotype.num_nodes != model.num_nodes:
        raise ValueError(f"the genotype has {genotype.num_nodes} nodes per cell, the supernet {model.num_nodes}")
    saved = [(cell.op_mask.detach().clone(), cell.edge_mask.detach().clone()) for cell in model.cells]
    try:
        for cell, genotype_cell, (searched_ops, _) in zip(model.cells, genotype.cells, saved):
            op_mask, edge_mask = genotype_masks(genotype_cell, cell.edges, model.op_names, searched_ops.cpu())
            cell.set_op_mask(op_mask)
            cell.set_edge_mask(edge_mask)
        yield model
    finally:
        for cell, (op_mask, edge_mask) in zip(model.cells, saved):
            cell.set_op_mask(op_mask)
            cell.set_edge_mask(edge_mask)


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [module for module in model.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Batches) -> None:
    """Re-estimate every batch-norm layer's running statistics on ``batches`` (reset, then a
    cumulative average in train mode); the model is left in eval mode."""
    layers = batchnorm_layers(model)
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative moving average: every batch counts alike
    model.train()
    try:
        for images, _ in batches:
            model(images)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        model.eval()


@torch.no_grad()
def one_shot_scores(
    model: nn.Module,
    genotypes: Sequence[Genotype],
    recalibration_batches: Batches,
    evaluation_batches: Batches,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    num_classes: int,
    ignore_index: int | None = None,
    progress: Progress = lambda items, description: items,
) -> list[OneShotScore]:
    """Each genotype's ``OneShotScore`` as a sub-network of the supernet ``model`` (module
    docstring). The supernet's masks and batch-norm buffers are as before afterwards."""
    if not evaluation_batches or not recalibration_batches:
        raise ValueError(f"one-shot scores need recalibration and evaluation batches, got {len(recalibration_batches)} "
                         f"and {len(evaluation_batches)}")
    layers = batchnorm_layers(model)
    saved = [{name: buffer.clone() for name, buffer in layer.named_buffers()} for layer in layers]
    sampler = getattr(model, "sampler", None)  # sampled modes: recalibration in train mode draws from its generator
    sampler_state = sampler.generator.get_state() if sampler is not None else None
    was_training = model.training
    scores = []
    try:
        for genotype in progress(genotypes, "one-shot scores"):
            with laid_onto(model, genotype):
                recalibrate_batchnorm(model, recalibration_batches)
                matrix = ConfusionMatrix(num_classes, ignore_index)
                losses = []
                for images, masks in evaluation_batches:
                    logits = model(images)  # (B, K, H, W)
                    losses.append(float(loss_fn(logits, masks)))
                    matrix.update(logits, masks)
                scores.append(OneShotScore(miou=float(matrix.compute()["miou"]), loss=sum(losses) / len(losses)))
    finally:
        for layer, buffers in zip(layers, saved):
            for name, value in buffers.items():
                getattr(layer, name).copy_(value)
        if sampler is not None:
            sampler.generator.set_state(sampler_state)
        model.train(was_training)
    return scores
