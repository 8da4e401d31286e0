"""What each search saving costs in accuracy: full searches per setting and seed, each genotype
retrained and scored.

For every setting (a search mode, optionally with more ``search.*`` overrides such as a FLOPs
penalty) and every seed, this runs the three commands a user would run::

    udarts search --config SEARCH_CONFIG --root ROOT --seed S --set search.mode=M ... --out OUT/search-<setting>-seed<S>
    udarts train  --config TRAIN_CONFIG  --root ROOT --seed S --genotype .../genotype.json --out OUT/train-<setting>-seed<S>

and then reads, from the run folders: the search's wall time (its summed epoch times), the
retrained SEARCH-Net's best and final val mIoU, and its parameters and FLOPs (one image at the
training size). Finished runs are reused and interrupted ones resumed, so the command can be
re-run until it completes. Each search and retraining is a trial of ``udarts.app.trials``: ``--jobs 2``
runs two at a time on this machine (one torch thread each), ``--backend ray [--address auto]`` runs
them as Ray tasks on a cluster whose workers share OUT's path (docs/scale-out.md); a retraining
starts when its search has finished.

    python bench/bench_search_accuracy.py --root ../shared/data --out runs/bench-accuracy \\
        --settings darts,gdas --seeds 0,1
    python bench/bench_search_accuracy.py --root ../shared/data --out runs/bench-accuracy \\
        --settings gdas:flops_penalty=0.1,gdas:flops_penalty=1 --seeds 0    # the mIoU-FLOPs trade-off

A setting is ``MODE[:KEY=VALUE[:KEY=VALUE...]]`` with keys of the config's ``search`` section.
Prints a Markdown section for BENCHMARKS.md; ``--json FILE`` also writes the raw numbers.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from udarts.app.compare import Statistic, measure_cost, read_run_result
from udarts.app.trials import Trial, TrialExecutor, add_executor_arguments, executor_settings
from udarts.complexity import cpu_model
from udarts.engine.layout import BEST_CHECKPOINT, GENOTYPE_FILE, METRICS_LOG
from udarts.genotype import Genotype
from udarts.io import read_jsonl
from udarts.viz.figures import save_figure

REPO_ROOT = Path(__file__).resolve().parents[1]
SEARCH_CONFIG = REPO_ROOT / "configs" / "pets-search-cpu.yaml"
TRAIN_CONFIG = REPO_ROOT / "configs" / "pets-train-64-cpu.yaml"


@dataclass(frozen=True)
class Setting:
    label: str  # as given on the command line, e.g. "gdas:flops_penalty=0.1"
    mode: str
    overrides: tuple[tuple[str, str], ...]  # (search key, value)

    @classmethod
    def parse(cls, text: str) -> "Setting":
        mode, *assignments = text.split(":")
        overrides = []
        for assignment in assignments:
            key, separator, value = assignment.partition("=")
            if not separator or not key:
                raise SystemExit(f"--settings: {text!r}: expected MODE[:KEY=VALUE...], got {assignment!r}")
            overrides.append((key, value))
        return cls(text, mode, tuple(overrides))

    @property
    def slug(self) -> str:
        return self.label.replace(":", "-").replace("=", "")

    def set_flags(self) -> list[str]:
        flags = ["--set", f"search.mode={self.mode}"]
        for key, value in self.overrides:
            flags += ["--set", f"search.{key}={value}"]
        return flags


@dataclass
class Outcome:
    setting: str
    seed: int
    search_minutes: float
    search_epochs: int
    genotype: str  # one line: the ops each cell kept
    parameters: int
    gflops: float
    image_size: list[int]
    best_val_miou: float
    final_val_miou: float
    train_minutes: float


def run_command(command: list[str], log_path: Path) -> None:
    environment = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    started = time.perf_counter()
    with log_path.open("a") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=environment)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed with exit code {result.returncode}; see {log_path}")
    print(f"  done in {(time.perf_counter() - started) / 60:.1f} min: {log_path.stem}", file=sys.stderr, flush=True)


def search_trial(setting: Setting, seed: int, args: argparse.Namespace) -> Trial:
    return Trial(f"search {setting.label} seed {seed}", "search", args.out / f"search-{setting.slug}-seed{seed}",
                 flags=("--config", str(args.search_config), "--root", str(args.root), "--seed", str(seed), *setting.set_flags()),
                 cpus=args.cpus)


def train_trial(setting: Setting, seed: int, args: argparse.Namespace) -> Trial:
    """The retraining of the search's genotype (the same seed)."""
    genotype = args.out / f"search-{setting.slug}-seed{seed}" / GENOTYPE_FILE
    return Trial(f"train {setting.label} seed {seed}", "train", args.out / f"train-{setting.slug}-seed{seed}",
                 flags=("--config", str(args.train_config), "--root", str(args.root), "--seed", str(seed), "--genotype", str(genotype)),
                 cpus=args.cpus)


def read_outcome(setting: Setting, seed: int, search_dir: Path, train_dir: Path) -> Outcome:
    search_records = read_jsonl(search_dir / METRICS_LOG)
    trained = read_run_result(setting.label, seed, train_dir)
    cost = measure_cost(train_dir / BEST_CHECKPOINT, torch.device("cpu"), warmup=1, repeats=1)
    genotype = Genotype.load(search_dir / GENOTYPE_FILE)
    return Outcome(
        setting=setting.label,
        seed=seed,
        search_minutes=sum(record.get("seconds") or 0.0 for record in search_records) / 60,
        search_epochs=len(search_records),
        genotype=describe(genotype),
        parameters=cost.parameters,
        gflops=cost.flops / 1e9,
        image_size=cost.image_size,
        best_val_miou=trained.best_val_miou,
        final_val_miou=trained.val_miou,
        train_minutes=trained.train_seconds / 60,
    )


def describe(genotype: Genotype) -> str:
    """Counts of the kept ops over all cells, e.g. ``conv_3x3 x5, identity x3``."""
    counts: dict[str, int] = {}
    for cell in genotype.cells:
        for op_name in cell.ops():
            counts[op_name] = counts.get(op_name, 0) + 1
    return ", ".join(f"{name} x{count}" for name, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def shown(path: Path) -> str:
    """A path relative to the repository when inside it."""
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def markdown(args: argparse.Namespace, settings: list[Setting], outcomes: list[Outcome], started: float) -> str:
    load = os.getloadavg()[0]
    lines = [
        "## Search accuracy per mode: full CPU searches, each genotype retrained",
        "",
        f"Command: `python bench/bench_search_accuracy.py {' '.join(sys.argv[1:])}`  ",
        f"Search: `{shown(args.search_config)}`; retraining: `{shown(args.train_config)}` "
        "(the same seed as the search). val = the dataset's val split (Oxford-IIIT Pet: 20% of trainval, stratified by "
        "breed; the official test list is its test split, which this benchmark does not read).  ",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, {args.jobs or 'all'} trial(s) at a time ({args.backend}), "
        f"{args.cpus} torch thread(s) each; "
        f"torch {torch.__version__}; 1-minute load average {load:.1f} at the end.  ",
        f"Date: {datetime.date.today().isoformat()}; this invocation took {(time.perf_counter() - started) / 60:.1f} min "
        "(finished runs are reused, so a re-run is shorter than the work it reports).",
        "",
        "| setting | seed | search min | SEARCH-Net params | GFLOPs | best val mIoU | final val mIoU | kept ops |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for outcome in outcomes:
        lines.append(
            f"| {outcome.setting} | {outcome.seed} | {outcome.search_minutes:.1f} | {outcome.parameters / 1e6:.2f} M | "
            f"{outcome.gflops:.3f} | {100 * outcome.best_val_miou:.2f} | {100 * outcome.final_val_miou:.2f} | {outcome.genotype} |"
        )
    lines += ["", "| setting | seeds | search min, mean | GFLOPs, mean | best val mIoU, mean +- std |", "|---|---:|---:|---:|---:|"]
    for setting in settings:
        rows = [outcome for outcome in outcomes if outcome.setting == setting.label]
        if not rows:
            continue
        miou = Statistic.of([100 * row.best_val_miou for row in rows])
        spread = f" +- {miou.std:.2f}" if miou.std is not None else ""
        lines.append(
            f"| {setting.label} | {len(rows)} | {Statistic.of([row.search_minutes for row in rows]).mean:.1f} | "
            f"{Statistic.of([row.gflops for row in rows]).mean:.3f} | {miou.mean:.2f}{spread} |"
        )
    return "\n".join(lines)


def plot_tradeoff(outcomes: list[Outcome], path: Path) -> Path:
    """Best val mIoU against the retrained SEARCH-Net's GFLOPs, one point per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
    labels = list(dict.fromkeys(outcome.setting for outcome in outcomes))
    for index, label in enumerate(labels):
        rows = [outcome for outcome in outcomes if outcome.setting == label]
        axes.scatter([row.gflops for row in rows], [100 * row.best_val_miou for row in rows], label=label,
                     color=plt.cm.tab10(index % 10), zorder=3)
    flops = [outcome.gflops for outcome in outcomes]
    if max(flops) > 10 * min(flops):  # a log axis only where the FLOPs span a decade
        axes.set_xscale("log")
        axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axes.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    axes.set_xlabel(f"SEARCH-Net GFLOPs per image ({outcomes[0].image_size[0]}x{outcomes[0].image_size[1]})")
    axes.set_ylabel("best val mIoU (%)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, type=Path, help="dataset root (the folder holding oxford-iiit-pet/)")
    parser.add_argument("--out", required=True, type=Path, help="folder of the runs (re-used on a re-run)")
    parser.add_argument("--settings", default="darts,gdas", help="comma-separated MODE[:KEY=VALUE...] (default darts,gdas)")
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds (default 0,1)")
    parser.add_argument("--search-config", type=Path, default=SEARCH_CONFIG)
    parser.add_argument("--train-config", type=Path, default=TRAIN_CONFIG)
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    parser.add_argument("--plot", type=Path, help="also draw val mIoU against SEARCH-Net GFLOPs here (.png)")
    add_executor_arguments(parser, cpus_default=1)  # one torch thread per trial unless asked
    args = parser.parse_args()
    executor = executor_settings(args)
    args.cpus = executor.trial_cpus()
    args.seeds = [int(seed) for seed in args.seeds.split(",")]
    args.search_config, args.train_config = args.search_config.resolve(), args.train_config.resolve()
    settings = [Setting.parse(text) for text in args.settings.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)

    started = time.perf_counter()
    tasks = [(setting, seed) for setting in settings for seed in args.seeds]
    print(f"{len(tasks)} search + retrain pairs, {args.jobs or 'all'} at a time ({args.backend}); logs in {args.out}",
          file=sys.stderr)
    with TrialExecutor(executor.backend, executor.jobs, executor.address, executor.retries,
                       log=lambda line: print(line, file=sys.stderr, flush=True), progress=sys.stderr.isatty()) as trials:
        searches = {trials.submit(search_trial(setting, seed, args)): (setting, seed) for setting, seed in tasks}
        retrainings = {}
        for search in concurrent.futures.as_completed(searches):  # each retraining as soon as its search is done
            search.result()
            retrainings[searches[search]] = trials.submit(train_trial(*searches[search], args))
        for retraining in retrainings.values():
            retraining.result()
    outcomes = [read_outcome(setting, seed, search_trial(setting, seed, args).run_dir, train_trial(setting, seed, args).run_dir)
                for setting, seed in tasks]
    print(markdown(args, settings, outcomes, started))
    if args.json:
        args.json.write_text(json.dumps([asdict(outcome) for outcome in outcomes], indent=2) + "\n")
    if args.plot:
        plot_tradeoff(outcomes, args.plot)


if __name__ == "__main__":
    main()
