"""``udarts demo``: search -> derive -> retrain -> evaluate on built-in synthetic data, in a few
minutes on 2 CPU cores, through the same API a notebook uses (``udarts.experiment``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from udarts import experiment
from udarts.app.evaluation import write_metrics
from udarts.config import Config
from udarts.genotype import Genotype

# Small enough for 2 CPU cores in a few minutes, on the built-in synthetic data.
DEMO_SETTINGS: dict[str, Any] = {
    "data": {"name": "synthetic", "image_size": [32, 32], "num_samples": 192, "batch_size": 16},
    "model": {"width": 8},
    "search": {"epochs": 8, "warmup_epochs": 2, "alpha_travel": 6.0},  # 36 alpha steps: alpha_lr 0.17
    "train": {"epochs": 24, "optimizer": "adam", "lr": 3.0e-3, "weight_decay": 0.0, "loss": "dice_ce"},
}


def run_demo(config: Config, out: str | Path | None = None) -> dict[str, Any]:
    """The whole pipeline in ``out`` (``search/``, ``train/``, ``eval.json``); returns the val metrics."""
    started = time.perf_counter()
    root = Path(out) if out else Path(config.out) / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root}: folder exists and is not empty; pass another --out")
    print(f"[1/4] search (width {config.model.width}, {config.search.epochs} epochs)")
    searched = experiment.run_search(config, root / "search")
    print("[2/4] derive")
    print(Genotype.load(searched.genotype_path).to_dict()["cells"][0])
    print(f"[3/4] retrain SEARCH-Net from {searched.genotype_path} ({config.train.epochs} epochs)")
    trained = experiment.run_train(config.updated({"train": {"genotype": str(searched.genotype_path)}}, "demo"), root / "train")
    print("[4/4] evaluate the best checkpoint on the val split")
    model, state = experiment.load_trained(trained.best_checkpoint, experiment.resolve_device(config.device))
    result = experiment.evaluate(model, state, config.updated({"progress": False}, "demo"), "val",
                                 source=str(trained.best_checkpoint))
    write_metrics(result, root / "eval.json")
    minutes = (time.perf_counter() - started) / 60
    chance = result["chance_miou"]
    print(f"\ndemo finished in {minutes:.1f} min: final val mIoU {100 * result['miou']:.2f} "
          f"(chance on this split: {100 * chance['uniform']:.2f} for a uniform random guess, "
          f"{100 * chance['majority']:.2f} for the majority class everywhere)")
    print(f"run folder: {root}")
    return result

