"""Progressive op pruning: the search space shrinks while the alphas settle, so later epochs
get cheaper (in the spirit of P-DARTS's search-space approximation, Chen et al., ICCV 2019, and
of the paper's own future work: "combine NAS with pruning").

The rule (``PruningSchedule``), applied at the end of an epoch:

- it runs when ``epochs_done >= start_epoch`` and ``(epochs_done - start_epoch) % every == 0``
  (``start_epoch`` must come after the warm-up: the alphas need at least one epoch of training);
- on every edge of every cell, the active ops are ranked by their softmax weight over the active
  ops (``softmax(alpha)`` with dropped ops masked out; ties: the later op in the op list goes
  first), and the ``ops_per_step`` weakest are dropped;
- ``none`` is never dropped: it is how an edge says it does not matter, which derivation needs to
  rank the edges of a node against each other;
- an edge always keeps at least ``min_ops`` ops (at least 1) and at least one op besides
  ``none`` (the one derivation will pick), so an edge's last op is never dropped.

A dropped op's alpha leaves the softmax (weight exactly 0) and the op is no longer computed; its
weights stay in the model (so checkpoints keep their shape) but get no gradient. The masks are
part of the supernet's state dict, so a checkpoint and a resumed run keep them.

``Pruning`` is the rule as a part of the search loop (``udarts.search.loop``): it prunes at the
end of the epochs the schedule names, logs ``active_ops`` and ``dropped_ops`` every epoch, and
appends what was dropped to the run folder's ``pruning.jsonl`` (one line per changed edge).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from torch import Tensor

from udarts.config import Config
from udarts.engine.layout import PRUNING_LOG
from udarts.ops import NONE_OP
from udarts.search.loop import Epoch, SearchContext, SearchPart
from udarts.space import Edge


@dataclass(frozen=True)
class PruningSchedule:
    start_epoch: int
    every: int = 10
    ops_per_step: int = 1
    min_ops: int = 2

    def __post_init__(self) -> None:
        if self.start_epoch < 1:
            raise ValueError(f"search.prune_start_epoch must be >= 1, got {self.start_epoch}")
        if self.every < 1:
            raise ValueError(f"search.prune_every must be >= 1, got {self.every}")
        if self.ops_per_step < 1:
            raise ValueError(f"search.prune_ops_per_step must be >= 1, got {self.ops_per_step}")
        if self.min_ops < 1:
            raise ValueError(f"search.prune_min_ops must be >= 1, got {self.min_ops}")

    def is_due(self, epochs_done: int) -> bool:
        return epochs_done >= self.start_epoch and (epochs_done - self.start_epoch) % self.every == 0


def ops_to_drop(weights: Tensor, active: Sequence[int], op_names: Sequence[str], count: int, min_ops: int) -> list[int]:
    """The op indices to drop from one edge (see the module's rule). ``weights``: ``(num_ops,)``."""
    remaining = list(active)
    ranked = sorted(remaining, key=lambda index: (float(weights[index]), -index))  # weakest first
    dropped: list[int] = []
    for index in ranked:
        if len(dropped) == count or len(remaining) <= max(1, min_ops):
            break
        if op_names[index] == NONE_OP:
            continue
        if sum(op_names[other] != NONE_OP for other in remaining) <= 1:
            break  # the last op besides none stays
        remaining.remove(index)
        dropped.append(index)
    return sorted(dropped)


def prune(model: Any, schedule: PruningSchedule) -> list[dict[str, Any]]:
    """Drop ops on every edge of ``model`` (a ``SuperNet``); returns one record per changed edge:
    ``{"cell", "edge": [node, source], "dropped": [names], "weights": {name: w}, "kept": [names]}``."""
    records = []
    for slot, cell in zip(model.slots, model.cells):
        weights = cell.op_weights().detach().float().cpu()
        mask = cell.op_mask.detach().cpu().clone()
        for edge_index, (edge, active) in enumerate(zip(cell.edges, cell.active_ops())):
            dropped = ops_to_drop(weights[edge_index], active, model.op_names, schedule.ops_per_step, schedule.min_ops)
            if not dropped:
                continue
            mask[edge_index, dropped] = False
            records.append(_record(slot.name, edge, model.op_names, weights[edge_index], active, dropped))
        cell.set_op_mask(mask)
    return records


def _record(cell_name: str, edge: Edge, op_names: Sequence[str], weights: Tensor, active: list[int], dropped: list[int]) -> dict[str, Any]:
    node, source = edge
    return {
        "cell": cell_name,
        "edge": [node, source],
        "dropped": [op_names[index] for index in dropped],
        "weights": {op_names[index]: round(float(weights[index]), 6) for index in active},
        "kept": [op_names[index] for index in active if index not in dropped],
    }


def count_active_ops(model: Any) -> int:
    return int(sum(int(cell.op_mask.sum()) for cell in model.cells))



class Pruning(SearchPart):
    @classmethod
    def from_config(cls, config: Config, model: Any, context: SearchContext) -> "Pruning | None":
        search = config.search
        if search.prune_start_epoch is None:
            return None
        return cls(model, PruningSchedule(search.prune_start_epoch, search.prune_every, search.prune_ops_per_step,
                                          search.prune_min_ops))

    def __init__(self, model: Any, schedule: PruningSchedule) -> None:
        self.model = model
        self.schedule = schedule

    def on_epoch_end(self, epoch: Epoch) -> None:
        pruned = prune(self.model, self.schedule) if self.schedule.is_due(epoch.number) else []
        epoch.record["active_ops"] = count_active_ops(self.model)
        epoch.record["dropped_ops"] = sum(len(item["dropped"]) for item in pruned)
        if pruned:
            epoch.lines[PRUNING_LOG] = [{"epoch": epoch.number, **record} for record in pruned]
