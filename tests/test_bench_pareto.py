"""The Pareto benchmark's arithmetic: hypervolume and the per-target summary (bench/bench_pareto.py)."""

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_pareto  # noqa: E402


def test_hypervolume_counts_only_what_the_front_dominates():
    reference = 100.0
    one = bench_pareto.hypervolume([(10.0, 30.0)], reference)
    assert one == pytest.approx(math.log10(100 / 10) * 30)
    dominated = bench_pareto.hypervolume([(10.0, 30.0), (20.0, 25.0)], reference)  # slower and worse adds nothing
    assert dominated == pytest.approx(one)
    better = bench_pareto.hypervolume([(10.0, 30.0), (20.0, 40.0)], reference)
    assert better == pytest.approx(math.log10(2) * 30 + math.log10(5) * 40)
    assert bench_pareto.hypervolume([(200.0, 50.0)], reference) == 0.0


def run(group, target, miou, ms, seed=0, model="searchnet", epochs=40):
    name = f"{model}-seed{seed}" if group == "baseline" else f"{group}-t{target}-x-seed{seed}"
    return {"folder": name, "group": group, "target": target, "model": model, "seed": seed, "holdout_best": miou,
            "ms_eager": ms, "epochs": epochs, "of": 40}


def test_summary_places_the_searched_genotype_among_the_random_ones_and_the_slower_baselines():
    data = {"targets": [{"target_ms": 20.0}]}
    runs = [run("searched", 0, value, 19.0, seed) for seed, value in enumerate((33.0, 34.0, 35.0))]
    runs += [run("random", 0, value, 18.0) for value in (20.0, 25.0, 30.0, 36.0)]
    runs += [run("baseline", None, value, 21.0, seed, "unet_mobilenet_v2") for seed, value in enumerate((31.0, 31.5, 32.0))]
    runs += [run("baseline", None, value, 10.0, seed, "lraspp_mobilenet_v3_large") for seed, value in enumerate((29.0, 30.0))]
    runs.append(run("searched", 0, 10.0, 19.0, 3, epochs=20))  # a partial run beside finished ones is left out
    entry = bench_pareto.summarise(runs, data)["targets"][0]
    assert entry["searched_holdout"] == pytest.approx([34.0, 1.0])
    assert entry["percentile"] == 75  # above 3 of the 4 random genotypes
    # the MobileNetV2 UNet is at least as slow and beaten by more than the spread; LR-ASPP is faster, not compared
    assert entry["beats_baselines_at_least_as_slow"] == {"unet_mobilenet_v2": True}


def write_training(folder, mious, epochs, seconds=60.0):
    """A training run folder as ``scores`` reads it: the recorded epochs and one metrics line per
    epoch that ran (``mious`` on the selection split)."""
    import json

    import yaml

    from udarts.engine.layout import CONFIG_FILE, METRICS_LOG

    folder.mkdir(parents=True)
    (folder / CONFIG_FILE).write_text(yaml.safe_dump({"train": {"epochs": epochs}}))
    (folder / METRICS_LOG).write_text("".join(json.dumps({"epoch": epoch, "val_miou": miou, "seconds": seconds}) + "\n"
                                              for epoch, miou in enumerate(mious, 1)))


def scores_args(**settings):
    """``scores``'s arguments as the command line gives them, with ``settings`` set."""
    import argparse

    defaults = {"out": None, "partial": False, "time": False, "plot": None, "rounds": 3, "json": None, "from_json": None}
    return argparse.Namespace(**{**defaults, **settings})


def test_scores_groups_seeds_and_marks_unfinished_runs(tmp_path, capsys):
    import json

    import yaml

    from udarts.engine.layout import ALPHAS_LOG, CONFIG_FILE, METRICS_LOG

    for name, mious in (("searched-t1-seed0", [0.30, 0.32]), ("searched-t1-seed1", [0.31, 0.30]),
                        ("unet-seed0", [0.20])):
        write_training(tmp_path / name, mious, epochs=2)
    (tmp_path / "searched-t1-seed0" / bench_pareto.EVAL_VAL).write_text(json.dumps({"miou": 0.5}))
    search = tmp_path / "search-t1-seed0"  # a search beside the trainings: warm-up epochs have no val mIoU
    search.mkdir()
    (search / CONFIG_FILE).write_text(yaml.safe_dump({"search": {"epochs": 2}}))
    (search / METRICS_LOG).write_text(json.dumps({"epoch": 1, "val_miou": None}) + "\n")
    (search / ALPHAS_LOG).write_text("{}\n")
    bench_pareto.scores_table(scores_args(out=tmp_path))
    printed = capsys.readouterr().out
    assert "| searched-t1 | 2 | 2 | 31.50 +- 0.71 | 31.00 +- 1.41 | 50.00 | 2.0 |" in printed, printed
    assert "unet" not in printed  # one epoch of two: left out without --partial
    assert "search-t1" not in printed
    bench_pareto.scores_table(scores_args(out=tmp_path, partial=True))
    assert "| unet | 1 | 1/2 | 20.00 | 20.00 | n/a | 1.0 |" in capsys.readouterr().out


def test_scores_with_time_adds_each_groups_costs_sorts_by_latency_and_plots(tmp_path, monkeypatch, capsys):
    """``scores --time`` times one network per group (all in one call, side by side) and sorts the
    rows by its latency; the network build and the timing are replaced so that the table is checked."""
    for name, miou in (("l7-w10-seed0", 0.30), ("l7-w10-seed1", 0.28), ("lraspp_mobilenet_v3_large-seed0", 0.29)):
        write_training(tmp_path / name, [miou], epochs=1)
    keys = {"l7-w10": "searchnet-w10-0123456789", "lraspp_mobilenet_v3_large": "lraspp_mobilenet_v3_large"}
    monkeypatch.setattr(bench_pareto, "network_of", lambda folder: (keys[folder.name.rsplit("-seed", 1)[0]], object()))
    timed = []

    def fake_time_networks(networks, rounds=7):
        timed.append(sorted(networks))
        ms = {"searchnet-w10-0123456789": 5.7, "lraspp_mobilenet_v3_large": 4.0}  # the faster row goes first
        return {key: {"parameters": 1e5, "gflops": 0.2, "ms_eager": ms[key], "ms_onnxruntime": ms[key] / 2}
                for key in networks}

    monkeypatch.setattr(bench_pareto, "time_networks", fake_time_networks)
    picture = tmp_path / "front.png"
    bench_pareto.scores_table(scores_args(out=tmp_path, time=True, plot=picture))
    printed = capsys.readouterr().out
    assert timed == [["lraspp_mobilenet_v3_large", "searchnet-w10-0123456789"]]  # one call, one network per group
    rows = [line for line in printed.splitlines() if line.startswith("| l7") or line.startswith("| lraspp")]
    assert rows == ["| lraspp_mobilenet_v3_large | 1 | 1 | 29.00 | 29.00 | n/a | 0.10 M | 0.200 | 4.00 | 2.00 | 1.0 |",
                    "| l7-w10 | 2 | 1 | 29.00 +- 1.41 | 29.00 +- 1.41 | n/a | 0.10 M | 0.200 | 5.70 | 2.85 | 1.0 |"], printed
    assert picture.is_file() and picture.stat().st_size > 0


def test_scores_record_draws_the_same_table_and_picture_without_the_run_folders(tmp_path, monkeypatch, capsys):
    """``scores --time --json`` keeps a record; ``--from-json`` prints the same rows from it and plots
    them once the run folders are gone; a file that is not such a record is refused by name."""
    import json
    import shutil

    runs = tmp_path / "runs"
    for name, miou in (("l7-w10-seed0", 0.30), ("l7-w10-seed1", 0.28), ("unet_resnet18-seed0", 0.33)):
        write_training(runs / name, [miou], epochs=1, seconds=30.0)
    keys = {"l7-w10": "searchnet-w10-0123456789", "unet_resnet18": "unet_resnet18"}
    monkeypatch.setattr(bench_pareto, "network_of", lambda folder: (keys[folder.name.rsplit("-seed", 1)[0]], object()))
    monkeypatch.setattr(bench_pareto, "time_networks", lambda networks, rounds=7: {
        key: {"parameters": 2e5, "gflops": 0.3, "ms_eager": 9.0 if key == "unet_resnet18" else 5.0,
              "ms_onnxruntime": 3.0} for key in networks})
    record = tmp_path / "record.json"
    bench_pareto.scores_table(scores_args(out=runs, time=True, plot=tmp_path / "a.png", json=record))
    first = capsys.readouterr().out
    shutil.rmtree(runs)
    bench_pareto.scores_table(scores_args(plot=tmp_path / "b.png", from_json=record))
    again = capsys.readouterr().out
    table = [line for line in first.splitlines() if line.startswith("|")]
    assert table == [line for line in again.splitlines() if line.startswith("|")]
    assert [line.split(" | ")[0] for line in table[2:]] == ["| l7-w10", "| unet_resnet18"]  # sorted by latency
    assert (tmp_path / "b.png").stat().st_size > 0
    assert json.loads(record.read_text())["groups"]["l7-w10"]["runs"][1]["folder"] == "l7-w10-seed1"
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(SystemExit, match="bad.json: expected a record written by scores --json"):
        bench_pareto.scores_table(scores_args(from_json=tmp_path / "bad.json"))


def test_fit_finds_the_largest_width_at_or_below_each_baseline_timed_side_by_side(monkeypatch, capsys):
    """``fit`` times every network in one call (one load for all) and reads the widths off it; the
    timing is replaced by fixed milliseconds so that the fit itself is checked."""
    import udarts.complexity

    timed = {}

    def fake_latencies(models, shape, **_):
        timed.update(models)
        fixed = {"lraspp_mobilenet_v3_large": 0.010, "unet_mobilenet_v2": 0.0035,
                 "camvid-latency-7ms@w2": 0.004, "camvid-latency-7ms@w3": 0.009, "camvid-latency-7ms@w4": 0.011}
        return {name: fixed[name] for name in models}

    monkeypatch.setattr(udarts.complexity, "measure_latencies", fake_latencies)
    genotype = Path(__file__).resolve().parents[1] / "configs" / "genotypes" / "camvid-latency-7ms.json"
    monkeypatch.setattr(sys, "argv", ["bench_pareto.py", "fit", "--out", "unused", "--genotypes", str(genotype),
                                      "--widths", "2-4", "--target-models", "lraspp_mobilenet_v3_large,unet_mobilenet_v2"])
    bench_pareto.main()
    printed = capsys.readouterr().out
    assert set(timed) == {"lraspp_mobilenet_v3_large", "unet_mobilenet_v2", "camvid-latency-7ms@w2",
                          "camvid-latency-7ms@w3", "camvid-latency-7ms@w4"}
    assert "| camvid-latency-7ms | 3 (9.0 ms) | none |" in printed, printed
