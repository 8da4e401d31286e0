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
