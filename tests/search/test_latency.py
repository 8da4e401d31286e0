"""The latency target, a part of the search loop: its loss term is MnasNet's hinge in log form on
the expected latency of the derived network, it logs that latency and the target every epoch,
keeps its table in the run folder, and a resumed search prices with that table."""

import json
import math

import pytest
import torch

from udarts.cli import main
from udarts.config import Config, ConfigError
from udarts.engine.layout import LAST_CHECKPOINT, METRICS_LOG
from udarts.latency.table import FIXED_PARTS, CellCosts, LatencyShape, LatencyTable
from udarts.search.latency import LATENCY_TABLE_FILE, ExpectedLatency, LatencyTargetPenalty
from udarts.search.loop import Epoch, SearchContext
from udarts.search.supernet import SuperNet, search_op_names
from udarts.space import cell_slots

OPS = search_op_names(("conv_3x3", "conv_5x5", "identity"))
OP_MS = {"conv_3x3": 1.0, "conv_5x5": 3.0, "identity": 0.1}
TINY = ["--no-progress", "--image-size", "16x16", "--batch-size", "4", "--width", "4", "--set", "data.num_samples=16",
        "--set", "model.num_nodes=2", "--set", "model.ops=[conv_3x3,conv_5x5,identity]"]


def table(num_classes: int = 2) -> LatencyTable:
    """A made-up table for SEARCH-Net of width 4 at 16x16 (2 nodes per cell): every op costs the
    same in every cell (``OP_MS``), every other part 0.5 ms."""
    cells = {slot.name: CellCosts(0.5, 0.5, dict(OP_MS)) for slot in cell_slots(1)}
    return LatencyTable({"device": "test", "runtime": "eager", "threads": 1, "batch_size": 1, "versions": {}},
                        LatencyShape((16, 16), 4, num_classes, num_nodes=2), tuple(OP_MS),
                        {part: 0.5 for part in FIXED_PARTS}, cells)


def supernet() -> SuperNet:
    torch.manual_seed(0)
    return SuperNet(3, 2, 4, num_nodes=2, op_names=OPS)


def test_a_decided_supernet_is_priced_as_its_derived_genotype():
    from udarts.engine.searcher import current_genotype

    model = supernet()
    with torch.no_grad():
        for alphas in model.alpha_parameters():
            alphas[:, OPS.index("conv_5x5")] = 30.0  # every edge has chosen conv 5x5
    expected = ExpectedLatency(model, table(), top_k=2).expected_ms().detach()
    assert float(expected) == pytest.approx(table().predict_ms(current_genotype(model, 2, {})), rel=1e-6)


def test_the_penalty_pulls_only_above_the_target_and_towards_cheaper_ops():
    model = supernet()
    expected = float(ExpectedLatency(model, table(), 2).expected_ms().detach())
    under = LatencyTargetPenalty(ExpectedLatency(model, table(), 2), expected * 1.5, weight=2.0)
    assert float(under.loss_terms()["latency"]) == 0.0
    over = LatencyTargetPenalty(ExpectedLatency(model, table(), 2), expected / 2, weight=2.0)
    term = over.loss_terms()["latency"]
    assert float(term) == pytest.approx(2.0 * math.log(2.0), rel=1e-5)
    grads = torch.autograd.grad(term, model.alpha_parameters())
    assert all((grad[:, OPS.index("conv_5x5")] > 0).all() and (grad[:, OPS.index("identity")] < 0).all() for grad in grads)


def test_the_part_logs_the_expected_latency_and_keeps_its_table(tmp_path):
    table().save(tmp_path / "table.json")
    config = Config().updated({"data": {"image_size": [16, 16]}, "model": {"width": 4, "num_nodes": 2},
                               "search": {"latency_target_ms": 20.0, "latency_table": str(tmp_path / "table.json")}}, "test")
    model = supernet()
    context = SearchContext(steps_per_epoch=1)
    assert LatencyTargetPenalty.from_config(Config(), model, context) is None  # off without a target
    part = LatencyTargetPenalty.from_config(config, model, context)
    epoch = Epoch(0, 1, update_alphas=True, seed=0)
    part.on_epoch_end(epoch)
    assert epoch.record == {"expected_latency_ms": pytest.approx(float(part.expected_ms())), "latency_target_ms": 20.0}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    part.on_search_start(None)  # a process that does not write the run writes nothing
    assert not (run_dir / LATENCY_TABLE_FILE).exists()
    part.on_search_start(run_dir)
    assert LatencyTable.load(run_dir / LATENCY_TABLE_FILE) == table()
    # a resumed run prices with the table it recorded, not with the config's file
    (tmp_path / "table.json").unlink()
    resumed = LatencyTargetPenalty.from_config(config, model, SearchContext(steps_per_epoch=1, resume=run_dir))
    assert resumed.expected.table == table()
    with pytest.raises(ConfigError, match="search.latency_table"):
        LatencyTargetPenalty.from_config(config, model, context)


@pytest.mark.slow
def test_a_latency_targeted_search_logs_every_epoch_and_resumes_with_its_table(tmp_path, capsys):
    table().save(tmp_path / "table.json")
    search = ["search", *TINY, "--latency-target", "20", "--latency-table", str(tmp_path / "table.json")]
    assert main([*search, "--epochs", "2", "--out", str(tmp_path / "full")]) == 0
    assert "predicted latency of the derived genotype" in capsys.readouterr().out
    assert main([*search, "--epochs", "1", "--out", str(tmp_path / "cut")]) == 0
    (tmp_path / "table.json").unlink()  # the resumed run reads the table of its run folder
    assert main(["search", "--resume", str(tmp_path / "cut"), "--epochs", "2", "--no-progress"]) == 0
    logs = [[json.loads(line) for line in (tmp_path / run / METRICS_LOG).read_text().splitlines()]
            for run in ("full", "cut")]
    for log in logs:
        assert [record["latency_target_ms"] for record in log] == [20.0, 20.0]
        assert all(record["expected_latency_ms"] > 0 for record in log)
    assert [r["expected_latency_ms"] for r in logs[0]] == [r["expected_latency_ms"] for r in logs[1]]
    full, cut = (torch.load(tmp_path / run / LAST_CHECKPOINT, weights_only=False) for run in ("full", "cut"))
    for key in full["model"]:
        torch.testing.assert_close(full["model"][key], cut["model"][key], rtol=0, atol=0, msg=key)
