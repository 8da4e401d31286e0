"""The search loop's parts that a config switches on, by name: each entry builds its part from the
config, the supernet and the ``SearchContext``, or returns ``None`` when the config leaves it off.

A new part (a penalty, a regulariser, a schedule) is a ``SearchPart`` subclass in its own module
with a ``from_config(config, model, context)`` builder, one entry here, and a test
(docs/architecture.md, "The search loop and its parts"). The order of the entries is the order
in which the loop calls the parts, and the order of the loss terms' sum: pruning comes before the
penalties so that what they log at the end of an epoch is priced with the pruned masks.
"""

from __future__ import annotations

from typing import Any, Callable

from udarts.config import Config
from udarts.search.latency import LatencyTargetPenalty
from udarts.search.loop import SearchContext, SearchPart
from udarts.search.pruning import Pruning
from udarts.search.regularizers import BetaDecay
from udarts.search.resource import ExpectedFlopsPenalty
from udarts.search.sampling import Temperature

PartBuilder = Callable[[Config, Any, SearchContext], "SearchPart | None"]

PARTS: dict[str, PartBuilder] = {
    "temperature": Temperature.from_config,  # search.mode gdas / pc_gdas: search.tau_*
    "pruning": Pruning.from_config,  # search.prune_start_epoch, search.prune_*
    "flops": ExpectedFlopsPenalty.from_config,  # search.flops_penalty
    "beta_decay": BetaDecay.from_config,  # search.beta_decay
    "latency": LatencyTargetPenalty.from_config,  # search.latency_target_ms, search.latency_table, search.latency_weight
}


def build_parts(config: Config, model: Any, context: SearchContext) -> list[SearchPart]:
    """The parts the config switches on, in the order of ``PARTS``."""
    return [part for build in PARTS.values() if (part := build(config, model, context)) is not None]
