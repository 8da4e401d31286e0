"""End to end through the command line, on tiny inputs."""

import json

import pytest
import torch
import yaml
from PIL import Image

from udarts.app.demo import DEMO_SETTINGS
from udarts.cli import main
from udarts.engine.layout import (
    ALPHAS_LOG,
    BEST_CHECKPOINT,
    CONFIG_FILE,
    GENOTYPE_FILE,
    LAST_CHECKPOINT,
    METRICS_LOG,
    derived_genotype_name,
)
from udarts.genotype import Genotype

TINY = ["--no-progress", "--image-size", "16x16", "--batch-size", "4", "--width", "4",
        "--set", "data.num_samples=24", "--set", "model.num_nodes=2"]


def test_search_derive_train_eval_predict(tmp_path, capsys):
    search_dir, train_dir = tmp_path / "search", tmp_path / "train"
    assert main(["search", *TINY, "--epochs", "2", "--out", str(search_dir)]) == 0
    # two epochs leave the alphas at uniform: the end of the search says so, naming the cells
    assert "warning: weakly determined cells C1 (1.000), C2 (1.000)" in capsys.readouterr().err
    for name in (CONFIG_FILE, METRICS_LOG, ALPHAS_LOG, GENOTYPE_FILE, LAST_CHECKPOINT, BEST_CHECKPOINT):
        assert (search_dir / name).is_file(), name
    assert any((search_dir / "tb").iterdir())
    genotype = Genotype.load(search_dir / GENOTYPE_FILE)
    assert genotype.search["width"] == 4 and genotype.search["seed"] == 0
    alphas_log = [json.loads(line) for line in (search_dir / ALPHAS_LOG).read_text().splitlines()]
    assert len(alphas_log) == 2 and set(alphas_log[0]["cells"]) == {f"C{i}" for i in range(1, 9)}

    # derive again from the checkpoint, keeping one edge per node
    assert main(["derive", str(search_dir / LAST_CHECKPOINT), "--top-k", "1", "--out", str(tmp_path / "top1.json")]) == 0
    top1 = Genotype.load(tmp_path / "top1.json")
    assert all(len(node) == 1 for cell in top1.cells for node in cell.nodes)
    assert all({source for _, source in cell.edges()} >= set(range(cell.num_inputs)) for cell in top1.cells)
    assert set(alphas_log[-1]["diagnostics"]["C6"]) >= {"entropy", "min_margin", "mean_margin", "identity_share"}
    # without --out, other settings than the search's go to a new file beside the search's genotype.json
    own = (search_dir / GENOTYPE_FILE).read_text()
    capsys.readouterr()
    assert main(["derive", str(search_dir), "--top-k", "1", "--max-identity", "0"]) == 0
    out, err = capsys.readouterr()
    assert (search_dir / GENOTYPE_FILE).read_text() == own
    assert f"genotype: {search_dir / derived_genotype_name(1, 0)}" in out and "warning: weakly determined" in err
    capped = Genotype.load(search_dir / derived_genotype_name(1, 0))
    assert capped.search["top_k"] == 1 and capped.search["max_identity"] == 0
    assert not any("identity" in cell.ops() for cell in capped.cells)

    # retrain at another width, for another class count: the genotype carries none
    assert main(["train", *TINY, "--width", "6", "--epochs", "2", "--genotype", str(search_dir / GENOTYPE_FILE),
                 "--out", str(train_dir)]) == 0
    state = torch.load(train_dir / BEST_CHECKPOINT, weights_only=False)
    assert state["model_spec"]["name"] == "searchnet" and state["model_spec"]["width"] == 6
    logged = [json.loads(line) for line in (train_dir / METRICS_LOG).read_text().splitlines()]
    assert [r["epoch"] for r in logged] == [1, 2]

    capsys.readouterr()
    assert main(["eval", str(train_dir / BEST_CHECKPOINT), "--no-progress", "--json", str(tmp_path / "eval.json")]) == 0
    table = capsys.readouterr().out
    assert "| background |" in table and "mIoU" in table
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["miou"] == pytest.approx(max(r["val_miou"] for r in logged))
    assert set(result["iou_per_class"]) == {"background", "disc", "rectangle", "triangle"}

    image_dir = tmp_path / "images"
    image_dir.mkdir()
    Image.new("RGB", (40, 24), (120, 30, 200)).save(image_dir / "a.png")
    assert main(["predict", str(train_dir / BEST_CHECKPOINT), str(image_dir), "--out", str(tmp_path / "pred"), "--no-progress"]) == 0
    with Image.open(tmp_path / "pred" / "a_mask.png") as mask:
        assert mask.size == (40, 24)


def test_dry_run_prints_the_parameter_count_of_the_paper_configuration(capsys):
    assert main(["search", "--dry-run", "--no-progress", "--width", "64"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[: out.rindex("}") + 1])
    assert report["width"] == 64 and len(report["parameters_per_cell"]) == 8
    assert 550e6 < report["parameters"] < 750e6
    assert "supernet parameters:" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["search", "--set", "search.epoks=3"], "unknown key 'search.epoks'"),
        (["search", "--set", "search.epochs=three"], "search.epochs: expected a number"),
        (["search", "--set", "search.max_identity=-1"], "search.max_identity: expected an integer >= 0 or null"),
        (["search", "--image-size", "abc"], "--image-size"),
        (["search", "--image-size", "30x30"], "data.image_size: 30x30 is not divisible by 8"),
        (["train", "--epochs", "1"], "train.genotype"),
        (["train", "--genotype", "missing.json", "--epochs", "1"], "missing.json: genotype file not found"),
        (["search", "--data", "camvid", "--root", "/nonexistent/camvid"], "/nonexistent/camvid"),
        (["search", "--config", "nope.yaml"], "nope.yaml: config file not found"),
    ],
)
def test_bad_configs_name_the_key_or_file(tmp_path, capsys, args, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*args, "--no-progress", "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err


def test_config_file_and_flags_layer(tmp_path):
    config_path = tmp_path / "c.yaml"
    config_path.write_text("search:\n  epochs: 7\nmodel:\n  width: 12\n")
    from udarts.cli import build_parser, load_config

    args = build_parser().parse_args(["search", "--config", str(config_path), "--width", "5", "--set", "search.order=second"])
    config = load_config(args, "search")
    assert config.search.epochs == 7 and config.model.width == 5 and config.search.order == "second"
    assert config.search.alpha_lr == 3e-4  # the default survives


def test_demo_settings_are_valid_config_keys():
    from udarts.config import resolve

    config = resolve(None, [(DEMO_SETTINGS, "demo")])
    assert config.model.width == DEMO_SETTINGS["model"]["width"]



def test_the_threads_setting_sets_torch_threads_and_a_busy_cpu_is_named(tmp_path, capsys, monkeypatch):
    import os

    monkeypatch.setattr(os, "getloadavg", lambda: (3.0, 3.0, 3.0), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    before = torch.get_num_threads()
    try:
        train = ["train", *TINY, "--model", "unet", "--set", "train.model_options.width=4", "--epochs", "1"]
        assert main([*train, "--set", "threads=2", "--device", "cpu", "--out", str(tmp_path / "two")]) == 0
        assert torch.get_num_threads() == 2
        assert "this machine is busy (load 3.0 on 2 cores) and torch runs 2 threads" in capsys.readouterr().out
        assert main([*train, "--set", "threads=1", "--device", "cpu", "--out", str(tmp_path / "one")]) == 0
        assert torch.get_num_threads() == 1 and "busy" not in capsys.readouterr().out
    finally:
        torch.set_num_threads(before)
    assert DEMO_SETTINGS["threads"] == 1  # the demo's network is too small to gain from a second thread


def test_settle_epochs_search_on_while_a_cell_is_weakly_determined(tmp_path, capsys):
    search_dir = tmp_path / "search"
    assert main(["search", *TINY, "--epochs", "2", "--set", "search.settle_epochs=2", "--out", str(search_dir)]) == 0
    printed = capsys.readouterr().out
    # two epochs leave the alphas near uniform, so both extra epochs run, each a resume of the run
    assert "search.settle_epochs: weakly determined cells C1" in printed and "(3, at most 4)" in printed
    assert "(4, at most 4)" in printed and "(5, at most" not in printed
    assert [record["epoch"] for record in map(json.loads, (search_dir / ALPHAS_LOG).read_text().splitlines())] == [1, 2, 3, 4]
    recorded = yaml.safe_load((search_dir / CONFIG_FILE).read_text())["search"]
    assert recorded["epochs"] == 4 and recorded["settle_epochs"] == 0  # the most epochs it may take stays 4
    assert Genotype.load(search_dir / GENOTYPE_FILE).search["epochs"] == 4
