"""From a ``Config`` to the objects a run needs: the device, the data, the supernet and its search
strategy, SEARCH-Net or a baseline. Each function reads the config and passes plain values to the
constructors below it, so this module (with ``udarts.experiment`` above it) is the only place where
a config becomes keyword arguments.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from udarts.config import Config, ConfigError
from udarts.genotype import Genotype
from udarts.ops import OpSettings


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ConfigError(f"device: expected auto, cpu, cuda or cuda:N, got {name!r}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} was asked for but CUDA is not available on this machine")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_u_input_size(config: Config) -> None:
    """The U halves the input three times: refuse other sizes before anything is written."""
    from udarts.space import DOWNSAMPLING

    height, width = config.data.image_size
    if height % DOWNSAMPLING or width % DOWNSAMPLING:
        raise ConfigError(
            f"data.image_size: {height}x{width} is not divisible by {DOWNSAMPLING} in both sides, as the U-shaped "
            f"network needs (three halvings); for example {height // DOWNSAMPLING * DOWNSAMPLING or DOWNSAMPLING}x"
            f"{width // DOWNSAMPLING * DOWNSAMPLING or DOWNSAMPLING}"
        )


# ---- data ----------------------------------------------------------------------------------------


def build_split(config: Config, split: str, augment: bool):
    """One split of the config's dataset (``udarts.data.factory``)."""
    from udarts.data.factory import build_split as dataset_split

    data = config.data
    return dataset_split(
        data.name, split, root=data.root, image_size=tuple(data.image_size), augment=augment, cache=data.cache,
        on_bad_sample=data.on_bad_sample, download=data.download, target=data.target, seed=config.seed,
        num_samples=data.num_samples, holdout=data.holdout,
    )


def build_loader(config: Config, dataset, shuffle: bool, device: torch.device):
    """Batches of ``data.batch_size``; a shuffled loader has its own generator seeded by ``seed``."""
    from udarts.data.factory import make_loader

    return make_loader(
        dataset, batch_size=config.data.batch_size, shuffle=shuffle, num_workers=config.data.num_workers,
        pin_memory=device.type == "cuda", drop_last=shuffle,
        generator=torch.Generator().manual_seed(config.seed) if shuffle else None,
    )


def dataset_info(dataset) -> dict[str, Any]:
    """What a checkpoint records about its data: class names, ignored label, palette."""
    from udarts.data.factory import palette_for

    return {
        "class_names": list(dataset.class_names),
        "ignore_index": dataset.ignore_index,
        "palette": [list(colour) for colour in palette_for(dataset)],
    }


# ---- search --------------------------------------------------------------------------------------


def search_halves(config: Config, train_set) -> tuple[Any, Any]:
    """``(weight half, alpha half)``: the training split cut in two in an order drawn from ``seed``
    (its own generator: the global random state is not touched)."""
    from torch.utils.data import Subset

    order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(config.seed)).tolist()
    half = len(order) // 2
    return Subset(train_set, order[:half]), Subset(train_set, order[half:])


def search_op_settings(config: Config, affine: bool = True) -> OpSettings:
    return OpSettings(affine=affine, expand_ratio=config.model.expand_ratio, se_ratio=config.model.se_ratio)


def search_ops(config: Config) -> tuple[str, ...]:
    """The candidate ops of the config's search space (``model.ops``, with ``none`` if included)."""
    from udarts.ops import check_op_names
    from udarts.search.supernet import search_op_names

    try:
        check_op_names(list(config.model.ops), key="model.ops")
    except ValueError as error:
        raise ConfigError(str(error)) from error
    return search_op_names(config.model.ops, config.model.include_none)


def build_supernet(config: Config, num_classes: int) -> nn.Module:
    """The supernet of ``model.*`` with the relaxation of ``search.mode`` (docs/search_modes.md)."""
    from udarts.search.supernet import PARTIAL_CHANNEL_MODES, SuperNet

    model, search = config.model, config.search
    if search.mode in PARTIAL_CHANNEL_MODES and model.width % search.partial_channel_k:
        raise ConfigError(f"search.partial_channel_k = {search.partial_channel_k} must divide model.width = {model.width}")
    return SuperNet(
        in_channels=3, num_classes=num_classes, width=model.width, num_nodes=model.num_nodes, op_names=search_ops(config),
        settings=search_op_settings(config, affine=False), mode=search.mode, partial_channel_k=search.partial_channel_k,
        prunable=search.prune_start_epoch is not None, checkpoint_cells=search.checkpoint_cells,
        checkpoint_edges=search.checkpoint_edges,
    )


def describe_supernet(config: Config, num_classes: int) -> dict[str, Any]:
    """Parameter count and forward FLOPs of the supernet, built on the meta device (no memory)."""
    from udarts.complexity import count_flops, count_parameters

    with torch.device("meta"):
        model = build_supernet(config, num_classes)
    height, width = config.data.image_size
    return {
        "parameters": count_parameters(model),
        "alpha_parameters": sum(alpha.numel() for alpha in model.arch_parameters()),
        "parameters_per_cell": {slot.name: count_parameters(cell) for slot, cell in zip(model.slots, model.cells)},
        "forward_gflops_per_image": count_flops(model, (1, 3, height, width), device="meta") / 1e9,
        "image_size": [height, width],
        "width": config.model.width,
        "ops": list(model.op_names),
    }


@dataclass
class SearchParts:
    """What ``build_strategy`` makes: the strategy (which owns its two optimisers) and the parts of
    the search loop that the config switches on (``udarts.search.parts.PARTS``: temperature,
    pruning, penalties), whose loss terms the strategy adds to the alpha loss."""

    strategy: Any
    parts: list[Any]

    @property
    def weight_optimizer(self) -> torch.optim.Optimizer:
        return self.strategy.weight_optimizer

    @property
    def alpha_optimizer(self) -> torch.optim.Optimizer:
        return self.strategy.alpha_optimizer

    def part(self, kind: type) -> Any:
        """The part of class ``kind``, or ``None``."""
        return next((part for part in self.parts if isinstance(part, kind)), None)


def alpha_steps(config: Config, steps_per_epoch: int) -> int:
    """Alpha updates in the whole search: epochs after the warm-up x steps per epoch."""
    return (config.search.epochs - config.search.warmup_epochs) * steps_per_epoch


def alpha_rate(config: Config, steps_per_epoch: int) -> float:
    """The alphas' learning rate at the start of a search: ``search.alpha_lr``, or with
    ``search.alpha_travel`` the travel over the number of alpha steps."""
    from udarts.search.darts import alpha_lr_for_budget

    if config.search.alpha_travel is None:
        return config.search.alpha_lr
    return alpha_lr_for_budget(config.search.alpha_travel, alpha_steps(config, steps_per_epoch))


def build_strategy(config: Config, model: nn.Module, steps_per_epoch: int, ignore_index: int | None,
                   device: torch.device, distributed=None, resume=None) -> SearchParts:
    """DARTS's bilevel step (``udarts.search.darts``) over ``model``: Adam on the alphas at
    ``alpha_rate``, the weight optimiser, and the loop's parts of the config
    (``udarts.search.parts.build_parts``; ``resume``: the run folder a resumed search continues),
    whose loss terms make the alpha loss's penalty."""
    from pathlib import Path

    from udarts.efficiency import MixedPrecision
    from udarts.engine.trainer import build_optimizer
    from udarts.losses import build_loss
    from udarts.search.darts import DartsStrategy
    from udarts.search.loop import SearchContext, alpha_penalty
    from udarts.search.parts import build_parts

    search = config.search
    context = SearchContext(steps_per_epoch, device, distributed, Path(resume) if resume is not None else None)
    parts = build_parts(config, model, context)
    weight_optimizer = build_optimizer(search.weight_optimizer, model.weight_parameters(), search.weight_lr,
                                       weight_decay=search.weight_decay)
    alpha_optimizer = torch.optim.Adam(model.arch_parameters(), lr=alpha_rate(config, steps_per_epoch),
                                       betas=tuple(search.alpha_betas), weight_decay=search.alpha_weight_decay)
    precision = MixedPrecision(search.amp, device)
    strategy = DartsStrategy(
        model, build_loss(search.loss, ignore_index), weight_optimizer, alpha_optimizer,
        order=search.order, unrolled_lr=search.unrolled_lr, weight_grad_clip=search.grad_clip,
        alpha_penalty=alpha_penalty(parts),
        precision=precision if precision.enabled else None,
        gradient_sync=distributed.average_ if distributed is not None else None,
    )
    return SearchParts(strategy, parts)


def search_loop_parts(config: Config, model: nn.Module, setup: SearchParts, batches, run, distributed,
                      info: dict[str, Any]) -> list[Any]:
    """Every part of the search loop, in the order the loop calls them (``udarts.search.loop``):
    the epoch's metrics (summed over the processes first under torchrun), the final cell
    warnings, the config's parts (``setup.parts``), the divergence guard, the progress bars, and
    on the process that writes the run (``run``), its log and checkpoint, which commit the epoch."""
    from udarts.engine import searcher

    metrics = searcher.EpochMetrics(len(info["class_names"]), info["ignore_index"])
    parts: list[Any] = []
    if distributed is not None:
        parts.append(searcher.DistributedSync(distributed, model, metrics, batches.device))
    parts += [metrics, *([searcher.CellWarnings(model)] if run is not None else []), *setup.parts,
              searcher.DivergenceGuard(model, run)]
    if config.progress and run is not None:
        parts.append(searcher.ProgressBars(len(batches)))
    if run is not None:
        extra = {"config": config.to_dict(), **info}
        parts.append(searcher.RunLog(run, model, genotype_of(config, model), [setup.strategy, *parts], extra))
    return parts


def genotype_of(config: Config, model: nn.Module):
    """``genotype_of(epochs_done)``: the genotype of the supernet's current alphas (``search.top_k``,
    ``search.max_identity``), with the search's metadata."""
    from udarts.engine.searcher import current_genotype

    meta = search_meta(config)
    return lambda epochs_done: current_genotype(model, config.search.top_k, {**meta, "epochs_done": epochs_done},
                                                config.search.max_identity)


def search_meta(config: Config) -> dict[str, Any]:
    """What a genotype records about the search that found it."""
    from udarts import __version__

    return {
        "dataset": config.data.name, "width": config.model.width, "image_size": list(config.data.image_size),
        "seed": config.seed, "epochs": config.search.epochs, "mode": config.search.mode, "order": config.search.order,
        "loss": config.search.loss, "top_k": config.search.top_k, "max_identity": config.search.max_identity,
        "alpha_travel": config.search.alpha_travel, "alpha_weight_decay": config.search.alpha_weight_decay,
        "latency_target_ms": config.search.latency_target_ms,
        "udarts_version": __version__,
    }


# ---- fixed networks ------------------------------------------------------------------------------


def _genotype_path(config: Config) -> str:
    if not config.train.genotype:
        from udarts.engine.layout import GENOTYPE_FILE

        raise ConfigError(f"train.genotype: SEARCH-Net needs a genotype; pass --genotype PATH/{GENOTYPE_FILE}")
    return config.train.genotype


def model_spec(config: Config, num_classes: int) -> dict[str, Any]:
    """The network a checkpoint records (``udarts.models.build_model`` builds it)."""
    if config.train.model == "searchnet":
        return {"name": "searchnet", "genotype": Genotype.load(_genotype_path(config)).to_dict(),
                "width": config.model.width, "in_channels": 3, "num_classes": num_classes}
    return {"name": config.train.model, "scale": config.train.model_scale, "options": dict(config.train.model_options),
            "in_channels": 3, "num_classes": num_classes}


def fit_width_to_budget(config: Config, num_classes: int) -> Config:
    """With ``model.flops_budget`` and/or ``model.latency_budget`` set (SEARCH-Net), the config with
    ``model.width`` the largest width that fits every budget set: FLOPs per ``data.image_size``
    image, CPU latency at batch 1 on one thread timed here (with both, the smaller width; the
    latency is then timed only up to the FLOPs width). The config itself otherwise."""
    from udarts.random_genotypes import MAX_WIDTH, width_for_budget, width_for_latency

    budgets = {key: value for key, value in (("model.flops_budget", config.model.flops_budget),
                                            ("model.latency_budget", config.model.latency_budget)) if value is not None}
    if not budgets:
        return config
    if config.train.model != "searchnet":
        units = {"model.flops_budget": "GFLOPs", "model.latency_budget": "ms"}
        named = " and ".join(f"{key} ({value} {units[key]})" for key, value in budgets.items())
        print(f"note: {named} {'size' if len(budgets) > 1 else 'sizes'} SEARCH-Net only; "
              f"{config.train.model} keeps its own size")
        return config
    genotype = Genotype.load(_genotype_path(config))
    width = MAX_WIDTH
    try:
        key = "model.flops_budget"
        if key in budgets:
            width, gflops = width_for_budget(genotype, budgets[key], config.data.image_size, num_classes)
            print(f"{key} {budgets[key]} GFLOPs: SEARCH-Net width {width} ({gflops:.3f} GFLOPs per image)")
        key = "model.latency_budget"
        if key in budgets:
            width, milliseconds = width_for_latency(genotype, budgets[key], config.data.image_size, num_classes,
                                                    max_width=width)
            print(f"{key} {budgets[key]} ms: SEARCH-Net width {width} ({milliseconds:.1f} ms per image at batch 1 "
                  "on one CPU thread, timed on this machine)")
    except ValueError as error:
        raise ConfigError(f"{key}: {error}") from error
    return config.updated({"model": {"width": width}}, " and ".join(budgets))


def describe_network(model: nn.Module, image_size) -> dict[str, Any]:
    """Parameters and forward GFLOPs per image of a built network."""
    from udarts.complexity import count_flops, count_parameters

    height, width = image_size
    return {"parameters": count_parameters(model), "gflops_per_image": count_flops(model, (1, 3, height, width)) / 1e9,
            "image_size": [height, width]}


def describe_run(config: Config, kind: str) -> dict[str, Any]:
    """``--dry-run``: the size and forward FLOPs of the network a ``kind`` ("search" or "train")
    run would build (SEARCH-Net sized by ``model.flops_budget`` / ``model.latency_budget``), without training."""
    from udarts.models import build_model

    if kind == "search" or config.train.model == "searchnet":
        check_u_input_size(config)
    num_classes = len(build_split(config, "train", augment=False).class_names)
    if kind == "search":
        return describe_supernet(config, num_classes)
    config = fit_width_to_budget(config, num_classes)
    network = build_model(model_spec(config, num_classes))
    return {"model": config.train.model, "width": config.model.width, **describe_network(network, config.data.image_size)}
