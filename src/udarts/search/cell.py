"""A search cell: the shared DAG ``Cell`` with a mixed op on every possible edge and its own
architecture parameters ``alphas`` of shape ``(num_edges, num_ops)``.

How a search mode relaxes an edge is composed at construction (``udarts.search.supernet`` picks
the parts per mode); nothing is set on a cell afterwards:

- ``mixed_op``: the factory ``mixed_op(channels, op_names, settings)`` of every edge's module:
  ``MixedOp`` (DARTS) or PC-DARTS's ``PartialChannelMixedOp`` with its ``k``
  (``functools.partial(PartialChannelMixedOp, k=4)``), either with its own activation
  checkpointing;
- ``selector``: ``selector(logits, active_ops, training) -> (weights, op_indices)`` turns the
  masked alphas into each edge's op weights ``(num_edges, num_ops)`` and the op indices each
  edge computes (``None``: every active op): ``softmax_selector`` (DARTS) or a shared
  ``GumbelSampler`` (GDAS; one sampled op per edge per forward pass);
- ``edge_normalization``: PC-DARTS's edge weights ``betas`` (one per edge); node ``j`` sums its
  edges weighted by ``softmax(betas)`` over its incoming edges (``edge_scales``);
- ``persistent_op_mask``: keep the op mask of progressive pruning in the state dict. The mask,
  ``(num_edges, num_ops)`` booleans, holds the ops pruning kept; a dropped op gets weight 0 (its
  alpha is masked out of the softmax) and is not computed;
- ``checkpoint_activations``: recompute the cell's activations in the backward pass instead of
  storing them (``torch.utils.checkpoint``); the selector runs outside the recomputed region, so
  the recomputation runs the same network.

Besides the op mask above, an edge mask (``set_edge_mask``; every edge kept unless set, never
saved) removes whole edges, their output times 0 (PC-DARTS's bypassed channels included), the
other edges keeping their scales: perturbation-based selection (``udarts.search.perturbation``)
uses it to measure what the supernet loses without an edge.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from udarts.nets.cell import Cell
from udarts.ops import OpSettings
from udarts.search.mixed_op import MixedOp
from udarts.space import all_edges, softmax_per_node

MixedOpFactory = Callable[[int, Sequence[str], OpSettings], nn.Module]
EdgeOps = list[list[int]] | None  # per edge, the op indices it computes; None: every op of every edge
Selector = Callable[[Tensor, EdgeOps, bool], tuple[Tensor, EdgeOps]]


def softmax_selector(logits: Tensor, active_ops: EdgeOps, training: bool) -> tuple[Tensor, EdgeOps]:
    """DARTS: every active op of every edge, weighted by ``softmax(alpha)`` (pruned ops at 0)."""
    return F.softmax(logits, dim=-1), active_ops


class SearchCell(Cell):
    def __init__(
        self,
        num_inputs: int,
        channels: int,
        num_nodes: int,
        op_names: Sequence[str],
        settings: OpSettings,
        alpha_init_scale: float = 1e-3,
        *,
        mixed_op: MixedOpFactory = MixedOp,
        selector: Selector = softmax_selector,
        edge_normalization: bool = False,
        persistent_op_mask: bool = False,
        checkpoint_activations: bool = False,
    ) -> None:
        super().__init__(
            num_inputs,
            channels,
            num_nodes,
            edges=all_edges(num_inputs, num_nodes),
            make_op=lambda index: mixed_op(channels, op_names, settings),
            affine=settings.affine,
        )
        self.op_names = tuple(op_names)
        self.alphas = nn.Parameter(alpha_init_scale * torch.randn(len(self.edges), len(self.op_names)))
        if edge_normalization:
            self.betas = nn.Parameter(alpha_init_scale * torch.randn(len(self.edges)))
        else:
            self.register_parameter("betas", None)
        # In the state dict only when pruning is on (so plain checkpoints keep their keys).
        self.register_buffer("op_mask", torch.ones(len(self.edges), len(self.op_names), dtype=torch.bool),
                             persistent=persistent_op_mask)
        self._active_ops: EdgeOps = None  # None: every op of every edge is active
        # Edges removed from the cell's sums (perturbation-based selection): their whole output,
        # PC-DARTS's bypassed channels included, is multiplied by 0; the other edges keep their scales.
        self.register_buffer("edge_mask", torch.ones(len(self.edges), dtype=torch.bool), persistent=False)
        self._every_edge_kept = True
        self.selector = selector
        self.checkpoint_activations = checkpoint_activations

    # ---- architecture weights ---------------------------------------------------------------
    def masked_alphas(self) -> Tensor:
        """The alphas with pruned ops at ``-inf`` (so their softmax weight is exactly 0)."""
        if self._active_ops is None:
            return self.alphas
        return self.alphas.masked_fill(~self.op_mask, float("-inf"))

    def op_weights(self) -> Tensor:
        """``softmax(alpha)`` of each edge's ops, pruned ops at 0: ``(num_edges, num_ops)``."""
        return F.softmax(self.masked_alphas(), dim=-1)

    def edge_scales(self) -> Tensor | None:
        """PC-DARTS's edge normalisation: ``softmax(betas)`` over each node's incoming edges."""
        if self.betas is None:
            return None
        return softmax_per_node(self.betas, self.edges)  # (num_edges,)

    # ---- pruning ----------------------------------------------------------------------------
    def active_ops(self) -> list[list[int]]:
        """Per edge, the indices of the ops still searched."""
        if self._active_ops is None:
            return [list(range(len(self.op_names))) for _ in self.edges]
        return [list(row) for row in self._active_ops]

    def set_op_mask(self, mask: Tensor) -> None:
        """Set which ops each edge keeps (``(num_edges, num_ops)`` booleans, any device)."""
        # explicit "cpu": the mask may be set while a default device (meta, for counting) is active
        mask = mask.detach().to("cpu", torch.bool) if isinstance(mask, Tensor) else torch.tensor(mask, dtype=torch.bool, device="cpu")
        if tuple(mask.shape) != tuple(self.op_mask.shape):
            raise ValueError(f"op mask of shape {tuple(mask.shape)}, expected {tuple(self.op_mask.shape)}")
        if not bool(mask.any(dim=1).all()):
            raise ValueError("an op mask must keep at least one op on every edge")
        with torch.no_grad():
            self.op_mask.copy_(mask)
        self._refresh_active_ops(mask)

    def set_edge_mask(self, mask: Tensor) -> None:
        """Set which edges the cell sums (``(num_edges,)`` booleans); a removed edge adds nothing."""
        mask = mask.detach().to("cpu", torch.bool) if isinstance(mask, Tensor) else torch.tensor(mask, dtype=torch.bool, device="cpu")
        if tuple(mask.shape) != tuple(self.edge_mask.shape):
            raise ValueError(f"edge mask of shape {tuple(mask.shape)}, expected {tuple(self.edge_mask.shape)}")
        with torch.no_grad():
            self.edge_mask.copy_(mask)
        self._every_edge_kept = bool(mask.all())

    def _refresh_active_ops(self, mask: Tensor | None = None) -> None:
        mask = self.op_mask.detach().cpu() if mask is None else mask
        self._active_ops = None if bool(mask.all()) else [row.nonzero().flatten().tolist() for row in mask]

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # type: ignore[override]
        super()._load_from_state_dict(*args, **kwargs)
        if not self.op_mask.is_meta:
            self._refresh_active_ops()  # a checkpoint may hold a pruned mask

    # ---- forward ----------------------------------------------------------------------------
    def forward(self, inputs: Sequence[Tensor]) -> Tensor:  # type: ignore[override]
        weights, edge_ops = self.selector(self.masked_alphas(), self._active_ops, self.training)
        edge_args = (weights, [None] * len(self.edges) if edge_ops is None else edge_ops)  # each edge: op(x, w, ops)
        scales = self.edge_scales()
        if not self._every_edge_kept:
            kept = self.edge_mask.to(self.alphas.dtype)  # (num_edges,)
            scales = kept if scales is None else scales * kept
        if self.checkpoint_activations and torch.is_grad_enabled():
            return checkpoint(Cell.forward, self, inputs, edge_args, scales, use_reentrant=False)
        return super().forward(inputs, edge_args, scales)
