import json

import pytest
import torch

from udarts.engine.layout import LAST_CHECKPOINT, METRICS_LOG
from udarts.engine.runs import Run, load_checkpoint, save_checkpoint


def test_run_folder_refuses_to_overwrite_and_logs_jsonl(tmp_path):
    run = Run(tmp_path / "run", {"seed": 3})
    run.log({"epoch": 1, "loss": 0.5, "miou": float("nan")}, step=1)
    run.log({"epoch": 2, "loss": 0.25, "miou": 0.5}, step=2)
    run.close()
    lines = [json.loads(line) for line in (tmp_path / "run" / METRICS_LOG).read_text().splitlines()]
    assert lines == [{"epoch": 1, "loss": 0.5, "miou": None}, {"epoch": 2, "loss": 0.25, "miou": 0.5}]
    assert Run(tmp_path / "run", resume=True).config() == {"seed": 3}
    with pytest.raises(FileExistsError, match="not empty"):
        Run(tmp_path / "run", {"seed": 4})
    Run(tmp_path / "run", resume=True).truncate_logs(1)
    assert len((tmp_path / "run" / METRICS_LOG).read_text().splitlines()) == 1


def test_checkpoints_are_replaced_whole_and_bad_ones_are_named(tmp_path):
    path = tmp_path / LAST_CHECKPOINT
    save_checkpoint({"epoch": 1}, path)
    save_checkpoint({"epoch": 2}, path)
    assert load_checkpoint(path)["epoch"] == 2
    assert not list(tmp_path.glob("*.tmp"))
    assert load_checkpoint(tmp_path)["epoch"] == 2  # a run folder means its last.pt
    path.write_bytes(path.read_bytes()[:20])  # truncated
    with pytest.raises(ValueError, match=f"{LAST_CHECKPOINT}: not a readable udarts checkpoint"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_a_crash_while_saving_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / LAST_CHECKPOINT
    save_checkpoint({"epoch": 1}, path)

    def dies_midway(state, target):
        with open(target, "wb") as handle:
            handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
