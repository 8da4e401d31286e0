"""Random genotypes (the baseline a search must beat), FLOPs budgets, and the alpha step sizing."""

import json
import types

import pytest
import torch

from udarts import random_genotypes
from udarts.cli import main
from udarts.data import synthetic
from udarts.engine.layout import GENOTYPE_FILE, LAST_CHECKPOINT
from udarts.genotype import Genotype
from udarts.random_genotypes import (
    sample_genotype,
    sample_genotypes,
    searchnet_gflops,
    width_for_budget,
    width_for_latency,
)
from udarts.search.darts import alpha_lr_for_budget
from udarts.search.regularizers import BetaDecay
from udarts.search.supernet import search_op_names
from udarts.space import all_edges

OPS = search_op_names()


def test_random_genotypes_follow_the_derivation_rule_and_cover_the_space():
    seen_ops, seen_sources = set(), set()
    for index in range(40):
        genotype = sample_genotype(0, index, OPS, num_nodes=4, top_k=2)
        Genotype.from_dict(genotype.to_dict())  # valid: the validator accepts it
        for cell in genotype.cells:
            for node, genes in enumerate(cell.nodes):
                sources = [source for _, source in genes]
                assert len(genes) == min(2, cell.num_inputs + node) and len(set(sources)) == len(sources)
                seen_sources.update((cell.num_inputs, node, source) for source in sources)
                seen_ops.update(op for op, _ in genes)
    assert seen_ops == set(OPS) - {"none"}  # every op but 'none', never 'none'
    every_source = {(inputs, node, source) for inputs in (1, 2) for node, source in
                    [(target, source) for target, source in all_edges(inputs, 4)]}
    assert seen_sources == every_source


def test_genotype_i_of_a_seed_does_not_depend_on_how_many_are_drawn():
    first = [genotype for genotype, _ in sample_genotypes(3, 7, OPS)]
    more = [genotype for genotype, _ in sample_genotypes(5, 7, OPS)]
    assert first == more[:3] and more[3] != more[4]
    assert [genotype for genotype, _ in sample_genotypes(3, 8, OPS)] != first


def test_top_k_one_draws_keep_every_cell_input_read():
    for index in range(30):
        for cell in sample_genotype(1, index, OPS, top_k=1).cells:
            assert {source for _, source in cell.edges()} >= set(range(cell.num_inputs))


@pytest.mark.slow
def test_flops_budget_is_never_exceeded_and_the_width_is_the_largest_that_fits():
    drawn = sample_genotypes(4, 0, OPS, flops_budget=0.05, width=4, image_size=(32, 32), num_classes=3)
    assert all(gflops <= 0.05 for _, gflops in drawn)
    genotype = drawn[0][0]
    width, gflops = width_for_budget(genotype, 0.2, (32, 32), 3)
    assert gflops <= 0.2 < searchnet_gflops(genotype, width + 1, (32, 32), 3)
    with pytest.raises(ValueError, match="no SEARCH-Net width fits"):
        width_for_budget(genotype, 1e-9, (32, 32), 3)


def test_sample_and_train_flops_budget_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "random"
    assert main(["sample", "--num", "2", "--seed", "3", "--out", str(out), "--flops-budget", "0.03", "--width", "4",
                 "--image-size", "32x32", "--set", "model.num_nodes=2"]) == 0
    paths = sorted(out.glob("random-3-*.json"))
    assert len(paths) == 2 and Genotype.load(paths[0]).search["method"] == "random"
    capsys.readouterr()
    assert main(["train", "--no-progress", "--image-size", "32x32", "--set", "data.num_samples=16", "--genotype", str(paths[0]),
                 "--flops-budget", "0.1", "--dry-run"]) == 0
    out_text = capsys.readouterr().out
    assert "model.flops_budget 0.1 GFLOPs: SEARCH-Net width" in out_text
    report = json.loads(out_text[out_text.index("{"): out_text.index("\n}\n") + 2])
    assert report["gflops_per_image"] <= 0.1 and report["width"] >= 4
    assert main(["sample", "--num", "1", "--out", str(out), "--flops-budget", "0.03"]) == 2  # needs --width
    assert "--flops-budget needs --width" in capsys.readouterr().err
    assert main(["train", "--no-progress", "--image-size", "32x32", "--model", "unet", "--flops-budget", "1", "--dry-run"]) == 0
    assert "model.flops_budget (1.0 GFLOPs) sizes SEARCH-Net only; unet keeps its own size" in capsys.readouterr().out


def test_latency_budget_picks_the_largest_width_that_fits_timing_each_width_once(monkeypatch):
    timed = []

    def fake_latency(genotype, width, image_size, num_classes, repeats=20):  # 3 ms per channel of width
        timed.append(width)
        return 3.0 * width

    monkeypatch.setattr(random_genotypes, "searchnet_latency_ms", fake_latency)
    genotype = sample_genotype(0, 0, OPS)
    assert width_for_latency(genotype, 31.0, (32, 32), 3) == (10, 30.0)
    assert len(timed) == len(set(timed))
    assert width_for_latency(genotype, 31.0, (32, 32), 3, max_width=7) == (7, 21.0)  # a FLOPs width caps it
    with pytest.raises(ValueError, match=r"no SEARCH-Net width fits 2.0 ms .*\(width 1 costs 3.0000 ms\)"):
        width_for_latency(genotype, 2.0, (32, 32), 3)


def test_latency_match_times_each_width_beside_the_reference_and_ignores_the_machine_drifting(monkeypatch):
    calls = []
    reference_seconds = 0.0305

    def fake_rounds(models, shape, rounds, warmup, repeats):  # 3 ms per channel of width against the reference
        calls.append((torch.get_num_threads(), shape, models["searchnet"].width))
        slowdowns = [1.0, 1.5, 3.0][: rounds]  # the machine drifts from round to round: both timings of a round alike
        burst = [2.0, 1.0, 1.0]  # and a burst of other work slows SEARCH-Net alone in the first round
        return {"searchnet": [slowdown * extra * 0.003 * models["searchnet"].width for slowdown, extra in zip(slowdowns, burst)],
                "reference": [slowdown * reference_seconds for slowdown in slowdowns]}

    monkeypatch.setattr(random_genotypes, "build_searchnet",
                        lambda genotype, in_channels, num_classes, width: types.SimpleNamespace(width=width))
    monkeypatch.setattr(random_genotypes, "measure_latency_rounds", fake_rounds)
    genotype = sample_genotype(0, 0, OPS)
    width, searchnet_ms, reference_ms = random_genotypes.width_matching_latency(genotype, torch.nn.Identity(), (32, 32), 3)
    # the median ratio within a round is 3w/30.5 whatever the drift and the burst (the ratio of the medians, 6w/45.75, would give 7)
    assert (width, searchnet_ms, reference_ms) == (10, pytest.approx(60.0), pytest.approx(45.75))  # width 10's median rounds
    assert {(threads, shape) for threads, shape, _ in calls} == {(1, (1, 3, 32, 32))}  # one thread, batch 1
    assert len(calls) == len({timed_width for _, _, timed_width in calls})  # each width timed once
    reference_seconds = 0.001  # faster than SEARCH-Net at width 1
    with pytest.raises(ValueError, match=r"no SEARCH-Net width fits 1.0 x the reference's CPU latency at 32x32"):
        random_genotypes.width_matching_latency(genotype, torch.nn.Identity(), (32, 32), 3)


def test_searchnet_latency_is_timed_on_one_thread_and_restores_the_thread_count(monkeypatch):
    threads_seen = []

    def fake_measure(model, shape, warmup, repeats):
        threads_seen.append(torch.get_num_threads())
        return 0.004

    monkeypatch.setattr(random_genotypes, "measure_latency", fake_measure)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert random_genotypes.searchnet_latency_ms(sample_genotype(0, 0, OPS), 2, (32, 32), 3) == pytest.approx(4.0)
        assert threads_seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_train_latency_budget_from_the_command_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(random_genotypes, "searchnet_latency_ms", lambda genotype, width, *args, **kwargs: 2.0 * width)
    genotype = tmp_path / GENOTYPE_FILE
    sample_genotype(1, 0, OPS, num_nodes=2).save(genotype)
    common = ["train", "--no-progress", "--image-size", "32x32", "--set", "data.num_samples=16", "--set", "model.num_nodes=2",
              "--genotype", str(genotype), "--dry-run"]
    assert main([*common, "--latency-budget", "13"]) == 0
    out_text = capsys.readouterr().out
    assert "model.latency_budget 13.0 ms: SEARCH-Net width 6 (12.0 ms per image" in out_text
    report = json.loads(out_text[out_text.index("{"): out_text.index("\n}\n") + 2])
    assert report["width"] == 6
    # with a FLOPs budget too, the width fits both: the smaller of the two
    flops_width, _ = width_for_budget(Genotype.load(genotype), 0.01, (32, 32), len(synthetic.CLASS_NAMES))
    assert flops_width < 6
    assert main([*common, "--latency-budget", "13", "--flops-budget", "0.01"]) == 0
    out_text = capsys.readouterr().out
    assert json.loads(out_text[out_text.index("{"): out_text.index("\n}\n") + 2])["width"] == flops_width
    assert main([*common, "--latency-budget", "1"]) == 2
    assert "model.latency_budget: no SEARCH-Net width fits 1.0 ms" in capsys.readouterr().err
    assert main(["train", "--no-progress", "--image-size", "32x32", "--model", "unet", "--latency-budget", "5",
                 "--flops-budget", "1", "--dry-run"]) == 0
    assert ("note: model.flops_budget (1.0 GFLOPs) and model.latency_budget (5.0 ms) size SEARCH-Net only; "
            "unet keeps its own size") in capsys.readouterr().out


def test_a_latency_budget_is_refused_under_torchrun_and_not_timed_again_on_resume(tmp_path, monkeypatch):
    from udarts import experiment
    from udarts.config import ConfigError, resolve

    genotype = sample_genotype(1, 0, OPS, num_nodes=2).save(tmp_path / GENOTYPE_FILE)
    config = resolve(None, [({"progress": False, "data": {"image_size": [32, 32], "num_samples": 16, "batch_size": 8},
                              "model": {"num_nodes": 2, "latency_budget": 9.0},
                              "train": {"epochs": 1, "genotype": str(genotype)}}, "test")])
    monkeypatch.setattr(random_genotypes, "searchnet_latency_ms", lambda genotype, width, *args, **kwargs: 2.0 * width)
    result = experiment.run_train(config, tmp_path / "run")
    assert experiment.resumed_config(result.run_dir, "train").model.width == 4
    # killed before its first checkpoint: the resume keeps the recorded width, timing nothing
    for checkpoint in result.run_dir.glob("*.pt"):
        checkpoint.unlink()
    monkeypatch.setattr(random_genotypes, "searchnet_latency_ms", lambda *args, **kwargs: pytest.fail("timed on resume"))
    experiment.run_train(experiment.resumed_config(result.run_dir, "train"), resume=result.run_dir)
    assert torch.load(result.run_dir / LAST_CHECKPOINT, weights_only=False)["model_spec"]["width"] == 4
    monkeypatch.setattr(experiment, "_join_processes", lambda config: (object(), torch.device("cpu")))
    with pytest.raises(ConfigError, match="model.latency_budget: under torchrun"):
        experiment.run_train(config, tmp_path / "distributed")


def test_alpha_learning_rate_is_sized_to_the_number_of_alpha_steps():
    assert alpha_lr_for_budget(6.0, 20_000) == pytest.approx(3e-4)  # DARTS's CIFAR search
    assert alpha_lr_for_budget(6.0, 24) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="no alpha step"):
        alpha_lr_for_budget(6.0, 0)


def test_beta_decay_is_the_mean_logsumexp_and_pulls_the_strongest_op_hardest():
    alpha = torch.nn.Parameter(torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]]))
    penalty = BetaDecay([alpha], weight=0.5)()
    assert float(penalty.detach()) == pytest.approx(0.5 * float(torch.logsumexp(alpha.detach(), -1).mean()))
    penalty.backward()
    assert torch.allclose(alpha.grad, 0.5 * torch.softmax(alpha.detach(), -1) / 2)
    assert int(alpha.grad[0].argmax()) == 0


def test_latencies_are_measured_side_by_side_in_rounds(monkeypatch):
    from udarts import complexity

    calls = []

    def fake_measure(model, shape, device="cpu", warmup=2, repeats=5):
        calls.append((model.name, repeats))
        return {"a": 0.004, "b": 0.002}[model.name] * (2 if len(calls) % 7 == 0 else 1)  # one slow outlier now and then

    class Named(torch.nn.Module):
        def __init__(self, name):
            super().__init__()
            self.name = name

    monkeypatch.setattr(complexity, "measure_latency", fake_measure)
    latencies = complexity.measure_latencies({"a": Named("a"), "b": Named("b")}, (1, 3, 8, 8), rounds=3, repeats=4)
    assert latencies == {"a": 0.004, "b": 0.002}  # the median round ignores the outlier
    assert [name for name, _ in calls] == ["a", "b"] + ["a", "b"] * 3  # warm-up, then interleaved rounds
    assert [repeats for _, repeats in calls[2:]] == [4] * 6
