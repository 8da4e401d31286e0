import pytest
import torch

from udarts.genotype import Genotype, derive
from udarts.models import build_searchnet
from udarts.nets.cell import Cell
from udarts.ops import OPS, OpSettings
from udarts.search.supernet import SuperNet, search_op_names
from udarts.space import all_edges, cell_slots


def random_genotype(seed=0, ops=search_op_names()) -> Genotype:
    torch.manual_seed(seed)
    alphas = [torch.randn(len(all_edges(slot.num_inputs, 3)), len(ops)) for slot in cell_slots(1)]
    return derive(alphas, ops, 3, settings=OpSettings(expand_ratio=2))


def op_type(name: str) -> type:
    return type(OPS[name](4, OpSettings()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_searchnet_contains_exactly_the_genotype_ops(seed):
    genotype = random_genotype(seed)
    net = build_searchnet(genotype, in_channels=3, num_classes=5, width=4)
    for cell, cell_genotype in zip(net.cells, genotype.cells):
        assert cell.edges == cell_genotype.edges()
        assert len(cell.ops) == len(cell_genotype.ops())
        for op, name in zip(cell.ops, cell_genotype.ops()):
            assert type(op) is op_type(name), (cell_genotype.name, name)
            if name.startswith("dil_conv"):
                assert op[0].dilation == (2, 2)
            if name.startswith("mbconv"):
                assert op.conv_pw[0].out_channels == 2 * cell.channels  # expand_ratio from the genotype
    assert net(torch.randn(2, 3, 16, 24)).shape == (2, 5, 16, 24)


def test_searchnet_builds_at_any_width_and_shares_the_u_wiring_with_the_supernet():
    genotype = random_genotype()
    for width in (4, 8, 12):
        net = build_searchnet(genotype, 3, 2, width)
        assert [slot.channels for slot in net.slots] == [width * m for m in (1, 2, 4, 8, 8, 4, 2, 1)]
    supernet = SuperNet(3, 2, 4, num_nodes=3)
    net = build_searchnet(genotype, 3, 2, 4)

    def wiring(model):
        """(name, type) of every module outside the cells' edge ops: stem, resampling, projections, head."""
        return {
            (name, type(module))
            for name, module in model.named_modules()
            if name and ".ops" not in name and not isinstance(module, Cell)
        }

    assert wiring(supernet) == wiring(net)
    assert all(isinstance(cell, Cell) for cell in supernet.cells) and all(type(cell) is Cell for cell in net.cells)
    with pytest.raises(ValueError, match="divisible by 8"):
        net(torch.randn(1, 3, 12, 16))


def test_searchnet_takes_plain_cell_specs():
    from udarts.nets.searchnet import SearchNet

    one_input = [[("conv_3x3", 0)], [("identity", 0), ("mbconv_3x3", 1)]]
    two_inputs = [[("conv_3x3", 0), ("identity", 1)], [("dil_conv_3x3", 2)]]
    net = SearchNet([one_input] * 5 + [two_inputs] * 3, 3, 2, 4, OpSettings(expand_ratio=2))
    assert net.cells[0].edges == [(0, 0), (1, 0), (1, 1)] and net.cells[7].edges == [(0, 0), (0, 1), (1, 2)]
    assert net(torch.randn(1, 3, 16, 16)).shape == (1, 2, 16, 16)
    with pytest.raises(ValueError, match="8 cell specs"):
        SearchNet([one_input] * 7, 3, 2, 4)
