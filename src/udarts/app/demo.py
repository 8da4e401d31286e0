"""``udarts demo``: search -> derive -> retrain -> evaluate -> report on built-in synthetic data,
in well under a minute on one CPU thread, through the same API a notebook uses (``udarts.experiment``).

Before it starts it times one search step of its supernet and prints how long the whole demo
should take on this machine; at the end it writes the search's and the training's reports (the
figures ``udarts report`` draws) and prints where they are.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch

from udarts import experiment
from udarts.app.evaluation import write_metrics
from udarts.app.settling import search_until_settled
from udarts.config import Config
from udarts.efficiency import use_threads
from udarts.genotype import Genotype

# Small enough for one CPU thread in well under a minute, on the built-in synthetic data: a supernet of
# width 4 with 2 nodes per cell. The search keeps the paper's 7 ops without DARTS's extra zero op
# ('none', which on an edge where nothing helps takes most of the weight and leaves the kept ops
# in a near-tie); alpha_travel sizes the alpha steps to the 30 there are (5 alpha epochs x 6),
# and Adam's first beta of 0.99 (DARTS: 0.5) moves each alpha along the mean of its noisy
# gradients so far instead of the last two, so the alphas drift instead of jittering.
# One torch thread: at this size a second one saves 10% of a search step on a quiet 2-core machine
# and with one other job running makes each step 13 times slower (BENCHMARKS.md, "Threads on a busy
# CPU"). A search this short sometimes ends with one kept edge whose two best ops are within 0.01
# of each other: settle_epochs searches on, one epoch at a time and at most 3, until no cell is
# weakly determined (udarts.app.settling). Measured over 8 seeds x 4 kernel variants (BENCHMARKS.md,
# "Do short searches end settled on other CPUs?"): 32 of 32 settled, 28 after the 6 epochs, the
# others after 7 or 9.
DEMO_SETTINGS: dict[str, Any] = {
    "threads": 1,
    "data": {"name": "synthetic", "image_size": [32, 32], "num_samples": 96, "batch_size": 8},
    "model": {"width": 4, "num_nodes": 2, "include_none": False},
    "search": {"epochs": 6, "settle_epochs": 3, "warmup_epochs": 1, "alpha_travel": 12.0, "alpha_betas": [0.99, 0.999]},
    "train": {"epochs": 10, "optimizer": "adam", "lr": 3.0e-3, "weight_decay": 0.0, "loss": "dice_ce"},
}

# The whole demo (search, retraining, evaluation, reports) costs about this many times one search
# step as time_search_step times it: 36 s for a 0.57 s step (2-core Intel Xeon, 2026-12-05), and
# up to half as much again when the search needs its settling epochs.
DEMO_COST_IN_SEARCH_STEPS = 70.0


def time_search_step(config: Config, repeats: int = 2) -> float:
    """Seconds of one search step (an alpha step and a weight step on a batch) of the config's
    supernet on its data: the median of ``repeats`` after one warm-up step."""
    from udarts import builders

    device = experiment.resolve_device(config.device)
    dataset = builders.build_split(config, "train", augment=False)
    samples = [dataset[index] for index in range(min(config.data.batch_size, len(dataset)))]
    batch = (torch.stack([image for image, _ in samples]).to(device), torch.stack([mask for _, mask in samples]).to(device))
    model = builders.build_supernet(config, len(dataset.class_names)).to(device)
    strategy = builders.build_strategy(config, model, 1, dataset.ignore_index, device).strategy
    seconds = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        strategy.step(batch, batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds[1:])


def format_duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def run_demo(config: Config, out: str | Path | None = None) -> dict[str, Any]:
    """The whole pipeline in ``out`` (``search/``, ``train/``, ``eval.json``); returns the val metrics."""
    from udarts.app.report import report_search_run, report_train_run

    started = time.perf_counter()
    root = Path(out) if out else Path(config.out) / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root}: folder exists and is not empty; pass another --out")
    use_threads(config.threads, experiment.resolve_device(config.device), announce=False)
    size = "x".join(map(str, config.data.image_size))
    print(f"udarts demo: search -> derive -> retrain -> evaluate on {config.data.name} {size} images, "
          f"{torch.get_num_threads()} torch thread(s)")
    step = time_search_step(config)
    print(f"one search step took {step:.2f} s here: the demo should take about "
          f"{format_duration(step * DEMO_COST_IN_SEARCH_STEPS)} on this machine "
          f"(a little more if its search needs extra epochs to settle)")
    print(f"[1/5] search (width {config.model.width}, {config.search.epochs} epochs)")
    searched = search_until_settled(config, root / "search")
    print("[2/5] derive: the genotype's first cell")
    print(Genotype.load(searched.genotype_path).to_dict()["cells"][0])
    print(f"[3/5] retrain SEARCH-Net from {searched.genotype_path} ({config.train.epochs} epochs)")
    trained = experiment.run_train(config.updated({"train": {"genotype": str(searched.genotype_path)}}, "demo"), root / "train")
    print("[4/5] evaluate the best checkpoint on the val split")
    model, state = experiment.load_trained(trained.best_checkpoint, experiment.resolve_device(config.device))
    result = experiment.evaluate(model, state, config.updated({"progress": False}, "demo"), "val",
                                 source=str(trained.best_checkpoint))
    write_metrics(result, root / "eval.json")
    print("[5/5] reports")
    reports = {"search": report_search_run(root / "search"), "training": report_train_run(root / "train")}
    seconds = time.perf_counter() - started
    chance = result["chance_miou"]
    print(f"\ndemo finished in {format_duration(seconds)}: final val mIoU {100 * result['miou']:.2f} "
          f"(chance on this split: {100 * chance['uniform']:.2f} for a uniform random guess, "
          f"{100 * chance['majority']:.2f} for the majority class everywhere)")
    print("report and figures:")
    for name, written in reports.items():
        figures = ", ".join(path.name for key, path in written.items() if key != "summary")
        print(f"  {name}: {written['summary']} ({figures})")
    print(f"  metrics: {root / 'eval.json'}")
    print(f"run folder: {root}")
    return result
