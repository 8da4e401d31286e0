"""The second-order DARTS gradient against a direct finite-difference estimate."""

import copy

import pytest
import torch
from torch import nn

from udarts.losses import cross_entropy
from udarts.ops import OpSettings
from udarts.search.cell import SearchCell
from udarts.search.darts import DartsStrategy


class TinySearchable(nn.Module):
    """One search cell between a 1x1 stem and a 1x1 head: small enough for float64 differences."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1)
        self.cell = SearchCell(1, 4, 2, ("conv_3x3", "mbconv_3x3", "identity"), OpSettings(affine=False))
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.head(self.cell([self.stem(x)]))

    def arch_parameters(self):
        return [self.cell.alphas]

    def weight_parameters(self):
        return [p for p in self.parameters() if p is not self.cell.alphas]


@pytest.mark.slow
def test_second_order_gradient_matches_finite_differences():
    torch.manual_seed(0)
    model = TinySearchable().double()
    with torch.no_grad():
        model.cell.alphas.normal_(0, 0.5)
    generator = torch.Generator().manual_seed(1)
    train = (torch.randn(4, 3, 6, 6, generator=generator, dtype=torch.float64), torch.randint(0, 2, (4, 6, 6), generator=generator))
    val = (torch.randn(4, 3, 6, 6, generator=generator, dtype=torch.float64), torch.randint(0, 2, (4, 6, 6), generator=generator))
    xi = 0.5
    strategy = DartsStrategy(
        model,
        lambda logits, target: nn.functional.cross_entropy(logits, target),
        torch.optim.SGD(model.weight_parameters(), lr=xi),
        torch.optim.SGD(model.arch_parameters(), lr=0.1),
        order="second",
        fd_radius=1e-4,  # float64: a small radius keeps the finite difference inside one linear piece
    )
    weights_before = [w.detach().clone() for w in model.weight_parameters()]
    buffers_before = [b.detach().clone() for b in model.buffers()]
    grads, _, _ = strategy.second_order_alpha_grads(train, val)
    analytic = grads[0]
    # the step left the weights and the BN statistics as they were
    assert all(torch.equal(a, b) for a, b in zip(weights_before, model.weight_parameters()))
    assert all(torch.equal(a, b) for a, b in zip(buffers_before, model.buffers()))

    def unrolled_val_loss() -> float:
        """L_val(w - xi * dL_train/dw, alpha), computed directly, weights restored after."""
        weights = model.weight_parameters()
        saved = [w.detach().clone() for w in weights]
        saved_buffers = [b.detach().clone() for b in model.buffers()]
        loss = nn.functional.cross_entropy(model(train[0]), train[1])
        weight_grads = torch.autograd.grad(loss, weights)
        with torch.no_grad():
            for w, g in zip(weights, weight_grads):
                w.sub_(xi * g)
            value = float(nn.functional.cross_entropy(model(val[0]), val[1]))
            for w, s in zip(weights, saved):
                w.copy_(s)
            for b, s in zip(model.buffers(), saved_buffers):
                b.copy_(s)
        return value

    numeric = torch.zeros_like(analytic)
    h = 1e-5
    alphas = model.cell.alphas
    for index in range(alphas.numel()):
        with torch.no_grad():
            alphas.view(-1)[index] += h
        plus = unrolled_val_loss()
        with torch.no_grad():
            alphas.view(-1)[index] -= 2 * h
        minus = unrolled_val_loss()
        with torch.no_grad():
            alphas.view(-1)[index] += h
        numeric.view(-1)[index] = (plus - minus) / (2 * h)
    torch.testing.assert_close(analytic, numeric, rtol=2e-3, atol=2e-6)
    # and it differs from the first-order gradient: the correction term matters here
    first, _, _ = strategy.first_order_alpha_grads(val)
    assert not torch.allclose(first[0], numeric, rtol=1e-3, atol=1e-6)


def test_second_order_step_reports_the_val_loss_of_the_real_weights():
    """The logged val loss and logits (val mIoU, the search's best.pt) are those of w, not of the
    virtual w' = w - xi * dL_train/dw, and the extra pass leaves the BN statistics alone."""
    torch.manual_seed(0)
    model = TinySearchable().double()
    generator = torch.Generator().manual_seed(2)
    batch = lambda: (torch.randn(4, 3, 6, 6, generator=generator, dtype=torch.float64),  # noqa: E731
                     torch.randint(0, 2, (4, 6, 6), generator=generator))
    train, val = batch(), batch()
    loss_fn = lambda logits, target: nn.functional.cross_entropy(logits, target)  # noqa: E731
    xi = 0.5
    strategy = DartsStrategy(model, loss_fn, torch.optim.SGD(model.weight_parameters(), lr=xi),
                             torch.optim.SGD(model.arch_parameters(), lr=0.1), order="second")
    with torch.no_grad():
        direct_logits = copy.deepcopy(model)(val[0])  # at w, train-mode BatchNorm like the step
        direct_loss = loss_fn(direct_logits, val[1])
        unrolled = copy.deepcopy(model)
    unrolled_grads = torch.autograd.grad(loss_fn(unrolled(train[0]), train[1]), unrolled.weight_parameters())
    with torch.no_grad():
        torch._foreach_add_(unrolled.weight_parameters(), unrolled_grads, alpha=-xi)
        unrolled_loss = loss_fn(unrolled(val[0]), val[1])
    assert abs(float(unrolled_loss - direct_loss)) > 1e-3  # w' is far enough from w to tell them apart

    buffers_before = [b.detach().clone() for b in model.buffers()]
    _, loss, logits = strategy.second_order_alpha_grads(train, val)
    assert loss.dtype == torch.float64
    torch.testing.assert_close(loss, direct_loss, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(logits, direct_logits, rtol=1e-12, atol=1e-12)
    assert all(torch.equal(a, b) for a, b in zip(buffers_before, model.buffers()))
    out = strategy.step(train, val)  # the full step logs the same
    torch.testing.assert_close(out["val_loss"], direct_loss, rtol=1e-12, atol=1e-12)


def test_unknown_order_is_refused():
    model = TinySearchable()
    import pytest

    with pytest.raises(ValueError, match="search.order"):
        DartsStrategy(model, cross_entropy, torch.optim.SGD(model.weight_parameters(), lr=0.1),
                      torch.optim.SGD(model.arch_parameters(), lr=0.1), order="third")
