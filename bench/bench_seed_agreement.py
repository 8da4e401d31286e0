"""Did the search find a signal? Agreement between genotypes searched with different seeds,
against two random draws from the same space.

Two search seeds see the same data through other initial weights, batches and augmentations: where
the alphas follow the data, the two derive partly the same edges and ops; where they follow noise,
the two agree no more than two genotypes drawn uniformly (``udarts sample``). For every pair of the
given genotypes this prints the share of kept edges both keep, the share of those with the same op,
and the share of ``(edge, op)`` genes in common (``udarts.genotype.agreement``), beside the mean
and the 95th percentile of the same numbers over ``--pairs`` random pairs.

    python bench/bench_seed_agreement.py runs/search-s0/genotype.json runs/search-s1/genotype.json
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import statistics
import sys
from pathlib import Path

import numpy as np

from udarts.engine.layout import GENOTYPE_FILE
from udarts.genotype import Genotype, agreement
from udarts.random_genotypes import sample_genotype

KEYS = ("edges", "ops", "genes")


def random_agreement(example: Genotype, pairs: int, top_k: int) -> dict[str, tuple[float, float]]:
    """Mean and 95th percentile of each agreement over ``pairs`` pairs of uniform draws."""
    settings = example.op_settings()
    rows = [agreement(sample_genotype(1000, 2 * index, example.op_set, example.num_nodes, top_k, settings),
                      sample_genotype(1000, 2 * index + 1, example.op_set, example.num_nodes, top_k, settings))
            for index in range(pairs)]
    return {key: (statistics.fmean(row[key] for row in rows), float(np.quantile([row[key] for row in rows], 0.95)))
            for key in KEYS}


def name(path: Path) -> str:
    """A run folder's name for its ``genotype.json``, else the file's stem."""
    return path.parent.name if path.name == GENOTYPE_FILE and path.parent.name else path.stem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("genotypes", nargs="+", type=Path, help=f"{GENOTYPE_FILE} files (at least 2)")
    parser.add_argument("--pairs", type=int, default=500, help="random pairs for the chance level")
    args = parser.parse_args()
    if len(args.genotypes) < 2:
        parser.error("give at least 2 genotypes")
    if len(set(args.genotypes)) < len(args.genotypes):
        parser.error("a genotype file is given twice")
    genotypes = {path: Genotype.load(path) for path in args.genotypes}
    first = next(iter(genotypes.values()))
    for path, genotype in genotypes.items():
        if genotype.op_set != first.op_set or genotype.num_nodes != first.num_nodes:
            parser.error(f"{path}: another space (ops {list(genotype.op_set)}, {genotype.num_nodes} nodes) than "
                         f"{args.genotypes[0]} (ops {list(first.op_set)}, {first.num_nodes} nodes)")
    top_k = int(first.search.get("top_k", 2))
    chance = random_agreement(first, args.pairs, top_k)
    print(f"## Seed agreement of searched genotypes\n\n`{' '.join(['python', *sys.argv])}`; {datetime.date.today()}; "
          f"chance from {args.pairs} pairs of uniform draws (top_k {top_k}).\n")
    print("| pair | shared edges | same op on a shared edge | shared genes |")
    print("|---|---:|---:|---:|")
    for (path_a, a), (path_b, b) in itertools.combinations(genotypes.items(), 2):
        row = agreement(a, b)
        print(f"| {name(path_a)} / {name(path_b)} | "
              + " | ".join(f"{row[key]:.2f}" for key in KEYS) + " |")
    print("| two random draws: mean (95th percentile) | "
          + " | ".join(f"{chance[key][0]:.2f} ({chance[key][1]:.2f})" for key in KEYS) + " |")


if __name__ == "__main__":
    main()
