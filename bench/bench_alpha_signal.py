"""Why do a search's alphas settle or not? The signal-to-noise ratio of their gradient, per search run.

For each search run folder: rebuild its supernet from ``last.pt``, compute the gradient of the
search loss with respect to every alpha on ``--batches`` batches of the run's own alpha half of the
training split (weights fixed, as at the end of the search; the half is cycled, reshuffled and
re-augmented, when it has fewer batches), and report the median SNR
(``|mean| / std`` over batches), the drift it predicts over the search (``travel x SNR``), the
random walk of the noise (``travel / sqrt(alpha steps)``), the decay ceiling (the logit at which the
run's coupled alpha weight decay cancels a typical gradient) and the alphas' final normalised entropy
(``udarts.search.signal`` explains the arithmetic).

    OMP_NUM_THREADS=1 python bench/bench_alpha_signal.py runs/bench-quality/search-* --root ../shared/data/camvid
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import math
import statistics
import sys
from pathlib import Path

import torch

from udarts.builders import alpha_steps, build_loader, build_split, build_supernet, search_halves, seed_everything
from udarts.config import Config
from udarts.engine.layout import ALPHAS_LOG, CONFIG_FILE, LAST_CHECKPOINT
from udarts.engine.runs import load_checkpoint
from udarts.io import read_jsonl
from udarts.losses import build_loss
from udarts.search.diagnostics import normalized_entropy
from udarts.search.signal import alpha_gradient_snr


def measure(run: Path, args: argparse.Namespace) -> dict:
    state = load_checkpoint(run / LAST_CHECKPOINT, kind="search")
    config = Config.from_dict(state["config"], str(run / CONFIG_FILE))
    if args.root is not None:
        config = config.updated({"data": {"root": str(args.root)}}, "--root")
    seed_everything(config.seed)
    train_set = build_split(config, "train", augment=True)
    weight_half, alpha_half = search_halves(config, train_set)  # as run_search cuts it
    weight_loader, alpha_loader = (build_loader(config, half, True, torch.device("cpu")) for half in (weight_half, alpha_half))
    steps = alpha_steps(config, min(len(weight_loader), len(alpha_loader)))
    model = build_supernet(config, len(train_set.class_names))
    model.load_state_dict(state["model"])
    model.set_temperature(args.tau if args.tau is not None else config.search.tau_min)  # sampled modes (default: the last epoch's)
    signal = alpha_gradient_snr(model, build_loss(config.search.loss, train_set.ignore_index),
                                itertools.islice(itertools.chain.from_iterable(itertools.repeat(alpha_loader)), args.batches))
    travel = config.search.alpha_travel or config.search.alpha_lr * steps
    last = read_jsonl(run / ALPHAS_LOG)[-1]
    entropies = [statistics.fmean(normalized_entropy(torch.tensor(row)) for row in rows) for rows in last["cells"].values()]
    return {"run": run.name, "mode": config.search.mode, "size": "x".join(map(str, config.data.image_size)),
            "epochs": state["epoch"], "steps": steps, "travel": travel, "signal": signal,
            "weight_decay": config.search.alpha_weight_decay,
            "entropy": (min(entropies), max(entropies))}


def ceiling(signal, weight_decay: float) -> str:
    """The decay ceiling as printed: 'none' without a decay (an infinite ceiling)."""
    value = signal.decay_ceiling(weight_decay)
    return "none" if math.isinf(value) else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="search run folders")
    parser.add_argument("--root", type=Path, help="dataset root (default: the one each run recorded)")
    parser.add_argument("--batches", type=int, default=48, help="alpha batches the gradient statistics use")
    parser.add_argument("--tau", type=float, help="sampled modes: the Gumbel temperature (default: the run's tau_min)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [measure(run, args) for run in args.runs if (run / LAST_CHECKPOINT).is_file()]
    print(f"## Alpha gradient signal at the end of each search\n\n`{' '.join(['python', *sys.argv])}`; "
          f"{datetime.date.today()}; {args.batches} alpha batches per run, weights fixed at {LAST_CHECKPOINT}.\n")
    print("| run | mode | input | epochs | alpha steps | travel | median SNR | 90th pct SNR | drift = travel x SNR "
          "| noise walk = travel / sqrt(steps) | median \\|mean gradient\\| | alpha weight decay | decay ceiling | final entropy (cells) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    floor = rows[0]["signal"].noise_floor if rows else math.nan
    for row in rows:
        signal = row["signal"]
        print(f"| {row['run']} | {row['mode']} | {row['size']} | {row['epochs']} | {row['steps']} | {row['travel']:.2f} | "
              f"{signal.median_snr:.3f} | {signal.upper_snr:.3f} | {signal.expected_drift(row['travel']):.2f} | "
              f"{row['travel'] / math.sqrt(max(row['steps'], 1)):.2f} | {signal.median_gradient:.2e} | {row['weight_decay']:g} | "
              f"{ceiling(signal, row['weight_decay'])} | {row['entropy'][0]:.3f}-{row['entropy'][1]:.3f} |")
    print(f"\nNoise floor: gradients without any signal show a median SNR of about {floor:.3f} with {args.batches} batches "
          "(0.674 / sqrt(batches)); the drift column is meaningful only where the SNR is well above it. The decay ceiling "
          "(median |mean gradient| / alpha weight decay) is the logit at which the coupled weight decay cancels a typical "
          "alpha's signal: no travel moves a typical alpha past it.")


if __name__ == "__main__":
    main()
