"""The supernet: the U-shaped wiring with a search cell in each of the eight positions, each cell
holding its own alphas (the paper: "each cell has its own architecture parameters").

``mode`` picks how an edge is relaxed during the search:

- ``darts`` (default): every op of every edge, weighted by ``softmax(alpha)`` (Liu et al., ICLR 2019);
- ``gdas``: one op per edge per step, sampled with the Gumbel-max trick, straight-through
  gradient to alpha (Dong & Yang, CVPR 2019; ``udarts.search.sampling``);
- ``pc_darts``: the DARTS mixture over ``1/K`` of the channels, plus edge normalisation
  ``betas`` (Xu et al., ICLR 2020; ``udarts.search.partial_channel``);
- ``pc_gdas``: both savings at once: one sampled op per edge, on ``1/K`` of the channels, with
  the edge-normalisation betas (the cheapest step).

A mode is a composition of the search cell's parts (``udarts.search.cell``), fixed when the
cells are built: the mixed op (``MixedOp``, or ``PartialChannelMixedOp`` in the pc modes), the
selector (``softmax_selector``, or one ``GumbelSampler`` shared by every cell in the sampled
modes) and PC-DARTS's edge normalisation (pc modes).

``prunable`` keeps each cell's op mask (``udarts.search.pruning``) in the state dict, and
``checkpoint_cells`` recomputes every cell's activations in the backward pass; ``checkpoint_edges``
recomputes every mixed op's inner activations (keeping only edge inputs and outputs).
"""

from __future__ import annotations

import functools
from typing import Sequence

from torch import Tensor, nn

from udarts.nets.ushape import UShapedNet
from udarts.ops import NONE_OP, PAPER_OPS, OpSettings, check_op_names
from udarts.search.cell import SearchCell, softmax_selector
from udarts.search.mixed_op import MixedOp
from udarts.search.partial_channel import PartialChannelMixedOp
from udarts.search.sampling import GumbelSampler
from udarts.space import CellSlot

SEARCH_MODES = ("darts", "gdas", "pc_darts", "pc_gdas")
SAMPLED_MODES = ("gdas", "pc_gdas")  # one op per edge per step, from a Gumbel sampler
PARTIAL_CHANNEL_MODES = ("pc_darts", "pc_gdas")  # 1/K of the channels through the ops, edge betas


def search_op_names(ops: Sequence[str] = PAPER_OPS, include_none: bool = True) -> tuple[str, ...]:
    """The op list searched on every edge: ``ops``, with DARTS's ``none`` first when asked."""
    names = tuple(name for name in ops if name != NONE_OP)
    return ((NONE_OP,) + names) if include_none else names


class SuperNet(UShapedNet):
    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        width: int,
        num_nodes: int = 4,
        op_names: Sequence[str] = search_op_names(),
        settings: OpSettings = OpSettings(affine=False),
        *,
        mode: str = "darts",
        partial_channel_k: int = 4,
        prunable: bool = False,
        checkpoint_cells: bool = False,
        checkpoint_edges: bool = False,
    ) -> None:
        op_names = tuple(op_names)
        check_op_names(op_names)
        if mode not in SEARCH_MODES:
            raise ValueError(f"search.mode must be one of {SEARCH_MODES}, got {mode!r}")
        partial = mode in PARTIAL_CHANNEL_MODES
        if partial and partial_channel_k != 1:
            mixed_op = functools.partial(PartialChannelMixedOp, k=partial_channel_k, checkpoint_activations=checkpoint_edges)
        else:  # K = 1: every channel goes through the ops, the plain mixed op
            mixed_op = functools.partial(MixedOp, checkpoint_activations=checkpoint_edges)
        sampler = GumbelSampler() if mode in SAMPLED_MODES else None

        def make_cell(slot: CellSlot) -> nn.Module:
            return SearchCell(
                slot.num_inputs, slot.channels, num_nodes, op_names, settings,
                mixed_op=mixed_op, selector=softmax_selector if sampler is None else sampler,
                edge_normalization=partial, persistent_op_mask=prunable, checkpoint_activations=checkpoint_cells,
            )

        super().__init__(in_channels, num_classes, width, make_cell, affine=settings.affine)
        self.op_names = op_names
        self.num_nodes = num_nodes
        self.settings = settings
        self.mode = mode
        self.sampler = sampler  # the selector every cell shares in the sampled modes, else None

    def alpha_parameters(self) -> list[nn.Parameter]:
        """The alphas, one ``(num_edges, num_ops)`` parameter per cell, in cell order C1..C8."""
        return [cell.alphas for cell in self.cells]

    def beta_parameters(self) -> list[nn.Parameter]:
        """PC-DARTS's edge-normalisation betas, one ``(num_edges,)`` per cell (empty in other modes)."""
        return [cell.betas for cell in self.cells if cell.betas is not None]

    def arch_parameters(self) -> list[nn.Parameter]:
        """Every architecture parameter: the alphas (C1..C8), then the betas if any."""
        return self.alpha_parameters() + self.beta_parameters()

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter that is not an architecture parameter."""
        arch_ids = {id(parameter) for parameter in self.arch_parameters()}
        return [parameter for parameter in self.parameters() if id(parameter) not in arch_ids]

    def alphas_softmax(self) -> list[Tensor]:
        """``softmax(alpha)`` per cell, pruned ops at 0."""
        return [cell.op_weights().detach() for cell in self.cells]

    def edge_normalization_weights(self) -> list[Tensor] | None:
        """Per cell, ``softmax(betas)`` over each node's incoming edges; ``None`` without betas."""
        if not self.beta_parameters():
            return None
        return [cell.edge_scales().detach() for cell in self.cells]

    def op_masks(self) -> list[Tensor]:
        return [cell.op_mask.detach().clone() for cell in self.cells]

    def set_temperature(self, tau: float) -> None:
        if self.sampler is not None:
            self.sampler.tau = tau

    def reseed_sampler(self, seed: int) -> None:
        if self.sampler is not None:
            self.sampler.reseed(seed)
