"""Diagnostics of the architecture weights and the warnings built on them."""

import json
import math

import pytest
import torch

from udarts.engine.layout import ALPHAS_LOG, CONFIG_FILE
from udarts.genotype import CellGenotype, derive
from udarts.search.diagnostics import (
    ENTROPY_WARNING,
    MARGIN_WARNING,
    cell_diagnostics,
    diagnose,
    diagnose_record,
    genotype_warnings,
    normalized_entropy,
    softmax_weights,
)
from udarts.space import all_edges, cell_slots

OPS = ("none", "conv_3x3", "mbconv_3x3", "identity")


def test_entropy_is_one_for_uniform_and_zero_for_one_hot_rows():
    assert normalized_entropy(torch.full((5, 8), 1 / 8)) == pytest.approx(1.0)
    assert normalized_entropy(torch.eye(8)[:5]) == pytest.approx(0.0, abs=1e-12)
    half = torch.tensor([[0.5, 0.5, 0.0, 0.0]])
    assert normalized_entropy(half) == pytest.approx(math.log(2) / math.log(4))
    # the mean over edges
    assert normalized_entropy(torch.cat([torch.full((1, 4), 0.25), torch.eye(4)[:1]])) == pytest.approx(0.5)


def test_margins_identity_share_and_unread_inputs_of_a_decoder_cell():
    edges = all_edges(2, 2)  # (0,0) (0,1) (1,0) (1,1) (1,2)
    weights = torch.tensor([
        # none  conv  mbconv identity
        [0.70, 0.10, 0.05, 0.15],  # n0 <- 0: identity 0.15 over conv 0.10 (none ignored): margin 0.05
        [0.10, 0.40, 0.30, 0.20],  # n0 <- 1
        [0.25, 0.25, 0.25, 0.25],  # n1 <- 0
        [0.10, 0.20, 0.20, 0.50],  # n1 <- 1: margin 0.30
        [0.40, 0.30, 0.29, 0.01],  # n1 <- 2
    ])
    assert len(edges) == len(weights)
    cell = CellGenotype("C6", 2, ((("identity", 0),), (("identity", 1),)))
    result = cell_diagnostics(weights, OPS, cell)
    assert result.min_margin == pytest.approx(0.05)
    assert result.mean_margin == pytest.approx((0.05 + 0.30) / 2)
    assert result.identity_share == 1.0 and result.all_identity
    assert result.unread_inputs == ()
    # the gap between the k-th and (k+1)-th strongest incoming edge of each node that keeps k:
    # node 0: 0.40 - 0.15 = 0.25; node 1: 0.50 - 0.30 = 0.20
    assert result.edge_margin == pytest.approx(0.20)
    assert result.entropy == pytest.approx(normalized_entropy(weights))

    cut = cell_diagnostics(weights, OPS, CellGenotype("C6", 2, ((("conv_3x3", 1),), (("identity", 1),))))
    assert cut.unread_inputs == (0,) and cut.identity_share == 0.5


def genotype_with(cell_weights: dict[str, torch.Tensor], top_k: int = 2):
    """Softmax weights for the eight cells, clearly determined (conv_3x3 strong on every edge)
    except the cells given, and the genotype derived from them."""
    weights = []
    for slot in cell_slots(1):
        if slot.name in cell_weights:
            weights.append(cell_weights[slot.name])
            continue
        logits = torch.zeros(len(all_edges(slot.num_inputs, 4)), len(OPS))
        logits[:, OPS.index("conv_3x3")] = 4.0
        logits[:, OPS.index("conv_3x3")] += torch.arange(len(logits)) / len(logits)  # distinct edge scores
        weights.append(torch.softmax(logits, dim=-1))
    genotype = derive([torch.log(w) for w in weights], OPS, 4, top_k)
    return weights, genotype


def test_a_clearly_determined_genotype_gives_no_warning():
    weights, genotype = genotype_with({})
    diagnostics = diagnose(weights, OPS, genotype)
    assert all(d.entropy < 0.3 and d.min_margin > 0.8 and d.identity_share == 0 for d in diagnostics)
    assert genotype_warnings(diagnostics) == []


def test_warnings_name_a_near_uniform_cell():
    generator = torch.Generator().manual_seed(0)
    near_uniform = 0.25 + 0.001 * torch.rand(len(all_edges(1, 4)), len(OPS), generator=generator)
    near_uniform = near_uniform / near_uniform.sum(-1, keepdim=True)
    weights, genotype = genotype_with({"C3": near_uniform})
    diagnostics = diagnose(weights, OPS, genotype)
    assert diagnostics[2].entropy > ENTROPY_WARNING and diagnostics[2].min_margin < MARGIN_WARNING
    warnings = genotype_warnings(diagnostics)
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("weakly determined cells C3 (1.000): the alphas are barely away from uniform")
    assert warnings[1].startswith("weakly determined cells C3 (0.00")
    assert "a kept edge's op is barely ahead of the runner-up" in warnings[1]


def test_warnings_name_an_all_identity_cell_and_a_cut_off_decoder_cell():
    identity = torch.full((len(all_edges(1, 4)), len(OPS)), 0.01)
    identity[:, OPS.index("identity")] = 0.97
    weights, genotype = genotype_with({"C2": identity})
    # derivation keeps every input read; cut C7 off its skip by hand, as an edited genotype can be
    cells = list(genotype.cells)
    cells[6] = CellGenotype("C7", 2, tuple((("conv_3x3", 1),) for _ in range(4)))
    genotype = type(genotype)(cells=tuple(cells), op_set=genotype.op_set, num_nodes=4)
    warnings = genotype_warnings(diagnose(weights, OPS, genotype))
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("degenerate cells C2: every kept edge is 'identity'")
    assert warnings[1] == (
        "degenerate cell C7: no kept edge reads its input 0 (the encoder skip from C2): that path is cut off"
    )


def test_diagnostics_of_an_old_alphas_record_are_computed_from_its_weights():
    generator = torch.Generator().manual_seed(1)
    alphas = [torch.randn(len(all_edges(slot.num_inputs, 3)), len(OPS), generator=generator) for slot in cell_slots(1)]
    alphas[0][:, 2] = -float("inf")  # a pruned op: weight 0
    masks = [torch.isfinite(a) for a in alphas]
    weights = softmax_weights([a.masked_fill(~m, 0.0) for a, m in zip(alphas, masks)], masks)
    record = json.loads(json.dumps({
        "epoch": 3, "op_names": list(OPS), "cells": {s.name: w.tolist() for s, w in zip(cell_slots(1), weights)},
    }))
    genotype, diagnostics = diagnose_record(record, top_k=1)
    expected = derive([a.masked_fill(~m, 0.0) for a, m in zip(alphas, masks)], OPS, 3, 1, op_masks=masks)
    assert genotype.cells == expected.cells
    assert [d.entropy for d in diagnostics] == pytest.approx([normalized_entropy(w) for w in weights])
    assert all(d.unread_inputs == () for d in diagnostics)


def test_report_computes_the_diagnostics_of_an_old_alphas_log(tmp_path):
    """``udarts report`` on a search folder whose alphas.jsonl predates the diagnostics key."""
    from udarts.app.report import report_search_run
    from udarts.viz.figures import is_png

    run = tmp_path / "search-old"
    run.mkdir()
    (run / CONFIG_FILE).write_text("model: {num_nodes: 4}\nsearch: {top_k: 1, epochs: 2}\n")
    generator = torch.Generator().manual_seed(3)
    lines = []
    for epoch in (1, 2):
        cells = {}
        for slot in cell_slots(1):
            logits = 0.01 * torch.randn(len(all_edges(slot.num_inputs, 4)), len(OPS), generator=generator)
            if epoch == 2 and slot.name != "C5":
                logits[:, OPS.index("conv_3x3")] += 3.0 + torch.arange(len(logits)) / len(logits)
            if epoch == 2 and slot.name == "C5":
                logits[:, OPS.index("identity")] += 3.0
            cells[slot.name] = torch.softmax(logits, dim=-1).tolist()
        lines.append(json.dumps({"epoch": epoch, "op_names": list(OPS), "cells": cells}))
    (run / ALPHAS_LOG).write_text("\n".join(lines) + "\n")
    written = report_search_run(run)
    assert is_png(written["diagnostics"])
    summary = (run / "summary.md").read_text()
    assert "## How determined is the genotype (epoch 2)" in summary and "top_k 1, max_identity None" in summary
    assert "| C5 | " in summary and " | 1.00 | - |" in summary  # C5 all identity, no input cut off
    assert "- degenerate cells C5: every kept edge is 'identity'" in summary
    assert "weakly determined" not in summary


def test_the_search_derives_with_the_identity_cap_and_logs_diagnostics(tmp_path):
    from udarts.engine.runs import Run
    from udarts.engine.searcher import current_genotype, genotype_diagnostics, log_alphas
    from udarts.search.supernet import SuperNet, search_op_names

    torch.manual_seed(0)
    model = SuperNet(3, 3, 4, num_nodes=2, op_names=search_op_names(("conv_3x3", "identity")))
    with torch.no_grad():
        for alphas in model.alpha_parameters():
            alphas[:, -1] = 2.0  # identity everywhere
    free = current_genotype(model, 2, {"seed": 0})
    assert all(set(cell.ops()) == {"identity"} for cell in free.cells)
    capped = current_genotype(model, 2, {"seed": 0}, max_identity=1)
    assert all(cell.ops().count("identity") == 1 for cell in capped.cells)
    assert capped.search == {"seed": 0, "top_k": 2, "max_identity": 1}
    assert [d.identity_share for d in genotype_diagnostics(model, free)] == [1.0] * 8

    run = Run(tmp_path / "run")
    log_alphas(run, model, 1, capped)
    record = json.loads((tmp_path / "run" / ALPHAS_LOG).read_text())
    assert record["diagnostics"]["C1"]["identity_share"] == pytest.approx(1 / 3)  # 3 kept edges, one identity
    run.close()
