"""SEARCH-Net: the discrete network of a genotype, on the same U wiring and cell code as the
supernet (``udarts.nets.ushape``, ``udarts.nets.cell``), at any width and for any class count."""

from __future__ import annotations

from torch import nn

from udarts.genotype import Genotype
from udarts.nets.cell import Cell
from udarts.nets.ushape import CellSlot, UShapedNet
from udarts.ops import build_op


class SearchNet(UShapedNet):
    def __init__(self, genotype: Genotype, in_channels: int, num_classes: int, width: int) -> None:
        settings = genotype.op_settings(affine=True)

        def make_cell(slot: CellSlot) -> nn.Module:
            cell_genotype = genotype.cells[slot.index]
            ops = cell_genotype.ops()
            return Cell(
                slot.num_inputs,
                slot.channels,
                genotype.num_nodes,
                edges=cell_genotype.edges(),
                make_op=lambda index: build_op(ops[index], slot.channels, settings),
                affine=True,
            )

        super().__init__(in_channels, num_classes, width, make_cell, affine=True)
        self.genotype = genotype
