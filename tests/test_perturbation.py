"""DARTS-PT's perturbation-based selection: a planted supernet whose loss says which op and which
edges it needs, and ``udarts derive --selection perturbation`` end to end."""

import pytest
import torch

from udarts.cli import main
from udarts.genotype import Genotype, select_cell
from udarts.search.perturbation import perturbation_scores, selection_weights
from udarts.space import all_edges

OPS = ("none", "conv_3x3", "conv_5x5", "identity")
NEEDED = 2  # conv_5x5: the op the planted loss needs on every edge


class PlantedCell:
    """A search cell stand-in: only its op mask, which the planted loss reads."""

    def __init__(self, num_inputs: int, num_nodes: int) -> None:
        self.num_inputs, self.num_nodes = num_inputs, num_nodes
        self.edges = all_edges(num_inputs, num_nodes)
        self.op_mask = torch.ones(len(self.edges), len(OPS), dtype=torch.bool)

    def set_op_mask(self, mask: torch.Tensor) -> None:
        assert bool(mask.any(dim=1).all()), "an edge lost every op"
        self.op_mask = mask.clone()


def planted_loss(cells, importance):
    """Each edge costs its importance when the needed op is gone from it, and a little when
    ``identity`` is (identity's alpha would look strong, but the loss barely needs it)."""
    def loss() -> float:
        total = 0.0
        for cell, weights in zip(cells, importance):
            total += float((~cell.op_mask[:, NEEDED]).float() @ weights)
            total += 0.01 * float((~cell.op_mask[:, 3]).float().sum())
        return total
    return loss


def test_perturbation_keeps_the_needed_op_and_the_edges_whose_removal_hurts_most():
    cells = [PlantedCell(2, 3), PlantedCell(1, 3)]  # with these the top edges read every input: no swap
    importance = [torch.arange(len(cell.edges), dtype=torch.float) + 1 for cell in cells]
    before = [cell.op_mask.clone() for cell in cells]
    evaluations = []
    loss = planted_loss(cells, importance)
    scores = perturbation_scores(cells, OPS, lambda: evaluations.append(1) or loss(), seed=3)
    assert all(torch.equal(cell.op_mask, mask) for cell, mask in zip(cells, before))  # masks restored
    edges = sum(len(cell.edges) for cell in cells)
    assert len(evaluations) == edges * (len(OPS) - 1) + edges  # every candidate op, then every edge
    for cell, cell_scores, weights in zip(cells, scores, importance):
        assert cell_scores.chosen.tolist() == [NEEDED] * len(cell.edges)
        assert torch.isnan(cell_scores.op_removal[:, 0]).all()  # 'none' is never scored
        # removing a decided edge costs its importance: the ranking follows it
        assert torch.argsort(cell_scores.edge_removal).tolist() == torch.argsort(weights).tolist()
        genotype = select_cell("C", selection_weights(cell_scores), OPS, cell.num_inputs, cell.num_nodes, top_k=2)
        assert set(genotype.ops()) == {OPS[NEEDED]}
        # each node keeps its two most important incoming edges (the later sources here)
        for node, genes in enumerate(genotype.nodes):
            incoming = [source for target, source in cell.edges if target == node]
            assert sorted(source for _, source in genes) == sorted(incoming)[-2:]


def test_the_identity_cap_falls_back_on_the_runner_up_by_removal_score():
    cell = PlantedCell(2, 2)
    scores = perturbation_scores([cell], OPS, planted_loss([cell], [torch.ones(len(cell.edges))]))[0]
    weights = selection_weights(scores)
    assert torch.all(weights[:, 0] == 0)  # 'none' never wins
    ranked = torch.argsort(weights, dim=1, descending=True)
    assert ranked[:, 0].tolist() == [NEEDED] * len(cell.edges)
    assert ranked[:, 1].tolist() == [3] * len(cell.edges)  # identity: its removal costs 0.01, conv_3x3's nothing


def test_masks_are_restored_when_the_evaluation_fails():
    cell = PlantedCell(1, 2)
    calls = []

    def failing() -> float:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("out of memory")
        return 0.0

    with pytest.raises(RuntimeError, match="out of memory"):
        perturbation_scores([cell], OPS, failing)
    assert bool(cell.op_mask.all())


def test_derive_with_perturbation_selection_from_the_command_line(tmp_path, capsys):
    tiny = ["--no-progress", "--image-size", "16x16", "--batch-size", "4", "--width", "4",
            "--set", "data.num_samples=24", "--set", "model.num_nodes=2"]
    search_dir = tmp_path / "search"
    assert main(["search", *tiny, "--epochs", "1", "--out", str(search_dir)]) == 0
    capsys.readouterr()
    assert main(["derive", str(search_dir), "--selection", "perturbation", "--batches", "1", "--no-progress"]) == 0
    assert f"genotype: {search_dir / 'genotype-top2-pt.json'}" in capsys.readouterr().out
    genotype = Genotype.load(search_dir / "genotype-top2-pt.json")
    assert genotype.search["selection"] == "perturbation" and genotype.search["selection_batches"] == 1
    assert all(len(node) == 2 for cell in genotype.cells for node in cell.nodes[1:])
    assert "none" not in {op for cell in genotype.cells for op in cell.ops()}
    # a sampled mode's supernet runs one op per edge in eval mode: refused, naming the mode
    gdas_dir = tmp_path / "gdas"
    assert main(["search", *tiny, "--epochs", "1", "--set", "search.mode=gdas", "--out", str(gdas_dir)]) == 0
    capsys.readouterr()
    assert main(["derive", str(gdas_dir), "--selection", "perturbation"]) == 2
    assert "the search ran in mode 'gdas'" in capsys.readouterr().err
    assert main(["derive", str(search_dir), "--selection", "perturbation", "--batches", "0"]) == 2
    assert "--batches: expected an integer >= 1, got 0" in capsys.readouterr().err
