"""Threads on a busy CPU: one search step of the demo's and the own-data recipe's supernets on 1
and 2 torch threads, on a quiet machine and beside one other single-threaded job.

On a 2-core machine a second torch thread gives a small network little, and when another job
keeps one core busy the two threads wait for each other at every op's barrier. Each cell of the
table is a fresh process timing ``udarts.app.demo.time_search_step`` (median of ``--repeats``
after a warm-up step); "busy" starts a single-threaded matrix-multiplication loop beside it for
the duration. Run it on an otherwise idle machine:

    python bench/bench_threads.py
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUSY_LOOP = "import torch\ntorch.set_num_threads(1)\na = torch.randn(512, 512)\nwhile True:\n    a = (a @ a).tanh()\n"


def worker(task: str, threads: int, repeats: int) -> float:
    from udarts.app.demo import DEMO_SETTINGS, time_search_step
    from udarts.config.layers import resolve

    if task == "demo":
        config = resolve(None, [(DEMO_SETTINGS, "built-in demo settings"), ({"progress": False, "threads": threads}, "bench")])
        return time_search_step(config, repeats)
    sys.path.insert(0, str(REPO / "tests"))
    from markdown_recipes import write_folder_dataset

    with tempfile.TemporaryDirectory() as folder:
        write_folder_dataset(Path(folder) / "mydata", 16, 8, 64)
        config = resolve(REPO / "configs" / "folder-cpu.yaml",
                         [({"progress": False, "threads": threads, "data": {"root": str(Path(folder) / "mydata")}}, "bench")])
        return time_search_step(config, repeats)


def timed(task: str, threads: int, repeats: int, busy: bool) -> float:
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}  # torch's threads in the worker
    other = subprocess.Popen([sys.executable, "-c", BUSY_LOOP], env={**os.environ, "OMP_NUM_THREADS": "1"}) if busy else None
    try:
        result = subprocess.run([sys.executable, __file__, "--worker", task, str(threads), str(repeats)], env=environment,
                                capture_output=True, text=True, check=True)
    finally:
        if other is not None:
            other.kill()
            other.wait()
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        print(json.dumps(worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per cell (median)")
    args = parser.parse_args()
    from udarts.complexity import cpu_model

    print(f"{cpu_model()}, {os.cpu_count()} cores, {datetime.date.today()}; seconds per search step (median of "
          f"{args.repeats})\n")
    print("| supernet | 1 thread, quiet | 2 threads, quiet | 1 thread, busy | 2 threads, busy |")
    print("|---|---:|---:|---:|---:|")
    for task, label in (("demo", "demo (32x32, width 4, batch 8)"), ("own-data", "own-data recipe (64x64, width 8, batch 4)")):
        cells = [timed(task, threads, args.repeats, busy) for busy in (False, True) for threads in (1, 2)]
        print(f"| {label} | " + " | ".join(f"{seconds:.2f}" for seconds in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
