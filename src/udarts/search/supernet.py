"""The supernet: the U-shaped wiring with a search cell in each of the eight positions, each cell
holding its own alphas (the paper: "each cell has its own architecture parameters")."""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from udarts.nets.ushape import CellSlot, UShapedNet
from udarts.ops import NONE_OP, PAPER_OPS, OpSettings, check_op_names
from udarts.search.cell import SearchCell


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
    ) -> None:
        op_names = tuple(op_names)
        check_op_names(op_names)

        def make_cell(slot: CellSlot) -> nn.Module:
            return SearchCell(slot.num_inputs, slot.channels, num_nodes, op_names, settings)

        super().__init__(in_channels, num_classes, width, make_cell, affine=settings.affine)
        self.op_names = op_names
        self.num_nodes = num_nodes
        self.settings = settings

    def arch_parameters(self) -> list[nn.Parameter]:
        """The alphas, one ``(num_edges, num_ops)`` parameter per cell, in cell order C1..C8."""
        return [cell.alphas for cell in self.cells]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter that is not an alpha."""
        alpha_ids = {id(alpha) for alpha in self.arch_parameters()}
        return [parameter for parameter in self.parameters() if id(parameter) not in alpha_ids]

    def alphas_softmax(self) -> list[Tensor]:
        return [cell.edge_weights().detach() for cell in self.cells]
