"""The cheaper search modes through the command line: resumable like plain DARTS (sampler seeds,
pruning masks, gradient scaler and betas all come back), logged, and checked at config time."""

import json

import pytest
import torch

from udarts.cli import main
from udarts.engine.layout import GENOTYPE_FILE, LAST_CHECKPOINT, PRUNING_LOG

from .test_resume import TINY, assert_same_state, read_metrics

MODES = {
    "gdas_pruning_fp16": ["--set", "search.mode=gdas", "--set", "search.amp=fp16", "--set", "search.tau_max=5",
                          "--set", "search.prune_start_epoch=2", "--set", "search.prune_every=1"],
    "pc_darts_pruning_penalty": ["--set", "search.mode=pc_darts", "--set", "search.partial_channel_k=2",
                                 "--set", "search.prune_start_epoch=2", "--set", "search.prune_every=1",
                                 "--set", "search.prune_min_ops=1", "--set", "search.flops_penalty=10"],
    "pc_gdas_pruning": ["--set", "search.mode=pc_gdas", "--set", "search.partial_channel_k=2", "--set", "search.tau_max=5",
                        "--set", "search.prune_start_epoch=2", "--set", "search.prune_every=1"],
}


@pytest.mark.slow
@pytest.mark.parametrize("mode", sorted(MODES))
def test_resumed_search_in_each_mode_matches_an_uninterrupted_one(tmp_path, crash_after_logging_epoch, mode):
    search = ["search", *TINY, "--epochs", "3", "--set", "search.warmup_epochs=1", *MODES[mode],
              "--set", "model.ops=[conv_3x3,conv_5x5,identity]"]  # none + 3: room for two prunings
    assert main([*search, "--out", str(tmp_path / "full")]) == 0
    disarm = crash_after_logging_epoch(3)
    assert main([*search, "--out", str(tmp_path / "cut")]) == 130
    disarm()
    cut, full = tmp_path / "cut", tmp_path / "full"
    assert main(["search", "--resume", str(cut), "--no-progress"]) == 0
    full_state = torch.load(full / LAST_CHECKPOINT, weights_only=False)
    resumed_state = torch.load(cut / LAST_CHECKPOINT, weights_only=False)
    assert_same_state(full_state["model"], resumed_state["model"])
    assert read_metrics(cut) == [{**r, "seconds": m["seconds"]} for r, m in zip(read_metrics(full), read_metrics(cut))]
    assert (cut / PRUNING_LOG).read_text() == (full / PRUNING_LOG).read_text()
    assert (cut / GENOTYPE_FILE).read_text() == (full / GENOTYPE_FILE).read_text()

    metrics = read_metrics(full)
    assert [r["dropped_ops"] > 0 for r in metrics] == [False, True, True]  # pruned after epochs 2 and 3
    assert metrics[0]["active_ops"] > metrics[1]["active_ops"] > metrics[2]["active_ops"]
    pruned = [json.loads(line) for line in (full / PRUNING_LOG).read_text().splitlines()]
    assert {record["epoch"] for record in pruned} == {2, 3}
    masks = [full_state["model"][f"cells.{i}.op_mask"] for i in range(8)]
    assert sum(int(mask.sum()) for mask in masks) == metrics[-1]["active_ops"]
    if "gdas" in mode:
        assert [r["tau"] for r in metrics] == [5.0, pytest.approx(2.55), 0.1]
        assert full_state["tau"] == 0.1
    if "fp16" in mode:
        assert "grad_scaler" in full_state
    if mode.startswith("pc_"):
        assert "cells.0.betas" in full_state["model"]
    if "penalty" in mode:
        assert metrics[-1]["expected_gflops"] > 0


@pytest.mark.parametrize(
    "setting, message",
    [
        ("search.mode=enas", "search.mode: expected one of"),
        ("search.amp=fp8", "search.amp: expected one of"),
        ("search.prune_start_epoch=1", "search.prune_start_epoch: must come after the warm-up"),
        ("search.partial_channel_k=3", "search.partial_channel_k = 3 must divide model.width = 4"),
        ("search.flops_penalty=-1", "search.flops_penalty: must be >= 0"),
    ],
)
def test_bad_search_mode_settings_name_the_key(tmp_path, capsys, setting, message):
    extra = ["--set", "search.warmup_epochs=1", "--set", "search.mode=pc_darts"] if "partial" in setting or "prune" in setting else []
    # 2 epochs: search.warmup_epochs must stay below search.epochs
    assert main(["search", *TINY, "--epochs", "2", *extra, "--set", setting, "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err


def test_second_order_needs_a_deterministic_network(tmp_path, capsys):
    args = ["search", *TINY, "--set", "search.mode=gdas", "--set", "search.order=second", "--out", str(tmp_path / "run")]
    assert main(args) == 2
    assert "search.order: second-order DARTS needs a deterministic network" in capsys.readouterr().err
