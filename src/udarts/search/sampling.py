"""Sampled search: GDAS (Dong & Yang, "Searching for A Robust Neural Architecture in Four GPU
Hours", CVPR 2019, section 3.2).

Instead of DARTS's mixture of every op, each edge computes ONE op per step, drawn from the
categorical distribution ``softmax(alpha)`` with the Gumbel-max trick: ``k = argmax(alpha + g)``
with ``g = -log(-log(u))``, ``u ~ U(0, 1)``. The forward pass uses the hard one-hot ``h`` of ``k``;
the backward pass uses the gradient of the Gumbel-softmax ``s = softmax((alpha + g) / tau)``
(straight-through: ``h = one_hot(k) - s.detach() + s``), so alpha still gets a gradient while a
step costs about one sampled network. Only ``h[k] * op_k(x)`` is computed, so the gradient that
reaches alpha is ``dL/dh_k * ds_k/dalpha`` (the other ``dL/dh_i`` would need the ops that were not
run). The temperature ``tau`` falls during the search (GDAS: linearly from 10 to 0.1).

Samples come from a ``torch.Generator`` of the sampler's own, reseeded every epoch from the run's
seed: a resumed run draws the same architectures, and under ``torchrun`` every process draws the
same ones (so the processes train the same sampled network on their slices of the batch). The
search loop's ``Temperature`` part (``udarts.search.loop``) sets the temperature and the seed at
the start of every epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from udarts.config import Config
from udarts.search.loop import Epoch, SearchContext, SearchPart

# Offset of the sampler's seed from the epoch's seed (which seeds torch's global generator).
SAMPLER_SEED_OFFSET = 104_729


def linear_tau(start: float, end: float, progress: float) -> float:
    return start - (start - end) * progress


def exponential_tau(start: float, end: float, progress: float) -> float:
    return start * math.exp(progress * math.log(end / start))


# name -> tau(start, end, progress) for progress in [0, 1)
TAU_SCHEDULES: dict[str, Callable[[float, float, float], float]] = {"linear": linear_tau, "exponential": exponential_tau}


@dataclass(frozen=True)
class TemperatureSchedule:
    """``tau`` at epoch ``e`` of ``E`` goes from ``start`` (first epoch) to ``end`` (last epoch).

    ``linear`` (GDAS): ``start - (start - end) * e / (E - 1)``; ``exponential``: geometric,
    ``start * (end / start) ** (e / (E - 1))``.
    """

    start: float = 10.0
    end: float = 0.1
    kind: str = "linear"

    def __post_init__(self) -> None:
        if not (self.start > 0 and self.end > 0):
            raise ValueError(f"search.tau_max and search.tau_min must be > 0, got {self.start} and {self.end}")
        if self.kind not in TAU_SCHEDULES:
            raise ValueError(f"search.tau_schedule must be one of {tuple(TAU_SCHEDULES)}, got {self.kind!r}")

    def at(self, epoch: int, epochs: int) -> float:
        progress = min(1.0, epoch / (epochs - 1)) if epochs > 1 else 1.0
        if progress >= 1.0:
            return self.end
        return TAU_SCHEDULES[self.kind](self.start, self.end, progress)


class Temperature(SearchPart):
    """The sampled modes' temperature as a part of the search loop: at the start of every epoch
    ``tau`` from the schedule and the sampler reseeded from the epoch's seed (so a resumed run
    samples what an uninterrupted one would); ``tau`` is logged and kept in the checkpoint."""

    @classmethod
    def from_config(cls, config: Config, model: Any, context: SearchContext) -> "Temperature | None":
        search = config.search
        schedule = TemperatureSchedule(search.tau_max, search.tau_min, search.tau_schedule)
        return cls(model, schedule) if model.sampler is not None else None

    def __init__(self, model: Any, schedule: TemperatureSchedule) -> None:
        self.model = model
        self.schedule = schedule
        self.tau: float | None = None

    def on_epoch_start(self, epoch: Epoch) -> None:
        self.tau = self.schedule.at(epoch.index, epoch.epochs)
        self.model.set_temperature(self.tau)
        self.model.reseed_sampler(epoch.seed + SAMPLER_SEED_OFFSET)

    def on_epoch_end(self, epoch: Epoch) -> None:
        epoch.record["tau"] = self.tau

    def state_dict(self) -> dict[str, Any]:
        return {"tau": self.tau}


def gumbel_noise(shape: torch.Size, generator: torch.Generator | None = None) -> Tensor:
    """Standard Gumbel noise ``-log(-log(u))`` drawn on the CPU (float32)."""
    uniform = torch.rand(shape, generator=generator).clamp_(min=torch.finfo(torch.float32).tiny)
    return -torch.log(-torch.log(uniform))


def straight_through_sample(logits: Tensor, noise: Tensor, tau: float) -> tuple[Tensor, list[int]]:
    """Rows of ``logits`` ``(num_edges, num_ops)`` plus ``noise`` -> (hard one-hot weights with the
    Gumbel-softmax gradient, the chosen op index of each row). ``-inf`` logits are never chosen."""
    soft = F.softmax((logits + noise.to(logits.device, logits.dtype)) / tau, dim=-1)
    index = soft.detach().argmax(dim=-1)
    hard = F.one_hot(index, logits.shape[-1]).to(soft.dtype)
    return hard - soft.detach() + soft, index.tolist()


class GumbelSampler:
    """Draws one op per edge per forward pass (training), or takes the argmax (eval).

    A search cell's selector (``udarts.search.cell``): ``SuperNet`` builds one for all its cells
    in the sampled modes, and sets its temperature and seed (``set_temperature``,
    ``reseed_sampler``). On the meta device (counting FLOPs) it selects DARTS's full mixture.
    """

    def __init__(self, tau: float = 10.0, seed: int = 0) -> None:
        self.tau = tau
        self.generator = torch.Generator().manual_seed(seed)

    def reseed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def __call__(self, logits: Tensor, active_ops: list[list[int]] | None, training: bool) -> tuple[Tensor, list[list[int]] | None]:
        """(weights ``(num_edges, num_ops)``, the op indices each edge computes); pruned ops
        (``-inf`` logits) are never sampled, so ``active_ops`` only matters on the meta device."""
        if logits.is_meta:
            return F.softmax(logits, dim=-1), active_ops
        return self.sample(logits, training)

    def sample(self, logits: Tensor, training: bool) -> tuple[Tensor, list[list[int]]]:
        """(weights ``(num_edges, num_ops)``, ``[[op index]]`` per edge)."""
        if training:
            weights, index = straight_through_sample(logits, gumbel_noise(logits.shape, self.generator), self.tau)
        else:  # the supernet's most likely architecture
            index_tensor = logits.detach().argmax(dim=-1)
            weights, index = F.one_hot(index_tensor, logits.shape[-1]).to(logits.dtype), index_tensor.tolist()
        return weights, [[op] for op in index]
