"""The ``udarts`` command: search, derive, train, eval, predict, demo, compare and report.

This module is the only place where a config becomes keyword arguments. Every command resolves
its config as defaults <- ``--config FILE`` <- flags <- ``--set KEY=VALUE`` and writes the result
to its run folder.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from udarts import __version__
from udarts.config import ConfigError, load_yaml, parse_assignment, resolve, set_dotted
from udarts.data.base import DatasetError
from udarts.genotype import Genotype, GenotypeError
from udarts.ops import OpSettings

# ---- config --------------------------------------------------------------------------------


def _flag_overrides(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """The config keys that dedicated flags set."""
    override: dict[str, Any] = {}

    def put(path: str, value: Any) -> None:
        if value is not None:
            set_dotted(override, path, value)

    put("seed", getattr(args, "seed", None))
    put("device", getattr(args, "device", None))
    put("data.name", getattr(args, "data", None))
    put("data.root", getattr(args, "root", None))
    put("data.batch_size", getattr(args, "batch_size", None))
    put("data.num_workers", getattr(args, "num_workers", None))
    if getattr(args, "image_size", None):
        put("data.image_size", _parse_size(args.image_size))
    put("model.width", getattr(args, "width", None))
    put("model.flops_budget", getattr(args, "flops_budget", None))
    if getattr(args, "epochs", None) is not None:
        put(f"{'search' if command == 'search' else 'train'}.epochs", args.epochs)
    if getattr(args, "genotype", None):
        put("train.genotype", str(args.genotype))
    put("train.model", getattr(args, "model", None))
    if getattr(args, "no_progress", False):
        put("progress", False)
    return override


def _parse_size(text: str) -> list[int]:
    try:
        parts = [int(part) for part in text.lower().replace(",", "x").split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) <= 0:
        raise ConfigError(f"--image-size {text!r}: expected HEIGHTxWIDTH, for example 96x128")
    return parts


def load_config(args: argparse.Namespace, command: str, base: dict[str, Any] | None = None) -> dict[str, Any]:
    overrides = []
    if base is not None:
        overrides.append((base, f"built-in {command} settings"))
    overrides.append((_flag_overrides(args, command), "command-line flags"))
    for assignment in getattr(args, "set", None) or []:
        overrides.append((parse_assignment(assignment), f"--set {assignment}"))
    return resolve(getattr(args, "config", None), overrides)


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


def check_u_input_size(config: dict[str, Any]) -> None:
    """The U halves the input three times: refuse other sizes before anything is written."""
    from udarts.nets.ushape import DOWNSAMPLING

    height, width = config["data"]["image_size"]
    if height % DOWNSAMPLING or width % DOWNSAMPLING:
        raise ConfigError(
            f"data.image_size: {height}x{width} is not divisible by {DOWNSAMPLING} in both sides, as the U-shaped "
            f"network needs (three halvings); for example {height // DOWNSAMPLING * DOWNSAMPLING or DOWNSAMPLING}x"
            f"{width // DOWNSAMPLING * DOWNSAMPLING or DOWNSAMPLING}"
        )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---- data ----------------------------------------------------------------------------------


def _split(config: dict[str, Any], split: str, augment: bool):
    from udarts.data.factory import build_split

    data = config["data"]
    return build_split(
        data["name"],
        split,
        root=data["root"],
        image_size=tuple(data["image_size"]),
        augment=augment,
        cache=data["cache"],
        on_bad_sample=data["on_bad_sample"],
        download=data["download"],
        target=data["target"],
        seed=config["seed"],
        num_samples=data["num_samples"],
        holdout=data["holdout"],
    )


def _loader(config: dict[str, Any], dataset, shuffle: bool, device: torch.device):
    from udarts.data.factory import make_loader

    data = config["data"]
    return make_loader(
        dataset,
        batch_size=data["batch_size"],
        shuffle=shuffle,
        num_workers=data["num_workers"],
        pin_memory=device.type == "cuda",
        drop_last=shuffle,
        generator=torch.Generator().manual_seed(config["seed"]) if shuffle else None,
    )


def _dataset_info(dataset) -> dict[str, Any]:
    from udarts.data.factory import palette_for

    return {
        "class_names": list(dataset.class_names),
        "ignore_index": dataset.ignore_index,
        "palette": [list(colour) for colour in palette_for(dataset)],
    }


# ---- search --------------------------------------------------------------------------------


def _resume(args: argparse.Namespace, kind: str):
    """The run folder, config and last checkpoint of an interrupted ``kind`` ("search" or "train") run.

    The run's own config is kept. Flags, ``--config`` and ``--set`` given with ``--resume`` may
    only change what is safe (``RESUME_SAFE_KEYS``: a longer ``--epochs``, whose cosine schedule is
    stretched; the learning rates, to continue after a divergence; the device; progress bars);
    the changes are recorded in config.yaml, and any other change is refused naming the key. A
    folder without a checkpoint (stopped during its first epoch) starts again from scratch
    (``state`` None). Log lines written after the last checkpoint, and lines torn by a crash, are
    dropped and a half-done checkpoint commit is finished or undone (``Run.recover``); under
    ``torchrun`` rank 0 alone does this (this runs before the process group is joined: the device
    is in the run's config) and the other processes only read.
    """
    import yaml

    from udarts.engine.distributed import launched_rank
    from udarts.engine.runs import Run, atomic_write_text, load_checkpoint

    run = Run(args.resume, resume=True)
    if getattr(args, "out", None) and Path(args.out).resolve() != run.path.resolve():
        raise ConfigError(f"--out {args.out}: a resumed run continues in its own folder ({run.path}); leave out --out")
    config_file = run.path / "config.yaml"
    recorded = resolve(None, [(run.config(), str(config_file))])
    overrides = [(recorded, str(config_file))]
    if getattr(args, "config", None):
        overrides.append((load_yaml(args.config), str(args.config)))
    overrides.append((_flag_overrides(args, kind), "command-line flags"))
    for assignment in getattr(args, "set", None) or []:
        overrides.append((parse_assignment(assignment), f"--set {assignment}"))
    config = resolve(None, overrides)
    changed = _changed_keys(recorded, config)
    refused = [key for key in changed if key not in RESUME_SAFE_KEYS[kind]]
    if refused:
        details = "; ".join(f"{key} {_dotted(recorded, key)!r} -> {_dotted(config, key)!r}" for key in refused[:4])
        raise ConfigError(
            f"--resume {run.path}: would change the run's recorded settings ({details}); a resumed run keeps them "
            f"(only {', '.join(RESUME_SAFE_KEYS[kind])} may change): start a new run for other settings"
        )
    state, done = None, 0
    if (run.path / "last.pt").is_file():
        state = load_checkpoint(run.path / "last.pt", kind=kind)
        done = state["epoch"]
    elif launched_rank() == 0:
        print(f"note: {run.path} has no checkpoint yet (it stopped during its first epoch): starting it again from "
              f"epoch 0 with its recorded config", file=sys.stderr)
    if f"{kind}.epochs" in changed and config[kind]["epochs"] <= done:
        raise ConfigError(f"{kind}.epochs: the run already has {done} epoch(s); give more to extend it, "
                          f"got {config[kind]['epochs']}")
    if launched_rank() == 0:
        run.truncate_logs(done)
        run.recover(state or {})
        if changed:
            atomic_write_text(config_file, yaml.safe_dump(config, sort_keys=False))
            print("resume: " + ", ".join(f"{key} {_dotted(recorded, key)!r} -> {_dotted(config, key)!r}" for key in changed)
                  + f" (recorded in {config_file})")
    return run, config, state


# What ``--resume`` may change (see ``_resume``).
RESUME_SAFE_KEYS = {
    "train": ("train.epochs", "train.lr", "device", "progress"),
    "search": ("search.epochs", "search.weight_lr", "search.alpha_lr", "device", "progress"),
}


def _changed_keys(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two resolved configs."""
    changed = []
    for key, value in after.items():
        old = before.get(key)
        if isinstance(value, dict) and isinstance(old, dict) and f"{prefix}{key}" != "train.model_options":
            changed += _changed_keys(old, value, f"{prefix}{key}.")
        elif value != old:
            changed.append(f"{prefix}{key}")
    return changed


def _dotted(config: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        config = config[part]
    return config


# ---- torchrun --------------------------------------------------------------------------------


def _join_processes(config: dict[str, Any]) -> tuple[Any, torch.device]:
    """``(distributed, device)``: under ``torchrun``, this process's place in the process group
    (``udarts.engine.distributed``) and its device; in a single process ``(None, the config's device)``."""
    from udarts.engine import distributed as multiprocess

    try:
        distributed = multiprocess.init_from_environment(config["device"])
    except ValueError as error:
        raise ConfigError(str(error)) from error
    return distributed, (distributed.device if distributed is not None else resolve_device(config["device"]))


def _open_run(kind: str, args: argparse.Namespace, config: dict[str, Any], resumed_run, run_path: Path | None, distributed):
    """``(run, run_dir)``: the resumed run, or a new run folder (``run_path``, else ``--out``, else
    ``<out>/<kind>-<time>``). Under ``torchrun`` rank 0 alone creates it and the others learn its
    path from rank 0; their ``run`` is ``None``, so they write nothing."""
    from udarts.engine.runs import Run, new_run_dir

    is_main = distributed is None or distributed.is_main
    run = resumed_run
    if run is None and is_main:
        path = run_path or (Path(args.out) if getattr(args, "out", None) else new_run_dir(config["out"], kind))
        run = Run(path, config)
    if distributed is None:
        return run, run.path
    run_dir = Path(distributed.broadcast_object(str(run.path) if is_main else None))
    return (run if is_main else None), run_dir


def _check_new_run(args: argparse.Namespace, config: dict[str, Any], run_path: Path | None) -> None:
    """Before any data is read: the new run folder (``run_path``, ``--out`` or under ``out``) can
    be made: not a file, not under a file, writable, and empty if it exists."""
    from udarts.engine.runs import check_out_folder

    path = run_path or (Path(args.out) if getattr(args, "out", None) else None)
    check_out_folder(path if path is not None else Path(config["out"]), "--out" if path is not None else "out")
    if path is not None and path.is_dir() and any(path.iterdir()):
        raise FileExistsError(f"{path}: run folder exists and is not empty; use --resume {path} or another --out")


def _rank_slices(loader, distributed):
    """Under ``torchrun``, a loader over this process's slice of every global batch of ``loader``
    (``data.batch_size`` is the global batch); ``loader`` itself in a single process."""
    from udarts.engine import distributed as multiprocess

    if distributed is None:
        return loader
    try:
        return multiprocess.shard_loader(loader, distributed.rank, distributed.world_size)
    except ValueError as error:
        raise ConfigError(str(error)) from error


def _supernet(config: dict[str, Any], num_classes: int):
    from udarts.search.supernet import PARTIAL_CHANNEL_MODES, SuperNet, search_op_names

    model, search_config = config["model"], config["search"]
    if search_config["mode"] in PARTIAL_CHANNEL_MODES and model["width"] % search_config["partial_channel_k"]:
        raise ConfigError(f"search.partial_channel_k = {search_config['partial_channel_k']} must divide model.width = {model['width']}")
    return SuperNet(
        in_channels=3,
        num_classes=num_classes,
        width=model["width"],
        num_nodes=model["num_nodes"],
        op_names=search_op_names(model["ops"], model["include_none"]),
        settings=OpSettings(affine=False, expand_ratio=model["expand_ratio"], se_ratio=model["se_ratio"]),
        mode=search_config["mode"],
        partial_channel_k=search_config["partial_channel_k"],
        prunable=search_config["prune_start_epoch"] is not None,
        checkpoint_cells=search_config["checkpoint_cells"],
        checkpoint_edges=search_config["checkpoint_edges"],
    )


def _search_meta(config: dict[str, Any], dataset_name: str) -> dict[str, Any]:
    return {
        "dataset": dataset_name,
        "width": config["model"]["width"],
        "image_size": config["data"]["image_size"],
        "seed": config["seed"],
        "epochs": config["search"]["epochs"],
        "mode": config["search"]["mode"],
        "order": config["search"]["order"],
        "loss": config["search"]["loss"],
        "top_k": config["search"]["top_k"],
        "max_identity": config["search"].get("max_identity"),
        "udarts_version": __version__,
    }


def dry_run(config: dict[str, Any], num_classes: int) -> dict[str, Any]:
    """Parameter count and forward FLOPs of the supernet, built on the meta device (no memory)."""
    from udarts.complexity import count_flops, count_parameters

    with torch.device("meta"):
        model = _supernet(config, num_classes)
    height, width = config["data"]["image_size"]
    per_cell = {slot.name: count_parameters(cell) for slot, cell in zip(model.slots, model.cells)}
    report = {
        "parameters": count_parameters(model),
        "alpha_parameters": sum(alpha.numel() for alpha in model.arch_parameters()),
        "parameters_per_cell": per_cell,
        "forward_gflops_per_image": count_flops(model, (1, 3, height, width), device="meta") / 1e9,
        "image_size": [height, width],
        "width": config["model"]["width"],
        "ops": list(model.op_names),
    }
    return report


def command_search(args: argparse.Namespace, config: dict[str, Any] | None = None, run_path: Path | None = None) -> Path:
    """Search; under ``torchrun`` every process runs this, and rank 0 alone writes the run folder."""
    from torch.utils.data import Subset

    from udarts.efficiency import MixedPrecision, compile_model, to_channels_last
    from udarts.engine import distributed as multiprocess
    from udarts.engine.searcher import search
    from udarts.engine.trainer import build_optimizer
    from udarts.losses import build_loss
    from udarts.search.darts import DartsStrategy, alpha_lr_for_budget
    from udarts.search.pruning import PruningSchedule
    from udarts.search.regularizers import BetaDecay, sum_of
    from udarts.search.resource import ExpectedFlopsPenalty
    from udarts.search.sampling import TemperatureSchedule

    resumed_run, resume_state = None, None
    if getattr(args, "resume", None):
        resumed_run, config, resume_state = _resume(args, "search")
    config = config or load_config(args, "search")
    check_u_input_size(config)
    progress = config["progress"]
    if resumed_run is None and not getattr(args, "dry_run", False):
        _check_new_run(args, config, run_path)

    if getattr(args, "dry_run", False):
        num_classes = len(_split(config, "train", augment=False).class_names)
        report = dry_run(config, num_classes)
        print(json.dumps(report, indent=2))
        print(f"supernet parameters: {report['parameters']:,} ({report['parameters'] / 1e6:.1f} M); "
              f"forward: {report['forward_gflops_per_image']:.1f} GFLOPs per {report['image_size'][0]}x{report['image_size'][1]} image")
        return Path(".")

    distributed, device = _join_processes(config)
    is_main = distributed is None or distributed.is_main

    seed_everything(config["seed"])
    train_set = _split(config, "train", augment=True)
    if len(train_set) < 2 * config["data"]["batch_size"]:
        raise DatasetError(
            f"search needs at least 2 batches of training images ({2 * config['data']['batch_size']}) to cut the split "
            f"in two halves; the {config['data']['name']} train split has {len(train_set)}"
        )
    order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(config["seed"])).tolist()
    half = len(order) // 2
    weight_half, alpha_half = Subset(train_set, order[:half]), Subset(train_set, order[half:])
    info = _dataset_info(train_set)
    num_classes = len(info["class_names"])

    search_config = config["search"]
    model = _supernet(config, num_classes).to(device)
    if distributed is not None and search_config["sync_batchnorm"]:
        multiprocess.convert_batchnorm(model)
    if search_config["channels_last"]:
        to_channels_last(model)
    weight_optimizer = build_optimizer(
        search_config["weight_optimizer"], model.weight_parameters(), search_config["weight_lr"],
        weight_decay=search_config["weight_decay"],
    )
    weight_loader = _rank_slices(_loader(config, weight_half, True, device), distributed)
    alpha_loader = _rank_slices(_loader(config, alpha_half, True, device), distributed)
    alpha_lr = search_config["alpha_lr"]
    if search_config["alpha_travel"] is not None:
        alpha_steps = (search_config["epochs"] - search_config["warmup_epochs"]) * min(len(weight_loader), len(alpha_loader))
        alpha_lr = alpha_lr_for_budget(search_config["alpha_travel"], alpha_steps)
    alpha_optimizer = torch.optim.Adam(
        model.arch_parameters(), lr=alpha_lr, betas=tuple(search_config["alpha_betas"]),
        weight_decay=search_config["alpha_weight_decay"],
    )
    precision = MixedPrecision(search_config["amp"], device)
    flops_penalty = None
    if search_config["flops_penalty"] > 0:
        flops_penalty = ExpectedFlopsPenalty(model, config["data"]["image_size"], search_config["flops_penalty"])
    beta_decay = BetaDecay(model.alpha_parameters(), search_config["beta_decay"]) if search_config["beta_decay"] > 0 else None
    strategy = DartsStrategy(
        model, build_loss(search_config["loss"], info["ignore_index"]), weight_optimizer, alpha_optimizer,
        order=search_config["order"], unrolled_lr=search_config["unrolled_lr"], weight_grad_clip=search_config["grad_clip"],
        alpha_penalty=sum_of([penalty for penalty in (flops_penalty, beta_decay) if penalty is not None]), precision=precision if precision.enabled else None,
        gradient_sync=distributed.average_ if distributed is not None else None,
    )
    start_epoch, best = 0, -math.inf
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        weight_optimizer.load_state_dict(resume_state["weight_optimizer"])
        alpha_optimizer.load_state_dict(resume_state["alpha_optimizer"])
        if strategy.grad_scaler is not None and "grad_scaler" in resume_state:
            strategy.grad_scaler.load_state_dict(resume_state["grad_scaler"])
        start_epoch, best = resume_state["epoch"], resume_state["best_miou"]
        recorded = resume_state["config"]["search"]
        for optimizer, key in ((weight_optimizer, "weight_lr"), (alpha_optimizer, "alpha_lr")):
            if search_config[key] != recorded[key]:  # a lower rate to continue after a divergence
                for group in optimizer.param_groups:
                    group["lr"] = alpha_lr if key == "alpha_lr" else search_config[key]
    run, run_dir = _open_run("search", args, config, resumed_run, run_path, distributed)
    if distributed is not None:
        distributed.broadcast_module_(model)
    if search_config["compile"]:
        compile_model(model)
    if is_main:
        processes = f", {distributed.world_size} processes" if distributed is not None else ""
        print(f"search run: {run_dir}  (device {device}{processes}, mode {search_config['mode']}, "
              f"{sum(p.numel() for p in model.parameters()):,} parameters)")

    pruning = None
    if search_config["prune_start_epoch"] is not None:
        pruning = PruningSchedule(search_config["prune_start_epoch"], search_config["prune_every"],
                                  search_config["prune_ops_per_step"], search_config["prune_min_ops"])
    genotype = search(
        model, strategy,
        weight_loader=weight_loader, alpha_loader=alpha_loader,
        epochs=search_config["epochs"], warmup_epochs=search_config["warmup_epochs"], run=run, device=device,
        num_classes=num_classes, ignore_index=info["ignore_index"], seed=config["seed"], top_k=search_config["top_k"],
        search_meta=_search_meta(config, config["data"]["name"]),
        checkpoint_extra={"config": config, **info}, start_epoch=start_epoch, best_miou=best, progress=progress,
        best_epoch=resume_state.get("best_epoch") if resume_state is not None else None,
        temperature=TemperatureSchedule(search_config["tau_max"], search_config["tau_min"], search_config["tau_schedule"]),
        pruning=pruning, flops_penalty=flops_penalty, distributed=distributed,
        channels_last=search_config["channels_last"], max_identity=search_config["max_identity"],
    )
    if is_main:
        genotype.save(run.path / "genotype.json")
        run.close()
        print(f"genotype: {run.path / 'genotype.json'}")
    multiprocess.shutdown(distributed)
    return run_dir


def command_derive(args: argparse.Namespace) -> Path:
    from udarts.engine.runs import load_checkpoint
    from udarts.genotype import architecture_from_state, derive
    from udarts.search.diagnostics import diagnose, genotype_warnings, print_warnings, softmax_weights
    from udarts.search.supernet import search_op_names

    state = load_checkpoint(args.checkpoint, kind="search")
    if args.top_k is not None and args.top_k < 1:
        raise ConfigError(f"--top-k: expected an integer >= 1, got {args.top_k}")
    config = state["config"]
    op_names = search_op_names(config["model"]["ops"], config["model"]["include_none"])
    num_nodes = config["model"]["num_nodes"]
    architecture = architecture_from_state(state["model"], num_nodes)  # alphas, PC-DARTS edge scales, pruning masks
    search_top_k, search_max_identity = config["search"]["top_k"], config["search"].get("max_identity")
    top_k = args.top_k if args.top_k is not None else search_top_k
    max_identity = search_max_identity
    if getattr(args, "max_identity", None) is not None:
        max_identity = None if args.max_identity.lower() in ("none", "off") else _count_arg(args.max_identity, "--max-identity")
    settings = OpSettings(expand_ratio=config["model"]["expand_ratio"], se_ratio=config["model"]["se_ratio"])
    meta = {**_search_meta(config, config["data"]["name"]), "epochs_done": state["epoch"], "top_k": top_k,
            "max_identity": max_identity}
    genotype = derive(architecture["alphas"], op_names, num_nodes, top_k, settings, meta,
                      edge_scales=architecture["edge_scales"], op_masks=architecture["op_masks"], max_identity=max_identity)
    source = Path(args.checkpoint)
    if args.out:
        out = Path(args.out)
    else:
        # the search's own genotype.json is only rewritten with the search's own settings
        name = "genotype.json"
        if (top_k, max_identity) != (search_top_k, search_max_identity):
            name = f"genotype-top{top_k}" + (f"-maxid{max_identity}" if max_identity is not None else "") + ".json"
        out = (source if source.is_dir() else source.parent) / name
    genotype.save(out)
    weights = softmax_weights(architecture["alphas"], architecture["op_masks"])
    print_warnings(genotype_warnings(diagnose(weights, op_names, genotype, architecture["edge_scales"])))
    print(f"genotype: {out} (top_k {top_k}, max_identity {max_identity})")
    return out


def _count_arg(text: str, flag: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigError(f"{flag}: expected an integer >= 0 or 'none', got {text!r}")
    return value


def command_sample(args: argparse.Namespace) -> list[Path]:
    """Random genotypes from the space of the config (``udarts.random_genotypes``)."""
    from udarts.random_genotypes import sample_genotypes
    from udarts.search.supernet import search_op_names

    config = load_config(args, "sample")  # --config, --set, --image-size (and --width, --seed: recorded only)
    model = config["model"]
    if args.flops_budget is not None and args.width is None:
        raise ConfigError("--flops-budget needs --width: the SEARCH-Net width the FLOPs are counted at")
    if args.width is not None:
        check_u_input_size(config)
    try:
        op_names = search_op_names(model["ops"], model["include_none"])
        drawn = sample_genotypes(
            args.num, args.seed, op_names, model["num_nodes"], config["search"]["top_k"],
            OpSettings(expand_ratio=model["expand_ratio"], se_ratio=model["se_ratio"]),
            flops_budget=args.flops_budget, width=args.width, image_size=config["data"]["image_size"], num_classes=args.num_classes,
        )
    except ValueError as error:
        raise ConfigError(str(error)) from error
    out = Path(args.out)
    paths = []
    for genotype, gflops in drawn:
        path = genotype.save(out / f"random-{args.seed}-{genotype.search['index']:03d}.json")
        paths.append(path)
        cost = "" if gflops is None else f"  {gflops:.3f} GFLOPs at width {args.width}"
        print(f"{path}{cost}")
    return paths


# ---- train / eval --------------------------------------------------------------------------


def _model_spec(config: dict[str, Any], num_classes: int) -> dict[str, Any]:
    name = config["train"]["model"]
    if name == "searchnet":
        genotype_path = config["train"]["genotype"]
        if not genotype_path:
            raise ConfigError("train.genotype: SEARCH-Net needs a genotype; pass --genotype PATH/genotype.json")
        genotype = Genotype.load(genotype_path)
        return {"name": "searchnet", "genotype": genotype.to_dict(), "width": config["model"]["width"],
                "in_channels": 3, "num_classes": num_classes}
    return {"name": name, "scale": config["train"]["model_scale"], "options": dict(config["train"]["model_options"]),
            "in_channels": 3, "num_classes": num_classes}


def fit_width_to_budget(config: dict[str, Any], num_classes: int) -> None:
    """With ``model.flops_budget`` set (SEARCH-Net), set ``model.width`` to the largest width whose
    FLOPs per ``data.image_size`` image fit it (before the run folder records the config)."""
    from udarts.random_genotypes import width_for_budget

    budget = config["model"]["flops_budget"]
    if budget is None:
        return
    if budget <= 0:
        raise ConfigError(f"model.flops_budget: expected GFLOPs > 0, got {budget}")
    if config["train"]["model"] != "searchnet":
        print(f"note: model.flops_budget ({budget} GFLOPs) sizes SEARCH-Net only; {config['train']['model']} keeps its own size")
        return
    genotype_path = config["train"]["genotype"]
    if not genotype_path:
        raise ConfigError("train.genotype: SEARCH-Net needs a genotype; pass --genotype PATH/genotype.json")
    try:
        width, gflops = width_for_budget(Genotype.load(genotype_path), budget, config["data"]["image_size"], num_classes)
    except ValueError as error:
        raise ConfigError(f"model.flops_budget: {error}") from error
    config["model"]["width"] = width
    print(f"model.flops_budget {budget} GFLOPs: SEARCH-Net width {width} ({gflops:.3f} GFLOPs per image)")


def describe_model(model: torch.nn.Module, config: dict[str, Any]) -> dict[str, Any]:
    """Parameters and forward GFLOPs per ``data.image_size`` image of a built network."""
    from udarts.complexity import count_flops, count_parameters

    height, width = config["data"]["image_size"]
    return {"parameters": count_parameters(model), "gflops_per_image": count_flops(model, (1, 3, height, width)) / 1e9,
            "image_size": [height, width]}


def command_train(args: argparse.Namespace, config: dict[str, Any] | None = None, run_path: Path | None = None) -> Path:
    """Train a fixed network; under ``torchrun`` every process runs this (DistributedDataParallel,
    ``data.batch_size`` the global batch), and rank 0 alone writes the run folder."""
    from udarts.engine import distributed as multiprocess
    from udarts.engine.trainer import build_optimizer, build_scheduler, fit, reschedule
    from udarts.losses import build_loss
    from udarts.models import build_model

    resumed_run, resume_state = None, None
    if getattr(args, "resume", None):
        resumed_run, config, resume_state = _resume(args, "train")
    config = config or load_config(args, "train")
    if config["train"]["model"] == "searchnet":
        check_u_input_size(config)
    if resumed_run is None and not getattr(args, "dry_run", False):
        _check_new_run(args, config, run_path)
    distributed, device = _join_processes(config)
    is_main = distributed is None or distributed.is_main
    seed_everything(config["seed"])

    train_set = _split(config, "train", augment=True)
    val_set = _split(config, config["train"]["select_split"], augment=False)
    info = _dataset_info(train_set)
    num_classes = len(info["class_names"])
    if resume_state is None:
        fit_width_to_budget(config, num_classes)
    if getattr(args, "dry_run", False):
        report = {"model": config["train"]["model"], "width": config["model"]["width"],
                  **describe_model(build_model(_model_spec(config, num_classes)), config)}
        print(json.dumps(report, indent=2))
        print(f"{report['model']}: {report['parameters']:,} parameters ({report['parameters'] / 1e6:.2f} M); forward: "
              f"{report['gflops_per_image']:.3f} GFLOPs per {report['image_size'][0]}x{report['image_size'][1]} image")
        multiprocess.shutdown(distributed)
        return Path(".")
    train_loader = _rank_slices(_loader(config, train_set, True, device), distributed)
    if distributed is not None:
        if len(val_set) < distributed.world_size:
            raise DatasetError(f"the val split has {len(val_set)} image(s), fewer than the {distributed.world_size} processes")
        val_set = multiprocess.shard_dataset(val_set, distributed.rank, distributed.world_size)
    val_loader = _loader(config, val_set, False, device)

    spec = resume_state["model_spec"] if resume_state else _model_spec(config, num_classes)
    model = build_model(spec).to(device)
    train_config = config["train"]
    if distributed is not None and train_config["sync_batchnorm"]:
        multiprocess.convert_batchnorm(model)
    optimizer = build_optimizer(train_config["optimizer"], model.parameters(), train_config["lr"],
                                momentum=train_config["momentum"], weight_decay=train_config["weight_decay"])
    scheduler = build_scheduler(train_config["scheduler"], optimizer, train_config["epochs"], train_config["min_lr"])
    loss_fn = build_loss(train_config["loss"], info["ignore_index"])
    start_epoch, best = 0, -math.inf
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        start_epoch, best = resume_state["epoch"], resume_state["best_miou"]
        recorded = resume_state["config"]["train"]
        if (train_config["epochs"], train_config["lr"]) != (recorded["epochs"], recorded["lr"]):
            # a longer run stretches the schedule's period; a lower lr continues after a divergence
            reschedule(optimizer, scheduler, train_config["scheduler"], train_config["epochs"], train_config["lr"],
                       train_config["min_lr"])
    run, run_dir = _open_run("train", args, config, resumed_run, run_path, distributed)
    if is_main:
        parameters = sum(p.numel() for p in model.parameters())
        processes = f", {distributed.world_size} processes" if distributed is not None else ""
        print(f"train run: {run_dir}  ({spec['name']}, {parameters:,} parameters, device {device}{processes})")
    checkpoint_extra = {"model_spec": spec, "config": config, "image_size": config["data"]["image_size"], **info}
    result = fit(model, train_loader=train_loader, val_loader=val_loader, loss_fn=loss_fn,
                 optimizer=optimizer, scheduler=scheduler, epochs=train_config["epochs"], run=run, device=device,
                 num_classes=num_classes, ignore_index=info["ignore_index"], seed=config["seed"],
                 checkpoint_extra=checkpoint_extra, start_epoch=start_epoch, best_miou=best, progress=config["progress"],
                 best_epoch=resume_state.get("best_epoch") if resume_state is not None else None,
                 distributed=distributed)
    if is_main:
        run.close()
        last = result["last"]
        if last:
            print(f"epoch {last['epoch']}: val mIoU {100 * last['val_miou']:.2f}, pixel accuracy "
                  f"{100 * last['val_pixel_accuracy']:.2f}; best val mIoU {100 * result['best_miou']:.2f} (best.pt)")
        else:
            print(f"nothing to train: {run_dir} already has {start_epoch} of {train_config['epochs']} epochs")
    multiprocess.shutdown(distributed)
    return run_dir


def _checkpoint_model(path: str, device: torch.device):
    from udarts.engine.runs import load_checkpoint
    from udarts.export import exported_model_and_state, is_exported
    from udarts.models import build_model

    if is_exported(path):  # an exported .onnx (onnxruntime) / .pt2 / TorchScript file with its sidecar
        return exported_model_and_state(path, device)
    state = load_checkpoint(path, map_location="cpu", kind="train")
    try:
        model = build_model(state["model_spec"])
        model.load_state_dict(state["model"])
    except GenotypeError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        first = (str(error).strip().splitlines() or [""])[0]
        raise ConfigError(f"{path}: its network cannot be rebuilt from the checkpoint ({type(error).__name__}: {first})") from error
    return model.to(device).eval(), state


def _check_input_size_fits(model, state: dict[str, Any], config: dict[str, Any], device: torch.device) -> None:
    """Refuse, before evaluating, a ``data.image_size`` the network cannot take (one forward pass
    of a blank image at that size)."""
    if (state.get("model_spec") or {}).get("name") == "searchnet":
        check_u_input_size(config)
    height, width = config["data"]["image_size"]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, height, width, device=device))
    except RuntimeError as error:
        first = (str(error).strip().splitlines() or [""])[0]
        raise ConfigError(f"data.image_size: the network of this checkpoint cannot take {height}x{width} images ({first}); "
                          f"it was trained at {state.get('image_size')}") from error


def format_eval_table(metrics: dict[str, Any], class_names: list[str]) -> str:
    lines = ["| class | IoU % |", "|---|---|"]
    for name, iou in zip(class_names, metrics["iou_per_class"]):
        lines.append(f"| {name} | {'n/a (absent)' if iou is None or iou != iou else f'{100 * iou:.2f}'} |")
    lines.append(f"| **mIoU** | **{100 * metrics['miou']:.2f}** |")
    lines.append(f"| pixel accuracy | {100 * metrics['pixel_accuracy']:.2f} |")
    return "\n".join(lines)


def command_eval(args: argparse.Namespace, checkpoint: str | None = None) -> dict[str, Any]:
    from udarts.engine.trainer import evaluate
    from udarts.losses import build_loss

    checkpoint = checkpoint or args.checkpoint
    device_name = args.device or "auto"
    device = resolve_device(device_name)
    model, state = _checkpoint_model(checkpoint, device)
    # the checkpoint's config <- --config FILE <- flags <- --set (data.*, train.loss and progress matter here)
    layers = [(state["config"], f"{checkpoint} (config)")]
    if getattr(args, "config", None):
        layers.append((load_yaml(args.config), str(args.config)))
    overrides = _flag_overrides(args, "eval")
    overrides.pop("device", None)
    layers.append((overrides, "command-line flags"))
    for assignment in getattr(args, "set", None) or []:
        layers.append((parse_assignment(assignment), f"--set {assignment}"))
    config = resolve(None, layers)
    _check_input_size_fits(model, state, config, device)
    dataset = _split(config, args.split, augment=False)
    if list(dataset.class_names) != list(state["class_names"]):
        raise DatasetError(
            f"{checkpoint} was trained on classes {state['class_names']}, but the {config['data']['name']} "
            f"{args.split} split has {list(dataset.class_names)}"
        )
    loss_fn = build_loss(config["train"]["loss"], dataset.ignore_index)
    metrics = evaluate(model, _loader(config, dataset, False, device), len(dataset.class_names), dataset.ignore_index,
                       device, loss_fn, config["progress"])
    result = {
        "checkpoint": str(checkpoint),
        "dataset": config["data"]["name"],
        "root": config["data"]["root"],
        "split": args.split,
        "images": len(dataset),
        "image_size": config["data"]["image_size"],
        "loss": metrics["loss"],
        "miou": metrics["miou"],
        "pixel_accuracy": metrics["pixel_accuracy"],
        "iou_per_class": {name: iou for name, iou in zip(dataset.class_names, metrics["iou_per_class"])},
        "chance_miou": metrics["chance_miou"],
    }
    print(format_eval_table(metrics, list(dataset.class_names)))
    json_text = json.dumps({key: (None if isinstance(v, float) and v != v else v) for key, v in result.items()}, indent=2)
    if getattr(args, "json", None):
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json_text + "\n")
        print(f"metrics written to {args.json}")
    else:
        print(json_text)
    return result


def command_predict(args: argparse.Namespace) -> list[Path]:
    from udarts.data.pairs import generated_palette
    from udarts.engine.predict import list_images, predict_paths

    device = resolve_device(args.device or "auto")
    model, state = _checkpoint_model(args.checkpoint, device)
    palette = [tuple(colour) for colour in state.get("palette") or generated_palette(len(state["class_names"]))]
    paths = list_images(args.input)
    written = predict_paths(model, paths, Path(args.out), image_size=tuple(state["image_size"]), palette=palette,
                            device=device, progress=not args.no_progress)
    print(f"wrote {len(written)} files for {len(paths)} image(s) to {args.out}")
    return written


def command_export(args: argparse.Namespace) -> Path:
    from udarts.export import describe_export, export_checkpoint, quantize_onnx

    if args.quantize and args.format != "onnx":
        raise ConfigError("--quantize needs --format onnx (onnxruntime quantises ONNX models)")
    if args.calib and args.quantize != "static":
        raise ConfigError("--calib DIR is for --quantize static")
    out = Path(args.out).expanduser()
    sidecar = export_checkpoint(args.checkpoint, args.format, out, opset=args.opset)
    for line in describe_export(out, sidecar):
        print(line)
    if args.quantize:
        quantized = out.with_name(f"{out.stem}-int8-{args.quantize}{out.suffix}")
        for line in describe_export(quantized, quantize_onnx(out, quantized, args.quantize, calib=args.calib)):
            print(line)
        return quantized
    return out


# ---- demo ----------------------------------------------------------------------------------

# Small enough for 2 CPU cores in a few minutes, on the built-in synthetic data.
DEMO_SETTINGS: dict[str, Any] = {
    "data": {"name": "synthetic", "image_size": [32, 32], "num_samples": 192, "batch_size": 16},
    "model": {"width": 8},
    "search": {"epochs": 6, "warmup_epochs": 2, "alpha_travel": 6.0},  # 24 alpha steps: alpha_lr 0.25
    "train": {"epochs": 24, "optimizer": "adam", "lr": 3.0e-3, "weight_decay": 0.0, "loss": "dice_ce"},
}


def command_demo(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    config = load_config(args, "demo", base=DEMO_SETTINGS)
    root = Path(args.out) if args.out else Path(config["out"]) / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root}: folder exists and is not empty; pass another --out")
    print(f"[1/4] search (width {config['model']['width']}, {config['search']['epochs']} epochs)")
    search_dir = command_search(args, config=config, run_path=root / "search")
    print("[2/4] derive")
    genotype_path = search_dir / "genotype.json"
    print(Genotype.load(genotype_path).to_dict()["cells"][0])
    print(f"[3/4] retrain SEARCH-Net from {genotype_path} ({config['train']['epochs']} epochs)")
    train_config = resolve(None, [(config, "demo"), ({"train": {"genotype": str(genotype_path)}}, "demo")])
    train_dir = command_train(args, config=train_config, run_path=root / "train")
    print("[4/4] evaluate the best checkpoint on the val split")
    eval_args = argparse.Namespace(device=config["device"], split="val", json=str(root / "eval.json"), no_progress=True)
    result = command_eval(eval_args, checkpoint=str(train_dir / "best.pt"))
    minutes = (time.perf_counter() - started) / 60
    chance = result["chance_miou"]
    print(f"\ndemo finished in {minutes:.1f} min: final val mIoU {100 * result['miou']:.2f} "
          f"(chance on this split: {100 * chance['uniform']:.2f} for a uniform random guess, "
          f"{100 * chance['majority']:.2f} for the majority class everywhere)")
    print(f"run folder: {root}")
    return result


# ---- compare / report ----------------------------------------------------------------------


def _comma_list(text: str | None) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def _parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(item) for item in _comma_list(text)]
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text!r}: expected distinct integers separated by commas, for example 0,1,2")
    return seeds


def _parse_model_options(items: list[str]) -> dict[str, dict[str, Any]]:
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


def _comparison_budget(config: dict[str, Any]) -> dict[str, Any]:
    """What every model of a comparison shares, for its table and summary."""
    data, train = config["data"], config["train"]
    return {
        "dataset": data["name"], "root": data["root"], "image_size": data["image_size"], "batch_size": data["batch_size"],
        "epochs": train["epochs"], "loss": train["loss"], "optimizer": train["optimizer"], "lr": train["lr"],
        "momentum": train["momentum"], "weight_decay": train["weight_decay"], "scheduler": train["scheduler"],
        "min_lr": train["min_lr"], "baseline_scale": train["model_scale"], "searchnet_width": config["model"]["width"],
    }


def _comparison_run_config(config: dict[str, Any], entry, seed: int) -> dict[str, Any]:
    """The full config of one comparison run: the shared config with this model and seed."""
    override = {"seed": seed, "train": {"model": entry.model, "genotype": entry.genotype, "model_options": dict(entry.options)}}
    return resolve(None, [(config, "comparison"), (override, f"comparison model {entry.label}")])


def _train_comparison_run(run, resume: bool) -> Path:
    if resume:
        return command_train(argparse.Namespace(resume=str(run.path), epochs=None))
    return command_train(argparse.Namespace(), config=run.config, run_path=run.path)


def _check_models_build(config: dict[str, Any], entries) -> None:
    """Build every compared network once on the meta device (no memory, no data), so that a wrong
    model option fails before any training rather than after the other models' runs."""
    from udarts.models import build_model

    for entry in entries:
        spec = _model_spec(_comparison_run_config(config, entry, config["seed"]), num_classes=2)
        try:
            with torch.device("meta"):
                build_model(spec)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"model {entry.label}: {error}") from error


def _comparison_samples(config: dict[str, Any], count: int):
    """The first ``count`` validation images for predictions.png, or None (count 0, data missing)."""
    from udarts.engine.compare import take_samples

    if count <= 0:
        return None
    try:
        return take_samples(_split(config, "val", augment=False), count)
    except DatasetError as error:
        print(f"predictions.png left out: {error}", file=sys.stderr)
        return None


def command_compare(args: argparse.Namespace) -> Path:
    from udarts.engine import compare
    from udarts.engine.runs import new_run_dir

    config = load_config(args, "compare")
    if config["train"]["model_options"]:
        raise ConfigError("train.model_options: in a comparison, give each model's options with --model-option LABEL:KEY=VALUE")
    seeds = _parse_seeds(args.seeds) if args.seeds else [config["seed"]]
    entries = compare.parse_entries(_comma_list(args.models), _comma_list(args.genotypes),
                                    _parse_model_options(args.model_option or []))
    shared = resolve(None, [(config, "comparison"),
                            ({"seed": seeds[0], "train": {"model": "searchnet", "genotype": None}}, "comparison")])
    _check_models_build(shared, entries)
    root = Path(args.out) if args.out else new_run_dir(config["out"], "compare")
    entries = compare.prepare(root, entries, seeds, shared, _comparison_budget(shared))
    print(f"comparison: {root} ({len(entries)} model(s) x {len(seeds)} seed(s), {shared['train']['epochs']} epochs each)")
    plans = [
        compare.PlannedRun(entry, seed, compare.run_folder(root, entry.label, seed),
                           _comparison_run_config(shared, entry, seed), shared["train"]["epochs"])
        for entry in entries for seed in seeds
    ]
    compare.execute(plans, _train_comparison_run)
    device = resolve_device(shared["device"])
    compare.measure_costs(root, entries, seeds, device, repeats=args.latency_repeats)
    written = compare.render(root, _comparison_samples(shared, args.num_images), device)
    print(written["table_markdown"].read_text())
    for name, path in written.items():
        print(f"{name}: {path}")
    return root


def command_report(args: argparse.Namespace) -> dict[str, Path]:
    from udarts.engine import compare, report

    path = Path(args.run_dir)
    kind = report.folder_kind(path)
    if kind == "comparison":
        plan = compare.load_plan(path)
        config = resolve(None, [(plan["config"], str(path / compare.COMPARISON_FILE))])
        device = resolve_device(args.device or config["device"])
        compare.measure_costs(path, compare.plan_entries(plan), plan["seeds"], device, only_missing=True)
        written = compare.render(path, _comparison_samples(config, args.num_images), device)
    elif kind == "search":
        written = report.report_search_run(path)
    else:
        written = report.report_train_run(path)
    print(f"{kind} report:")
    for name, file in written.items():
        print(f"  {name}: {file}")
    return written


# ---- argument parsing ----------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser, training: bool = True, resumable: bool = True) -> None:
    parser.add_argument("--config", help="YAML config file (defaults <- file <- flags <- --set)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any config key, e.g. search.order=second")
    parser.add_argument("--data", help="dataset: synthetic | pets | camvid | folder")
    parser.add_argument("--root", help="dataset root folder")
    parser.add_argument("--image-size", help="HEIGHTxWIDTH, e.g. 96x128 (sides divisible by 8)")
    parser.add_argument("--batch-size", type=int, help="images per batch (data.batch_size; the global batch under torchrun)")
    parser.add_argument("--num-workers", type=int, help="data loading worker processes (data.num_workers; 0 = in the main process)")
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    if training:
        parser.add_argument("--seed", type=int, help="random seed of the weights, the data order and the augmentation (seed)")
        parser.add_argument("--width", type=int, help="base width w (cells have w, 2w, 4w, 8w channels)")
        parser.add_argument("--epochs", type=int, help="epochs to run (search.epochs for search, train.epochs otherwise)"
                            + ("; with --resume, a larger number extends a run" if resumable else ""))
        parser.add_argument("--out", help="run folder to create (default: <out>/<command>-<time>)")
        if resumable:
            parser.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run in its folder "
                                "(its recorded settings; only --epochs, the learning rates, --device and --no-progress may change)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="udarts", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"udarts {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    commands = parser.add_subparsers(dest="command", required=True)

    search = commands.add_parser("search", help="search an architecture (trains the supernet, writes genotype.json)")
    _common(search)
    search.add_argument("--dry-run", action="store_true", help="print the supernet's size and FLOPs, then exit")

    derive = commands.add_parser("derive", help="derive a genotype from a search checkpoint or run folder")
    derive.add_argument("checkpoint", help="search run folder or checkpoint (.pt)")
    derive.add_argument("--out", help="genotype path (default: beside the checkpoint, genotype.json with the search's "
                        "own --top-k and --max-identity, else genotype-top<K>[-maxid<N>].json)")
    derive.add_argument("--top-k", type=int, help="kept incoming edges per node (default: the search's)")
    derive.add_argument("--max-identity", metavar="N",
                        help="at most N identity edges per cell, 'none' = no cap (default: the search's search.max_identity)")

    train = commands.add_parser("train", help="train SEARCH-Net from a genotype (or a baseline) from scratch")
    _common(train)
    train.add_argument("--genotype", help="genotype.json to build SEARCH-Net from")
    train.add_argument("--model", help="searchnet (default) or a baseline name")
    train.add_argument("--flops-budget", type=float, metavar="GFLOPS",
                       help="SEARCH-Net: the largest width whose GFLOPs per image (at --image-size) fit this (model.flops_budget)")
    train.add_argument("--dry-run", action="store_true", help="print the network's parameters and FLOPs, then exit")

    sample = commands.add_parser("sample", help="write random genotypes drawn uniformly from the search space (the baseline a search must beat)")
    sample.add_argument("--num", type=int, required=True, help="how many genotypes")
    sample.add_argument("--seed", type=int, default=0, help="genotype i of seed S is the same whatever --num (default 0)")
    sample.add_argument("--out", required=True, help="folder for random-S-III.json files")
    sample.add_argument("--config", help="YAML config: model.ops, model.num_nodes, search.top_k and the op settings")
    sample.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any config key")
    sample.add_argument("--flops-budget", type=float, metavar="GFLOPS", help="keep only genotypes whose SEARCH-Net fits this at --width")
    sample.add_argument("--width", type=int, help="SEARCH-Net width the FLOPs are counted at")
    sample.add_argument("--image-size", help="HEIGHTxWIDTH the FLOPs are counted at (default: the config's)")
    sample.add_argument("--num-classes", type=int, default=11, help="classes of the head the FLOPs are counted with (default 11, CamVid)")

    evaluate = commands.add_parser("eval", help="evaluate a trained checkpoint: per-class IoU, mIoU, pixel accuracy")
    evaluate.add_argument("checkpoint", help="a training checkpoint (.pt, e.g. RUN_DIR/best.pt); its config is the base, "
                          "then --config, the flags and --set on top")
    _common(evaluate, training=False)
    evaluate.add_argument("--split", default="val", help="split to evaluate (default val)")
    evaluate.add_argument("--json", help="also write the metrics to this JSON file")

    predict = commands.add_parser("predict", help="write colour masks and overlays for an image or a folder")
    predict.add_argument("checkpoint", help="a training checkpoint (.pt, e.g. RUN_DIR/best.pt)")
    predict.add_argument("input", help="an image file or a folder of images")
    predict.add_argument("--out", required=True, help="output folder")
    predict.add_argument("--device", help="auto | cpu | cuda | cuda:N (default auto)")
    predict.add_argument("--no-progress", action="store_true", help="no progress bar")

    export = commands.add_parser("export", help="write a trained checkpoint as ONNX, a torch.export program or TorchScript, "
                                                "with a JSON sidecar (FILE.json)")
    export.add_argument("checkpoint", help="a 'udarts train' checkpoint (best.pt)")
    export.add_argument("--format", default="onnx", choices=["onnx", "exported-program", "torchscript"],
                        help="onnx (default), exported-program (torch.export, .pt2) or torchscript")
    export.add_argument("--out", required=True, help="model file to write; the sidecar goes to FILE.json")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    export.add_argument("--quantize", choices=["dynamic", "static"],
                        help="also write an int8 copy (onnxruntime quantisation) as FILE-int8-MODE.onnx")
    export.add_argument("--calib", metavar="DIR", help="--quantize static: folder of calibration images")

    demo = commands.add_parser("demo", help="search -> derive -> retrain -> eval on synthetic data, CPU-sized")
    _common(demo, resumable=False)

    compare = commands.add_parser("compare", help="train and evaluate several models on one budget; write the table and plots")
    _common(compare, training=False)
    compare.add_argument("--models", help="comma-separated baselines (unet, unet_resnet34, unetpp, fpn, deeplabv3, setr); "
                                          "LABEL=NAME names a row")
    compare.add_argument("--genotypes", help="comma-separated genotype.json files, each trained as SEARCH-Net; LABEL=PATH names a row")
    compare.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2 (default: the config's seed)")
    compare.add_argument("--model-option", action="append", metavar="LABEL:KEY=VALUE",
                         help="a baseline's network option, e.g. unet:width=8 (repeatable)")
    compare.add_argument("--width", type=int, help="SEARCH-Net base width w")
    compare.add_argument("--epochs", type=int, help="training epochs of every compared model (train.epochs)")
    compare.add_argument("--out", help="comparison folder (default: <out>/compare-<time>); the same --out again reuses finished runs")
    compare.add_argument("--num-images", type=int, default=4, help="validation images in predictions.png (0: none)")
    compare.add_argument("--latency-repeats", type=int, default=10, help="timed forward passes per model (median reported)")

    report = commands.add_parser("report", help="plots and summary.md of a train run, a search run or a comparison folder")
    report.add_argument("run_dir", help="train run, search run or comparison folder")
    report.add_argument("--device", help="comparison: device for predictions and costs not measured yet")
    report.add_argument("--num-images", type=int, default=4, help="comparison: validation images in predictions.png (0: none)")
    for action in commands._choices_actions:  # every subcommand: its help line as its description, and --debug
        subparser = commands.choices[action.dest]
        subparser.description = subparser.description or action.help
        subparser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return parser


DEBUG_HELP = "on an error, show the Python traceback instead of the one-line message"


def error_line(error: BaseException) -> tuple[str, int]:
    """``(one-line message, exit code)`` of an error: 2 for what a user can cause (a bad value,
    file or checkpoint, a full disk, a divergence), 1 for anything else (a bug: --debug shows it)."""
    import errno
    import re

    from udarts.engine.runs import CheckpointError, RunFolderError, disk_of

    expected = (ConfigError, DatasetError, GenotypeError, CheckpointError, RunFolderError, FloatingPointError,
                FileNotFoundError, FileExistsError)
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        where = error.filename or "a file"
        message = (f"disk full: no space left on the disk mounted at {disk_of(where if error.filename else '.')} "
                   f"while writing {where}; free some space, then continue with --resume RUN_DIR (the last complete "
                   f"epoch is kept)")
        code = 2
    elif isinstance(error, OSError) and error.filename is not None and error.strerror:
        message, code = f"{error.filename}: {error.strerror}", 2
    elif isinstance(error, expected):
        message, code = str(error), 2
    else:
        first = (str(error).strip().splitlines() or [""])[0]
        message, code = f"unexpected {type(error).__name__}: {first} (a bug? --debug shows the traceback)", 1
    return re.sub(r"\s*\n\s*", " ", message.strip()), code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "search": command_search,
        "derive": command_derive,
        "sample": command_sample,
        "train": command_train,
        "eval": command_eval,
        "predict": command_predict,
        "export": command_export,
        "demo": command_demo,
        "compare": command_compare,
        "report": command_report,
    }
    try:
        handlers[args.command](args)
    except Exception as error:  # one line (exit 2) for what a user can cause; --debug shows the traceback
        if getattr(args, "debug", False):
            raise
        message, code = error_line(error)
        print(f"udarts {args.command}: error: {message}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print("\ninterrupted; continue with --resume RUN_DIR (checkpoints are written every epoch)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
