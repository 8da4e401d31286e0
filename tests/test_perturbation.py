"""DARTS-PT's perturbation-based selection: a planted supernet whose loss says which op and which
edges it needs, the edge mask that removes a whole PC-DARTS edge, and ``udarts derive
--selection perturbation`` end to end."""

import functools

import pytest
import torch

from udarts.cli import main
from udarts.engine.layout import derived_genotype_name
from udarts.genotype import Genotype, select_cell
from udarts.ops import OpSettings
from udarts.search.cell import SearchCell
from udarts.search.partial_channel import PartialChannelMixedOp
from udarts.search.perturbation import perturbation_scores, selection_weights
from udarts.space import all_edges

OPS = ("none", "conv_3x3", "conv_5x5", "identity")
CONV_3X3, CONV_5X5, IDENTITY = 1, 2, 3


class PlantedCell:
    """A search cell stand-in: only its op and edge masks, which the planted loss reads."""

    def __init__(self, num_inputs: int, num_nodes: int) -> None:
        self.num_inputs, self.num_nodes = num_inputs, num_nodes
        self.edges = all_edges(num_inputs, num_nodes)
        self.op_mask = torch.ones(len(self.edges), len(OPS), dtype=torch.bool)
        self.edge_mask = torch.ones(len(self.edges), dtype=torch.bool)

    def set_op_mask(self, mask: torch.Tensor) -> None:
        assert bool(mask.any(dim=1).all()), "an edge lost every op"
        self.op_mask = mask.clone()

    def set_edge_mask(self, mask: torch.Tensor) -> None:
        self.edge_mask = mask.clone()


def planted_loss(cells, importance, needed=CONV_5X5, secondary=None):
    """Each edge costs its importance when the needed op is gone from it (or the edge is), and
    a tenth of that when the ``secondary`` op is."""
    def loss() -> float:
        total = 0.0
        for cell, weights in zip(cells, importance):
            total += float(((~cell.op_mask[:, needed]) | ~cell.edge_mask).float() @ weights)
            if secondary is not None:
                total += 0.1 * float(((~cell.op_mask[:, secondary]) | ~cell.edge_mask).float() @ weights)
        return total
    return loss


def test_perturbation_keeps_the_needed_op_and_the_edges_whose_removal_hurts_most():
    cells = [PlantedCell(2, 3), PlantedCell(1, 3)]  # with these the top edges read every input: no swap
    importance = [torch.arange(len(cell.edges), dtype=torch.float) + 1 for cell in cells]
    before = [cell.op_mask.clone() for cell in cells]
    loss = planted_loss(cells, importance)
    snapshots = []  # at each measurement: decided edges (one op left), removed edges

    def measured() -> float:
        snapshots.append((sum(int((cell.op_mask.sum(1) == 1).sum()) for cell in cells),
                          sum(int((~cell.edge_mask).sum()) for cell in cells)))
        return loss()

    scores = perturbation_scores(cells, OPS, measured, top_k=2, seed=3)
    assert all(torch.equal(cell.op_mask, mask) and bool(cell.edge_mask.all()) for cell, mask in zip(cells, before))
    edges = sum(len(cell.edges) for cell in cells)
    assert len(snapshots) == edges * (len(OPS) - 1) + edges  # every candidate op of every edge, then every edge
    # progressive: while an edge is scored, the edges decided before it stay reduced to their op
    first_pass = [decided for decided, _ in snapshots[: edges * (len(OPS) - 1)]]
    assert first_pass == [edge // (len(OPS) - 1) for edge in range(edges * (len(OPS) - 1))]
    # and the nodes decided before keep only their top 2 edges (plus the one edge being removed)
    removed = [count for _, count in snapshots[edges * (len(OPS) - 1):]]
    assert removed == sorted(removed) and removed[0] == 1 and removed[-1] > 1
    for cell, cell_scores, weights in zip(cells, scores, importance):
        assert cell_scores.chosen.tolist() == [CONV_5X5] * len(cell.edges)
        assert torch.isnan(cell_scores.op_removal[:, 0]).all()  # 'none' is never a candidate
        genotype = select_cell("C", selection_weights(cell_scores), OPS, cell.num_inputs, cell.num_nodes, top_k=2)
        assert set(genotype.ops()) == {"conv_5x5"}
        for node, genes in enumerate(genotype.nodes):  # each node keeps its two most important edges
            incoming = [source for target, source in cell.edges if target == node]
            assert sorted(source for _, source in genes) == sorted(incoming)[-2:]


def test_the_identity_cap_replaces_identity_by_the_op_whose_removal_hurts_second_most():
    cell = PlantedCell(2, 2)
    loss = planted_loss([cell], [torch.ones(len(cell.edges))], needed=IDENTITY, secondary=CONV_5X5)
    weights = selection_weights(perturbation_scores([cell], OPS, loss)[0])
    assert torch.all(weights[:, 0] == 0)  # 'none' never wins
    assert select_cell("C", weights, OPS, 2, 2).ops() == ["identity"] * 4  # 2 kept edges on each of 2 nodes
    capped = select_cell("C", weights, OPS, 2, 2, max_identity=0)
    assert capped.ops() == ["conv_5x5"] * 4  # the runner-up by removal, not the lowest op index (conv_3x3)


def test_masks_are_restored_when_the_evaluation_fails_midway():
    cell = PlantedCell(1, 2)
    pruned = cell.op_mask.clone()
    pruned[0, CONV_3X3] = False  # a checkpoint's pruning mask
    cell.set_op_mask(pruned)
    calls = []

    def failing() -> float:
        calls.append(1)
        if len(calls) == 2 + 3 + 3 + 3:  # the second pass's last measurement (ops: 2 + 3 + 3, then 3 edges), an edge removed
            assert not bool(cell.edge_mask.all()) and int((cell.op_mask.sum(1) == 1).sum()) == 3
            raise RuntimeError("out of memory")
        return float(len(calls) % 5)

    with pytest.raises(RuntimeError, match="out of memory"):
        perturbation_scores([cell], OPS, failing, top_k=1)
    assert torch.equal(cell.op_mask, pruned) and bool(cell.edge_mask.all())
    with pytest.raises(FloatingPointError, match="loss is nan with op .* of cell 1 edge"):
        perturbation_scores([cell], OPS, lambda: float("nan"))
    assert torch.equal(cell.op_mask, pruned)


def test_the_edge_mask_removes_a_whole_partial_channel_edge():
    """Reducing a PC-DARTS edge to 'none' still passes its bypassed channels; the edge mask does not."""
    torch.manual_seed(0)
    cell = SearchCell(1, 4, 1, OPS, OpSettings(), mixed_op=functools.partial(PartialChannelMixedOp, k=2),
                      edge_normalization=True).eval()
    inputs = [torch.randn(2, 4, 8, 8)]
    with torch.no_grad():
        nothing = cell.project(torch.zeros(2, 4, 8, 8))
        only_none = torch.zeros(1, len(OPS), dtype=torch.bool)
        only_none[0, 0] = True
        cell.set_op_mask(only_none)
        assert not torch.allclose(cell(inputs), nothing)  # the bypassed half still flows
        cell.set_edge_mask(torch.zeros(1, dtype=torch.bool))
        assert torch.allclose(cell(inputs), nothing)
        cell.set_edge_mask(torch.ones(1, dtype=torch.bool))
        assert not torch.allclose(cell(inputs), nothing)
    with pytest.raises(ValueError, match="edge mask of shape"):
        cell.set_edge_mask(torch.ones(3, dtype=torch.bool))


@pytest.mark.slow
def test_derive_with_perturbation_selection_from_the_command_line(tmp_path, capsys, tiny_pc_darts_search, tiny_search_flags):
    search_dir = tiny_pc_darts_search
    assert main(["derive", str(search_dir), "--selection", "perturbation", "--batches", "1", "--no-progress"]) == 0
    assert f"genotype: {search_dir / derived_genotype_name(2, None, '-pt1')}" in capsys.readouterr().out
    genotype = Genotype.load(search_dir / derived_genotype_name(2, None, "-pt1"))
    assert genotype.search["selection"] == "perturbation" and genotype.search["selection_batches"] == 1
    decoder = [cell for cell in genotype.cells if cell.num_inputs == 2]
    assert decoder and all(len(node) == 2 for cell in decoder for node in cell.nodes)
    # the seed fixes the order of the decisions: the same genotype again
    assert main(["derive", str(search_dir), "--selection", "perturbation", "--batches", "1", "--no-progress",
                 "--out", str(tmp_path / "again.json")]) == 0
    assert Genotype.load(tmp_path / "again.json").cells == genotype.cells
    # a sampled mode's supernet runs one op per edge in eval mode: refused, naming the mode
    gdas_dir = tmp_path / "gdas"
    assert main(["search", *tiny_search_flags, "--epochs", "1", "--set", "search.mode=gdas", "--out", str(gdas_dir)]) == 0
    capsys.readouterr()
    for args, message in (([str(gdas_dir), "--selection", "perturbation"], "the search ran in mode 'gdas'"),
                          ([str(search_dir), "--selection", "perturbation", "--batches", "0"], "--batches: expected an integer >= 1, got 0"),
                          ([str(search_dir), "--batches", "2"], "apply to --selection perturbation and one_shot only")):
        assert main(["derive", *args]) == 2
        assert message in capsys.readouterr().err
