"""A resumed run continues where it stopped and ends exactly where an uninterrupted run ends."""

import json

import pytest
import torch

from udarts.cli import main
from udarts.engine.layout import ALPHAS_LOG, CONFIG_FILE, GENOTYPE_FILE, LAST_CHECKPOINT, METRICS_LOG

TINY = ["--no-progress", "--data", "synthetic", "--image-size", "16x16", "--batch-size", "4", "--width", "4",
        "--set", "data.num_samples=16", "--set", "model.num_nodes=2", "--set", "model.ops=[conv_3x3,identity]"]


def read_metrics(run_dir, name=METRICS_LOG):
    return [json.loads(line) for line in (run_dir / name).read_text().splitlines()]


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


@pytest.mark.slow
def test_resumed_search_matches_an_uninterrupted_one(tmp_path, crash_after_logging_epoch):
    search = ["search", *TINY, "--epochs", "3", "--set", "search.warmup_epochs=1"]
    assert main([*search, "--out", str(tmp_path / "full")]) == 0
    disarm = crash_after_logging_epoch(3)
    assert main([*search, "--out", str(tmp_path / "cut")]) == 130  # interrupted
    disarm()
    cut = tmp_path / "cut"
    assert torch.load(cut / LAST_CHECKPOINT, weights_only=False)["epoch"] == 2
    assert len(read_metrics(cut)) == 3  # epoch 3 was logged but never checkpointed
    assert main(["search", "--resume", str(cut), "--no-progress"]) == 0
    full = torch.load(tmp_path / "full" / LAST_CHECKPOINT, weights_only=False)
    resumed = torch.load(cut / LAST_CHECKPOINT, weights_only=False)
    assert resumed["epoch"] == 3
    assert_same_state(full["model"], resumed["model"])
    assert [r["epoch"] for r in read_metrics(cut)] == [1, 2, 3]
    assert [r["epoch"] for r in read_metrics(cut, ALPHAS_LOG)] == [1, 2, 3]
    assert read_metrics(cut)[-1]["train_loss"] == read_metrics(tmp_path / "full")[-1]["train_loss"]
    assert (cut / GENOTYPE_FILE).read_text() == (tmp_path / "full" / GENOTYPE_FILE).read_text()
    # and a finished search can be extended
    assert main(["search", "--resume", str(cut), "--epochs", "4", "--no-progress"]) == 0
    assert [r["epoch"] for r in read_metrics(cut)] == [1, 2, 3, 4]


@pytest.mark.slow
def test_resumed_training_matches_an_uninterrupted_one(tmp_path, crash_after_logging_epoch):
    assert main(["search", *TINY, "--epochs", "1", "--out", str(tmp_path / "search")]) == 0
    genotype = str(tmp_path / "search" / GENOTYPE_FILE)
    train = ["train", *TINY, "--genotype", genotype, "--epochs", "3", "--set", "train.optimizer=adam", "--set", "train.lr=0.01"]
    assert main([*train, "--out", str(tmp_path / "full")]) == 0
    disarm = crash_after_logging_epoch(2)
    assert main([*train, "--out", str(tmp_path / "cut")]) == 130
    disarm()
    cut = tmp_path / "cut"
    assert torch.load(cut / LAST_CHECKPOINT, weights_only=False)["epoch"] == 1
    assert main(["train", "--resume", str(cut), "--no-progress"]) == 0
    full = torch.load(tmp_path / "full" / LAST_CHECKPOINT, weights_only=False)
    resumed = torch.load(cut / LAST_CHECKPOINT, weights_only=False)
    assert resumed["epoch"] == 3
    assert_same_state(full["model"], resumed["model"])
    assert full["scheduler"] == resumed["scheduler"]
    full_log, resumed_log = read_metrics(tmp_path / "full"), read_metrics(cut)
    assert [r["epoch"] for r in resumed_log] == [1, 2, 3]
    assert [r["val_miou"] for r in resumed_log] == [r["val_miou"] for r in full_log]


def test_resume_needs_a_run_folder(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path), "--no-progress"]) == 2
    assert f"no {CONFIG_FILE}" in capsys.readouterr().err
