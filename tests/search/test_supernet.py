import pytest
import torch

from udarts.losses import dice_loss
from udarts.search.darts import DartsStrategy
from udarts.search.supernet import SuperNet, search_op_names
from udarts.space import all_edges


def tiny_supernet(num_classes=3, width=4, num_nodes=2, ops=("conv_3x3", "mbconv_3x3", "identity")):
    torch.manual_seed(0)
    return SuperNet(3, num_classes, width, num_nodes=num_nodes, op_names=search_op_names(ops))


def batch(size=16, num_classes=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, size, size, generator=generator), torch.randint(0, num_classes, (2, size, size), generator=generator)


def adam_darts(model, order="first"):
    """DARTS on ``model`` with Adam (lr 1e-2) for its weights and for its alphas."""
    return DartsStrategy(model, dice_loss, torch.optim.Adam(model.weight_parameters(), lr=1e-2),
                         torch.optim.Adam(model.arch_parameters(), lr=1e-2), order=order)


def test_eight_cells_have_their_own_alphas():
    model = tiny_supernet()
    alphas = model.arch_parameters()
    assert len(alphas) == 8
    assert len({id(alpha) for alpha in alphas}) == 8
    assert all(isinstance(alpha, torch.nn.Parameter) for alpha in alphas)
    # single-input cells C1..C5, two-input cells C6..C8
    expected_edges = [len(all_edges(1, 2))] * 5 + [len(all_edges(2, 2))] * 3
    assert [alpha.shape[0] for alpha in alphas] == expected_edges
    assert all(alpha.shape[1] == 4 for alpha in alphas)  # none + 3 ops
    weight_ids = {id(p) for p in model.weight_parameters()}
    assert not weight_ids & {id(alpha) for alpha in alphas}
    assert len(weight_ids) + 8 == len(list(model.parameters()))


def test_widths_and_scales_follow_the_paper():
    model = tiny_supernet(width=4)
    assert [slot.channels for slot in model.slots] == [4, 8, 16, 32, 32, 16, 8, 4]
    assert [slot.scale for slot in model.slots] == [0, 1, 2, 3, 3, 2, 1, 0]
    assert model(batch()[0]).shape == (2, 3, 16, 16)


def test_input_not_divisible_by_eight_is_refused():
    with pytest.raises(ValueError, match="divisible by 8"):
        tiny_supernet()(torch.randn(1, 3, 20, 16))


@pytest.mark.slow
def test_alpha_step_moves_only_alphas_and_weight_step_only_weights():
    model = tiny_supernet()
    strategy = adam_darts(model)
    alphas_before = [alpha.detach().clone() for alpha in model.arch_parameters()]
    weights_before = [weight.detach().clone() for weight in model.weight_parameters()]
    # warm-up step: weights only
    strategy.step(batch(seed=1), batch(seed=2), update_alphas=False)
    assert all(torch.equal(a, b) for a, b in zip(alphas_before, model.arch_parameters()))
    assert any(not torch.equal(w, v) for w, v in zip(weights_before, model.weight_parameters()))
    # the alpha step alone (the weight step is the second half of step())
    weights_before = [weight.detach().clone() for weight in model.weight_parameters()]
    grads, _, _ = strategy.first_order_alpha_grads(batch(seed=3))
    for alpha, grad in zip(model.arch_parameters(), grads):
        alpha.grad = grad
    strategy.alpha_optimizer.step()
    assert all(not torch.equal(a, b) for a, b in zip(alphas_before, model.arch_parameters()))
    assert all(torch.equal(w, v) for w, v in zip(weights_before, model.weight_parameters()))


@pytest.mark.slow
@pytest.mark.parametrize("order", ["first", "second"])
def test_search_step_moves_alphas_and_weights(order):
    model = tiny_supernet()
    strategy = adam_darts(model, order=order)
    alphas_before = [alpha.detach().clone() for alpha in model.arch_parameters()]
    weights_before = [weight.detach().clone() for weight in model.weight_parameters()]
    out = strategy.step(batch(seed=1), batch(seed=2))
    assert torch.isfinite(out["train_loss"]) and torch.isfinite(out["val_loss"])
    assert all(not torch.equal(a, b) for a, b in zip(alphas_before, model.arch_parameters()))
    assert any(not torch.equal(w, v) for w, v in zip(weights_before, model.weight_parameters()))


@pytest.mark.slow
def test_paper_scale_supernet_builds_and_takes_one_search_step_on_cpu():
    """The paper's configuration: w = 64, 8 cells, 4 nodes, 7 ops + none; batch 1, 64x64."""
    torch.manual_seed(0)
    model = SuperNet(3, 2, 64)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"paper-scale supernet: {parameters:,} parameters")
    assert [slot.channels for slot in model.slots] == [64, 128, 256, 512, 512, 256, 128, 64]
    assert parameters > 500_000_000
    strategy = DartsStrategy(
        model,
        dice_loss,
        torch.optim.Adam(model.weight_parameters(), lr=1e-3),
        torch.optim.Adam(model.arch_parameters(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3),
    )
    images = torch.randn(1, 3, 64, 64)
    masks = torch.randint(0, 2, (1, 64, 64))
    alpha_before = model.arch_parameters()[3].detach().clone()
    out = strategy.step((images, masks), (images, masks))
    assert torch.isfinite(out["train_loss"])
    assert not torch.equal(alpha_before, model.arch_parameters()[3])


def test_a_mode_is_composed_when_the_cells_are_built():
    from udarts.search.cell import softmax_selector
    from udarts.search.mixed_op import MixedOp
    from udarts.search.partial_channel import PartialChannelMixedOp

    darts = tiny_supernet()
    assert darts.sampler is None and all(cell.selector is softmax_selector for cell in darts.cells)
    assert all(type(op) is MixedOp and not op.checkpoint_activations for cell in darts.cells for op in cell.ops)
    assert not any(cell.checkpoint_activations for cell in darts.cells)
    model = SuperNet(3, 3, 4, num_nodes=2, op_names=search_op_names(("conv_3x3", "identity")), mode="pc_gdas",
                     partial_channel_k=2, checkpoint_cells=True, checkpoint_edges=True)
    assert model.sampler is not None and all(cell.selector is model.sampler for cell in model.cells)  # one shared sampler
    assert all(cell.checkpoint_activations and cell.betas is not None for cell in model.cells)
    assert all(isinstance(op, PartialChannelMixedOp) and op.k == 2 and op.checkpoint_activations
               for cell in model.cells for op in cell.ops)
    model.set_temperature(0.5)
    assert model.sampler.tau == 0.5
