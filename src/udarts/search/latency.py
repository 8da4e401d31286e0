"""Latency-aware search: the expected latency of the architecture, from a device's latency table,
and a penalty on exceeding a target, added to the alpha loss.

Expected latency (FBNet, Wu et al., CVPR 2019, eq. 5; ProxylessNAS, Cai et al., ICLR 2019,
eq. 5), written for what derivation keeps (``udarts.genotype.derive``): every node keeps
``k_j = min(top_k, edges into j)`` of its edges, each with its strongest op other than ``none``::

    E[edge e]   = sum_{o != none} p_eo * ms[cell][o],    p_eo = softmax(alpha_e) renormalised without none
                                                         (pruned ops weigh nothing)
    E[node j]   = k_j * sum_{e into j} pi_e * E[edge e], pi_e = PC-DARTS's softmax(beta) over j's edges,
                                                         or 1 / (edges into j) without betas
    E[latency]  = constant parts (stem, resampling, head, projections, node sums) + sum over cells and nodes of E[node j]

then the table's calibration (``scale * E + offset``). The penalty is MnasNet's reward (Tan et al.,
CVPR 2019, eq. 2, ``ACC * (LAT / T) ** w`` with ``w = 0`` under the target and ``w = -weight``
above it) taken as a loss in log form::

    penalty = weight * max(0, log(E[latency] / target_ms))

so it pulls only while the architecture is predicted slower than the target, and by the same
force for the same relative excess whatever the device's speed.

``LatencyTargetPenalty`` is a part of the search loop (``udarts.search.loop``;
``search.latency_target_ms``): its loss term is the penalty; every epoch it logs
``expected_latency_ms`` and ``latency_target_ms``; it keeps its table in the run folder
(``latency-table.json``, which a resumed search prices with again) and prints, at the end, the
predicted latency of the derived genotype.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from udarts.config import Config, ConfigError
from udarts.engine.layout import LATENCY_TABLE_FILE
from udarts.latency.table import LatencyShape, LatencyTable, LatencyTableError
from udarts.ops import NONE_OP
from udarts.search.loop import Epoch, SearchContext, SearchPart
from udarts.space import cell_slots


class ExpectedLatency:
    """``expected_ms()`` -> the expected latency in ms of a ``SuperNet``'s derived network (a
    differentiable scalar tensor), from ``table``."""

    def __init__(self, model: Any, table: LatencyTable, top_k: int) -> None:
        check_table_fits(table, model)
        self.model = model
        self.table = table
        self.op_tables = []  # per cell: (num_ops,) ms, none at 0
        self.node_edges = []  # per cell: per node, the indices of its incoming edges
        self.keep = []  # per cell: per node, how many edges derivation keeps
        edges_per_cell = []
        for slot, cell in zip(model.slots, model.cells):
            self.op_tables.append(torch.tensor([table.op_ms(slot.name, op) for op in model.op_names], dtype=torch.float64))
            nodes = [[index for index, (target, _) in enumerate(cell.edges) if target == node] for node in range(cell.num_nodes)]
            self.node_edges.append(nodes)
            self.keep.append([min(top_k, len(edges)) for edges in nodes])
            edges_per_cell.append(sum(self.keep[-1]))
        self.constant_ms = table.constant_ms(edges_per_cell)
        self.candidate = torch.tensor([name != NONE_OP for name in model.op_names])  # derivation never keeps none

    def expected_ms(self) -> Tensor:
        total: Tensor | None = None
        for cell, op_ms, nodes, keep in zip(self.model.cells, self.op_tables, self.node_edges, self.keep):
            weights = cell.op_weights()  # (num_edges, num_ops), pruned ops at 0
            weights = weights * self.candidate.to(weights.device)
            weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)
            edge_ms = weights @ op_ms.to(weights.device, weights.dtype)  # (num_edges,)
            scales = cell.edge_scales()  # (num_edges,) softmax per node, or None
            for node, edges in enumerate(nodes):
                share = scales[edges] if scales is not None else edge_ms.new_full((len(edges),), 1.0 / len(edges))
                term = keep[node] * (share * edge_ms[edges]).sum()
                total = term if total is None else total + term
        assert total is not None
        return self.table.calibrate(total + self.constant_ms)


class LatencyTargetPenalty(SearchPart):
    """``penalty()`` -> ``weight * max(0, log(expected_ms / target_ms))`` (see the module docstring)."""

    @classmethod
    def from_config(cls, config: Config, model: Any, context: SearchContext) -> "LatencyTargetPenalty | None":
        search = config.search
        if search.latency_target_ms is None:
            return None
        table = table_for_search(config, model, context.resume)
        try:
            return cls(ExpectedLatency(model, table, search.top_k), search.latency_target_ms, search.latency_weight)
        except LatencyTableError as error:
            where = search.latency_table or "the latency table timed on this machine"
            raise ConfigError(f"search.latency_table ({where}): {error}") from None

    def __init__(self, expected: ExpectedLatency, target_ms: float, weight: float) -> None:
        if target_ms <= 0:
            raise ValueError(f"search.latency_target_ms must be > 0, got {target_ms}")
        if weight < 0:
            raise ValueError(f"search.latency_weight must be >= 0, got {weight}")
        cheapest = expected.table.cheapest_ms(max(max(keep) for keep in expected.keep))
        if target_ms < cheapest:
            raise LatencyTableError(
                f"search.latency_target_ms: {target_ms:g} ms is below the cheapest genotype of this space on the table's "
                f"device ({cheapest:.2f} ms at {expected.table.shape.describe()}); raise the target or lower the width")
        self.expected = expected
        self.target_ms = target_ms
        self.weight = weight

    def expected_ms(self) -> Tensor:
        return self.expected.expected_ms()

    def __call__(self) -> Tensor:
        return self.weight * torch.relu(torch.log(self.expected_ms() / self.target_ms))

    def metrics(self) -> dict[str, float]:
        return {"expected_latency_ms": float(self.expected_ms()), "latency_target_ms": self.target_ms}

    def loss_terms(self) -> dict[str, Tensor]:
        return {"latency": self()}

    def on_search_start(self, run_dir: Path | None) -> None:
        if run_dir is not None:
            self.expected.table.save(run_dir / LATENCY_TABLE_FILE)

    def on_epoch_end(self, epoch: Epoch) -> None:
        with torch.no_grad():
            epoch.record.update(self.metrics())

    def on_search_end(self, genotype: Any) -> None:
        table = self.expected.table
        print(f"predicted latency of the derived genotype: {table.predict_ms(genotype):.2f} ms (target "
              f"{self.target_ms:g} ms; {table.shape.describe()}, {table.identity['runtime']})")


def table_for_search(config: Config, model: Any, run_dir: str | Path | None = None) -> LatencyTable:
    """The latency table a search with ``search.latency_target_ms`` prices its alphas with: the
    one a resumed run (``run_dir``) recorded, else ``search.latency_table`` if given, else one
    timed now on this machine (eager PyTorch, one thread, batch 1) at the search's image size and width."""
    from udarts.latency.measure import measure_table

    try:
        if run_dir is not None and (Path(run_dir) / LATENCY_TABLE_FILE).is_file():
            return LatencyTable.load(Path(run_dir) / LATENCY_TABLE_FILE)
        if config.search.latency_table is not None:
            return LatencyTable.load(config.search.latency_table)
        shape = LatencyShape.of_config(config, model.num_classes)
    except LatencyTableError as error:
        raise ConfigError(f"search.latency_table: {error}") from None
    print(f"timing a latency table on this machine ({shape.describe()}, eager, 1 thread) ...")
    return measure_table(shape, model.op_names, "eager", threads=1)


def check_table_fits(table: LatencyTable, model: Any) -> None:
    """Refuse a table that cannot price this supernet's derived networks: another op set, node
    count or cell layout. The table's image size and width may differ from the supernet's: it
    describes the network to deploy, which a search may explore at a cheaper size."""
    missing = [name for name in model.op_names if name != NONE_OP and name not in table.ops]
    if missing:
        raise LatencyTableError(f"the latency table has no timings for op(s) {missing} (it has {list(table.ops)}); "
                                "measure one with the search's model.ops")
    if table.shape.num_nodes != model.num_nodes:
        raise LatencyTableError(f"the latency table is for cells of {table.shape.num_nodes} nodes, the supernet has "
                                f"{model.num_nodes} (model.num_nodes)")
    settings = (model.settings.expand_ratio, model.settings.se_ratio)
    if settings != (table.shape.expand_ratio, table.shape.se_ratio):
        raise LatencyTableError(f"the latency table's MBConv settings (expand_ratio, se_ratio) = "
                                f"{(table.shape.expand_ratio, table.shape.se_ratio)} differ from the supernet's {settings}")
    if [slot.name for slot in model.slots] != [slot.name for slot in cell_slots(1)]:
        raise LatencyTableError("the supernet's cells differ from the U's eight cell slots")
