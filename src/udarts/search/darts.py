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
``eps = fd_radius / ||dL_val/dw'||`` (DARTS: ``fd_radius = 0.01``). Every forward pass of the second-order step leaves the weights
and the BatchNorm running statistics as they were.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

import torch
from torch import Tensor, nn

Batch = tuple[Tensor, Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]


class Searchable(Protocol):
    def __call__(self, x: Tensor) -> Tensor: ...

    def arch_parameters(self) -> list[nn.Parameter]: ...

    def weight_parameters(self) -> list[nn.Parameter]: ...


def _grads(loss: Tensor, parameters: Sequence[Tensor]) -> list[Tensor]:
    grads = torch.autograd.grad(loss, parameters, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(parameters, grads)]


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
    ) -> None:
        if order not in ("first", "second"):
            raise ValueError(f"search.order must be 'first' or 'second', got {order!r}")
        self.model = model
        self.loss_fn = loss_fn
        self.weight_optimizer = weight_optimizer
        self.alpha_optimizer = alpha_optimizer
        self.order = order
        # xi of DARTS eq. 6: the virtual step size, by default the weights' learning rate.
        self.unrolled_lr = unrolled_lr if unrolled_lr is not None else weight_optimizer.param_groups[0]["lr"]
        self.weight_grad_clip = weight_grad_clip
        self.fd_radius = fd_radius

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
            for alpha, grad in zip(self.model.arch_parameters(), alpha_grads):
                alpha.grad = grad
            self.alpha_optimizer.step()
            out["val_loss"] = val_loss.detach()
            out["val_logits"] = val_logits.detach()

        # weight step on the train batch
        images, masks = train_batch
        weights = self.model.weight_parameters()
        self.weight_optimizer.zero_grad(set_to_none=True)
        train_logits = self.model(images)
        train_loss = self.loss_fn(train_logits, masks)
        train_loss.backward(inputs=weights)
        if self.weight_grad_clip is not None:
            nn.utils.clip_grad_norm_(weights, self.weight_grad_clip)
        self.weight_optimizer.step()
        out["train_loss"] = train_loss.detach()
        out["train_logits"] = train_logits.detach()
        return out

    def first_order_alpha_grads(self, val_batch: Batch) -> tuple[list[Tensor], Tensor, Tensor]:
        images, masks = val_batch
        logits = self.model(images)
        loss = self.loss_fn(logits, masks)
        return _grads(loss, self.model.arch_parameters()), loss, logits

    def second_order_alpha_grads(self, train_batch: Batch, val_batch: Batch) -> tuple[list[Tensor], Tensor, Tensor]:
        alphas = self.model.arch_parameters()
        weights = self.model.weight_parameters()
        xi = self.unrolled_lr
        with _preserved(self.model, weights):
            # w' = w - xi * dL_train(w, a)/dw
            train_images, train_masks = train_batch
            weight_grads = _grads(self.loss_fn(self.model(train_images), train_masks), weights)
            with torch.no_grad():
                torch._foreach_add_(weights, weight_grads, alpha=-xi)
            # dL_val(w', a)/da and dL_val(w', a)/dw'
            val_images, val_masks = val_batch
            val_logits = self.model(val_images)
            val_loss = self.loss_fn(val_logits, val_masks)
            grads = _grads(val_loss, alphas + weights)
            alpha_grads, unrolled_weight_grads = grads[: len(alphas)], grads[len(alphas) :]
        hessian_vector = self._hessian_vector_product(unrolled_weight_grads, train_batch)
        alpha_grads = [g - xi * h for g, h in zip(alpha_grads, hessian_vector)]
        return alpha_grads, val_loss, val_logits

    def _hessian_vector_product(self, vector: list[Tensor], train_batch: Batch) -> list[Tensor]:
        """``d2L_train/(da dw) . vector`` by central finite differences in w."""
        alphas = self.model.arch_parameters()
        weights = self.model.weight_parameters()
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(v) for v in vector]))
        eps = self.fd_radius / norm.clamp_min(1e-12)
        images, masks = train_batch
        with _preserved(self.model, weights):
            with torch.no_grad():
                torch._foreach_add_(weights, [v * eps for v in vector])  # w + eps v
            grads_plus = _grads(self.loss_fn(self.model(images), masks), alphas)
            with torch.no_grad():
                torch._foreach_add_(weights, [v * (-2 * eps) for v in vector])  # w - eps v
            grads_minus = _grads(self.loss_fn(self.model(images), masks), alphas)
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
