"""The expected-FLOPs penalty on the alphas (resource-aware search)."""

import pytest
import torch

from udarts.complexity import count_flops
from udarts.losses import dice_loss
from udarts.models import build_searchnet
from udarts.ops import OpSettings
from udarts.search.darts import DartsStrategy
from udarts.search.resource import ExpectedFlopsPenalty, op_flops
from udarts.search.supernet import SuperNet, search_op_names

from .test_supernet import batch

OPS = search_op_names(("conv_3x3", "conv_5x5", "identity"))


def supernet():
    torch.manual_seed(0)
    return SuperNet(3, 3, 4, num_nodes=2, op_names=OPS)


def test_op_flops_are_counted_per_op():
    flops = op_flops(OPS, 4, 8, 8, OpSettings(affine=False))
    assert flops == [0, 2 * 4 * 4 * 9 * 64, 2 * 4 * 4 * 25 * 64, 0]  # none, conv 3x3, conv 5x5, identity


def test_the_penalty_is_the_softmax_weighted_flops_and_pushes_towards_cheap_ops():
    model = supernet()
    penalty = ExpectedFlopsPenalty(model, (16, 16), weight=2.0)
    expected = sum((cell.op_weights() * table).sum() for cell, table in zip(model.cells, penalty.gflops_tables))
    torch.testing.assert_close(penalty(), 2.0 * expected.float())
    grads = torch.autograd.grad(penalty(), model.alpha_parameters())
    for grad in grads:  # d/d alpha_o = weight * p_o * (flops_o - E[flops])
        assert (grad[:, 2] > 0).all() and (grad[:, 3] < 0).all()  # conv 5x5 up, identity down


def derived_flops(strategy_penalty: float) -> int:
    model = supernet()
    penalty = ExpectedFlopsPenalty(model, (16, 16), weight=strategy_penalty) if strategy_penalty else None
    strategy = DartsStrategy(model, dice_loss, torch.optim.Adam(model.weight_parameters(), lr=1e-2),
                             torch.optim.Adam(model.arch_parameters(), lr=0.05), alpha_penalty=penalty)
    for step in range(6):
        out = strategy.step(batch(seed=2 * step), batch(seed=2 * step + 1))
        assert ("alpha_penalty" in out) == (penalty is not None)
    from udarts.engine.searcher import current_genotype

    genotype = current_genotype(model, 2, {})
    with torch.device("meta"):
        network = build_searchnet(genotype, 3, 3, 4)
    return count_flops(network, (1, 3, 16, 16), device="meta")


@pytest.mark.slow
def test_the_penalty_lowers_the_flops_of_the_derived_network():
    plain, penalised = derived_flops(0.0), derived_flops(100.0)
    assert penalised < plain
