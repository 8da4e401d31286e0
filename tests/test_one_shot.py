"""One-shot scores (random search with weight sharing): a genotype laid onto a supernet computes
exactly its own sub-network, batch-norm statistics are re-estimated per genotype and restored,
and ``udarts derive --selection one_shot`` end to end."""

import json

import pytest
import torch
from torch import nn

from udarts.cli import main
from udarts.engine.layout import derived_genotype_name, one_shot_scores_name
from udarts.genotype import Genotype
from udarts.losses import build_loss
from udarts.ops import OpSettings
from udarts.random_genotypes import sample_genotype
from udarts.search.one_shot import genotype_masks, laid_onto, one_shot_scores, recalibrate_batchnorm
from udarts.search.supernet import SuperNet
from udarts.viz.figures import is_png

OPS = ("none", "conv_3x3", "conv_5x5", "identity")


def supernet(mode: str) -> SuperNet:
    torch.manual_seed(0)
    return SuperNet(3, 3, 4, num_nodes=2, op_names=OPS, settings=OpSettings(affine=False), mode=mode,
                    partial_channel_k=2).eval()


def kept_genes(model: SuperNet, genotype: Genotype) -> set[tuple[int, int, int]]:
    """(cell, edge index, op index) of every op the genotype keeps."""
    genes = set()
    for cell_index, (cell, genotype_cell) in enumerate(zip(model.cells, genotype.cells)):
        for edge, op in zip(genotype_cell.edges(), genotype_cell.ops()):
            genes.add((cell_index, cell.edges.index(edge), OPS.index(op)))
    return genes


def genotype_with_convolutions() -> Genotype:
    for index in range(50):
        genotype = sample_genotype(0, index, OPS, num_nodes=2)
        if sum(op.startswith("conv") for cell in genotype.cells for op in cell.ops()) >= 4:
            return genotype
    raise AssertionError("no draw with convolutions")


def test_genotype_masks_keep_one_op_on_each_kept_edge_and_remove_the_others():
    genotype = sample_genotype(3, 0, OPS, num_nodes=2)
    cell = supernet("darts").cells[6]  # a decoder cell: two inputs
    op_mask, edge_mask = genotype_masks(genotype.cells[6], cell.edges, OPS)
    assert int(edge_mask.sum()) == sum(len(node) for node in genotype.cells[6].nodes)
    assert bool((op_mask.sum(1) == 1).all())  # one op per edge; removed edges keep only 'none'
    assert bool(op_mask[~edge_mask, 0].all())
    used = genotype.cells[6].ops()[0]
    with pytest.raises(ValueError, match=f"cell C7: op '{used}' was not searched"):
        genotype_masks(genotype.cells[6], cell.edges, tuple(op for op in OPS if op != used))
    with pytest.raises(ValueError, match=r"cell C7: edge \(\d, \d\) .* is not an edge of the supernet's cell"):
        genotype_masks(genotype.cells[6], cell.edges[:1], OPS)


@pytest.mark.parametrize("mode", ["darts", "pc_darts"])
def test_a_laid_genotype_computes_only_its_own_ops_and_the_masks_are_restored(mode):
    model = supernet(mode)
    genotype = genotype_with_convolutions()
    images = torch.randn(2, 3, 32, 32)
    before = [(cell.op_mask.clone(), cell.edge_mask.clone()) for cell in model.cells]
    kept = kept_genes(model, genotype)
    with torch.no_grad(), laid_onto(model, genotype):
        # removed edges add nothing, PC-DARTS's bypassed channels included (the edge mask, not only 'none')
        removed = {(cell_index, edge_index) for cell_index, cell in enumerate(model.cells)
                   for edge_index, kept_edge in enumerate(cell.edge_mask.tolist()) if not kept_edge}
        assert removed and removed.isdisjoint({(cell_index, edge_index) for cell_index, edge_index, _ in kept})
        assert sum(len(cell.edges) for cell in model.cells) == len(removed) + len(kept)
        for cell_index, cell in enumerate(model.cells):  # a kept edge weighs its op by 1, the others by 0
            weights = cell.op_weights()  # (num_edges, num_ops)
            for edge_index in range(len(cell.edges)):
                ops = [op_index for c, e, op_index in kept if (c, e) == (cell_index, edge_index)]
                if ops:
                    assert weights[edge_index].tolist() == [float(index == ops[0]) for index in range(len(OPS))]
        reference = model(images)
        for cell_index, cell in enumerate(model.cells):  # every op the genotype does not keep: new weights
            for edge_index, mixed in enumerate(cell.ops):
                for op_index, op in enumerate(mixed.ops):
                    if (cell_index, edge_index, op_index) not in kept:
                        for parameter in op.parameters():
                            parameter.add_(torch.randn_like(parameter))
        assert torch.allclose(model(images), reference, atol=1e-6)  # the sub-network alone decides the output
        cell_index, edge_index, op_index = next(gene for gene in sorted(kept) if OPS[gene[2]].startswith("conv"))
        for parameter in model.cells[cell_index].ops[edge_index].ops[op_index].parameters():
            parameter.add_(torch.randn_like(parameter))
        assert not torch.allclose(model(images), reference, atol=1e-4)  # a kept op's weights do matter
    assert all(torch.equal(cell.op_mask, op_mask) and torch.equal(cell.edge_mask, edge_mask)
               for cell, (op_mask, edge_mask) in zip(model.cells, before))


def test_batchnorm_recalibration_is_a_cumulative_average_of_the_batches():
    model = nn.Sequential(nn.BatchNorm2d(2, affine=False))
    model[0].running_mean.fill_(5.0)
    batches = [(torch.randn(4, 2, 3, 3) + shift, None) for shift in (1.0, 3.0)]
    recalibrate_batchnorm(model, batches)
    expected = torch.stack([images.mean(dim=(0, 2, 3)) for images, _ in batches]).mean(0)
    assert torch.allclose(model[0].running_mean, expected, atol=1e-6)
    assert model[0].momentum == 0.1 and not model.training


def test_one_shot_scores_restore_the_supernet_and_tell_sub_networks_apart():
    model = supernet("pc_darts")
    torch.manual_seed(1)
    batches = [(torch.randn(4, 3, 32, 32), torch.randint(0, 3, (4, 32, 32))) for _ in range(2)]
    buffers = {name: buffer.clone() for name, buffer in model.named_buffers()}
    genotypes = [sample_genotype(0, index, OPS, num_nodes=2) for index in range(3)]
    loss_fn = build_loss("ce", None)
    scores = one_shot_scores(model, genotypes, batches[:1], batches[1:], loss_fn, num_classes=3)
    assert len(scores) == 3 and all(0 <= score.miou <= 1 and score.loss > 0 for score in scores)
    assert len({round(score.loss, 6) for score in scores}) == 3  # three sub-networks, three different losses
    assert all(torch.equal(buffer, buffers[name]) for name, buffer in model.named_buffers())  # BN statistics, masks
    assert scores == one_shot_scores(model, genotypes, batches[:1], batches[1:], loss_fn, num_classes=3)  # deterministic
    with pytest.raises(ValueError, match="need recalibration and evaluation batches, got 2 and 0"):
        one_shot_scores(model, genotypes, batches, [], loss_fn, num_classes=3)
    with pytest.raises(ValueError, match="need recalibration and evaluation batches, got 0 and 2"):
        one_shot_scores(model, genotypes, [], batches, loss_fn, num_classes=3)
    calls = []

    def failing_loss(logits, masks):  # fails on the second genotype, after its masks and BN statistics changed
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        return loss_fn(logits, masks)

    with pytest.raises(RuntimeError, match="out of memory"):
        one_shot_scores(model, genotypes, batches[:1], batches[1:], failing_loss, num_classes=3)
    assert all(torch.equal(buffer, buffers[name]) for name, buffer in model.named_buffers())  # restored on error too
    pruned = model.cells[5].op_mask.clone()  # progressive pruning took every op but 'none' and identity from C6
    pruned[:, 1:3] = False
    model.cells[5].set_op_mask(pruned)
    uses_a_pruned_op = next(genotype for genotype in genotypes if {"conv_3x3", "conv_5x5"} & set(genotype.cells[5].ops()))
    with pytest.raises(ValueError, match="cell C6: op 'conv_.x.' on edge .* was pruned from the supernet"):
        one_shot_scores(model, [uses_a_pruned_op], batches, batches, loss_fn, num_classes=3)
    assert torch.equal(model.cells[5].op_mask, pruned) and all(bool(cell.op_mask.all()) for cell in model.cells[:5])
    wrong = sample_genotype(0, 0, OPS, num_nodes=3)
    with pytest.raises(ValueError, match="3 nodes per cell, the supernet 2"):
        one_shot_scores(model, [wrong], batches, batches, loss_fn, num_classes=3)


def test_derive_with_one_shot_selection_from_the_command_line(tmp_path, capsys, tiny_pc_darts_search):
    search_dir = tiny_pc_darts_search
    assert main(["derive", str(search_dir), "--selection", "one_shot", "--candidates", "3", "--batches", "1",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"genotype: {search_dir / derived_genotype_name(2, None, '-os3-b1')}" in out and "one-shot: best of 3 random genotypes" in out
    genotype = Genotype.load(search_dir / derived_genotype_name(2, None, "-os3-b1"))
    record = json.loads((search_dir / one_shot_scores_name(2, "-os3-b1")).read_text())
    scores = [candidate["miou"] for candidate in record["candidates"]]
    assert len(scores) == 3 and record["chosen"] == scores.index(max(scores))
    assert record["alpha_genotype"]["rank"] == 1 + sum(score > record["alpha_genotype"]["miou"] for score in scores)
    assert (record["evaluation_batches"], record["recalibration_batches"]) == (1, 1)
    assert is_png((search_dir / one_shot_scores_name(2, "-os3-b1")).with_suffix(".png"))
    chosen = Genotype.from_dict(record["candidates"][record["chosen"]]["genotype"])
    assert genotype.cells == chosen.cells and genotype.search["selection"] == "one_shot"
    assert genotype.search["one_shot_index"] == record["candidates"][record["chosen"]]["index"]
    assert main(["derive", str(search_dir), "--selection", "one_shot", "--candidates", "3", "--batches", "1",
                 "--no-progress", "--out", str(tmp_path / "again.json")]) == 0
    assert Genotype.load(tmp_path / "again.json").cells == genotype.cells  # the search's seed fixes the draws
    capsys.readouterr()
    for args, message in ((["--candidates", "3"], "--candidates applies to --selection one_shot only"),
                          (["--selection", "one_shot", "--candidates", "0"], "--candidates: expected an integer >= 1, got 0"),
                          (["--selection", "one_shot", "--max-identity", "1"], "--max-identity does not apply to --selection one_shot")):
        assert main(["derive", str(search_dir), *args]) == 2
        assert message in capsys.readouterr().err


def test_one_shot_scores_of_a_sampled_supernet_leave_its_sampler_where_it_was():
    model = supernet("gdas")
    batches = [(torch.randn(4, 3, 32, 32), torch.randint(0, 3, (4, 32, 32)))]
    state = model.sampler.generator.get_state()
    scores = one_shot_scores(model, [sample_genotype(0, 0, OPS, num_nodes=2)], batches, batches, build_loss("ce", None), 3)
    assert len(scores) == 1 and torch.equal(model.sampler.generator.get_state(), state)
