"""Latency tables, the predictor, and the latency-targeted search (udarts.latency, udarts.search.latency)."""

import json

import pytest
import torch

from udarts.cli import main
from udarts.engine.layout import BEST_CHECKPOINT, LATENCY_PNG, LATENCY_TABLE_FILE, METRICS_LOG, SUMMARY_MARKDOWN
from udarts.genotype import CellGenotype, Genotype
from udarts.latency import LatencyShape, LatencyTable, LatencyTableError
from udarts.latency.measure import measure_table
from udarts.latency.table import FIXED_PARTS, FORMAT
from udarts.ops import PAPER_OPS
from udarts.random_genotypes import sample_genotype
from udarts.search.latency import ExpectedLatency
from udarts.search.supernet import SuperNet
from udarts.space import cell_slots

OPS = ("conv_3x3", "mbconv_3x3", "identity")
# milliseconds per edge by op: an MBConv is the dear op, as on CPUs
OP_MS = {"conv_3x3": 1.0, "mbconv_3x3": 8.0, "identity": 0.1}


def planted_table(num_nodes: int = 2, width: int = 4, image_size=(16, 16), num_classes: int = 2) -> dict:
    """A table written by hand: every cell alike except that ops cost more at C1 (x2)."""
    cells = {slot.name: {"project_ms": 0.5, "add_ms": 0.05,
                         "op_ms": {op: ms * (2 if slot.name == "C1" else 1) for op, ms in OP_MS.items()}}
             for slot in cell_slots(1)}
    return {"format": FORMAT, "identity": {"device": "test", "runtime": "eager", "threads": 1, "batch_size": 1,
                                           "versions": {}},
            "shape": {"image_size": list(image_size), "width": width, "num_classes": num_classes, "num_nodes": num_nodes,
                      "expand_ratio": 4, "se_ratio": 0.25},
            "ops": list(OPS), "fixed_ms": {part: 0.25 for part in FIXED_PARTS}, "cells": cells, "calibration": None}


def test_the_measured_table_covers_every_op_at_every_cell_and_every_fixed_part():
    shape = LatencyShape((16, 16), 2, 3, num_nodes=2)
    table = measure_table(shape, ("none", *PAPER_OPS), "eager", threads=1, rounds=1)
    assert table.ops == PAPER_OPS  # 'none' costs nothing and is not timed
    assert set(table.fixed_ms) == set(FIXED_PARTS)
    assert [name for name in table.cells] == [slot.name for slot in cell_slots(1)]
    for costs in table.cells.values():
        assert set(costs.op_ms) == set(PAPER_OPS)
        assert all(ms > 0 for ms in costs.op_ms.values()) and costs.project_ms > 0 and costs.add_ms > 0
    assert LatencyTable.from_dict(json.loads(json.dumps(table.to_dict()))) == table


def test_the_predictor_is_the_sum_of_the_parts_of_a_hand_built_genotype():
    table = LatencyTable.from_dict(planted_table())
    cells = []
    for slot in cell_slots(1):
        first = ("mbconv_3x3", 0)
        second = (("conv_3x3", 0), ("identity", slot.num_inputs))  # node 1 reads input 0 and node 0
        cells.append(CellGenotype(slot.name, slot.num_inputs, ((first,), second)))
    genotype = Genotype(tuple(cells), ("none", *OPS), num_nodes=2)
    per_cell = 8.0 + 1.0 + 0.1  # one MBConv, one conv, one identity
    expected = 8 * 0.25 + 8 * (0.5 + 1 * 0.05) + 7 * per_cell + 2 * per_cell  # C1's ops cost twice as much
    assert table.additive_ms(genotype) == pytest.approx(expected)
    calibrated = LatencyTable.from_dict({**planted_table(), "calibration": {"scale": 2.0, "offset_ms": 1.0}})
    assert calibrated.predict_ms(genotype) == pytest.approx(2 * expected + 1)


def test_expected_latency_of_one_hot_alphas_is_the_prediction_of_their_genotype():
    table = LatencyTable.from_dict(planted_table())
    model = SuperNet(3, 2, 4, num_nodes=2, op_names=("none", *OPS))
    with torch.no_grad():
        for cell in model.cells:
            cell.alphas.fill_(-30.0)
            cell.alphas[:, model.op_names.index("conv_3x3")] = 30.0
    expected = float(ExpectedLatency(model, table, top_k=2).expected_ms().detach())
    cells = []
    for slot in cell_slots(1):  # top_k = 2: node 0 keeps its only input(s), node 1 two of its sources
        node0 = tuple(("conv_3x3", source) for source in range(min(2, slot.num_inputs)))
        node1 = tuple(("conv_3x3", source) for source in range(2))
        cells.append(CellGenotype(slot.name, slot.num_inputs, (node0, node1)))
    genotype = Genotype(tuple(cells), ("none", *OPS), num_nodes=2)
    assert expected == pytest.approx(table.predict_ms(genotype), rel=1e-6)


def test_the_latency_target_pulls_the_expected_latency_down(tmp_path, tiny_search_flags, capsys):
    table_file = tmp_path / "table.json"
    table_file.write_text(json.dumps(planted_table(width=4, image_size=(16, 16))))
    out = tmp_path / "search"
    assert main(["search", *tiny_search_flags, "--epochs", "4", "--set", "search.warmup_epochs=1",
                 "--set", f"model.ops={list(OPS)}", "--set", "search.alpha_travel=4", "--latency-target", "20",
                 "--latency-table", str(table_file), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    records = [json.loads(line) for line in (out / METRICS_LOG).read_text().splitlines()]
    latencies = [record["expected_latency_ms"] for record in records]
    assert all(record["latency_target_ms"] == 20 for record in records)
    assert latencies[-1] < 0.8 * latencies[0], latencies  # uniform alphas start far above the target
    assert "predicted latency of the derived genotype" in printed and "(target 20 ms" in printed
    assert json.loads((out / LATENCY_TABLE_FILE).read_text())["ops"] == list(OPS)
    assert main(["report", str(out)]) == 0  # the report draws the expected latency against the target
    assert (out / LATENCY_PNG).is_file() and "expected latency of the derived network" in (out / SUMMARY_MARKDOWN).read_text()


@pytest.mark.parametrize("change, message", [
    (lambda table: table["ops"].remove("identity") or [c["op_ms"].pop("identity") for c in table["cells"].values()],
     "no timings for op(s) ['identity']"),
    (lambda table: table["shape"].update(num_nodes=3), "cells of 3 nodes"),
    (lambda table: table.update(format="something else"), "not a udarts latency table"),
    (lambda table: table["cells"]["C4"]["op_ms"].update(conv_3x3="fast"), "cells.C4.op_ms.'conv_3x3' should be"),
])
def test_a_table_that_does_not_fit_the_search_is_refused_naming_what(tmp_path, tiny_search_flags, capsys, change, message):
    data = planted_table()
    change(data)
    table_file = tmp_path / "table.json"
    table_file.write_text(json.dumps(data))
    code = main(["search", *tiny_search_flags, "--epochs", "2", "--set", f"model.ops={list(OPS)}",
                 "--latency-target", "20", "--latency-table", str(table_file), "--out", str(tmp_path / "search")])
    error = capsys.readouterr().err
    assert code == 2 and message in error and error.count("\n") == 1, error


def test_a_target_below_the_cheapest_genotype_names_the_cheapest(tmp_path, tiny_search_flags, capsys):
    table_file = tmp_path / "table.json"
    table_file.write_text(json.dumps(planted_table()))
    code = main(["search", *tiny_search_flags, "--epochs", "2", "--set", f"model.ops={list(OPS)}",
                 "--latency-target", "1", "--latency-table", str(table_file), "--out", str(tmp_path / "search")])
    error = capsys.readouterr().err
    assert code == 2 and "below the cheapest genotype" in error and "ms at 16x16, width 4" in error


def test_latency_table_is_reused_when_it_matches_and_refused_naming_the_difference(tmp_path, capsys):
    out = tmp_path / "table.json"
    flags = ["latency-table", "--data", "synthetic", "--image-size", "16x16", "--set", "model.num_nodes=2",
             "--out", str(out), "--calibrate", "2", "--no-progress"]
    assert main([*flags, "--width", "2"]) == 0
    assert "wrote latency table" in capsys.readouterr().out
    measured_at = json.loads(out.read_text())["measured_at"]
    assert main([*flags, "--width", "2"]) == 0
    assert "reused latency table" in capsys.readouterr().out
    assert json.loads(out.read_text())["measured_at"] == measured_at
    assert main([*flags, "--width", "3"]) == 2
    assert "shape.width: 2 != 3" in capsys.readouterr().err
    assert main([*flags, "--width", "2", "--threads", "2"]) == 2
    assert "threads: 1 != 2" in capsys.readouterr().err
    assert main([*flags, "--width", "2", "--runtime", "tpu"]) == 2
    assert "unknown runtime 'tpu'" in capsys.readouterr().err


def test_the_calibration_line_is_fitted_over_the_cheapest_and_dearest_genotypes():
    from udarts.app.latency import extreme_genotypes

    table = LatencyTable.from_dict(planted_table())
    genotype = sample_genotype(0, 0, ("none", *OPS), num_nodes=2)
    cheapest, dearest = extreme_genotypes(table, genotype)
    assert {op for cell in cheapest.cells for op in cell.ops()} == {"identity"}
    assert {op for cell in dearest.cells for op in cell.ops()} == {"mbconv_3x3"}
    assert table.additive_ms(cheapest) <= table.additive_ms(genotype) <= table.additive_ms(dearest)
    assert table.cheapest_ms(2) == pytest.approx(table.additive_ms(cheapest)) or table.cheapest_ms(2) < table.additive_ms(cheapest)


def test_a_missing_or_broken_table_file_is_one_line(tmp_path):
    with pytest.raises(LatencyTableError, match="does not exist"):
        LatencyTable.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(LatencyTableError, match="cannot be read as JSON"):
        LatencyTable.load(tmp_path / "bad.json")


@pytest.mark.parametrize("mode, order", [("darts", "second"), ("gdas", "first"), ("pc_darts", "first"), ("pc_gdas", "first")])
def test_every_search_mode_takes_the_latency_target(tmp_path, tiny_search_flags, mode, order):
    table_file = tmp_path / "table.json"
    table_file.write_text(json.dumps(planted_table()))
    out = tmp_path / "search"
    assert main(["search", *tiny_search_flags, "--epochs", "2", "--set", "search.warmup_epochs=0",
                 "--set", f"model.ops={list(OPS)}", "--set", f"search.mode={mode}", "--set", f"search.order={order}",
                 "--set", "search.partial_channel_k=2", "--latency-target", "20", "--latency-table", str(table_file),
                 "--out", str(out)]) == 0
    records = [json.loads(line) for line in (out / METRICS_LOG).read_text().splitlines()]
    assert records[-1]["expected_latency_ms"] < records[0]["expected_latency_ms"]


@pytest.mark.parametrize("model", ["lraspp_mobilenet_v3_large", "unet_mobilenet_v2"])
def test_light_baselines_train_from_the_command_line(tmp_path, model, capsys):
    out = tmp_path / model
    assert main(["train", "--model", model, "--data", "synthetic", "--image-size", "32x32", "--epochs", "1",
                 "--set", "data.num_samples=8", "--batch-size", "4", "--no-progress", "--out", str(out)]) == 0
    assert (out / BEST_CHECKPOINT).is_file()
