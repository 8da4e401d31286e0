"""The benchmarks' own measuring tools: the live-memory record behind the paper-scale memory
figures, and the settings syntax of the accuracy benchmark."""

import importlib.util
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


def test_peak_live_bytes_sees_a_temporary_and_separates_the_optimizer_phase(modes):
    parameter = torch.nn.Parameter(torch.zeros(1000))
    optimizer = torch.optim.SGD([parameter], lr=0.1)
    modes.mark_optimizer_steps([optimizer])

    def step():
        temporary = torch.ones(250_000)  # 1,000,000 bytes, freed before the optimizer step
        (parameter * temporary[:1000]).sum().backward()
        del temporary
        optimizer.step()
        return torch.tensor(0.0)

    step()  # the gradient exists from here on; the measured call frees none
    peaks = modes.peak_live_bytes(step)
    assert 1_000_000 <= peaks["forward_backward"] < 1_100_000
    assert peaks["optimizer"] < 100_000  # SGD without momentum allocates almost nothing


def test_peak_live_bytes_grows_with_the_batch_of_a_conv_net(modes):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 2, 1))
    optimizer = torch.optim.Adam(net.parameters())
    modes.mark_optimizer_steps([optimizer])

    def step(images):
        optimizer.zero_grad(set_to_none=True)
        net(images).square().mean().backward()
        optimizer.step()
        return torch.tensor(0.0)

    modes.peak_live_bytes(step, torch.randn(1, 3, 32, 32))
    one = modes.peak_live_bytes(step, torch.randn(2, 3, 32, 32))["forward_backward"]
    two = modes.peak_live_bytes(step, torch.randn(4, 3, 32, 32))["forward_backward"]
    per_image = (two - one) / 2
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
