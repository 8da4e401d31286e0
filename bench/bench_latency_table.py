"""How well a latency table predicts whole SEARCH-Nets: random genotypes timed whole on a runtime
against the table's sum (uncalibrated) and its calibrated prediction.

For each runtime and width: a calibrated table (``udarts latency-table``: parts timed in
interleaved rounds, the line fitted on 10 random genotypes of seed 1000 and the cheapest and
dearest genotypes), then ``--genotypes`` random genotypes of seed 0 (none of them seen by the
calibration) timed whole, side by side in interleaved rounds. Reports Spearman's rank correlation
and the median absolute percentage error (MdAPE) of the plain sum and of the calibrated prediction.
Time it on a quiet machine.

    OMP_NUM_THREADS=1 python bench/bench_latency_table.py --out runs/latency-table --widths 6,12 \\
        --runtimes eager,onnxruntime --genotypes 30
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np
import torch

from udarts.app.latency import make_latency_table
from udarts.complexity import cpu_model
from udarts.config import resolve
from udarts.io import atomic_write_text
from udarts.latency.measure import time_genotypes
from udarts.ops import PAPER_OPS
from udarts.random_genotypes import sample_genotype


def ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    result = np.empty(len(values))
    result[order] = np.arange(len(values))
    return result


def spearman(first: list[float], second: list[float]) -> float:
    """Spearman's rank correlation (no ties expected among timings)."""
    return float(np.corrcoef(ranks(np.asarray(first)), ranks(np.asarray(second)))[0, 1])


def mdape(predicted: list[float], measured: list[float]) -> float:
    """Median absolute percentage error of ``predicted`` against ``measured``."""
    errors = np.abs(np.asarray(predicted) - np.asarray(measured)) / np.asarray(measured)
    return float(100 * np.median(errors))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the tables and the numbers (reused)")
    parser.add_argument("--widths", default="6,12")
    parser.add_argument("--runtimes", default="eager,onnxruntime")
    parser.add_argument("--genotypes", type=int, default=30)
    parser.add_argument("--image-size", default="96x128")
    parser.add_argument("--num-classes", type=int, default=11)
    args = parser.parse_args()
    torch.set_num_threads(1)
    height, width = (int(side) for side in args.image_size.split("x"))
    genotypes = {f"random-0-{index:03d}": sample_genotype(0, index, PAPER_OPS) for index in range(args.genotypes)}
    rows = []
    for runtime in args.runtimes.split(","):
        for base_width in (int(item) for item in args.widths.split(",")):
            config = resolve(None, [({"progress": False, "data": {"image_size": [height, width]},
                                      "model": {"width": base_width}}, "bench_latency_table")])
            table, _ = make_latency_table(config, args.out / f"{runtime}-w{base_width}.json", runtime=runtime,
                                          num_classes=args.num_classes)
            measured = time_genotypes(genotypes, table.shape, runtime, rounds=5)
            additive = [table.additive_ms(genotype) for genotype in genotypes.values()]
            predicted = [table.predict_ms(genotype) for genotype in genotypes.values()]
            truth = [measured[name] for name in genotypes]
            rows.append({"runtime": runtime, "width": base_width, "genotypes": len(genotypes),
                         "measured_ms": [min(truth), float(np.median(truth)), max(truth)],
                         "spearman_sum": spearman(additive, truth), "mdape_sum": mdape(additive, truth),
                         "spearman_calibrated": spearman(predicted, truth), "mdape_calibrated": mdape(predicted, truth),
                         "calibration": table.calibration})
            print(json.dumps(rows[-1]), flush=True)
    lines = [f"Machine: {cpu_model()}, one thread, batch 1, {height}x{width}; torch {torch.__version__}; "
             f"{datetime.date.today()}.", "",
             "| runtime | width | genotypes | measured ms (min / median / max) | Spearman, sum | MdAPE, sum "
             "| Spearman, calibrated | MdAPE, calibrated | calibration (scale, offset ms) |",
             "|---|---:|---:|---|---:|---:|---:|---:|---|"]
    for row in rows:
        low, middle, high = row["measured_ms"]
        calibration = row["calibration"]
        lines.append(f"| {row['runtime']} | {row['width']} | {row['genotypes']} | {low:.2f} / {middle:.2f} / {high:.2f} "
                     f"| {row['spearman_sum']:.3f} | {row['mdape_sum']:.1f}% | {row['spearman_calibrated']:.3f} "
                     f"| {row['mdape_calibrated']:.1f}% | {calibration['scale']:.3f}, {calibration['offset_ms']:.2f} |")
    print("\n".join(lines))
    atomic_write_text(args.out / "validation.json", json.dumps(rows, indent=1) + "\n", make_parent=True)
    atomic_write_text(args.out / "validation.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
