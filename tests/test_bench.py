"""The benchmarks' own measuring tools: the live-memory record behind the paper-scale memory
figures, and the settings syntax of the accuracy benchmark."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

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
