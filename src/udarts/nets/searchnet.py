"""SEARCH-Net: the discrete network of a searched architecture, on the same U wiring and cell code
as the supernet (``udarts.nets.ushape``, ``udarts.nets.cell``), at any width and for any class
count. It takes plain cell specs (``udarts.space.CellSpec``: per cell, per node, its ``(op_name,
source)`` edges); ``udarts.models.build_searchnet`` builds one from a genotype."""

from __future__ import annotations

from typing import Sequence

from torch import nn

from udarts.nets.cell import Cell
from udarts.nets.ushape import UShapedNet
from udarts.ops import OpSettings, build_op
from udarts.space import NUM_CELLS, CellSlot, CellSpec, spec_edges, spec_ops


class SearchNet(UShapedNet):
    """``cells``: the eight cell specs (C1..C8); ``settings``: the ops' settings (affine BN)."""

    def __init__(
        self, cells: Sequence[CellSpec], in_channels: int, num_classes: int, width: int, settings: OpSettings = OpSettings(),
    ) -> None:
        if len(cells) != NUM_CELLS:
            raise ValueError(f"SEARCH-Net needs {NUM_CELLS} cell specs (C1..C8), got {len(cells)}")

        def make_cell(slot: CellSlot) -> nn.Module:
            spec = cells[slot.index]
            ops = spec_ops(spec)
            return Cell(
                slot.num_inputs,
                slot.channels,
                len(spec),
                edges=spec_edges(spec),
                make_op=lambda index: build_op(ops[index], slot.channels, settings),
                affine=settings.affine,
            )

        super().__init__(in_channels, num_classes, width, make_cell, affine=settings.affine)
