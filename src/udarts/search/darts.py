"""The DARTS search strategy (Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search",
ICLR 2019, section 2.3 and Algorithm 1): alternate an architecture step on held-out data and a
weight step on training data.

The strategy knows only a model with ``arch_parameters()`` / ``weight_parameters()``, a loss and
two optimisers: the space (``udarts.search.supernet``) and the evaluator (``udarts.engine``) live
elsewhere.

First order (default): the alpha gradient is ``dL_val(w, a)/da``. Second order (``order="second"``,
DARTS eq. 6-8): the weights are unrolled one step, ``w' = w - xi * dL_train(w, a)/dw``, and the
alpha gradient is ``dL_val(w', a)/da - xi * d2L_train(w, a)/(da dw) . dL_val(w', a)/dw'``, the
Hessian-vector product estimated by central finite differences at ``w +- eps * dL_val/dw'`` with
``eps = fd_radius / ||dL_val/dw'||`` (DARTS: ``fd_radius = 0.01``). Every forward pass of the
second-order step leaves the weights and the BatchNorm running statistics as they were. The val
loss and logits it returns (the logged val loss and mIoU, and the search's ``best.pt``) are those
of the real weights ``w``, from one extra forward pass without gradient, not those of ``w'``.

The unrolled step is plain SGD (no momentum, no weight decay) with ``xi = unrolled_lr``, by
default the weight learning rate (1e-3), while the weights train with Adam (the default
``search.weight_optimizer``, the paper's choice). DARTS's reference code (``architect.py``)
unrolls with the step its own weight optimiser takes (SGD with momentum 0.9 and weight decay 3e-4
at the current learning rate, cosine from 0.025), so its ``w'`` is the next iterate (before
gradient clipping); here it is not. Adam moves each weight by about its learning rate whatever
the size of the gradient, the SGD step by ``xi`` times the gradient, usually far less: ``w'``
stays closer to ``w`` than the real Adam step would take it, and the correction term
``xi * d2L_train/(da dw) . dL_val/dw'`` is smaller than unrolling the real step would make it (at
an equal Hessian also 25x smaller than DARTS's at its initial ``xi`` of 0.025). The second-order
gradient is therefore closer to the first-order one (``xi = 0``) than a lookahead of the actual
Adam step would be; ``unrolled_lr`` sets ``xi``.

The strategy owns its two optimisers: ``state_dict()`` / ``load_state_dict()`` carry their state
(with the learning rates that are running) and the gradient scaler's over a resume, and
``set_learning_rates`` continues with other rates.

Options (all off by default, which is plain DARTS):

- ``alpha_penalty()``: a scalar added to the alpha loss (the sum of the search loop's parts'
  loss terms, ``udarts.search.loop.alpha_penalty``: expected FLOPs, beta-decay, a latency
  target); the logged ``val_loss`` stays the data loss, the penalty is returned as ``alpha_penalty``;
- ``precision``: a ``udarts.efficiency.MixedPrecision``; every forward pass and loss runs under
  its autocast, and with fp16 its ``GradScaler`` scales both losses (one scale update per step);
  fp16 is refused with the second order (the finite differences would see scaled gradients);
- ``gradient_sync(tensors)``: averages gradients in place across processes
  (``udarts.engine.distributed``); it is applied to the alpha gradients, to the weight gradients,
  and, in the second-order step, to the unrolling gradient and to ``dL_val/dw'``, so every process
  computes the gradients of the global batch.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Protocol, Sequence

import torch
from torch import Tensor, nn

Batch = tuple[Tensor, Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]
GradientSync = Callable[[Sequence[Tensor]], None]
ORDERS = ("first", "second")  # of the alpha gradient (the module docstring)


class Searchable(Protocol):
    def __call__(self, x: Tensor) -> Tensor: ...

    def arch_parameters(self) -> list[nn.Parameter]: ...

    def weight_parameters(self) -> list[nn.Parameter]: ...


def _grads(loss: Tensor, parameters: Sequence[Tensor]) -> list[Tensor]:
    grads = torch.autograd.grad(loss, parameters, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(parameters, grads)]


def alpha_lr_for_budget(travel: float, alpha_steps: int) -> float:
    """The alpha learning rate that lets Adam move a logit by about ``travel`` in ``alpha_steps``.

    Adam's step is bounded by its learning rate, so ``lr * steps`` is the farthest a logit can
    travel; DARTS's CIFAR search (about 20,000 alpha steps at 3e-4) allows about 6. A CPU search
    of a few hundred steps at the same 3e-4 ends with softmax weights within 0.01 of uniform, so
    the genotype it derives is noise; sizing the rate to the budget keeps the product fixed.
    """
    if alpha_steps < 1:
        raise ValueError(f"the search makes no alpha step (search.epochs - search.warmup_epochs = 0?); got {alpha_steps}")
    if travel <= 0:
        raise ValueError(f"search.alpha_travel must be > 0, got {travel}")
    return travel / alpha_steps


class DartsStrategy:
    def __init__(
        self,
        model: Searchable,
        loss_fn: LossFn,
        weight_optimizer: torch.optim.Optimizer,
        alpha_optimizer: torch.optim.Optimizer,
        order: str = "first",
        unrolled_lr: float | None = None,
        weight_grad_clip: float | None = 5.0,
        fd_radius: float = 0.01,
        *,
        alpha_penalty: Callable[[], Tensor] | None = None,
        precision: Any = None,
        gradient_sync: GradientSync | None = None,
    ) -> None:
        if order not in ORDERS:
            raise ValueError(f"search.order must be one of {ORDERS}, got {order!r}")
        self.grad_scaler = getattr(precision, "grad_scaler", None)
        if order == "second" and self.grad_scaler is not None:
            raise ValueError("search.amp = fp16 (gradient scaling) does not work with search.order = second; use bf16")
        self.model = model
        self.loss_fn = loss_fn
        self.weight_optimizer = weight_optimizer
        self.alpha_optimizer = alpha_optimizer
        self.order = order
        # xi of DARTS eq. 6: the virtual step size, by default the weights' learning rate.
        self.unrolled_lr = unrolled_lr if unrolled_lr is not None else weight_optimizer.param_groups[0]["lr"]
        self.weight_grad_clip = weight_grad_clip
        self.fd_radius = fd_radius
        self.alpha_penalty = alpha_penalty
        self.precision = precision
        self.gradient_sync = gradient_sync

    # ---- the optimisers' state (checkpoints and resume) ---------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The optimisers' state (with the learning rates that are running) and the gradient scaler's."""
        state = {"weight_optimizer": self.weight_optimizer.state_dict(),
                 "alpha_optimizer": self.alpha_optimizer.state_dict()}
        if self.grad_scaler is not None:
            state["grad_scaler"] = self.grad_scaler.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()``'s state exactly, the learning rates included."""
        self.weight_optimizer.load_state_dict(state["weight_optimizer"])
        self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        if self.grad_scaler is not None and "grad_scaler" in state:
            self.grad_scaler.load_state_dict(state["grad_scaler"])

    def set_learning_rates(self, weight: float | None = None, alpha: float | None = None) -> None:
        """Continue with the given rate(s), as given (a lower one after a divergence)."""
        for optimizer, rate in ((self.weight_optimizer, weight), (self.alpha_optimizer, alpha)):
            for group in optimizer.param_groups if rate is not None else ():
                group["lr"] = rate

    # ---- helpers for the options -------------------------------------------------------------
    def _autocast(self):
        return contextlib.nullcontext() if self.precision is None else self.precision.autocast()

    def _loss(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """(loss, logits) of one forward pass, under autocast when asked."""
        images, masks = batch
        with self._autocast():
            logits = self.model(images)
            loss = self.loss_fn(logits, masks)
        return loss, logits

    def _scaled(self, loss: Tensor) -> Tensor:
        return loss if self.grad_scaler is None else self.grad_scaler.scale(loss)

    def _sync(self, tensors: Sequence[Tensor]) -> None:
        if self.gradient_sync is not None:
            self.gradient_sync(list(tensors))

    def step(self, train_batch: Batch, val_batch: Batch, update_alphas: bool = True) -> dict[str, Tensor]:
        """One search step. Returns the losses and the val logits (for metrics), detached."""
        out: dict[str, Tensor] = {}
        if update_alphas:
            # alpha step on the val batch
            self.alpha_optimizer.zero_grad(set_to_none=True)
            if self.order == "first":
                alpha_grads, val_loss, val_logits = self.first_order_alpha_grads(val_batch)
            else:
                alpha_grads, val_loss, val_logits = self.second_order_alpha_grads(train_batch, val_batch)
            self._sync(alpha_grads)
            for alpha, grad in zip(self.model.arch_parameters(), alpha_grads):
                alpha.grad = grad
            if self.grad_scaler is None:
                self.alpha_optimizer.step()
            else:
                self.grad_scaler.step(self.alpha_optimizer)  # unscales; skipped on inf/nan
            out["val_loss"] = val_loss.detach()
            out["val_logits"] = val_logits.detach()
            if self.alpha_penalty is not None:
                with torch.no_grad():
                    out["alpha_penalty"] = self.alpha_penalty().detach()

        # weight step on the train batch
        weights = self.model.weight_parameters()
        self.weight_optimizer.zero_grad(set_to_none=True)
        train_loss, train_logits = self._loss(train_batch)
        self._scaled(train_loss).backward(inputs=weights)
        self._sync([weight.grad for weight in weights if weight.grad is not None])
        if self.grad_scaler is not None:
            self.grad_scaler.unscale_(self.weight_optimizer)
        if self.weight_grad_clip is not None:
            nn.utils.clip_grad_norm_(weights, self.weight_grad_clip)
        if self.grad_scaler is None:
            self.weight_optimizer.step()
        else:
            self.grad_scaler.step(self.weight_optimizer)
            self.grad_scaler.update()
        out["train_loss"] = train_loss.detach()
        out["train_logits"] = train_logits.detach()
        return out

    def first_order_alpha_grads(self, val_batch: Batch) -> tuple[list[Tensor], Tensor, Tensor]:
        """(alpha gradients of the val loss plus any penalty, the val loss, the val logits); with
        fp16 the gradients are those of the scaled loss (the optimiser step unscales them)."""
        loss, logits = self._loss(val_batch)
        objective = loss if self.alpha_penalty is None else loss + self.alpha_penalty()
        return _grads(self._scaled(objective), self.model.arch_parameters()), loss, logits

    def second_order_alpha_grads(self, train_batch: Batch, val_batch: Batch) -> tuple[list[Tensor], Tensor, Tensor]:
        """(the second-order alpha gradients, the val loss and the val logits of the real weights w);
        weights and BatchNorm statistics are left as they were."""
        alphas = self.model.arch_parameters()
        weights = self.model.weight_parameters()
        xi = self.unrolled_lr
        with _preserved(self.model, weights):
            # the val loss and logits to report (metrics, best.pt): those of the real weights w,
            # not of the virtual w'; no gradient, and the BN statistics are restored on exit
            with torch.no_grad():
                val_loss, val_logits = self._loss(val_batch)
            # w' = w - xi * dL_train(w, a)/dw
            weight_grads = _grads(self._loss(train_batch)[0], weights)
            self._sync(weight_grads)
            with torch.no_grad():
                torch._foreach_add_(weights, weight_grads, alpha=-xi)
            # dL_val(w', a)/da and dL_val(w', a)/dw'
            unrolled_val_loss, _ = self._loss(val_batch)
            objective = unrolled_val_loss if self.alpha_penalty is None else unrolled_val_loss + self.alpha_penalty()
            grads = _grads(objective, alphas + weights)
            alpha_grads, unrolled_weight_grads = grads[: len(alphas)], grads[len(alphas) :]
            self._sync(unrolled_weight_grads)
        hessian_vector = self._hessian_vector_product(unrolled_weight_grads, train_batch)
        alpha_grads = [g - xi * h for g, h in zip(alpha_grads, hessian_vector)]
        return alpha_grads, val_loss, val_logits

    def _hessian_vector_product(self, vector: list[Tensor], train_batch: Batch) -> list[Tensor]:
        """``d2L_train/(da dw) . vector`` by central finite differences in w."""
        alphas = self.model.arch_parameters()
        weights = self.model.weight_parameters()
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(v) for v in vector]))
        eps = self.fd_radius / norm.clamp_min(1e-12)
        with _preserved(self.model, weights):
            with torch.no_grad():
                torch._foreach_add_(weights, [v * eps for v in vector])  # w + eps v
            grads_plus = _grads(self._loss(train_batch)[0], alphas)
            with torch.no_grad():
                torch._foreach_add_(weights, [v * (-2 * eps) for v in vector])  # w - eps v
            grads_minus = _grads(self._loss(train_batch)[0], alphas)
        return [(plus - minus) / (2 * eps) for plus, minus in zip(grads_plus, grads_minus)]


class _preserved:
    """Context manager: restore the given parameters and every buffer (BN statistics) on exit."""

    def __init__(self, model: Searchable, parameters: Sequence[Tensor]) -> None:
        self.parameters = list(parameters)
        self.buffers = list(model.buffers()) if isinstance(model, nn.Module) else []

    def __enter__(self) -> "_preserved":
        self.saved_parameters = [p.detach().clone() for p in self.parameters]
        self.saved_buffers = [b.detach().clone() for b in self.buffers]
        return self

    def __exit__(self, *exc_info: object) -> None:
        with torch.no_grad():
            for tensor, saved in zip(self.parameters + self.buffers, self.saved_parameters + self.saved_buffers):
                tensor.copy_(saved)
