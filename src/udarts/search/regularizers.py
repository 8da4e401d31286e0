"""Regularisers of the architecture parameters, added to the alpha loss.

``BetaDecay`` is the beta-decay regularisation of beta-DARTS (Ye et al., "beta-DARTS: Beta-Decay
Regularization for Differentiable Architecture Search", CVPR 2022, eq. 9): the log-sum-exp of
every edge's architecture logits,

    L_beta = weight * mean over edges e of log(sum_o exp(alpha_{e,o}))

Its gradient with respect to ``alpha_{e,o}`` is ``weight * softmax(alpha_e)_o / num_edges``: it
pulls the strongest ops down hardest, which keeps the logits' scale in check and damps DARTS's
drift towards parameter-free ops (identity) that the paper shows comes with a collapse of the
searched network. The paper ramps the weight up during the search; here it is constant
(``search.beta_decay``), which is the simpler of the two and what the benchmark measures. It is a
part of the search loop (``udarts.search.loop``) with this one loss term.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from udarts.config import Config
from udarts.search.loop import SearchContext, SearchPart


class BetaDecay(SearchPart):
    """``penalty()`` -> ``weight * mean logsumexp`` over the edges of the given alpha tensors."""

    @classmethod
    def from_config(cls, config: Config, model: Any, context: SearchContext) -> "BetaDecay | None":
        weight = config.search.beta_decay
        return cls(model.alpha_parameters(), weight) if weight > 0 else None

    def __init__(self, alphas: Sequence[nn.Parameter], weight: float) -> None:
        if weight < 0:
            raise ValueError(f"search.beta_decay must be >= 0, got {weight}")
        self.alphas = list(alphas)
        self.weight = weight

    def __call__(self) -> Tensor:
        per_edge = torch.cat([torch.logsumexp(alpha, dim=-1) for alpha in self.alphas])  # (num_edges,)
        return self.weight * per_edge.mean()

    def loss_terms(self) -> dict[str, Tensor]:
        return {"beta_decay": self()}
