"""The Python API: search, derive, train and evaluate from a ``Config``, as the CLI, the demo, the
comparison and the benchmarks do.

    from udarts.config import resolve
    from udarts import experiment

    config = resolve("configs/demo.yaml")
    searched = experiment.run_search(config, "runs/search")            # -> SearchResult
    trained = experiment.run_train(config.updated({"train": {"genotype": str(searched.genotype_path)}}, "api"),
                                   "runs/train")                         # -> TrainResult
    metrics = experiment.evaluate(trained.run_dir / BEST_CHECKPOINT, split="val")

Under ``torchrun`` every process calls ``run_search`` / ``run_train``; rank 0 alone writes the run
folder. A run is continued with ``resume=RUN_DIR`` (its recorded config, with at most the changes
``RESUME_SAFE_KEYS`` allows, see ``resumed_config``).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from udarts.builders import (  # noqa: F401  (build_supernet, build_strategy: part of the API)
    alpha_rate, build_loader, build_split, build_strategy, build_supernet, check_u_input_size, dataset_info,
    fit_width_to_budget, genotype_of, model_spec, resolve_device, search_halves, search_loop_parts, search_meta,
    seed_everything,
)
from udarts.checkpoints import load_trained  # noqa: F401  (part of the API)
from udarts.config import Config, ConfigError, changed_keys, dotted, resolve
from udarts.data.base import DatasetError
from udarts.efficiency import use_threads
from udarts.engine.layout import BEST_CHECKPOINT, CONFIG_FILE, GENOTYPE_FILE, LAST_CHECKPOINT
from udarts.engine.runs import closing_runs
from udarts.genotype import Genotype


@dataclass(frozen=True)
class SearchResult:
    run_dir: Path
    genotype: Genotype | None  # None on the processes of a torchrun group other than rank 0

    @property
    def genotype_path(self) -> Path:
        return self.run_dir / GENOTYPE_FILE


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    best_miou: float  # on train.select_split
    last: dict[str, Any] | None  # the last epoch's logged record (None: nothing left to train)

    @property
    def best_checkpoint(self) -> Path:
        return self.run_dir / BEST_CHECKPOINT


# ---- run folders -----------------------------------------------------------------------------------

# What ``resume`` may change in a run's recorded config.
RESUME_SAFE_KEYS = {
    "train": ("train.epochs", "train.lr", "device", "progress", "threads"),
    "search": ("search.epochs", "search.settle_epochs", "search.weight_lr", "search.alpha_lr", "device", "progress",
               "threads"),
}


def resumed_config(run_dir: str | Path, kind: str, overrides: list[tuple[dict[str, Any], str]] = ()) -> Config:
    """The recorded config of the ``kind`` ("search" or "train") run in ``run_dir`` with
    ``overrides`` on top; an override of a key outside ``RESUME_SAFE_KEYS[kind]`` (a longer run,
    the learning rates to continue after a divergence, the device, progress bars) is refused,
    naming the key."""
    from udarts.engine.runs import Run

    run = Run(run_dir, resume=True, lock=False)  # only reads
    config_file = str(run.path / CONFIG_FILE)
    recorded = Config.from_dict(run.config(), config_file).to_dict()
    config = resolve(None, [(recorded, config_file), *overrides])
    refused = [key for key in changed_keys(recorded, config.to_dict()) if key not in RESUME_SAFE_KEYS[kind]]
    if refused:
        details = _changes(recorded, config.to_dict(), refused[:4], "; ")
        raise ConfigError(
            f"--resume {run.path}: would change the run's recorded settings ({details}); a resumed run keeps them "
            f"(only {', '.join(RESUME_SAFE_KEYS[kind])} may change): start a new run for other settings"
        )
    return config


def _changes(before: dict[str, Any], after: dict[str, Any], keys: list[str], separator: str) -> str:
    """``"search.epochs 4 -> 8"`` for each dotted key."""
    return separator.join(f"{key} {dotted(before, key)!r} -> {dotted(after, key)!r}" for key in keys)


def _reopen(run_dir: str | Path, kind: str, config: Config) -> tuple[Any, dict[str, Any] | None]:
    """``(run, last checkpoint or None)`` of an interrupted run, its logs and checkpoints made
    consistent (``Run.truncate_logs``, ``Run.recover``) and a changed config recorded; under
    ``torchrun`` only rank 0 repairs, the other processes only read."""
    import yaml

    from udarts.engine.distributed import launched_rank
    from udarts.engine.runs import Run, load_checkpoint
    from udarts.io import atomic_write_text

    run = Run(run_dir, resume=True, lock=launched_rank() == 0)  # the writer holds the folder's lock from here on
    recorded = Config.from_dict(run.config(), str(run.path / CONFIG_FILE)).to_dict()
    changed = changed_keys(recorded, config.to_dict())
    state, done = None, 0
    if (run.path / LAST_CHECKPOINT).is_file():
        state = load_checkpoint(run.path / LAST_CHECKPOINT, kind=kind)
        done = state["epoch"]
    elif launched_rank() == 0:
        print(f"note: {run.path} has no checkpoint yet (it stopped during its first epoch): starting it again from "
              f"epoch 0 with its recorded config", file=sys.stderr)
    epochs = getattr(config, kind).epochs
    if f"{kind}.epochs" in changed and epochs <= done:
        raise ConfigError(f"{kind}.epochs: the run already has {done} epoch(s); give more to extend it, got {epochs}")
    if launched_rank() == 0:
        run.truncate_logs(done)
        run.recover(state or {})
        if changed:
            atomic_write_text(run.path / CONFIG_FILE, yaml.safe_dump(config.to_dict(), sort_keys=False))
            print(f"resume: {_changes(recorded, config.to_dict(), changed, ', ')} (recorded in {run.path / CONFIG_FILE})")
    return run, state


def check_new_run(out: str | Path | None, config: Config) -> None:
    """Before any data is read: the new run folder (``out``, else a new one under ``config.out``)
    can be made: not a file, not under a file, writable, and empty if it exists."""
    from udarts.engine.runs import check_empty_folder, check_out_folder

    check_out_folder(Path(out) if out is not None else Path(config.out), "--out" if out is not None else "out")
    if out is not None:
        check_empty_folder(Path(out))


def _open_run(kind: str, out: str | Path | None, config: Config, run, distributed):
    """``(run, run_dir)``: the resumed ``run``, or a new folder (``out``, else ``<config.out>/<kind>-<time>``).
    Under ``torchrun`` rank 0 alone creates it and the others learn its path; their run is None."""
    from udarts.engine.runs import Run, new_run_dir

    is_main = distributed is None or distributed.is_main
    if run is None and is_main:
        run = Run(Path(out) if out is not None else new_run_dir(config.out, kind), config.to_dict())
    if distributed is None:
        return run, run.path
    run_dir = Path(distributed.broadcast_object(str(run.path) if is_main else None))
    return (run if is_main else None), run_dir


def _join_processes(config: Config):
    """``(distributed, device)``: under ``torchrun`` this process's place in the group and its
    device (``udarts.engine.distributed``); in a single process ``(None, the config's device)``."""
    from udarts.engine import distributed as multiprocess

    try:
        distributed = multiprocess.init_from_environment(config.device)
    except ValueError as error:
        raise ConfigError(str(error)) from error
    return distributed, (distributed.device if distributed is not None else resolve_device(config.device))


def _rank_slices(loader, distributed):
    """Under ``torchrun``, this process's slice of every global batch of ``loader``."""
    from udarts.engine import distributed as multiprocess

    if distributed is None:
        return loader
    try:
        return multiprocess.shard_loader(loader, distributed.rank, distributed.world_size)
    except ValueError as error:
        raise ConfigError(str(error)) from error


def _start(kind: str, config: Config, out: str | Path | None, resume: str | Path | None):
    """``(run, checkpoint, distributed, device)`` at the start of a ``kind`` run, before any data is
    read: the input size and the new folder checked (or the resumed run reopened), this process
    joined to its torchrun group, every generator seeded."""
    if kind == "search" or config.train.model == "searchnet":
        check_u_input_size(config)
    if resume is None:
        check_new_run(out, config)
    run, state = _reopen(resume, kind, config) if resume is not None else (None, None)
    distributed, device = _join_processes(config)
    use_threads(config.threads, device, announce=distributed is None)
    seed_everything(config.seed)
    return run, state, distributed, device


def _record_config(run, config: Config) -> None:
    """Write ``config`` as the run's ``config.yaml``."""
    import yaml

    from udarts.io import atomic_write_text

    atomic_write_text(run.path / CONFIG_FILE, yaml.safe_dump(config.to_dict(), sort_keys=False))


# ---- search ----------------------------------------------------------------------------------------


def _resume_search(model, strategy, parts, state: dict[str, Any], config: Config) -> int:
    """Restore the supernet, the optimisers (with the learning rates that were running) and every
    part from the checkpoint ``state``; a learning rate the resume changes (``search.weight_lr``,
    ``search.alpha_lr`` differing from the recorded config) is continued as given. Returns the
    epochs done."""
    model.load_state_dict(state["model"])
    strategy.load_state_dict(state)
    for part in parts:
        part.load_state_dict(state)
    recorded, search = state["config"]["search"], config.search
    strategy.set_learning_rates(**{name: getattr(search, f"{name}_lr") for name in ("weight", "alpha")
                                   if getattr(search, f"{name}_lr") != recorded[f"{name}_lr"]})
    return state["epoch"]


@closing_runs
def run_search(config: Config, out: str | Path | None = None, *, resume: str | Path | None = None) -> SearchResult:
    """Train the supernet on half of the training split (weights) and the other half (alphas),
    derive the genotype every epoch, and write the run folder (``resume``: continue that run).
    With ``search.alpha_travel``, a search that starts from its first epoch records the alpha
    learning rate the travel gives as ``search.alpha_lr``, the rate a resume continues with."""
    from udarts.efficiency import compile_model, to_channels_last
    from udarts.engine import distributed as multiprocess
    from udarts.engine.searcher import SearchBatches, search

    run, state, distributed, device = _start("search", config, out, resume)
    is_main = distributed is None or distributed.is_main
    train_set = build_split(config, "train", augment=True)
    if len(train_set) < 2 * config.data.batch_size:
        raise DatasetError(f"search needs at least 2 batches of training images ({2 * config.data.batch_size}) to cut the "
                           f"split in two halves; the {config.data.name} train split has {len(train_set)}")
    weight_half, alpha_half = search_halves(config, train_set)
    info = dataset_info(train_set)
    model = build_supernet(config, len(info["class_names"])).to(device)
    if distributed is not None and config.search.sync_batchnorm:
        multiprocess.convert_batchnorm(model)
    if config.search.channels_last:
        to_channels_last(model)
    weight_loader = _rank_slices(build_loader(config, weight_half, True, device), distributed)
    alpha_loader = _rank_slices(build_loader(config, alpha_half, True, device), distributed)
    batches = SearchBatches(weight_loader, alpha_loader, device, seed=config.seed, channels_last=config.search.channels_last,
                            rank=distributed.rank if distributed is not None else 0)
    setup = build_strategy(config, model, len(batches), info["ignore_index"], device, distributed, resume)
    if state is None and config.search.alpha_travel is not None:
        config = config.updated({"search": {"alpha_lr": alpha_rate(config, len(batches))}}, "search.alpha_travel")
        if run is not None and is_main:  # a resumed run that starts again from its first epoch
            _record_config(run, config)
    run, run_dir = _open_run("search", out, config, run, distributed)
    parts = search_loop_parts(config, model, setup, batches, run, distributed, info)
    start_epoch = _resume_search(model, setup.strategy, parts, state, config) if state is not None else 0
    for part in parts:
        part.on_search_start(run_dir if is_main else None)
    if distributed is not None:
        distributed.broadcast_module_(model)
    if config.search.compile:
        compile_model(model)
    if is_main:
        processes = f", {distributed.world_size} processes" if distributed is not None else ""
        print(f"search run: {run_dir}  (device {device}{processes}, mode {config.search.mode}, "
              f"{sum(p.numel() for p in model.parameters()):,} parameters)")
    search(model, setup.strategy, batches, parts, epochs=config.search.epochs,
           warmup_epochs=config.search.warmup_epochs, start_epoch=start_epoch)
    genotype = genotype_of(config, model)(config.search.epochs)
    if is_main:
        genotype.save(run.path / GENOTYPE_FILE)
        for part in parts:
            part.on_search_end(genotype)
        run.close()
        print(f"genotype: {run.path / GENOTYPE_FILE}")
    multiprocess.shutdown(distributed)
    return SearchResult(run_dir, genotype if is_main else None)



# ---- train -----------------------------------------------------------------------------------------


@closing_runs
def run_train(config: Config, out: str | Path | None = None, *, resume: str | Path | None = None) -> TrainResult:
    """Train SEARCH-Net (``train.genotype``) or a baseline (``train.model``) from scratch, pick
    ``best.pt`` on ``train.select_split``, and write the run folder (``resume``: continue it).
    Under ``torchrun``: DistributedDataParallel, ``data.batch_size`` the global batch."""
    from udarts.engine import distributed as multiprocess
    from udarts.engine.trainer import build_optimizer, build_scheduler, fit, reschedule
    from udarts.losses import build_loss
    from udarts.models import build_model

    run, state, distributed, device = _start("train", config, out, resume)
    if (distributed is not None and resume is None and config.train.model == "searchnet"
            and config.model.latency_budget is not None):
        raise ConfigError("model.latency_budget: under torchrun each process would time the widths itself and could "
                          "pick another; find the width once with `udarts train --dry-run --latency-budget MS`, then "
                          "train with --width W --set model.latency_budget=null (and model.flops_budget=null if set)")
    is_main = distributed is None or distributed.is_main
    train_set = build_split(config, "train", augment=True)
    val_set = build_split(config, config.train.select_split, augment=False)
    info = dataset_info(train_set)
    num_classes = len(info["class_names"])
    if resume is None:  # a resumed run's recorded config holds the width its budget gave
        config = fit_width_to_budget(config, num_classes)
    train_loader = _rank_slices(build_loader(config, train_set, True, device), distributed)
    if distributed is not None:
        if len(val_set) < distributed.world_size:
            raise DatasetError(f"the val split has {len(val_set)} image(s), fewer than the {distributed.world_size} processes")
        val_set = multiprocess.shard_dataset(val_set, distributed.rank, distributed.world_size)
    val_loader = build_loader(config, val_set, False, device)

    spec = state["model_spec"] if state else model_spec(config, num_classes)
    model = build_model(spec).to(device)
    train = config.train
    if distributed is not None and train.sync_batchnorm:
        multiprocess.convert_batchnorm(model)
    optimizer = build_optimizer(train.optimizer, model.parameters(), train.lr, momentum=train.momentum,
                                weight_decay=train.weight_decay)
    scheduler = build_scheduler(train.scheduler, optimizer, train.epochs, train.min_lr)
    loss_fn = build_loss(train.loss, info["ignore_index"])
    start_epoch, best, best_epoch = 0, -math.inf, None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, best, best_epoch = state["epoch"], state["best_miou"], state.get("best_epoch")
        recorded = state["config"]["train"]
        if (train.epochs, train.lr) != (recorded["epochs"], recorded["lr"]):
            # a longer run stretches the schedule's period; a lower lr continues after a divergence
            reschedule(optimizer, scheduler, train.scheduler, train.epochs, train.lr, train.min_lr)
    run, run_dir = _open_run("train", out, config, run, distributed)
    if is_main:
        parameters = sum(p.numel() for p in model.parameters())
        processes = f", {distributed.world_size} processes" if distributed is not None else ""
        print(f"train run: {run_dir}  ({spec['name']}, {parameters:,} parameters, device {device}{processes})")
    checkpoint_extra = {"model_spec": spec, "config": config.to_dict(), "image_size": list(config.data.image_size), **info}
    result = fit(model, train_loader=train_loader, val_loader=val_loader, loss_fn=loss_fn, optimizer=optimizer,
                 scheduler=scheduler, epochs=train.epochs, run=run, device=device, num_classes=num_classes,
                 ignore_index=info["ignore_index"], seed=config.seed, checkpoint_extra=checkpoint_extra,
                 start_epoch=start_epoch, best_miou=best, best_epoch=best_epoch, progress=config.progress,
                 distributed=distributed)
    if is_main:
        run.close()
        last = result["last"]
        if last:
            print(f"epoch {last['epoch']}: val mIoU {100 * last['val_miou']:.2f}, pixel accuracy "
                  f"{100 * last['val_pixel_accuracy']:.2f}; best val mIoU {100 * result['best_miou']:.2f} ({BEST_CHECKPOINT})")
        else:
            print(f"nothing to train: {run_dir} already has {start_epoch} of {train.epochs} epochs")
    multiprocess.shutdown(distributed)
    return TrainResult(run_dir, result["best_miou"], result["last"])


# ---- evaluate --------------------------------------------------------------------------------------


def check_input_size_fits(model, state: dict[str, Any], config: Config, device: torch.device) -> None:
    """Refuse, before evaluating, a ``data.image_size`` the network cannot take (one forward pass
    of a blank image at that size)."""
    if (state.get("model_spec") or {}).get("name") == "searchnet":
        check_u_input_size(config)
    height, width = config.data.image_size
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, height, width, device=device))
    except RuntimeError as error:
        first = (str(error).strip().splitlines() or [""])[0]
        raise ConfigError(f"data.image_size: the network of this checkpoint cannot take {height}x{width} images ({first}); "
                          f"it was trained at {state.get('image_size')}") from error


def evaluate(model, state: dict[str, Any], config: Config, split: str = "val", device: torch.device | None = None,
             source: str = "model") -> dict[str, Any]:
    """Loss, mIoU, per-class IoU and pixel accuracy of a trained ``model`` (with its checkpoint
    ``state``, as ``load_trained`` returns them) on ``split`` of the config's dataset."""
    from udarts.engine.trainer import evaluate as evaluate_loader
    from udarts.losses import build_loss

    device = device or resolve_device(config.device)
    check_input_size_fits(model, state, config, device)
    dataset = build_split(config, split, augment=False)
    if list(dataset.class_names) != list(state["class_names"]):
        raise DatasetError(f"{source} was trained on classes {state['class_names']}, but the {config.data.name} "
                           f"{split} split has {list(dataset.class_names)}")
    loss_fn = build_loss(config.train.loss, dataset.ignore_index)
    metrics = evaluate_loader(model, build_loader(config, dataset, False, device), len(dataset.class_names),
                              dataset.ignore_index, device, loss_fn, config.progress)
    return {
        "checkpoint": source, "dataset": config.data.name, "root": config.data.root, "split": split,
        "images": len(dataset), "image_size": list(config.data.image_size), "loss": metrics["loss"],
        "miou": metrics["miou"], "pixel_accuracy": metrics["pixel_accuracy"],
        "iou_per_class": {name: iou for name, iou in zip(dataset.class_names, metrics["iou_per_class"])},
        "chance_miou": metrics["chance_miou"],
    }
