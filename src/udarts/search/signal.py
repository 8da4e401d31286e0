"""Is there a signal for the alphas to follow? The signal-to-noise ratio of the alpha gradient.

A search moves each alpha by Adam steps of about ``lr * mean / sqrt(mean^2 + std^2)`` of its
gradient over batches, so over a search whose steps add up to a travel ``T = lr x steps``
(``search.alpha_travel``) an alpha drifts by about ``T x SNR`` in its signal's direction, with
``SNR = |mean| / std`` of its gradient over batches, while the noise alone moves it like a random
walk of about ``T / sqrt(steps)``. A genotype is decided by the data only where ``T x SNR`` is
larger than that random walk and than the logit gap that makes an op win clearly (about 1);
otherwise the alphas end near uniform whatever the search's length, and the derived ops are a
random draw. ``alpha_gradient_snr`` measures the SNR at a supernet's current weights; with ``B``
batches even a signal-free gradient shows a median SNR of about ``0.674 / sqrt(B)``
(``AlphaSignal.noise_floor``), so only values well above it measure a signal.

Coupled weight decay on the alphas (``search.alpha_weight_decay``, added to the gradient before
Adam normalises it) stops a logit where ``decay x alpha`` cancels the gradient's mean, at about
``|mean gradient| / decay`` (``AlphaSignal.decay_ceiling``), whatever the travel: with DARTS's
1e-3 and the alpha gradients measured with Dice and Dice+CE losses (2e-5 in the demo, 2e-4 on
CamVid) that is 0.02-0.18 logits, so no cell can settle. That is why udarts's default is no decay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class AlphaSignal:
    batches: int
    median_snr: float  # over every alpha of every cell
    upper_snr: float  # the 90th percentile
    cell_median_snr: dict[str, float]  # per cell (slot name)
    median_gradient: float  # median over alphas of |mean gradient over batches|

    def decay_ceiling(self, weight_decay: float) -> float:
        """The logit at which coupled L2 weight decay (``weight_decay * alpha`` added to the
        gradient, as ``torch.optim.Adam(weight_decay=...)`` does) cancels a typical alpha's signal:
        a typical alpha cannot move past it whatever the travel, because Adam normalises the sum."""
        return self.median_gradient / weight_decay if weight_decay > 0 else float("inf")

    @property
    def noise_floor(self) -> float:
        """The median SNR that gradients without any signal show with this many batches
        (``|mean| / std`` of zero-mean normal draws: about ``0.674 / sqrt(batches)``)."""
        return 0.6745 / self.batches ** 0.5

    def expected_drift(self, travel: float) -> float:
        """How far a typical alpha moves with the signal over a search of travel ``travel``."""
        return travel * self.median_snr


def alpha_gradient_snr(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
                       batches: Iterable[tuple[Tensor, Tensor]], device: torch.device | str = "cpu") -> AlphaSignal:
    """The gradient of the loss with respect to every cell's alphas on each of ``batches`` (the
    weights fixed, the model in training mode as during a search), and the ratio of each alpha
    gradient's mean over the batches to its standard deviation."""
    alphas = model.alpha_parameters()
    model.train()
    gradients = []
    for images, masks in batches:
        loss = loss_fn(model(images.to(device)), masks.to(device))
        grads = torch.autograd.grad(loss, alphas)
        gradients.append(torch.cat([grad.detach().flatten() for grad in grads]).double().cpu())  # (num_alphas,)
    if len(gradients) < 2:
        raise ValueError(f"the SNR needs at least 2 batches, got {len(gradients)}")
    stacked = torch.stack(gradients)  # (batches, num_alphas)
    snr = stacked.mean(0).abs() / stacked.std(0).clamp_min(1e-30)
    sizes = [alpha.numel() for alpha in alphas]
    per_cell = {slot.name: float(part.median()) for slot, part in zip(model.slots, torch.split(snr, sizes))}
    return AlphaSignal(len(gradients), float(snr.median()), float(torch.quantile(snr, 0.9)), per_cell,
                       float(stacked.mean(0).abs().median()))
