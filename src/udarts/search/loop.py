"""What the search loop (``udarts.engine.searcher.search``) hands its parts, and what a part may do.

One epoch of the loop: every part's ``on_epoch_start``; then for each pair of batches an alpha
step and a weight step (``DartsStrategy.step``, whose alpha loss adds every part's
``loss_terms()``), each followed by every part's ``on_step``; then every part's ``on_epoch_end``.
Parts are called in the order of their list, which ``udarts.builders.search_loop_parts`` fixes:
the epoch's metrics first (after their reduction over the processes under ``torchrun``), then the
config's parts in the order of ``udarts.search.parts.PARTS`` (temperature, pruning, penalties),
the divergence guard, the progress bars, and last the run folder's log and checkpoint, which
commits the epoch (nothing of an epoch is written before every part has ended it).

A part that needs nothing of a hook leaves it out (``SearchPart``'s hooks do nothing). What a
part logs for an epoch it adds to ``epoch.record`` (the line of ``metrics.jsonl``) in
``on_epoch_end``; records for another log of the run folder go to ``epoch.lines[file name]``.
What it must carry over a resume it returns from ``state_dict()`` (merged into the checkpoint at
its top level, so keys must not clash) and takes back in ``load_state_dict(checkpoint)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import Tensor

Batch = tuple[Tensor, Tensor]  # images, masks


@dataclass
class Epoch:
    """One epoch of the search, as its parts see it."""

    index: int  # 0-based
    epochs: int  # of the whole search
    update_alphas: bool  # False during the warm-up (weights only)
    seed: int  # the epoch's seed (``udarts.engine.trainer.epoch_seed``): a resumed run replays it
    steps: int = 0  # steps done so far in this epoch
    record: dict[str, Any] = field(default_factory=dict)  # this epoch's line of metrics.jsonl
    lines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # other logs: file name -> records
    is_best: bool = False  # the best epoch so far (its checkpoint becomes best.pt)

    @property
    def number(self) -> int:
        """Epochs done at the end of this one (1-based), as logs and checkpoints count them."""
        return self.index + 1


@dataclass(frozen=True)
class SearchContext:
    """What a part's builder may need beyond the config and the supernet."""

    steps_per_epoch: int
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    distributed: Any = None  # ``udarts.engine.distributed.Distributed`` under torchrun
    resume: Path | None = None  # the run folder a resumed search continues


class SearchPart:
    """The hooks of a part of the search loop; each does nothing unless a part overrides it."""

    def on_search_start(self, run_dir: Path | None) -> None:
        """Once, before the first epoch; ``run_dir`` on the process that writes the run, else None."""

    def on_epoch_start(self, epoch: Epoch) -> None:
        pass

    def loss_terms(self) -> dict[str, Tensor]:
        """Scalar tensors added to the alpha loss (a penalty of the architecture), by name."""
        return {}

    def on_step(self, epoch: Epoch, batch: tuple[Batch, Batch], out: dict[str, Tensor]) -> None:
        """After each step on ``batch`` (the weight batch, the alpha batch: images, masks); ``out``
        is what ``DartsStrategy.step`` returned (detached losses and logits)."""

    def on_epoch_end(self, epoch: Epoch) -> None:
        pass

    def on_search_end(self, genotype: Any) -> None:
        """Once, after the last epoch, with the final genotype, on the process that writes the run."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """``state``: the whole checkpoint a resumed search continues from."""


def alpha_penalty(parts: Iterable[SearchPart]) -> Callable[[], Tensor] | None:
    """The alpha loss's penalty for ``DartsStrategy``: the sum of every part's loss terms, in the
    parts' order (``None`` when no part has any)."""
    adding = [part for part in parts if type(part).loss_terms is not SearchPart.loss_terms]
    if not adding:
        return None

    def penalty() -> Tensor:
        terms = [term for part in adding for term in part.loss_terms().values()]
        return terms[0] if len(terms) == 1 else sum(terms)

    return penalty


def collect_state(holders: Iterable[Any]) -> dict[str, Any]:
    """The merged ``state_dict()`` of the strategy and the parts, for the checkpoint."""
    state: dict[str, Any] = {}
    for holder in holders:
        own = holder.state_dict()
        clash = sorted(set(own) & set(state))
        if clash:
            raise ValueError(f"{type(holder).__name__} would overwrite checkpoint key(s) {clash} of another part")
        state.update(own)
    return state
