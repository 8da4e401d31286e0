"""GDAS-style sampled search: one op per edge per step, straight-through gradients to alpha."""

import math

import pytest
import torch

from udarts.losses import dice_loss
from udarts.search.darts import DartsStrategy
from udarts.search.sampling import TemperatureSchedule, gumbel_noise, straight_through_sample
from udarts.search.supernet import SuperNet, search_op_names

from .test_supernet import batch

OPS = ("conv_3x3", "mbconv_3x3", "identity")


def gdas_supernet(include_none=True):
    torch.manual_seed(0)
    return SuperNet(3, 3, 4, num_nodes=2, op_names=search_op_names(OPS, include_none), mode="gdas")


def test_sample_is_one_hot_forward_and_softmax_backward():
    torch.manual_seed(0)
    logits = torch.randn(5, 4, requires_grad=True)
    noise = gumbel_noise(logits.shape, torch.Generator().manual_seed(1))
    weights, index = straight_through_sample(logits, noise, tau=0.7)
    assert torch.equal(weights.detach(), torch.nn.functional.one_hot(torch.tensor(index), 4).float())
    assert index == (logits + noise).argmax(-1).tolist()  # Gumbel-max
    signal = torch.randn(5, 4)
    (weights * signal).sum().backward()
    soft_logits = logits.detach().clone().requires_grad_()
    (torch.softmax((soft_logits + noise) / 0.7, -1) * signal).sum().backward()
    torch.testing.assert_close(logits.grad, soft_logits.grad)  # the Gumbel-softmax gradient
    assert logits.grad.abs().sum() > 0


def test_samples_follow_softmax_of_alpha_and_skip_masked_ops():
    generator = torch.Generator().manual_seed(0)
    logits = torch.tensor([[0.0, math.log(3.0), float("-inf")]]).expand(4000, 3)
    _, index = straight_through_sample(logits, gumbel_noise(logits.shape, generator), tau=1.0)
    counts = torch.bincount(torch.tensor(index), minlength=3)
    assert counts[2] == 0
    assert abs(counts[1] / 4000 - 0.75) < 0.03  # softmax([0, log 3]) = (0.25, 0.75)


def test_temperature_schedules():
    linear = TemperatureSchedule(10.0, 0.1, "linear")
    assert [linear.at(epoch, 3) for epoch in range(3)] == [10.0, pytest.approx(5.05), 0.1]
    exponential = TemperatureSchedule(10.0, 0.1, "exponential")
    assert exponential.at(1, 3) == pytest.approx(1.0)  # the geometric mean of 10 and 0.1
    assert exponential.at(2, 3) == 0.1
    with pytest.raises(ValueError, match="tau_schedule"):
        TemperatureSchedule(kind="cosine")


def count_op_calls(model):
    calls = {}
    handles = []
    for cell_index, cell in enumerate(model.cells):
        for edge_index, mixed in enumerate(cell.ops):
            for op_index, op in enumerate(mixed.ops):
                def hook(module, inputs, output, key=(cell_index, edge_index, op_index)):
                    calls[key] = calls.get(key, 0) + 1
                handles.append(op.register_forward_hook(hook))
    return calls, handles


def test_a_gdas_forward_computes_one_op_per_edge():
    model = gdas_supernet()
    calls, handles = count_op_calls(model)
    model(batch()[0])
    for handle in handles:
        handle.remove()
    edges = sum(len(cell.edges) for cell in model.cells)
    assert len(calls) == edges and set(calls.values()) == {1}
    assert {(cell, edge) for cell, edge, _ in calls} == {(c, e) for c, cell in enumerate(model.cells) for e in range(len(cell.edges))}


def test_gdas_step_moves_alphas_and_only_the_sampled_weights():
    # without 'none' every sampled network reaches every cell (with it, a sample may cut a path,
    # and the cells behind the cut rightly get no gradient)
    model = gdas_supernet(include_none=False)
    strategy = DartsStrategy(model, dice_loss, torch.optim.Adam(model.weight_parameters(), lr=1e-2),
                             torch.optim.Adam(model.arch_parameters(), lr=1e-2))
    alphas_before = [alpha.detach().clone() for alpha in model.arch_parameters()]
    weights_before = {name: p.detach().clone() for name, p in model.named_parameters() if "alphas" not in name}
    out = strategy.step(batch(seed=1), batch(seed=2))
    assert torch.isfinite(out["train_loss"]) and torch.isfinite(out["val_loss"])
    assert all(not torch.equal(a, b) for a, b in zip(alphas_before, model.arch_parameters()))
    changed = {name for name, p in model.named_parameters() if name in weights_before and not torch.equal(p, weights_before[name])}
    op_weights = {name for name in weights_before if ".ops." in name}
    assert changed & op_weights  # the sampled ops learnt
    assert op_weights - changed  # and ops that were never sampled did not move
    assert {"stem.0.weight", "head.weight"} <= changed


def test_gdas_eval_takes_the_argmax_architecture():
    model = gdas_supernet().eval()
    with torch.no_grad():
        for cell in model.cells:
            cell.alphas.zero_()
            cell.alphas[:, 2] = 5.0  # mbconv_3x3 everywhere
    calls, handles = count_op_calls(model)
    model(batch()[0])
    model(batch()[0])
    for handle in handles:
        handle.remove()
    assert {op for _, _, op in calls} == {2} and set(calls.values()) == {2}  # deterministic: twice the same op
