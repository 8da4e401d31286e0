"""Does a trained supernet rank genotypes as retraining them does? One-shot scores against retrained ones.

Every genotype that ``bench/bench_search_quality.py`` retrained (the run folders
``train-<slug>[-s<seed>]`` in ``--runs``, whose ``config.yaml`` names the genotype; baselines are
left out) is scored as a sub-network of each given search's supernet
(``udarts.search.one_shot``, as ``udarts derive --selection one_shot`` scores its candidates:
batch-norm statistics re-estimated on ``--batches`` batches of the search's weight half, mIoU on
``--batches`` batches of its alpha half). The one-shot ranking is then set against the retrained
one: the held-out mIoU of best.pt (sequence 0006R0), the mean over the retraining ``--seeds``.
Reports, per supernet, Kendall tau between the two rankings (one-shot mIoU, and one-shot loss
negated), the retrained score of the genotype the supernet ranks first, and the agreement of the
supernets with each other.

    OMP_NUM_THREADS=1 python bench/bench_one_shot_ranking.py --runs runs/bench-quality --root ../shared/data/camvid \\
        runs/bench-quality/search-pc_darts-alpha_weight_decay0-seed0 runs/bench-quality/search-pc_darts-alpha_weight_decay0-seed1

Prints a Markdown section for BENCHMARKS.md; ``--json FILE`` also writes the numbers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_search_quality import kendall_tau  # noqa: E402
from udarts.app.compare import read_run_result, run_finished  # noqa: E402
from udarts.app.genotypes import supernet_and_search_batches  # noqa: E402
from udarts.complexity import cpu_model  # noqa: E402
from udarts.config import Config  # noqa: E402
from udarts.engine.layout import BEST_CHECKPOINT, CONFIG_FILE, LAST_CHECKPOINT  # noqa: E402
from udarts.engine.runs import load_checkpoint  # noqa: E402
from udarts.genotype import Genotype  # noqa: E402
from udarts.search.one_shot import one_shot_scores  # noqa: E402

RUN_NAME = re.compile(r"^train-(?P<slug>.+?)(-s(?P<seed>\d+))?$")


def retrained_genotypes(runs: Path, seeds: list[int]) -> dict[str, dict]:
    """``{slug: {"genotype": path, "per_seed": [held-out best mIoU of each seed]}}`` of every
    genotype retrained to the end with each of ``seeds`` (baselines, with no genotype, left out)."""
    found: dict[str, dict] = {}
    for path in sorted(runs.glob("train-*")):
        match = RUN_NAME.match(path.name)
        if not path.is_dir() or match is None or not (path / CONFIG_FILE).is_file() or not run_finished(path):
            continue
        genotype = (yaml.safe_load((path / CONFIG_FILE).read_text()) or {}).get("train", {}).get("genotype")
        if not genotype:
            continue
        seed = int(match["seed"] or 0)
        entry = found.setdefault(match["slug"], {"genotype": genotype, "by_seed": {}})
        entry["by_seed"][seed] = read_run_result(match["slug"], seed, path).best_val_miou
    return {slug: {"genotype": entry["genotype"], "per_seed": [entry["by_seed"][seed] for seed in seeds]}
            for slug, entry in found.items() if all(seed in entry["by_seed"] for seed in seeds)}


def score_with_supernet(search_dir: Path, genotypes: dict[str, Genotype], args: argparse.Namespace) -> dict[str, dict]:
    """``{slug: {"miou", "loss"}}``: each genotype's one-shot score on the supernet of ``search_dir``."""
    state = load_checkpoint(search_dir, kind="search")
    config = Config.from_dict(state["config"], f"{search_dir} (config)")
    model, loss_fn, info, (evaluation, recalibration) = supernet_and_search_batches(
        state, config, args.batches, str(args.root), args.device, "one-shot", weight_half_too=True)
    slugs = list(genotypes)
    scores = one_shot_scores(model, [genotypes[slug] for slug in slugs], recalibration, evaluation, loss_fn,
                             len(info["class_names"]), info["ignore_index"])
    return {slug: {"miou": score.miou, "loss": score.loss} for slug, score in zip(slugs, scores)}


def markdown(args: argparse.Namespace, retrained: dict[str, dict], scored: dict[str, dict[str, dict]], started: float) -> str:
    slugs = sorted(retrained, key=lambda slug: -statistics.fmean(retrained[slug]["per_seed"]))
    means = {slug: 100 * statistics.fmean(retrained[slug]["per_seed"]) for slug in slugs}
    searches = list(scored)
    lines = [
        "## One-shot ranking against retraining (CamVid)",
        "",
        f"Command: `python bench/bench_one_shot_ranking.py {' '.join(sys.argv[1:])}`  ",
        f"One-shot: {args.batches} weight-half batches re-estimate batch norm, {args.batches} alpha-half batches score "
        f"(mIoU, loss). Retrained: held-out mIoU of {BEST_CHECKPOINT}, mean over seeds {','.join(map(str, args.seeds))} "
        f"(the runs in `{args.runs}`).  ",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, one torch thread; torch {torch.__version__}. "
        f"Date: {datetime.date.today().isoformat()}; {(time.perf_counter() - started) / 60:.1f} min.",
        "",
        "| genotype | retrained (mean) | per seed | " + " | ".join(f"one-shot mIoU / loss, {Path(s).name}" for s in searches) + " |",
        "|---|---:|---|" + "---:|" * len(searches),
    ]
    for slug in slugs:
        per_seed = " / ".join(f"{100 * value:.2f}" for value in retrained[slug]["per_seed"])
        cells = " | ".join(f"{100 * scored[s][slug]['miou']:.2f} / {scored[s][slug]['loss']:.3f}" for s in searches)
        lines.append(f"| {slug} | {means[slug]:.2f} | {per_seed} | {cells} |")
    lines.append("")
    retrained_order = [means[slug] for slug in slugs]
    for search in searches:
        by_miou = [scored[search][slug]["miou"] for slug in slugs]
        by_loss = [-scored[search][slug]["loss"] for slug in slugs]
        first = max(slugs, key=lambda slug: scored[search][slug]["miou"])
        beaten = sum(means[other] < means[first] for other in slugs)
        lines.append(f"- {Path(search).name}: Kendall tau with the retrained ranking {kendall_tau(by_miou, retrained_order):+.2f} "
                     f"(one-shot mIoU), {kendall_tau(by_loss, retrained_order):+.2f} (one-shot loss); it ranks {first} first, "
                     f"retrained to {means[first]:.2f} (above {beaten} of the other {len(slugs) - 1}; mean of all "
                     f"{statistics.fmean(retrained_order):.2f}).")
    if len(searches) == 2:
        first, second = ([scored[search][slug]["miou"] for slug in slugs] for search in searches)
        lines.append(f"- The two supernets agree with each other at Kendall tau {kendall_tau(first, second):+.2f}.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("searches", nargs="+", type=Path, help=f"search run folders (their {LAST_CHECKPOINT} is read)")
    parser.add_argument("--runs", required=True, type=Path, help="bench_search_quality.py's --out folder")
    parser.add_argument("--root", required=True, type=Path, help="the searches' dataset root (CamVid)")
    parser.add_argument("--seeds", default="0,1,2", help="retraining seeds a genotype needs to be ranked (default 0,1,2)")
    parser.add_argument("--batches", type=int, default=8, help="weight-half and alpha-half batches per genotype (default 8)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    args.seeds = [int(seed) for seed in args.seeds.split(",") if seed]
    if args.batches < 1:
        parser.error(f"--batches: expected an integer >= 1, got {args.batches}")
    torch.set_num_threads(1)
    started = time.perf_counter()
    retrained = retrained_genotypes(args.runs, args.seeds)
    if len(retrained) < 2:
        sys.exit(f"{args.runs}: {len(retrained)} genotype(s) retrained with seeds {args.seeds}; need at least 2 to rank")
    genotypes = {slug: Genotype.load(entry["genotype"]) for slug, entry in retrained.items()}
    scored = {str(search): score_with_supernet(search, genotypes, args) for search in args.searches}
    print(markdown(args, retrained, scored, started))
    if args.json:
        args.json.write_text(json.dumps({"retrained": retrained, "one_shot": scored}, indent=2) + "\n")


if __name__ == "__main__":
    main()
