"""Do short searches end settled on other CPUs? The demo's search and the README's own-data search
over seeds and over CPU kernels, each run in its own process.

A search's trajectory depends on the kernels that compute it: another instruction set (AVX2 instead
of AVX-512), another thread count or oneDNN switched off sum in another order, and the rounding
differences grow over a few hundred steps. The tests that check where a short search ends
(``tests/test_demo.py``, ``tests/test_readme.py``) must hold on any CPU, so their margins come
from this distribution, not from one run on one machine. Every (variant, seed) is a fresh process, on one torch thread unless the variant says otherwise:

- ``default``: this machine's kernels;
- ``onednn-off``: ``torch.backends.mkldnn.enabled = False``, ATen's own convolutions;
- ``avx2``: ATen, oneDNN and MKL limited to AVX2, as on a CPU without AVX-512;
- ``two-threads``: two threads (``threads: 2``), another summation order in the reductions. Run it
  on an otherwise quiet machine: with another job on a 2-core CPU two threads are many times slower.

Tasks, each searching as ``udarts search`` does (``udarts.app.settling.search_until_settled``, with
the config's ``search.settle_epochs``; ``--no-settle`` sets it to 0): ``demo`` is ``udarts demo``'s
search; ``own-data`` is ``udarts search --config configs/folder-cpu.yaml`` on a generated folder dataset as the README's recipe shows it (3 classes,
16 train and 8 val images of 64x64); ``own-data-test`` is the same at the size
``tests/test_readme.py`` runs it (16x16 images, width 4). Each run appends one line to
``OUT/runs.jsonl`` (a second call skips the finished ones); the table and the summary are printed
from that file.

    python bench/bench_demo_settling.py --out runs/demo-settling --seeds 0-7 --variants default,avx2,onednn-off,two-threads
    python bench/bench_demo_settling.py --task own-data --out runs/own-data-settling --seeds 0-3 --variants default,avx2,two-threads
    python bench/bench_demo_settling.py --task own-data-test --out runs/own-data-test-settling --seeds 0-7 \
        --variants default,avx2,onednn-off,two-threads
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS_FILE = "runs.jsonl"
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
VARIANTS: dict[str, dict[str, str]] = {  # each variant's environment
    "default": {},
    "onednn-off": {"UDARTS_BENCH_MKLDNN": "0"},
    "avx2": AVX2,
    "two-threads": {"UDARTS_BENCH_THREADS": "2"},
}
# the own-data tasks: the generated dataset's image side, and the settings on top of configs/folder-cpu.yaml
OWN_DATA = {"own-data": (64, {}),
            "own-data-test": (16, {"model": {"width": 4}, "data": {"image_size": [16, 16]}})}


def parse_seeds(text: str) -> list[int]:
    """``"0-3"`` or ``"0,2,5"`` as a list of seeds."""
    if "-" in text:
        first, last = (int(part) for part in text.split("-"))
        return list(range(first, last + 1))
    return [int(part) for part in text.split(",")]


# ---- one run (a worker process) ------------------------------------------------------------------


def search_once(task: str, seed: int, threads: int, no_settle: bool, folder: Path) -> tuple[Path, object]:
    """Run the task's search with ``seed`` on ``threads`` in ``folder``: ``(search folder, its config)``."""
    from udarts.app.demo import DEMO_SETTINGS
    from udarts.app.settling import search_until_settled
    from udarts.config.layers import resolve

    run = {"seed": seed, "progress": False, "threads": threads, **({"search": {"settle_epochs": 0}} if no_settle else {})}
    if task == "demo":
        config = resolve(None, [(DEMO_SETTINGS, "built-in demo settings"), (run, "bench")])
        search_until_settled(config, folder / "search")
        return folder / "search", config
    sys.path.insert(0, str(REPO / "tests"))
    from markdown_recipes import write_folder_dataset

    size, settings = OWN_DATA[task]
    write_folder_dataset(folder / "mydata", 16, 8, size, seed=0)
    config = resolve(REPO / "configs" / "folder-cpu.yaml",
                     [(settings, "bench"), ({**run, "data": {"root": str(folder / "mydata")}}, "bench")])
    search_until_settled(config, folder / "search")
    return folder / "search", config


def worker(args: argparse.Namespace) -> None:
    import torch

    from udarts.app.settling import unsettled_cells
    from udarts.engine.layout import ALPHAS_LOG
    from udarts.io import append_line, read_jsonl

    if os.environ.get("UDARTS_BENCH_MKLDNN") == "0":
        torch.backends.mkldnn.enabled = False
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as temporary:
        threads = int(os.environ.get("UDARTS_BENCH_THREADS", "1"))
        search_dir, config = search_once(args.task, args.seed, threads, args.no_settle, Path(temporary))
        records = read_jsonl(search_dir / ALPHAS_LOG)
        cells = records[-1]["diagnostics"]
        unsettled = unsettled_cells(search_dir, config)
    row = {"task": args.task, "variant": args.variant, "seed": args.seed, "settle_epochs": not args.no_settle,
           "settled": not unsettled,
           "epochs": records[-1]["epoch"], "min_margin": min(cell["min_margin"] for cell in cells.values()),
           "max_entropy": max(cell["entropy"] for cell in cells.values()),
           "mean_entropy": statistics.fmean(cell["entropy"] for cell in cells.values()),
           "warnings": unsettled, "seconds": time.perf_counter() - started, "threads": torch.get_num_threads(),
           "capability": torch.backends.cpu.get_cpu_capability(), "mkldnn": torch.backends.mkldnn.enabled}
    append_line(args.out / RUNS_FILE, json.dumps(row))


# ---- the matrix, and its report ------------------------------------------------------------------


def done(out: Path, task: str) -> set[tuple[str, int]]:
    from udarts.io import read_jsonl

    path = out / RUNS_FILE
    return {(row["variant"], row["seed"]) for row in read_jsonl(path) if row["task"] == task} if path.is_file() else set()


def render(rows: list[dict]) -> str:
    lines = ["| variant | seed | settled | epochs | smallest top-1 margin | largest entropy | mean entropy | s |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for row in sorted(rows, key=lambda row: (row["variant"], row["seed"])):
        lines.append(f"| {row['variant']} | {row['seed']} | {'yes' if row['settled'] else 'no'} | {row['epochs']} "
                     f"| {row['min_margin']:.4f} | {row['max_entropy']:.3f} | {row['mean_entropy']:.3f} | {row['seconds']:.0f} |")
    lines.append("")
    for variant in sorted({row["variant"] for row in rows}):
        items = [row for row in rows if row["variant"] == variant]
        margins = [row["min_margin"] for row in items]
        lines.append(f"- {variant}: {sum(row['settled'] for row in items)} of {len(items)} settled; smallest top-1 margin "
                     f"{min(margins):.4f} (median {statistics.median(margins):.4f}); largest entropy "
                     f"{max(row['max_entropy'] for row in items):.3f}; {statistics.fmean(row['epochs'] for row in items):.1f} epochs")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("demo", *OWN_DATA), default="demo")
    parser.add_argument("--out", type=Path, required=True, help=f"folder of {RUNS_FILE}")
    parser.add_argument("--seeds", default="0-7", help="search seeds: 0-7 or 0,3,5")
    parser.add_argument("--variants", default="default,onednn-off,avx2",
                        help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--no-settle", action="store_true", help="search.settle_epochs=0: the search's own epochs only")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    variants = args.variants.split(",")
    unknown = [variant for variant in variants if variant not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    finished = done(args.out, args.task)
    for variant in variants:
        for seed in parse_seeds(args.seeds):
            if (variant, seed) in finished:
                continue
            print(f"{args.task} {variant} seed {seed} ...", flush=True)
            result = subprocess.run([sys.executable, __file__, "--worker", "--task", args.task, "--out", str(args.out),
                                     "--seed", str(seed), "--variant", variant, *(["--no-settle"] if args.no_settle else [])],
                                    env={**os.environ, **VARIANTS[variant]}, capture_output=True, text=True)
            if result.returncode != 0:
                sys.exit(f"{args.task} {variant} seed {seed} failed:\n{result.stderr[-3000:]}")
    from udarts.complexity import cpu_model
    from udarts.io import read_jsonl

    rows = [row for row in read_jsonl(args.out / RUNS_FILE) if row["task"] == args.task]
    print(f"\n{args.task}: {cpu_model()}, {datetime.date.today()}\n")
    print(render(rows))


if __name__ == "__main__":
    main()
