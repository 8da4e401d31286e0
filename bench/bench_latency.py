"""CPU latency of trained checkpoints, side by side: batch 1, one torch thread, every model timed in
turn over several rounds (``udarts.complexity.measure_latencies``), ratios to the first.

    OMP_NUM_THREADS=1 python bench/bench_latency.py runs/protocol/unet_resnet34-s0/best.pt \\
        runs/protocol/searchnet-s0/best.pt runs/protocol-latency/searchnet-s0/best.pt

Timing one model after the other is not fair on a machine whose cores differ in speed: on this
project's 2-core machine one core ran SEARCH-Net 25% slower than the other, and a process that
moved between them mid-measurement gave SEARCH-Net up to 1.5x the latency it has on the other.
Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path

import torch

from udarts.checkpoints import load_trained
from udarts.complexity import count_flops, cpu_model, measure_latencies
from udarts.engine.layout import BEST_CHECKPOINT, LAST_CHECKPOINT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path, help=f"{BEST_CHECKPOINT} / {LAST_CHECKPOINT} of trained runs (the first is the reference)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds, each timing every model once (default 7)")
    parser.add_argument("--repeats", type=int, default=10, help="forward passes per model per round (default 10)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    models, shapes, labels = {}, set(), {}
    for path in args.checkpoints:
        model, state = load_trained(path)
        spec = state["model_spec"]
        labels[str(path)] = spec["name"] + (f" (width {spec['width']})" if spec["name"] == "searchnet" else "")
        models[str(path)] = model
        shapes.add(tuple(state["image_size"]))
    if len(shapes) > 1:
        sys.exit(f"the checkpoints were trained at different image sizes {sorted(shapes)}")
    shape = (1, 3, *shapes.pop())
    latencies = measure_latencies(models, shape, rounds=args.rounds, repeats=args.repeats)
    reference = latencies[str(args.checkpoints[0])]
    print(f"`{' '.join(['python', *sys.argv])}`; {datetime.date.today()}, {cpu_model()} ({platform.machine()}), "
          f"torch {torch.__version__}, batch 1 at {shape[2]}x{shape[3]}, one thread, {args.rounds} rounds of "
          f"{args.repeats} passes per model, median round.\n")
    print("| checkpoint | model | GFLOPs | CPU latency (ms) | vs the first |\n|---|---|---:|---:|---:|")
    for name, model in models.items():
        print(f"| `{name}` | {labels[name]} | {count_flops(model, shape) / 1e9:.2f} | {1000 * latencies[name]:.1f} | "
              f"{latencies[name] / reference:.2f}x |")


if __name__ == "__main__":
    main()
