"""A search cell: the shared DAG ``Cell`` with a ``MixedOp`` on every possible edge and its own
architecture parameters ``alphas`` of shape ``(num_edges, num_ops)``."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from udarts.nets.cell import Cell, all_edges
from udarts.ops import OpSettings
from udarts.search.mixed_op import MixedOp


class SearchCell(Cell):
    def __init__(
        self,
        num_inputs: int,
        channels: int,
        num_nodes: int,
        op_names: Sequence[str],
        settings: OpSettings,
        alpha_init_scale: float = 1e-3,
    ) -> None:
        super().__init__(
            num_inputs,
            channels,
            num_nodes,
            edges=all_edges(num_inputs, num_nodes),
            make_op=lambda index: MixedOp(channels, op_names, settings),
            affine=settings.affine,
        )
        self.op_names = tuple(op_names)
        self.alphas = nn.Parameter(alpha_init_scale * torch.randn(len(self.edges), len(self.op_names)))

    def edge_weights(self) -> Tensor:
        return F.softmax(self.alphas, dim=-1)  # (num_edges, num_ops)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:  # type: ignore[override]
        return super().forward(inputs, edge_weights=self.edge_weights())
