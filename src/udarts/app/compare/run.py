"""Running a comparison (``udarts compare``) and re-rendering any run folder (``udarts report``):
the plan of :mod:`~udarts.app.compare.plan`, each run a ``udarts train`` trial of
:mod:`udarts.app.trials` (on this machine or on Ray), then the costs, tables and plots."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from udarts import experiment
from udarts.app.compare import plan as planning
from udarts.app.compare.render import render, take_samples
from udarts.app.compare.results import measure_costs
from udarts.app.trials import ExecutorSettings, Trial, run_trials
from udarts.config import Config, ConfigError
from udarts.data.base import DatasetError


def _items(text: str | None) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]`` (distinct integers)."""
    try:
        seeds = [int(item) for item in _items(text)]
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text!r}: expected distinct integers separated by commas, for example 0,1,2")
    return seeds


def parse_model_options(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["unet:width=8", "setr:depth=2"]`` -> ``{"unet": {"width": 8}, "setr": {"depth": 2}}`` (values read as YAML)."""
    import yaml

    options: dict[str, dict[str, Any]] = {}
    for item in items:
        label, colon, assignment = item.partition(":")
        key, equals, raw = assignment.partition("=")
        if not (colon and equals and label.strip() and key.strip()):
            raise ConfigError(f"--model-option {item!r}: expected LABEL:KEY=VALUE, for example unet:width=8")
        options.setdefault(label.strip(), {})[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
    return options


def budget_of(config: Config) -> dict[str, Any]:
    """What every model of a comparison shares, for its table and summary."""
    data, train = config.data, config.train
    return {
        "dataset": data.name, "root": data.root, "image_size": list(data.image_size), "batch_size": data.batch_size,
        "epochs": train.epochs, "loss": train.loss, "optimizer": train.optimizer, "lr": train.lr,
        "momentum": train.momentum, "weight_decay": train.weight_decay, "scheduler": train.scheduler,
        "min_lr": train.min_lr, "baseline_scale": train.model_scale, "searchnet_width": config.model.width,
    }


def run_config(config: Config, entry, seed: int) -> Config:
    """The full config of one comparison run: the shared config with this model and seed."""
    override = {"seed": seed, "train": {"model": entry.model, "genotype": entry.genotype, "model_options": dict(entry.options)}}
    return config.updated(override, f"comparison model {entry.label}")


def sized_config(config: Config, entry) -> Config:
    """``run_config`` with SEARCH-Net's width fitted to ``model.flops_budget`` once for every seed,
    the budget then cleared, so that every run records (and a re-run expects) the fitted width."""
    entry_config = run_config(config, entry, config.seed)
    if entry.model != "searchnet" or config.model.flops_budget is None:
        return entry_config
    num_classes = len(experiment.build_split(config, "train", augment=False).class_names)
    fitted = experiment.fit_width_to_budget(entry_config, num_classes)
    return fitted.updated({"model": {"flops_budget": None}}, f"comparison model {entry.label}: width fitted to the budget")


def check_models_build(config: Config, entries) -> None:
    """Build every compared network once on the meta device (no memory, no data), so that a wrong
    model option fails before any training rather than after the other models' runs."""
    from udarts.models import build_model

    for entry in entries:
        spec = experiment.model_spec(run_config(config, entry, config.seed), num_classes=2)
        try:
            with torch.device("meta"):
                build_model(spec)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"model {entry.label}: {error}") from error


def comparison_samples(config: Config, count: int):
    """The first ``count`` validation images for predictions.png, or None (count 0, data missing)."""
    if count <= 0:
        return None
    try:
        return take_samples(experiment.build_split(config, "val", augment=False), count)
    except DatasetError as error:
        print(f"predictions.png left out: {error}", file=sys.stderr)
        return None


def run_comparison(config: Config, *, models: str | None = None, genotypes: str | None = None, seeds: str | None = None,
                   model_options: Sequence[str] = (), out: str | Path | None = None, num_images: int = 4,
                   latency_repeats: int = 10, executor: ExecutorSettings | None = None) -> Path:
    """Train every model (comma-separated ``models`` and ``genotypes``, a folder standing for its
    genotype files) for every seed on one budget, each run a trial of ``executor`` (default: one at
    a time on this machine), measure their costs and write the tables and plots; ``out`` again
    reuses finished runs."""
    from udarts.engine.runs import new_run_dir

    if config.train.model_options:
        raise ConfigError("train.model_options: in a comparison, give each model's options with --model-option LABEL:KEY=VALUE")
    if config.model.latency_budget is not None:
        raise ConfigError("model.latency_budget: a comparison trains each SEARCH-Net at one width for every seed and "
                          "re-run; find it once with `udarts train --dry-run --latency-budget MS`, then compare with "
                          "--width W --set model.latency_budget=null")
    seed_list = parse_seeds(seeds) if seeds else [config.seed]
    entries = planning.parse_entries(_items(models), _items(genotypes), parse_model_options(model_options))
    shared = config.updated({"seed": seed_list[0], "train": {"model": "searchnet", "genotype": None}}, "comparison")
    check_models_build(shared, entries)
    root = Path(out) if out else new_run_dir(config.out, "compare")
    entries = planning.prepare(root, entries, seed_list, shared.to_dict(), budget_of(shared))
    print(f"comparison: {root} ({len(entries)} model(s) x {len(seed_list)} seed(s), {shared.train.epochs} epochs each)")
    sized = {entry.label: sized_config(shared, entry) for entry in entries}
    plans = [planning.PlannedRun(entry, seed, planning.run_folder(root, entry.label, seed),
                                 sized[entry.label].updated({"seed": seed}, "comparison seed").to_dict(), shared.train.epochs)
             for entry in entries for seed in seed_list]
    planning.check_run_folders(plans)
    settings = executor or ExecutorSettings()
    trials = [Trial(f"{run.entry.label} seed {run.seed}", "train", run.path, config=run.config, cpus=settings.trial_cpus(),
                    gpus=settings.gpus) for run in plans]
    run_trials(trials, settings.backend, settings.jobs, settings.address, settings.retries, progress=shared.progress)
    device = experiment.resolve_device(shared.device)
    measure_costs(root, entries, seed_list, device, repeats=latency_repeats)
    written = render(root, comparison_samples(shared, num_images), device)
    print(written["table_markdown"].read_text())
    for name, path in written.items():
        print(f"{name}: {path}")
    return root


def report_folder(path: Path, device: str | None = None, num_images: int = 4) -> tuple[str, dict[str, Path]]:
    """``(kind, files written)``: the plots and summary of a train run, a search run or a comparison."""
    from udarts.app import report

    kind = report.folder_kind(path)
    if kind == "comparison":
        plan = planning.load_plan(path)
        config = Config.from_dict(plan["config"], str(path / planning.COMPARISON_FILE))
        target = experiment.resolve_device(device or config.device)
        measure_costs(path, planning.plan_entries(plan), plan["seeds"], target, only_missing=True)
        return kind, render(path, comparison_samples(config, num_images), target)
    if kind == "search":
        return kind, report.report_search_run(path)
    return kind, report.report_train_run(path)
