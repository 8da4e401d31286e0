"""Resource-aware search: a penalty on the expected FLOPs of the architecture, added to the
alpha loss (in the spirit of FBNet, Wu et al., CVPR 2019, and ProxylessNAS, Cai et al., ICLR
2019; the paper names lower complexity as its future work).

Each op's FLOPs are counted once, on the meta device (no memory, no time), for one image at the
configured input size, at the width and resolution of each cell's scale (the cost the op would have
in the derived network, whatever the search mode). The expected FLOPs of an edge are
``sum_o softmax(alpha)_o * flops_o`` (pruned ops weigh 0); the penalty is::

    penalty = weight * sum over cells and edges of expected_flops(edge) / 1e9

so ``weight`` is "loss per GFLOP per image". Its gradient pushes each alpha towards the ops that
cost less than the edge's current expectation. The sum runs over every edge of the supernet
(derivation keeps ``top_k`` per node), which only rescales ``weight``.

A part of the search loop (``udarts.search.loop``; ``search.flops_penalty``): its loss term is the
penalty, and every epoch it logs ``expected_gflops``.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from udarts.config import Config
from udarts.ops import OpSettings, build_op
from udarts.search.loop import Epoch, SearchContext, SearchPart
from udarts.space import DOWNSAMPLING


def op_flops(op_names: Sequence[str], channels: int, height: int, width: int, settings: OpSettings) -> list[int]:
    """FLOPs (multiply-add = 2) of each op on one ``(1, channels, height, width)`` input."""
    from udarts.complexity import count_flops

    flops = []
    for name in op_names:
        with torch.device("meta"):
            op = build_op(name, channels, settings)
        flops.append(count_flops(op, (1, channels, height, width), device="meta"))
    return flops


def cell_flops_tables(model: Any, image_size: Sequence[int]) -> list[Tensor]:
    """Per cell of a ``SuperNet``, the ``(num_ops,)`` FLOPs of each op on one of its edges."""
    height, width = image_size
    if height % DOWNSAMPLING or width % DOWNSAMPLING:
        raise ValueError(f"image size {height}x{width} is not divisible by {DOWNSAMPLING}")
    cache: dict[tuple[int, int], list[int]] = {}
    tables = []
    for slot in model.slots:
        key = (slot.channels, slot.scale)
        if key not in cache:
            cache[key] = op_flops(model.op_names, slot.channels, height >> slot.scale, width >> slot.scale, model.settings)
        tables.append(torch.tensor(cache[key], dtype=torch.float64))
    return tables


class ExpectedFlopsPenalty(SearchPart):
    """``penalty()`` -> ``weight * expected GFLOPs`` of a ``SuperNet``'s edges (a scalar tensor)."""

    @classmethod
    def from_config(cls, config: Config, model: Any, context: SearchContext) -> "ExpectedFlopsPenalty | None":
        weight = config.search.flops_penalty
        return cls(model, config.data.image_size, weight) if weight > 0 else None

    def __init__(self, model: Any, image_size: Sequence[int], weight: float) -> None:
        if weight < 0:
            raise ValueError(f"search.flops_penalty must be >= 0, got {weight}")
        self.model = model
        self.weight = weight
        self.gflops_tables = [table / 1e9 for table in cell_flops_tables(model, image_size)]

    def expected_gflops(self) -> Tensor:
        total = None
        for cell, table in zip(self.model.cells, self.gflops_tables):
            weights = cell.op_weights()  # (num_edges, num_ops)
            term = (weights * table.to(weights.device, weights.dtype)).sum()
            total = term if total is None else total + term
        return total

    def __call__(self) -> Tensor:
        return self.weight * self.expected_gflops()

    def metrics(self) -> dict[str, float]:
        return {"expected_gflops": float(self.expected_gflops())}

    def loss_terms(self) -> dict[str, Tensor]:
        return {"flops": self()}

    def on_epoch_end(self, epoch: Epoch) -> None:
        with torch.no_grad():
            epoch.record.update(self.metrics())
