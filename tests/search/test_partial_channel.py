"""PC-DARTS: partial-channel mixed ops, channel shuffle and edge normalisation."""

import pytest
import torch

from udarts.genotype import architecture_from_state, derive, derive_cell
from udarts.losses import dice_loss
from udarts.ops import OpSettings
from udarts.search.darts import DartsStrategy
from udarts.search.partial_channel import PartialChannelMixedOp, channel_shuffle
from udarts.search.supernet import SuperNet, search_op_names

from .test_supernet import batch


def pc_supernet(k=2):
    torch.manual_seed(0)
    return SuperNet(3, 3, 4, num_nodes=2, op_names=search_op_names(("conv_3x3", "mbconv_3x3", "identity")),
                    mode="pc_darts", partial_channel_k=k)


def test_channel_shuffle_interleaves_the_groups():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]


def test_only_a_quarter_of_the_channels_go_through_the_ops():
    torch.manual_seed(0)
    mixed = PartialChannelMixedOp(8, ["conv_3x3", "identity"], OpSettings(affine=False), k=4).eval()
    assert mixed.ops[0][0].in_channels == 2  # ops are C/K wide
    x = torch.randn(2, 8, 6, 6)
    identity_only = mixed(x, torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(identity_only, channel_shuffle(x, 4))  # identity + bypass = a pure shuffle
    out = mixed(x, torch.tensor([0.7, 0.3]))
    bypassed = channel_shuffle(torch.cat([torch.zeros(2, 2, 6, 6), x[:, 2:]], 1), 4) != 0
    torch.testing.assert_close(out[bypassed], channel_shuffle(x, 4)[bypassed])  # 3/4 of channels untouched
    assert not torch.allclose(out[~bypassed], channel_shuffle(x, 4)[~bypassed])
    with pytest.raises(ValueError, match="partial_channel_k"):
        PartialChannelMixedOp(6, ["identity"], OpSettings(), k=4)


@pytest.mark.slow
def test_pc_step_moves_alphas_betas_and_weights():
    model = pc_supernet()
    assert len(model.beta_parameters()) == 8 and len(model.arch_parameters()) == 16
    arch_ids = {id(p) for p in model.arch_parameters()}
    assert not arch_ids & {id(p) for p in model.weight_parameters()}
    strategy = DartsStrategy(model, dice_loss, torch.optim.Adam(model.weight_parameters(), lr=1e-2),
                             torch.optim.Adam(model.arch_parameters(), lr=1e-2))
    arch_before = [p.detach().clone() for p in model.arch_parameters()]
    weights_before = [p.detach().clone() for p in model.weight_parameters()]
    strategy.step(batch(seed=1), batch(seed=2))
    moved = [not torch.equal(a, b) for a, b in zip(arch_before, model.arch_parameters())]
    assert all(moved[:8])  # alphas
    # betas: every cell has a node with two or more incoming edges, so its softmax has a gradient
    assert all(moved[8:])
    assert any(not torch.equal(a, b) for a, b in zip(weights_before, model.weight_parameters()))


def test_edge_normalisation_weighs_each_node_and_steers_derivation():
    model = pc_supernet()
    scales = model.edge_normalization_weights()
    for cell, cell_scales in zip(model.cells, scales):
        for node in range(model.num_nodes):
            incoming = [i for i, (target, _) in enumerate(cell.edges) if target == node]
            assert float(cell_scales[incoming].sum()) == pytest.approx(1.0)
    # node 1 of a one-input cell reads states 0 and 1; edge (1, 0) has the stronger op, but the
    # betas prefer edge (1, 1): PC-DARTS multiplies the two before ranking
    op_names = search_op_names(("conv_3x3", "identity"))  # none, conv_3x3, identity
    alphas = torch.tensor([[0.0, 1.0, 0.0], [0.0, 2.0, 0.0], [0.0, 1.5, 0.0]])
    plain = derive_cell("C1", alphas, op_names, 1, 2, top_k=1)
    assert plain.nodes[1] == (("conv_3x3", 0),)
    scaled = derive_cell("C1", alphas, op_names, 1, 2, top_k=1, edge_scales=torch.tensor([1.0, 0.2, 0.8]))
    assert scaled.nodes[1] == (("conv_3x3", 1),)


def test_derivation_from_a_checkpoint_uses_the_betas():
    model = pc_supernet()
    with torch.no_grad():
        for beta in model.beta_parameters():
            beta.normal_(0, 3)
    arch = architecture_from_state(model.state_dict(), model.num_nodes)
    assert arch["op_masks"] is None and len(arch["edge_scales"]) == 8
    for mine, theirs in zip(arch["edge_scales"], model.edge_normalization_weights()):
        torch.testing.assert_close(mine, theirs)
    from_state = derive(arch["alphas"], model.op_names, 2, 1, edge_scales=arch["edge_scales"])
    from udarts.engine.searcher import current_genotype

    assert from_state.cells == current_genotype(model, 1, {}).cells
    assert from_state.cells != derive(arch["alphas"], model.op_names, 2, 1).cells  # the betas changed the choice


@pytest.mark.slow
def test_pc_gdas_computes_one_sampled_op_per_edge_on_a_part_of_the_channels():
    torch.manual_seed(0)
    model = SuperNet(3, 3, 4, num_nodes=2, op_names=search_op_names(("conv_3x3", "mbconv_3x3", "identity"), False),
                     mode="pc_gdas", partial_channel_k=2)
    assert all(mixed.ops[0][0].in_channels == mixed.partial_channels for cell in model.cells for mixed in cell.ops)
    calls = {}
    handles = [op.register_forward_hook(lambda module, inputs, output, key=(c, e, o): calls.__setitem__(key, 1))
               for c, cell in enumerate(model.cells) for e, mixed in enumerate(cell.ops) for o, op in enumerate(mixed.ops)]
    model(batch()[0])
    for handle in handles:
        handle.remove()
    assert len(calls) == sum(len(cell.edges) for cell in model.cells)  # one op per edge
    assert len({(c, e) for c, e, _ in calls}) == len(calls)

    strategy = DartsStrategy(model, dice_loss, torch.optim.Adam(model.weight_parameters(), lr=1e-2),
                             torch.optim.Adam(model.arch_parameters(), lr=1e-2))
    arch_before = [p.detach().clone() for p in model.arch_parameters()]
    weights_before = [p.detach().clone() for p in model.weight_parameters()]
    strategy.step(batch(seed=1), batch(seed=2))
    assert all(not torch.equal(a, b) for a, b in zip(arch_before, model.arch_parameters()))  # alphas and betas
    assert any(not torch.equal(a, b) for a, b in zip(weights_before, model.weight_parameters()))
