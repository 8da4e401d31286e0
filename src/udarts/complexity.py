"""Model size and cost: parameters, FLOPs (torch's own FLOP counter) and latency."""

from __future__ import annotations

import platform
import statistics
import subprocess
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def count_flops(model: nn.Module, input_shape: tuple[int, ...], device: torch.device | str = "cpu") -> int:
    """FLOPs of one forward pass on a zero input of ``input_shape`` (B, C, H, W), counted by
    ``torch.utils.flop_counter`` (a multiply-add counts as 2 FLOPs)."""
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.zeros(input_shape, device=device))
    model.train(was_training)
    return int(counter.get_total_flops())


@torch.no_grad()
def measure_latency(
    model: nn.Module, input_shape: tuple[int, ...], device: torch.device | str = "cpu", warmup: int = 2, repeats: int = 5
) -> float:
    """Median seconds of one forward pass (eval mode) on ``input_shape``."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    inputs = torch.zeros(input_shape, device=device)
    times = []
    for step in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        model(inputs)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step >= warmup:
            times.append(time.perf_counter() - start)
    model.train(was_training)
    return statistics.median_high(times)


def measure_latency_rounds(
    models: dict[str, nn.Module], input_shape: tuple[int, ...], device: torch.device | str = "cpu", rounds: int = 7,
    warmup: int = 3, repeats: int = 10,
) -> dict[str, list[float]]:
    """Seconds of one forward pass of each model in each of ``rounds`` rounds, every round timing
    every model in turn (``measure_latency``: the median of ``repeats`` passes). Interleaving keeps a
    comparison fair when the machine's speed drifts or the process moves between cores of unequal
    speed (measured on this project's 2-core machine: one core ran SEARCH-Net 25% slower than the
    other), which timing one model after the other does not."""
    for model in models.values():  # first calls build kernels and caches
        measure_latency(model, input_shape, device, warmup=warmup, repeats=1)
    per_round: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            per_round[name].append(measure_latency(model, input_shape, device, warmup=1, repeats=repeats))
    return per_round


def measure_latencies(
    models: dict[str, nn.Module], input_shape: tuple[int, ...], device: torch.device | str = "cpu", rounds: int = 7,
    warmup: int = 3, repeats: int = 10,
) -> dict[str, float]:
    """Median seconds of one forward pass of each model, measured side by side: the median over
    the rounds of ``measure_latency_rounds``."""
    per_round = measure_latency_rounds(models, input_shape, device, rounds=rounds, warmup=warmup, repeats=repeats)
    return {name: statistics.median_high(times) for name, times in per_round.items()}


def cpu_model() -> str:
    """The processor's model name (``lscpu``), for benchmark records."""
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in output.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"
