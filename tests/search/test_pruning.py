"""Progressive op pruning: the rule, masks that stop computation, and derivation that respects them."""

import pytest
import torch

from udarts.genotype import architecture_from_state
from udarts.losses import dice_loss
from udarts.search.darts import DartsStrategy
from udarts.search.pruning import PruningSchedule, count_active_ops, ops_to_drop, prune
from udarts.search.supernet import SuperNet, search_op_names

from .test_sampling import count_op_calls
from .test_supernet import batch

OPS = search_op_names(("conv_3x3", "conv_5x5", "mbconv_3x3", "identity"))  # none first: 5 ops


def prunable_supernet(mode="darts", ops=OPS):
    torch.manual_seed(0)
    return SuperNet(3, 3, 4, num_nodes=2, op_names=ops, mode=mode, prunable=True)


def test_the_weakest_ops_go_but_never_none_nor_the_last_real_op():
    weights = torch.tensor([0.01, 0.3, 0.1, 0.2, 0.39])
    assert ops_to_drop(weights, range(5), OPS, count=2, min_ops=2) == [2, 3]
    assert ops_to_drop(weights, [0, 1, 4], OPS, count=2, min_ops=2) == [1]  # min_ops
    assert ops_to_drop(weights, [0, 4], OPS, count=1, min_ops=1) == []  # none + the last real op stay
    ties = torch.full((5,), 0.2)
    assert ops_to_drop(ties, range(5), OPS, count=1, min_ops=1) == [4]  # the later op goes first


@pytest.mark.parametrize("min_ops", [1, 2, 3])
@pytest.mark.parametrize("include_none", [True, False])
def test_repeated_pruning_never_empties_an_edge(min_ops, include_none):
    ops = search_op_names(("conv_3x3", "conv_5x5", "mbconv_3x3", "identity"), include_none)
    model = prunable_supernet(ops=ops)
    schedule = PruningSchedule(start_epoch=1, every=1, ops_per_step=2, min_ops=min_ops)
    generator = torch.Generator().manual_seed(0)
    for _ in range(6):
        with torch.no_grad():
            for alpha in model.alpha_parameters():
                alpha.copy_(torch.randn(alpha.shape, generator=generator))
        prune(model, schedule)
    real = torch.tensor([name != "none" for name in ops])
    for cell in model.cells:
        assert (cell.op_mask & real).any(dim=1).all()  # an op besides none on every edge
        assert (cell.op_mask.sum(dim=1) >= min(min_ops, len(ops))).all()
        if include_none:
            assert cell.op_mask[:, 0].all()  # none is never dropped
    assert count_active_ops(model) == sum(int(cell.op_mask.sum()) for cell in model.cells)


def test_dropped_ops_weigh_zero_are_not_computed_and_are_never_derived():
    model = prunable_supernet()
    with torch.no_grad():
        model.cells[0].alphas[:, 4] = 3.0  # identity would win every edge of C1 ...
    records = prune(model, PruningSchedule(start_epoch=1, ops_per_step=4, min_ops=1))
    # ... but min_ops=1 and none is kept: each edge drops its 4 weakest real ops except one
    assert records and {tuple(r["kept"]) for r in records if r["cell"] == "C1"} == {("none", "identity")}
    model.cells[0].op_mask[:, 4] = False  # force: identity dropped too, conv_3x3 kept
    model.cells[0].op_mask[:, 1] = True
    model.cells[0].set_op_mask(model.cells[0].op_mask.clone())
    weights = model.cells[0].op_weights()
    assert torch.all(weights[:, 4] == 0) and torch.allclose(weights.sum(1), torch.ones(3))
    calls, handles = count_op_calls(model)
    model(batch()[0])
    for handle in handles:
        handle.remove()
    computed = {(cell, edge, op) for cell, edge, op in calls}
    for cell_index, cell in enumerate(model.cells):
        for edge_index, active in enumerate(cell.active_ops()):
            assert {op for c, e, op in computed if (c, e) == (cell_index, edge_index)} == set(active)
    from udarts.engine.searcher import current_genotype

    genotype = current_genotype(model, 2, {})
    assert set(genotype.cells[0].ops()) == {"conv_3x3"}  # identity's alpha is still the largest, but it was dropped
    arch = architecture_from_state(model.state_dict(), 2)
    assert arch["op_masks"] is not None and torch.equal(arch["op_masks"][0], model.cells[0].op_mask)


@pytest.mark.slow
def test_pruned_ops_get_no_gradient_and_masks_survive_a_checkpoint():
    model = prunable_supernet()
    prune(model, PruningSchedule(start_epoch=1, ops_per_step=2))
    strategy = DartsStrategy(model, dice_loss, torch.optim.SGD(model.weight_parameters(), lr=0.1),
                             torch.optim.SGD(model.arch_parameters(), lr=0.1))
    strategy.step(batch(seed=1), batch(seed=2))
    cell = model.cells[0]
    for edge_index, mixed in enumerate(cell.ops):
        for op_index, op in enumerate(mixed.ops):
            grads = [p.grad for p in op.parameters()]
            if grads and not cell.op_mask[edge_index, op_index]:
                assert all(grad is None for grad in grads)
    restored = prunable_supernet()
    restored.load_state_dict(model.state_dict())
    assert all(torch.equal(a.op_mask, b.op_mask) for a, b in zip(model.cells, restored.cells))
    assert restored.cells[0].active_ops() == model.cells[0].active_ops() != [list(range(5))] * 3


def test_schedule():
    schedule = PruningSchedule(start_epoch=3, every=2)
    assert [epoch for epoch in range(1, 10) if schedule.is_due(epoch)] == [3, 5, 7, 9]
    with pytest.raises(ValueError, match="prune_min_ops"):
        PruningSchedule(start_epoch=1, min_ops=0)
