"""The benchmarks' own measuring tools: the live-memory record behind the paper-scale memory
figures, and the settings syntax of the accuracy benchmark."""

import argparse
import importlib.util
import json
import math
import statistics
import sys
from pathlib import Path

import pytest
import torch
import yaml

from udarts.engine.layout import BEST_CHECKPOINT, CONFIG_FILE, GENOTYPE_FILE
from udarts.genotype import Genotype

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def modes():
    return load("bench_search_modes")


def test_live_bytes_record_sees_a_temporary(modes):
    parameter = torch.nn.Parameter(torch.zeros(1000))

    def step():
        temporary = torch.ones(250_000)  # 1,000,000 bytes, freed before the function returns
        (parameter * temporary[:1000]).sum().backward()
        del temporary
        return torch.tensor(0.0)

    step()  # the gradient exists from here on; the measured call frees none
    assert 1_000_000 <= max(modes.live_bytes_record(step)) < 1_100_000


def test_allocation_records_line_up_across_batches_and_grow_with_them(modes):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 2, 1))
    optimizer = torch.optim.Adam(net.parameters())

    def step(images):
        optimizer.zero_grad(set_to_none=True)
        net(images).square().mean().backward()
        optimizer.step()
        return torch.tensor(0.0)

    modes.live_bytes_record(step, torch.randn(1, 3, 32, 32))
    two = modes.live_bytes_record(step, torch.randn(2, 3, 32, 32))
    four = modes.live_bytes_record(step, torch.randn(4, 3, 32, 32))
    assert len(two) == len(four)  # the same allocations in the same order: extrapolation point by point
    per_image = max((b - a) / 2 for a, b in zip(two, four))
    # at least the conv's 16-channel output, kept for the backward pass: 16 x 32 x 32 x 4 bytes
    assert per_image >= 16 * 32 * 32 * 4


def test_accuracy_settings_parse_into_config_overrides():
    accuracy = load("bench_search_accuracy")
    setting = accuracy.Setting.parse("gdas:flops_penalty=0.1:tau_min=0.5")
    assert setting.mode == "gdas"
    assert setting.set_flags() == ["--set", "search.mode=gdas", "--set", "search.flops_penalty=0.1",
                                   "--set", "search.tau_min=0.5"]
    assert setting.slug == "gdas-flops_penalty0.1-tau_min0.5"
    with pytest.raises(SystemExit, match="expected MODE"):
        accuracy.Setting.parse("gdas:flops_penalty")


@pytest.mark.slow
def test_accuracy_bench_searches_retrains_reports_and_reuses_finished_runs(tmp_path):
    import subprocess

    tiny = "data: {name: synthetic, image_size: [32, 32], num_samples: 32, batch_size: 4}\nmodel: {width: 4, num_nodes: 2}\n"
    (tmp_path / "search.yaml").write_text(tiny + "search: {epochs: 1}\n")
    (tmp_path / "train.yaml").write_text(tiny + "train: {epochs: 1}\n")
    command = [sys.executable, str(BENCH / "bench_search_accuracy.py"), "--root", str(tmp_path), "--out", str(tmp_path / "runs"),
               "--settings", "pc_gdas:partial_channel_k=2", "--seeds", "0", "--search-config", str(tmp_path / "search.yaml"),
               "--train-config", str(tmp_path / "train.yaml"), "--json", str(tmp_path / "outcomes.json")]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "| pc_gdas:partial_channel_k=2 | 0 |" in first.stdout
    assert "done in" in first.stderr  # the search and the retraining ran
    outcome = json.loads((tmp_path / "outcomes.json").read_text())[0]
    assert outcome["search_epochs"] == 1 and 0 <= outcome["best_val_miou"] <= 1 and outcome["gflops"] > 0

    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "done in" not in again.stderr  # both runs reused


@pytest.mark.slow
def test_search_quality_bench_runs_every_candidate_and_reports_against_random(tmp_path, shared_data, monkeypatch, capsys):
    """End to end on CamVid at a tiny size: 1 search (derived twice: as searched, and with an identity
    cap of 0 and DARTS-PT's selection, which derives from the same search again), 2 random genotypes and the classic UNet, each
    retrained with a 1-epoch recipe and scored on the held-out sequence and on val; a re-run reuses
    every finished run."""
    camvid = shared_data / "camvid"
    if not camvid.is_dir():
        pytest.skip(f"CamVid not found at {camvid}")
    quality = load("bench_search_quality")
    capped_pt = "pc_darts:max_identity=0:selection=perturbation:selection_batches=1"
    search_config = tmp_path / "search.yaml"
    search_config.write_text(  # 16x16 and 2 nodes per cell: DARTS-PT's pass over every edge and op stays short
        "data: {name: camvid, image_size: [16, 16], batch_size: 32, holdout: '0006R0'}\n"
        "model: {width: 4, num_nodes: 2}\nsearch: {mode: pc_gdas, epochs: 2, warmup_epochs: 1, alpha_travel: 1.0}\n")
    train_config = tmp_path / "train.yaml"
    train_config.write_text(
        "data: {name: camvid, image_size: [16, 16], batch_size: 32, holdout: '0006R0'}\n"
        "model: {width: 4, num_nodes: 2, flops_budget: 0.0005}\n"
        "train: {epochs: 1, optimizer: adam, lr: 1.0e-3, weight_decay: 0.0, select_split: holdout}\n")
    out, table = tmp_path / "bench", tmp_path / "quality.json"
    argv = ["bench_search_quality.py", "--root", str(camvid), "--out", str(out), "--settings", f"pc_darts,{capped_pt}",
            "--search-seeds", "0", "--random", "2", "--train-seeds", "0,1",
            "--baselines", "unet", "--search-config", str(search_config), "--train-config", str(train_config),
            "--json", str(table), "--plot", str(tmp_path / "quality.png"), "--long-epochs", "2", "--long-candidates", "2"]
    monkeypatch.setattr(sys, "argv", argv)
    quality.main()
    outcomes = json.loads(table.read_text())
    assert [row["kind"] for row in outcomes] == ["searched", "searched", "random", "random", "baseline"]
    assert [row["label"] for row in outcomes[:2]] == ["search pc_darts seed 0", f"search {capped_pt} seed 0"]
    assert [path.name for path in out.glob("search-*") if path.is_dir()] == ["search-pc_darts-seed0"]  # the cap searched nothing again
    capped = Genotype.load(out / "genotype-pc_darts-max_identity0-selectionperturbation-selection_batches1-seed0.json")
    assert all("identity" not in cell.ops() for cell in capped.cells)
    assert capped.search["max_identity"] == 0 and capped.search["selection"] == "perturbation"
    printed = capsys.readouterr().out  # one group and one verdict per searched setting
    assert "| searched pc_darts | 1 |" in printed and f"| searched {capped_pt} | 1 |" in printed
    assert f"- {capped_pt}: searched mean" in printed and "Rank agreement of the cheap recipe with 2 epochs" in printed
    # the two searched genotypes were trained again for 2 epochs (Kendall tau)
    assert [row["long_holdout_miou"] is not None for row in outcomes] == [True, True, False, False, False]
    for row in outcomes:
        assert 0 <= row["holdout_miou"] <= 1 and 0 <= row["val_miou"] <= 1
        assert len(row["holdout_per_seed"]) == 2 and row["holdout_miou"] == pytest.approx(sum(row["holdout_per_seed"]) / 2)
        if row["kind"] != "baseline":
            assert row["gflops"] <= 0.0005  # matched FLOPs: every genotype under the budget
    assert (tmp_path / "quality.png").stat().st_size > 0
    assert len(list(out.glob(f"train-*-s1/{BEST_CHECKPOINT}"))) == 5  # every candidate retrained with seed 1 too
    first = {path: path.stat().st_mtime for path in out.glob(f"train-*/{BEST_CHECKPOINT}")}
    quality.main()  # everything is reused
    assert {path: path.stat().st_mtime for path in out.glob(f"train-*/{BEST_CHECKPOINT}")} == first
    table.unlink()
    monkeypatch.setattr(sys, "argv", [*argv, "--report-only"])
    quality.main()  # reports the finished candidates, runs nothing
    assert [row["label"] for row in json.loads(table.read_text())] == [row["label"] for row in outcomes]
    long_config = out / "long-search-pc_darts-max_identity0-selectionperturbation-selection_batches1-seed-0" / CONFIG_FILE  # as if that long run were still training
    resolved = yaml.safe_load(long_config.read_text())
    resolved["train"]["epochs"] = 3
    long_config.write_text(yaml.safe_dump(resolved))
    quality.main()
    assert [row["long_holdout_miou"] is not None for row in json.loads(table.read_text())] == [True, False, False, False, False]
    assert quality.kendall_tau([1, 2, 3], [1, 2, 3]) == 1 and quality.kendall_tau([1, 2, 3], [3, 2, 1]) == -1
    # the supernet's one-shot ranking of every retrained genotype (the baseline has none), against the retrained one
    ranking = tmp_path / "ranking.json"
    monkeypatch.setattr(sys, "argv", ["bench_one_shot_ranking.py", str(out / "search-pc_darts-seed0"), "--runs", str(out),
                                      "--root", str(camvid), "--seeds", "0,1", "--batches", "1", "--json", str(ranking)])
    capsys.readouterr()
    load("bench_one_shot_ranking").main()
    numbers = json.loads(ranking.read_text())
    slugs = {"search-pc_darts-seed-0", f"search-{capped_pt.replace(':', '-').replace('=', '')}-seed-0", "random-0", "random-1"}
    assert set(numbers["retrained"]) == slugs and set(numbers["one_shot"][str(out / "search-pc_darts-seed0")]) == slugs
    assert all(len(entry["per_seed"]) == 2 for entry in numbers["retrained"].values())
    assert "search-pc_darts-seed0: Kendall tau with the retrained ranking" in capsys.readouterr().out


def test_quality_bench_splits_the_random_spread_into_retraining_noise_and_genotypes():
    quality = load("bench_search_quality")
    same_genotype = [[30.0, 32.0, 34.0], [30.0, 32.0, 34.0]]  # identical genotypes: all of the spread is noise
    assert quality.noise_decomposition(same_genotype) == (pytest.approx(2.0), 0.0)
    apart = [[20.0, 20.0, 20.0], [30.0, 30.0, 30.0]]  # no noise: all of it is the genotypes'
    assert quality.noise_decomposition(apart) == (0.0, pytest.approx(statistics.stdev([20.0, 30.0])))
    mixed = [[19.0, 21.0], [29.0, 31.0], [24.0, 26.0]]  # variance of means 25, within variance 2 over 2 seeds
    within, between = quality.noise_decomposition(mixed)
    assert within == pytest.approx(math.sqrt(2.0)) and between == pytest.approx(math.sqrt(25.0 - 1.0))
    for too_few in ([[1.0, 2.0], [1.0]], [], [[1.0, 2.0]]):
        with pytest.raises(ValueError, match="same number"):
            quality.noise_decomposition(too_few)
    difference, error = quality.difference_with_error([32.0, 28.0], [26.0, 27.0, 25.0, 26.0])
    assert difference == pytest.approx(4.0)
    assert error == pytest.approx(math.sqrt(statistics.variance([26.0, 27.0, 25.0, 26.0]) / 4 + 8.0 / 2))
    _, alone = quality.difference_with_error([32.0], [26.0, 27.0, 25.0, 26.0])  # one searched genotype: the random variance
    assert alone == pytest.approx(math.sqrt(statistics.variance([26.0, 27.0, 25.0, 26.0]) * (1 / 4 + 1)))


@pytest.mark.slow
def test_protocol_bench_trains_scores_and_reuses(tmp_path, shared_data, monkeypatch, capsys):
    """SEARCH-Net against the UNet on CamVid at a tiny size, 2 seeds each: held-out best and last
    epoch, val of best.pt, costs; a re-run trains nothing."""
    camvid = shared_data / "camvid"
    if not camvid.is_dir():
        pytest.skip(f"CamVid not found at {camvid}")
    protocol = load("bench_protocol")
    config = tmp_path / "train.yaml"
    config.write_text("data: {name: camvid, image_size: [32, 32], batch_size: 32}\nmodel: {width: 4}\n"
                      "train: {epochs: 1, optimizer: adam, lr: 1.0e-3, weight_decay: 0.0, model_scale: cpu}\n")
    out, table = tmp_path / "protocol", tmp_path / "protocol.json"
    argv = ["bench_protocol.py", "--root", str(camvid), "--out", str(out), "--config", str(config), "--seeds", "0,1",
            "--models", "searchnet,unet", "--repeats", "2", "--json", str(table), "--width", "3"]
    monkeypatch.setattr(sys, "argv", argv)
    protocol.main()
    assert yaml.safe_load((out / "searchnet-s1" / CONFIG_FILE).read_text())["model"]["width"] == 3
    results = json.loads(table.read_text())
    assert set(results) == {"searchnet", "unet"}
    for result in results.values():
        assert [run["seed"] for run in result["runs"]] == [0, 1] and result["gflops"] > 0 and result["latency_ms"] > 0
        assert all(0 <= run[key] <= 1 for run in result["runs"] for key in ("holdout_best", "holdout_last", "val"))
        assert all(run["holdout_best"] >= run["holdout_last"] for run in result["runs"])
    printed = capsys.readouterr().out
    assert "| SEARCH-Net (width 3) | 0,1 |" in printed and "| UNet (classic) | 0,1 |" in printed
    first = {path: path.stat().st_mtime for path in out.glob(f"*/{BEST_CHECKPOINT}")}
    protocol.main()
    assert {path: path.stat().st_mtime for path in out.glob(f"*/{BEST_CHECKPOINT}")} == first
    monkeypatch.setattr(sys, "argv", [*argv[:-1], "4"])  # another width into the same folder: refused, not mixed
    with pytest.raises(SystemExit, match="searchnet-s0: trained at SEARCH-Net width 3, not the 4 asked for"):
        protocol.main()
    monkeypatch.setattr(sys, "argv", [*argv[:-2], "--match-latency", "--report-only"])  # reports, times nothing
    monkeypatch.setattr(protocol, "matched_width", lambda args: pytest.fail("timed under --report-only"))
    protocol.main()
    assert "| SEARCH-Net (width 3) | 0,1 |" in capsys.readouterr().out


def test_protocol_bench_matches_the_unet_latency_once_and_reuses_only_a_matching_record(tmp_path, monkeypatch, capsys):
    from udarts.random_genotypes import sample_genotype

    protocol = load("bench_protocol")
    timed = []

    def fake_width_matching_latency(genotype, reference, image_size, num_classes, rounds, repeats):
        timed.append((round(sum(parameter.numel() for parameter in reference.parameters()) / 1e6, 1), tuple(image_size),
                      num_classes))
        return 5, 15.0, 30.0

    monkeypatch.setattr(protocol, "width_matching_latency", fake_width_matching_latency)
    config = tmp_path / "train.yaml"
    config.write_text("data: {name: camvid, image_size: [32, 32]}\n")
    genotype = sample_genotype(0, 0, ("none", "conv_3x3", "identity"), num_nodes=2).save(tmp_path / "g.json")
    args = argparse.Namespace(out=tmp_path / "out", config=config, genotype=genotype, repeats=2)
    assert protocol.matched_width(args) == 5
    record_path = tmp_path / "out" / "matched-width.json"
    record = json.loads(record_path.read_text())
    assert (record["width"], record["unet_ms"], record["searchnet_ms"], record["image_size"]) == (5, 30.0, 15.0, [32, 32])
    assert timed == [(24.4, (32, 32), 11)]  # the reference timed beside each width: the ResNet-34 UNet (24.4 M parameters)
    assert protocol.matched_width(args) == 5 and len(timed) == 1  # reused, not timed again
    assert "matched width 5 from" in capsys.readouterr().out
    other = sample_genotype(0, 1, ("none", "conv_3x3", "identity"), num_nodes=2).save(tmp_path / "other.json")
    for changed in (argparse.Namespace(**{**vars(args), "genotype": other}), argparse.Namespace(**{**vars(args), "config": None})):
        with pytest.raises(SystemExit, match="matched for another genotype or image size"):
            protocol.matched_width(changed)
    record_path.write_text("{not json")
    with pytest.raises(SystemExit, match="not a matched-width record"):
        protocol.matched_width(args)


def test_seed_agreement_bench_sets_a_pair_against_random_draws(tmp_path, monkeypatch, capsys):
    from udarts.random_genotypes import sample_genotype

    ops = ("none", "conv_3x3", "conv_5x5", "identity")
    paths = []
    for name, index in (("a", 0), ("b", 0), ("c", 1)):  # a and b are the same genotype
        paths.append(sample_genotype(7, index, ops, num_nodes=2).save(tmp_path / name / GENOTYPE_FILE))
    monkeypatch.setattr(sys, "argv", ["bench_seed_agreement.py", *map(str, paths), "--pairs", "50"])
    load("bench_seed_agreement").main()
    lines = capsys.readouterr().out.splitlines()
    assert "| a / b | 1.00 | 1.00 | 1.00 |" in lines
    chance = next(line for line in lines if line.startswith("| two random draws"))
    edges, ops_share, genes = (float(cell.split()[0]) for cell in chance.strip("|").split("|")[1:])
    assert 0 < genes < ops_share < 1 and 0 < edges < 1
    other_space = sample_genotype(7, 0, ops, num_nodes=3).save(tmp_path / "d.json")
    for bad, message in (([paths[0], paths[0]], "given twice"), ([paths[0], other_space], "d.json: another space")):
        monkeypatch.setattr(sys, "argv", ["bench_seed_agreement.py", *map(str, bad)])
        with pytest.raises(SystemExit):
            load("bench_seed_agreement").main()
        assert message in capsys.readouterr().err
