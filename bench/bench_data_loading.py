"""Data-loading throughput of the training splits: images per second through ``make_loader``.

Measures CamVid train at 96x128 and Oxford-IIIT Pet trainval at 128x128 (the protocol's sizes),
with the training augmentation, with and without ``cache=True``, with 0 and 2 DataLoader workers,
side by side in one run. For each setting it reports the construction time (the validation scan,
plus decoding and resizing everything when caching), the first epoch (includes worker start-up)
and the mean of the following epochs. Prints a Markdown section ready for BENCHMARKS.md.

    python bench/bench_data_loading.py [--shared-data DIR] [--epochs 3] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

import torch

from udarts.complexity import cpu_model
from udarts.data.factory import build_split, make_loader

REPO_ROOT = Path(__file__).resolve().parents[1]
SETTINGS = [("camvid", "camvid", (96, 128)), ("pets", "", (128, 128))]


def measure(name: str, root: Path, size: tuple[int, int], cache: bool, workers: int, epochs: int, batch_size: int) -> dict:
    start = time.perf_counter()
    dataset = build_split(name, "train", root=str(root), image_size=size, augment=True, cache=cache)
    setup_seconds = time.perf_counter() - start
    loader = make_loader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=workers, generator=torch.Generator().manual_seed(0)
    )
    epoch_rates = []
    for _ in range(epochs):
        start = time.perf_counter()
        count = sum(images.shape[0] for images, _ in loader)
        epoch_rates.append(count / (time.perf_counter() - start))
    del loader  # stops persistent workers
    steady = sum(epoch_rates[1:]) / max(1, len(epoch_rates) - 1) if len(epoch_rates) > 1 else epoch_rates[0]
    return {"images": len(dataset), "setup": setup_seconds, "first": epoch_rates[0], "steady": steady}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_shared = os.environ.get("UDARTS_SHARED_DATA", str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--shared-data", type=Path, default=Path(default_shared))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    rows = []
    for name, subfolder, size in SETTINGS:
        root = args.shared_data / subfolder if subfolder else args.shared_data
        for cache in (False, True):
            for workers in (0, 2):
                result = measure(name, root, size, cache, workers, args.epochs, args.batch_size)
                rows.append((name, size, cache, workers, result))
                print(f"{name} {size} cache={cache} workers={workers}: {result}", file=sys.stderr)

    load_after = os.getloadavg()[0]
    command = "python bench/bench_data_loading.py " + " ".join(sys.argv[1:])
    print("## Data loading\n")
    print(f"Command: `{command.strip()}` (batch {args.batch_size}, training augmentation, shuffled, "
          f"{args.epochs} epochs per setting).  ")
    print(f"Machine: {cpu_model()}, {os.cpu_count()} CPU cores; torch {torch.__version__}; "
          f"1-minute load average {load_before:.1f} before, {load_after:.1f} after (other jobs running "
          "on the machine slow every number down).  ")
    print(f"Date: {datetime.date.today().isoformat()}.\n")
    print("| dataset | split (images) | size HxW | cache | workers | setup s | epoch 1 img/s | later epochs img/s |")
    print("|---|---|---|---|---|---:|---:|---:|")
    for name, size, cache, workers, result in rows:
        print(
            f"| {name} | train ({result['images']}) | {size[0]}x{size[1]} | {'yes' if cache else 'no'} | {workers} "
            f"| {result['setup']:.2f} | {result['first']:.0f} | {result['steady']:.0f} |"
        )
    print("\nSetup = building the dataset: the validation scan (every image and mask decoded once), "
          "plus resizing and storing every sample when caching.")


if __name__ == "__main__":
    main()
