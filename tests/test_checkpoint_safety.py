"""Checkpoints cannot run code: a planted checkpoint whose pickle would create a file when loaded
is refused by every command and API call that reads checkpoints, with one line naming the file
and what it holds, and nothing in it runs."""

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from udarts import experiment
from udarts.app.genotypes import derive_genotype
from udarts.checkpoints import load_trained
from udarts.cli import main
from udarts.config import resolve
from udarts.engine.layout import BEST_CHECKPOINT, CONFIG_FILE, LAST_CHECKPOINT, METRICS_LOG
from udarts.engine.runs import CheckpointError, load_checkpoint

TINY = {"data": {"image_size": [16, 16], "batch_size": 4, "num_samples": 24}, "model": {"width": 4, "num_nodes": 2},
        "train": {"model": "unet", "epochs": 2}, "search": {"epochs": 2}, "progress": False}


class CreatesFile:
    """Unpickled, it would call ``open(path, "w")``: the file appears if anything in the checkpoint runs."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


class RunsShell:
    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


def plant(path: Path, kind: str, payload) -> Path:
    """A checkpoint with every key a udarts ``kind`` checkpoint has, and ``payload`` inside its config."""
    config = resolve(None, [(TINY, "test")]).to_dict()
    state = {"kind": kind, "epoch": 1, "model": {}, "config": {**config, "note": payload}, "best_miou": 0.0,
             "best_epoch": 1, "model_spec": {"name": "unet"}, "class_names": ["a", "b"], "image_size": [16, 16]}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    (path.parent / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))
    (path.parent / METRICS_LOG).write_text(json.dumps({"epoch": 1, "train_loss": 1.0}) + "\n")
    return path


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "code-ran"
    yield path
    assert not path.exists(), "loading the planted checkpoint ran its code"


def refused(capsys, path: Path, what: str = "io.open") -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("udarts ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"{path}: refused, it holds {what}" in lines[0], lines[0]
    return lines[0]


def test_every_command_that_reads_checkpoints_refuses_a_planted_one(tmp_path, capsys, marker):
    train_run = tmp_path / "train-run"
    search_run = tmp_path / "search-run"
    trained = plant(train_run / LAST_CHECKPOINT, "train", CreatesFile(marker))
    searched = plant(search_run / LAST_CHECKPOINT, "search", CreatesFile(marker))
    best = plant(tmp_path / "elsewhere" / BEST_CHECKPOINT, "train", CreatesFile(marker))
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    commands = [
        (["eval", str(best), "--no-progress"], best),
        (["eval", str(train_run), "--no-progress"], trained),  # a run folder means its last.pt
        (["predict", str(best), str(image), "--out", str(tmp_path / "predicted"), "--no-progress"], best),
        (["export", str(best), "--out", str(tmp_path / "model.onnx")], best),
        (["derive", str(searched)], searched),
        (["derive", str(search_run)], searched),
        (["train", "--resume", str(train_run), "--no-progress"], trained),
        (["search", "--resume", str(search_run), "--no-progress"], searched),
        (["report", str(train_run)], trained),
    ]
    for args, path in commands:
        assert main(args) == 2, args
        refused(capsys, path)
    assert not (tmp_path / "predicted").exists() and not (tmp_path / "model.onnx").exists()


def test_the_python_api_refuses_a_planted_checkpoint(tmp_path, marker):
    trained = plant(tmp_path / "train-run" / LAST_CHECKPOINT, "train", RunsShell(marker))
    searched = plant(tmp_path / "search-run" / LAST_CHECKPOINT, "search", CreatesFile(marker))
    message = f"{trained}: refused, it holds posix.system" if os.name == "posix" else f"{trained}: refused"
    for read in (load_checkpoint, load_trained):
        with pytest.raises(CheckpointError, match=message.replace(".", r"\.")):
            read(trained)
    with pytest.raises(CheckpointError, match="refused, it holds"):
        experiment.run_train(experiment.resumed_config(trained.parent, "train"), resume=trained.parent)
    with pytest.raises(CheckpointError, match="refused, it holds io.open"):
        derive_genotype(searched)
    with pytest.raises(CheckpointError, match="refused, it holds io.open"):
        experiment.run_search(experiment.resumed_config(searched.parent, "search"), resume=searched.parent)


def test_a_plain_pickle_file_is_refused_too(tmp_path, marker):
    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps({"kind": "train", "epoch": 1, "x": CreatesFile(marker)}, protocol=2))
    with pytest.raises(CheckpointError, match=f"{path}: (refused, it holds io.open|not a readable udarts checkpoint)"):
        load_checkpoint(path)


def test_a_refused_file_is_named_in_one_line_and_real_checkpoints_need_no_allow_list(tmp_path, marker):
    path = plant(tmp_path / "run" / LAST_CHECKPOINT, "train", CreatesFile(marker))
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert "\n" not in str(caught.value) and "nothing in it was run" in str(caught.value)
    plain = tmp_path / "plain" / LAST_CHECKPOINT
    plant(plain, "train", {"nested": [1, 2.5, "text", None, (3, 4), torch.zeros(2)]})
    assert load_checkpoint(plain, kind="train")["config"]["note"]["nested"][4] == (3, 4)
