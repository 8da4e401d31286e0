"""Does the search find better networks than random sampling from the same space, and than a UNet?

On CamVid, with one training sequence (0006R0) held out from the search and from every training,
this benchmark runs what a user would run and scores every candidate on that unseen sequence:

1. searches: ``udarts search --config SEARCH_CONFIG --seed S`` for each setting and search seed;
2. random genotypes: ``udarts sample --num N --seed R`` (uniform over the same space);
3. every genotype retrained with one cheap recipe, ``udarts train --config TRAIN_CONFIG``, whose
   ``model.flops_budget`` gives each SEARCH-Net the largest width under the same FLOPs, so
   searched and random genotypes are compared at matched FLOPs; the baselines (the ResNet-34 UNet
   and the classic UNet by default) are trained with the same recipe;
4. each candidate's best.pt (chosen on the held-out sequence) also scored on CamVid val with
   ``udarts eval --split val``, for comparison with earlier numbers (val shares its sequence with
   the training frames, so it rewards fitting a familiar sequence).

It reports the random genotypes' mean and standard deviation, each searched genotype's distance
from that mean in random standard deviations and its percentile among them, and, with
``--long-epochs``, whether the cheap recipe ranks like a longer one (Kendall tau between the two
over ``--long-candidates`` genotypes trained again with ``train.epochs = --long-epochs``).
``--train-seeds 0,1,2`` retrains every candidate with each seed and scores it by the mean, and
splits the random genotypes' spread into retraining noise and the genotypes' own spread
(``noise_decomposition``; at one seed the spread of this recipe is mostly training noise). Finished runs are reused and interrupted ones resumed, so the command can be re-run until it
completes. Each search and retraining (with its val scoring) is a trial of ``udarts.app.trials``:
``--jobs 2`` runs two at a time on this machine (one torch thread each), ``--backend ray [--address
auto]`` runs them as Ray tasks on a cluster whose workers share OUT's path (docs/scale-out.md).

    python bench/bench_search_quality.py --root ../shared/data/camvid --out runs/bench-quality \\
        --settings pc_darts --search-seeds 0,1 --random 8 --jobs 2 --plot docs/images/search-quality.png

A setting is ``MODE[:KEY=VALUE[:KEY=VALUE...]]`` with keys of the config's ``search`` section.
The derivation-time keys ``max_identity`` and ``top_k`` (the identity cap, the kept edges per node),
``selection`` and ``selection_batches`` (``selection=perturbation``: DARTS-PT's selection, scored on
that many batches of the search's alpha half) do not search again: the setting without them is
searched once (or reused) and its checkpoint derived again with ``udarts derive --max-identity N
--top-k K --selection S --batches B``, so that a rule is measured on the very supernet it reads. (The random genotypes keep the search config's ``search.top_k``: a ``top_k``
setting is compared with genotypes of another edge count.)
Prints a Markdown section for BENCHMARKS.md; ``--json FILE`` also writes the raw numbers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_search_accuracy import Setting, describe, run_command, shown  # noqa: E402
from udarts.app.compare import Statistic, measure_cost, read_run_result, run_finished  # noqa: E402
from udarts.app.trials import Step, Trial, TrialExecutor, add_executor_arguments, executor_settings  # noqa: E402
from udarts.complexity import cpu_model  # noqa: E402
from udarts.engine.layout import BEST_CHECKPOINT, CONFIG_FILE, GENOTYPE_FILE, LAST_CHECKPOINT, METRICS_LOG  # noqa: E402
from udarts.genotype import Genotype  # noqa: E402
from udarts.io import read_jsonl  # noqa: E402
from udarts.viz.figures import save_figure  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SEARCH_CONFIG = REPO_ROOT / "configs" / "camvid-search-lowres-cpu.yaml"  # PC-DARTS at 48x64: the best measured
TRAIN_CONFIG = REPO_ROOT / "configs" / "camvid-quality-cpu.yaml"
BASELINE_FLAGS = {  # the protocol's baselines (../shared/PROTOCOL.md), each at its own FLOPs (the budget sizes SEARCH-Net only)
    "unet_resnet34": ["--model", "unet_resnet34", "--set", "train.model_scale=paper"],
    "unet": ["--model", "unet"],  # the classic UNet at its CPU scale: 1.14 GFLOPs at 96x128
}


@dataclass
class Candidate:
    label: str  # "search pc_gdas seed 0", "random 3", "unet_resnet34"
    kind: str  # searched | random | baseline
    genotype: str | None  # path of the genotype (SEARCH-Net) or None (baseline)
    train_flags: list[str]
    search_dir: str | None = None
    setting: str | None = None  # the searched setting's label (searched candidates), e.g. "pc_darts:beta_decay=0.2"

    @property
    def slug(self) -> str:
        return self.label.replace(" ", "-").replace(":", "-").replace("=", "")


@dataclass
class Outcome:
    label: str
    kind: str
    parameters: int
    gflops: float
    width: int | None
    holdout_miou: float  # best epoch on the held-out sequence (best.pt); the mean over the retraining seeds
    final_holdout_miou: float
    val_miou: float  # best.pt scored on CamVid val
    train_minutes: float  # per retraining
    holdout_per_seed: list[float]  # best held-out mIoU of each retraining seed (--train-seeds order)
    search_minutes: float | None
    kept_ops: str
    long_holdout_miou: float | None = None
    long_epochs: int | None = None  # the finished long run's train.epochs
    setting: str | None = None


def train_dir(args: argparse.Namespace, candidate: Candidate, long: bool = False, seed: int = 0) -> Path:
    """``train-<slug>`` for retraining seed 0 (and ``long-<slug>``), ``train-<slug>-s<seed>`` for the others."""
    return args.out / ((f"long-{candidate.slug}" if long else f"train-{candidate.slug}") + (f"-s{seed}" if seed else ""))


def train_trial(candidate: Candidate, args: argparse.Namespace, long: bool = False, seed: int = 0) -> Trial:
    """Retraining one candidate with one seed, then (not the long runs) its best.pt scored on val."""
    run_dir = train_dir(args, candidate, long, seed)
    flags = ["--config", str(args.train_config), "--root", str(args.root), "--seed", str(seed), *candidate.train_flags]
    if long:
        flags += ["--epochs", str(args.long_epochs)]
    score = () if long else (Step(("eval", str(run_dir / BEST_CHECKPOINT), "--root", str(args.root), "--split", "val", "--json",
                                   str(run_dir / "eval-val.json"), "--no-progress"), run_dir / "eval-val.json"),)
    return Trial(f"{'long ' if long else ''}{candidate.label} seed {seed}", "train", run_dir, flags=tuple(flags),
                 cpus=args.cpus, then=score)


SETTING_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:cyan", "tab:pink", "tab:olive")
# setting keys applied by `udarts derive` (selection=perturbation: DARTS-PT, on the search's alpha half;
# selection=one_shot: the best of `candidates` random genotypes scored with the supernet's weights)
DERIVE_KEYS = {"max_identity": "--max-identity", "top_k": "--top-k", "selection": "--selection", "selection_batches": "--batches",
               "candidates": "--candidates"}


def split_setting(setting: Setting) -> tuple[Setting, list[str]]:
    """The setting that is searched (without the derivation-time keys) and the ``udarts derive`` flags."""
    searched = tuple((key, value) for key, value in setting.overrides if key not in DERIVE_KEYS)
    derive_flags = [flag for key, value in setting.overrides if key in DERIVE_KEYS for flag in (DERIVE_KEYS[key], value)]
    label = ":".join([setting.mode, *(f"{key}={value}" for key, value in searched)])
    return Setting(label, setting.mode, searched), derive_flags


def searched_candidate(setting: Setting, seed: int, args: argparse.Namespace) -> Candidate:
    searched, derive_flags = split_setting(setting)
    search_dir = args.out / f"search-{searched.slug}-seed{seed}"
    genotype = args.out / f"genotype-{setting.slug}-seed{seed}.json" if derive_flags else search_dir / GENOTYPE_FILE
    return Candidate(f"search {setting.label} seed {seed}", "searched", str(genotype), ["--genotype", str(genotype)], str(search_dir),
                     setting.label)


def search_trial(setting: Setting, seed: int, args: argparse.Namespace) -> Trial:
    """The search of ``setting`` without its derivation-time keys."""
    searched, _ = split_setting(setting)
    return Trial(f"search {searched.label} seed {seed}", "search", Path(searched_candidate(searched, seed, args).search_dir),
                 flags=("--config", str(args.search_config), "--root", str(args.root), "--seed", str(seed), *searched.set_flags()),
                 cpus=args.cpus)


def derive(setting: Setting, seed: int, args: argparse.Namespace) -> Candidate:
    """The finished search's genotype, derived again with the setting's derivation-time keys if it has any."""
    candidate = searched_candidate(setting, seed, args)
    _, derive_flags = split_setting(setting)
    genotype, checkpoint = Path(candidate.genotype), Path(candidate.search_dir) / LAST_CHECKPOINT
    # derived again when the search has moved on since (seconds; minutes with selection=perturbation)
    if derive_flags and (not genotype.is_file() or genotype.stat().st_mtime < checkpoint.stat().st_mtime):
        data_flags = ["--root", str(args.root), "--no-progress"] if "--selection" in derive_flags else []
        run_command([sys.executable, "-m", "udarts.cli", "derive", candidate.search_dir, *derive_flags, *data_flags,
                     "--out", candidate.genotype],
                    args.out / f"{Path(candidate.genotype).stem}.log")
    return candidate


def random_candidates(args: argparse.Namespace) -> list[Candidate]:
    folder = args.out / "random-genotypes"
    paths = sorted(folder.glob(f"random-{args.random_seed}-*.json"))[: args.random]
    if len(paths) < args.random:
        run_command([sys.executable, "-m", "udarts.cli", "sample", "--num", str(args.random), "--seed", str(args.random_seed),
                     "--config", str(args.search_config), "--out", str(folder)], args.out / "sample.log")
        paths = sorted(folder.glob(f"random-{args.random_seed}-*.json"))[: args.random]
    return [Candidate(f"random {Genotype.load(path).search['index']}", "random", str(path), ["--genotype", str(path)])
            for path in paths]


def read_outcome(candidate: Candidate, args: argparse.Namespace) -> Outcome:
    run_dirs = [train_dir(args, candidate, seed=seed) for seed in args.train_seeds]
    runs = [read_run_result(candidate.label, seed, path) for seed, path in zip(args.train_seeds, run_dirs)]
    run_dir = run_dirs[0]
    cost = measure_cost(run_dir / BEST_CHECKPOINT, torch.device("cpu"), warmup=0, repeats=1)
    vals = [float(json.loads((path / "eval-val.json").read_text())["miou"]) for path in run_dirs]
    search_minutes = None
    if candidate.search_dir is not None:
        search_minutes = sum(record.get("seconds") or 0.0 for record in read_jsonl(Path(candidate.search_dir) / METRICS_LOG)) / 60
    long_dir = train_dir(args, candidate, long=True)
    # only a finished long run counts: --report-only may run while one is still training
    long_run = read_run_result(candidate.label, 0, long_dir) if run_finished(long_dir) else None
    spec_width = None
    if candidate.genotype is not None:
        spec_width = int(yaml.safe_load((run_dir / CONFIG_FILE).read_text())["model"]["width"])
    return Outcome(
        label=candidate.label, kind=candidate.kind, parameters=cost.parameters, gflops=cost.flops / 1e9, width=spec_width,
        holdout_miou=statistics.fmean(run.best_val_miou for run in runs), final_holdout_miou=statistics.fmean(run.val_miou for run in runs),
        val_miou=statistics.fmean(vals), train_minutes=statistics.fmean(run.train_seconds for run in runs) / 60,
        search_minutes=search_minutes, holdout_per_seed=[run.best_val_miou for run in runs],
        kept_ops=describe(Genotype.load(candidate.genotype)) if candidate.genotype else "",
        long_holdout_miou=None if long_run is None else long_run.best_val_miou, long_epochs=None if long_run is None else long_run.epochs,
        setting=candidate.setting,
    )


def kendall_tau(first: list[float], second: list[float]) -> float:
    """Kendall's tau-a of two rankings of the same items (ties count as neither agreeing nor not)."""
    concordant = discordant = 0
    for i in range(len(first)):
        for j in range(i + 1, len(first)):
            sign = (first[i] - first[j]) * (second[i] - second[j])
            concordant += sign > 0
            discordant += sign < 0
    pairs = len(first) * (len(first) - 1) / 2
    return (concordant - discordant) / pairs if pairs else math.nan


def percentile(value: float, population: list[float]) -> float:
    """Share of ``population`` strictly below ``value`` plus half the ties, in percent."""
    below = sum(other < value for other in population) + 0.5 * sum(other == value for other in population)
    return 100 * below / len(population)


def noise_decomposition(per_seed: list[list[float]]) -> tuple[float, float]:
    """``(within, between)``: of genotypes each retrained with the same n seeds, the standard
    deviation of one retraining around its genotype's mean (pooled: the root of the mean
    per-genotype variance) and the estimated spread of the genotypes' true means (one-way
    random-effects ANOVA: the variance of the seed means less the within variance over n, 0 when
    noise alone explains the spread)."""
    seeds = len(per_seed[0]) if per_seed else 0
    if seeds < 2 or len(per_seed) < 2 or any(len(values) != seeds for values in per_seed):
        raise ValueError(f"need at least 2 genotypes with the same number (>= 2) of seeds, got {[len(v) for v in per_seed]}")
    within_variance = statistics.fmean(statistics.variance(values) for values in per_seed)
    means_variance = statistics.variance(statistics.fmean(values) for values in per_seed)
    return math.sqrt(within_variance), math.sqrt(max(0.0, means_variance - within_variance / seeds))


def difference_with_error(searched: list[float], randoms: list[float]) -> tuple[float, float]:
    """``(difference, standard error)`` of the searched genotypes' mean over the random ones' mean
    (Welch's; with one searched genotype its variance is taken as the random ones')."""
    random_stat = Statistic.of(randoms)
    searched_stat = Statistic.of(searched)
    searched_variance = (searched_stat.std if searched_stat.std is not None else random_stat.std or 0.0) ** 2
    error = math.sqrt((random_stat.std or 0.0) ** 2 / len(randoms) + searched_variance / len(searched))
    return searched_stat.mean - random_stat.mean, error


def markdown(args: argparse.Namespace, outcomes: list[Outcome], started: float) -> str:
    randoms = [outcome for outcome in outcomes if outcome.kind == "random"]
    searched = [outcome for outcome in outcomes if outcome.kind == "searched"]
    random_stat = Statistic.of([100 * outcome.holdout_miou for outcome in randoms])
    random_val = Statistic.of([100 * outcome.val_miou for outcome in randoms])
    lines = [
        "## Search quality on CamVid: searched vs random genotypes vs UNets (held-out sequence)",
        "",
        f"Command: `python bench/bench_search_quality.py {' '.join(sys.argv[1:])}`  ",
        f"Search: `{shown(args.search_config)}`; retraining (every candidate, seeds {','.join(map(str, args.train_seeds))}; "
        f"mIoU = mean over the seeds): `{shown(args.train_config)}`. "
        f"Held-out = CamVid training sequence 0006R0 (101 frames), seen by no search and no training; it picks {BEST_CHECKPOINT} "
        f"and gives the score. val = CamVid val (sequence 0016E5, whose other frames are in train), {BEST_CHECKPOINT} scored on it.  ",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, {args.jobs or 'all'} trial(s) at a time ({args.backend}), "
        f"{args.cpus} torch thread(s) each; "
        f"torch {torch.__version__}.  ",
        f"Date: {datetime.date.today().isoformat()}; this invocation took {(time.perf_counter() - started) / 60:.1f} min "
        "(finished runs are reused).",
        "",
        "| candidate | width | params | GFLOPs | held-out mIoU (best) | per retraining seed | held-out (final) | val mIoU | vs random (std) | percentile | search min | train min | kept ops |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for outcome in outcomes:
        score = 100 * outcome.holdout_miou
        distance = f"{(score - random_stat.mean) / random_stat.std:+.2f}" if random_stat.std else ""  # needs 2 random genotypes
        rank = f"{percentile(score, [100 * other.holdout_miou for other in randoms]):.0f}" if randoms else ""
        lines.append(
            f"| {outcome.label} | {outcome.width or ''} | {outcome.parameters / 1e6:.2f} M | {outcome.gflops:.3f} | {score:.2f} | "
            f"{' / '.join(f'{100 * value:.2f}' for value in outcome.holdout_per_seed)} | {100 * outcome.final_holdout_miou:.2f} | {100 * outcome.val_miou:.2f} | {distance} | {rank} | "
            f"{'' if outcome.search_minutes is None else f'{outcome.search_minutes:.1f}'} | {outcome.train_minutes:.1f} | {outcome.kept_ops} |"
        )
    lines += ["", "| group | count | held-out mIoU, mean +- std | val mIoU, mean +- std | GFLOPs, mean |", "|---|---:|---:|---:|---:|"]
    settings = list(dict.fromkeys(outcome.setting for outcome in searched))  # in the order given
    by_setting = {setting: [outcome for outcome in searched if outcome.setting == setting] for setting in settings}
    groups = ([(f"searched {setting}", rows) for setting, rows in by_setting.items()]
              + [("random", randoms)] + [(row.label, [row]) for row in outcomes if row.kind == "baseline"])
    for label, group in groups:
        if not group:
            continue
        held = Statistic.of([100 * row.holdout_miou for row in group])
        val = Statistic.of([100 * row.val_miou for row in group])
        spread = lambda stat: f"{stat.mean:.2f}" + (f" +- {stat.std:.2f}" if stat.std is not None else "")  # noqa: E731
        lines.append(f"| {label} | {len(group)} | {spread(held)} | {spread(val)} | {Statistic.of([row.gflops for row in group]).mean:.3f} |")
    if searched and random_stat.std:
        lines += ["", f"Against random {random_stat.mean:.2f} +- {random_stat.std:.2f} held-out "
                      f"(val: {random_val.mean:.2f} +- {random_val.std or 0:.2f}), by setting (the issue's bar: +2 random standard deviations):"]
        random_scores = [100 * outcome.holdout_miou for outcome in randoms]
        for setting, rows in by_setting.items():
            searched_scores = [100 * outcome.holdout_miou for outcome in rows]
            searched_mean = statistics.fmean(searched_scores)
            margin = (searched_mean - random_stat.mean) / random_stat.std
            verdict = "beats" if margin >= 2 else "does not beat"
            difference, error = difference_with_error(searched_scores, random_scores)
            lines.append(f"- {setting}: searched mean {searched_mean:.2f} over {len(rows)} search seed(s), {margin:+.2f} random "
                         f"standard deviations; {verdict} random sampling by the bar (difference {difference:+.2f} +- "
                         f"{error:.2f} standard error).")
    seeded = [row for row in outcomes if row.kind != "baseline"]
    if len(args.train_seeds) > 1 and len(randoms) > 1:
        within, between = noise_decomposition([[100 * value for value in row.holdout_per_seed] for row in randoms])
        within_all, _ = noise_decomposition([[100 * value for value in row.holdout_per_seed] for row in seeded])
        seeds = len(args.train_seeds)
        lines += ["", f"Retraining noise: one retraining lies {within:.2f} from its genotype's mean (pooled std over the "
                      f"random genotypes; {within_all:.2f} over every genotype), so noise alone spreads {seeds}-seed means "
                      f"by about {within / math.sqrt(seeds):.2f}; the random genotypes' seed means spread by "
                      f"{random_stat.std:.2f}, which leaves an estimated {between:.2f} to the genotypes themselves "
                      "(random-effects ANOVA; 0 = noise explains it all)."]
    ranked = [outcome for outcome in outcomes if outcome.long_holdout_miou is not None]
    if len(ranked) >= 2:
        tau = kendall_tau([row.holdout_miou for row in ranked], [row.long_holdout_miou for row in ranked])
        epochs = "/".join(str(value) for value in sorted({row.long_epochs for row in ranked}))
        lines += ["", f"Rank agreement of the cheap recipe with {epochs} epochs over {len(ranked)} genotypes: "
                      f"Kendall tau {tau:+.2f} (" + ", ".join(f"{row.label} {100 * row.holdout_miou:.1f} -> {100 * row.long_holdout_miou:.1f}"
                                                          for row in ranked) + ")."]
    return "\n".join(lines)


def plot(outcomes: list[Outcome], path: Path) -> Path:
    """Held-out mIoU against GFLOPs: the random cloud, the searched points, the baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    randoms = [outcome for outcome in outcomes if outcome.kind == "random"]
    def spread(rows: list[Outcome]) -> list[float] | None:  # seed std of each row, when retrained with several seeds
        if not rows or len(rows[0].holdout_per_seed) < 2:
            return None
        return [statistics.stdev(100 * value for value in row.holdout_per_seed) for row in rows]

    if randoms:
        axes.errorbar([row.gflops for row in randoms], [100 * row.holdout_miou for row in randoms], yerr=spread(randoms),
                      color="0.6", marker="o", linestyle="none", capsize=2, label="random genotypes", zorder=3)
    searched = [outcome for outcome in outcomes if outcome.kind == "searched"]
    for index, setting in enumerate(dict.fromkeys(row.setting for row in searched)):  # one colour per searched setting
        rows = [row for row in searched if row.setting == setting]
        axes.errorbar([row.gflops for row in rows], [100 * row.holdout_miou for row in rows], yerr=spread(rows), marker="*",
                      markersize=11, linestyle="none", capsize=2, color=SETTING_COLOURS[index % len(SETTING_COLOURS)],
                      label=f"searched {setting}", zorder=4)
    for index, row in enumerate(outcome for outcome in outcomes if outcome.kind == "baseline"):
        axes.errorbar([row.gflops], [100 * row.holdout_miou], yerr=spread([row]), marker="s", linestyle="none", capsize=2,
                      color=("black", "tab:brown")[index % 2], label=row.label, zorder=3)
    if len(randoms) > 1:
        stat = Statistic.of([100 * row.holdout_miou for row in randoms])
        axes.axhspan(stat.mean - 2 * stat.std, stat.mean + 2 * stat.std, color="0.85", zorder=1, label="random mean +- 2 std")
    axes.set_xscale("log")
    axes.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(0.5, 0.7, 1.0, 1.5, 2.0, 3.0)))
    axes.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes.set_xlabel("GFLOPs per 96x128 image")
    axes.set_ylabel("held-out mIoU (%), sequence 0006R0" + ("\n(bars: std over the retraining seeds)" if spread(outcomes) else ""))
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, type=Path, help="CamVid root (SegNet layout)")
    parser.add_argument("--out", required=True, type=Path, help="folder of the runs (re-used on a re-run)")
    parser.add_argument("--settings", default="pc_darts", help="comma-separated MODE[:KEY=VALUE...] searched (default pc_darts; '' for none)")
    parser.add_argument("--search-seeds", default="0,1", help="comma-separated search seeds (default 0,1)")
    parser.add_argument("--random", type=int, default=8, help="random genotypes (default 8)")
    parser.add_argument("--random-seed", type=int, default=0)
    parser.add_argument("--baselines", default="unet_resnet34,unet", help=f"comma-separated, of {sorted(BASELINE_FLAGS)}")
    parser.add_argument("--train-seeds", default="0", help="comma-separated retraining seeds of every candidate (default 0); "
                        "a candidate's mIoU is the mean over them")
    parser.add_argument("--search-config", type=Path, default=SEARCH_CONFIG)
    parser.add_argument("--train-config", type=Path, default=TRAIN_CONFIG)
    parser.add_argument("--long-epochs", type=int, help="also retrain --long-candidates genotypes this long, for Kendall tau")
    parser.add_argument("--long-candidates", type=int, default=4, help="genotypes retrained long (searched first, then random)")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    parser.add_argument("--plot", type=Path, help="also draw held-out mIoU against GFLOPs here (.png)")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: report the candidates whose retraining and val scoring have finished")
    add_executor_arguments(parser, cpus_default=1)  # one torch thread per trial unless asked
    args = parser.parse_args()
    executor = executor_settings(args)
    args.cpus = executor.trial_cpus()
    args.search_config, args.train_config = args.search_config.resolve(), args.train_config.resolve()
    args.train_seeds = [int(seed) for seed in filter(None, args.train_seeds.split(","))]
    unknown = [name for name in filter(None, args.baselines.split(",")) if name not in BASELINE_FLAGS]
    if unknown:
        raise SystemExit(f"--baselines: unknown {unknown}; choose from {sorted(BASELINE_FLAGS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    started = time.perf_counter()

    settings = [Setting.parse(text) for text in filter(None, args.settings.split(","))]
    seeds = [int(seed) for seed in filter(None, args.search_seeds.split(","))]
    baselines = [Candidate(name, "baseline", None, BASELINE_FLAGS[name]) for name in filter(None, args.baselines.split(","))]
    candidates = random_candidates(args) + baselines if args.random else baselines
    # one search per (searched setting, seed): settings that differ only in derivation-time keys share it
    searches = list(dict.fromkeys((split_setting(setting)[0], seed) for setting in settings for seed in seeds))
    print(f"{len(searches)} searches for {len(settings) * len(seeds)} searched genotypes, {len(candidates)} random/baseline "
          f"candidates, {args.jobs or 'all'} at a time ({args.backend}); logs in {args.out}", file=sys.stderr)
    if args.report_only:
        report(args, finished(args, settings, seeds, candidates), started)
        return
    with TrialExecutor(executor.backend, executor.jobs, executor.address, executor.retries,
                       log=lambda line: print(line, file=sys.stderr, flush=True), progress=sys.stderr.isatty()) as trials:
        # searches first (each then retrained), the random genotypes and baselines fill the other slots
        search_futures = [trials.submit(search_trial(searched, seed, args)) for searched, seed in searches]
        trained = [trials.submit(train_trial(candidate, args, False, seed)) for seed in args.train_seeds for candidate in candidates]
        for future in search_futures:
            future.result()
        searched = [derive(setting, seed, args) for setting in settings for seed in seeds]
        trained += [trials.submit(train_trial(candidate, args, False, seed)) for seed in args.train_seeds for candidate in searched]
        for future in trained:
            future.result()
        everything = searched + candidates
        if args.long_epochs:
            chosen = [candidate for candidate in everything if candidate.kind != "baseline"][: args.long_candidates]
            for future in [trials.submit(train_trial(candidate, args, True)) for candidate in chosen]:
                future.result()
    report(args, everything, started)


def finished(args: argparse.Namespace, settings: list[Setting], seeds: list[int], candidates: list[Candidate]) -> list[Candidate]:
    """The candidates (searched ones first) whose retraining was scored on val, without running anything."""
    searched = [searched_candidate(setting, seed, args) for setting in settings for seed in seeds]
    return [candidate for candidate in searched + candidates
            if all((train_dir(args, candidate, seed=seed) / "eval-val.json").is_file() for seed in args.train_seeds)]


def report(args: argparse.Namespace, candidates: list[Candidate], started: float) -> None:
    outcomes = [read_outcome(candidate, args) for candidate in candidates]
    print(markdown(args, outcomes, started))
    if args.json:
        args.json.write_text(json.dumps([asdict(outcome) for outcome in outcomes], indent=2) + "\n")
    if args.plot and outcomes:
        plot(outcomes, args.plot)


if __name__ == "__main__":
    main()
