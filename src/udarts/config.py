"""Configs: defaults here, a YAML file on top, command-line flags on top of that.

The resolved config is a plain nested dict written to every run folder (``config.yaml``). Keys
are checked: an unknown key or a value of the wrong type is an error that names the key and the
file it came from. ``udarts.cli`` is the only place where a config becomes keyword arguments.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import yaml

from udarts.efficiency import AMP_MODES
from udarts.ops import PAPER_OPS
from udarts.search.sampling import TAU_SCHEDULES
from udarts.search.supernet import SAMPLED_MODES, SEARCH_MODES

# Method settings default to the paper (and DARTS where the paper is silent); the data and the
# width default to something that runs anywhere.
DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "device": "auto",  # auto | cpu | cuda | cuda:N
    "out": "runs",  # parent folder of new run folders
    "progress": True,
    "data": {
        "name": "synthetic",  # synthetic | pets | camvid | folder
        "root": None,
        "image_size": [64, 64],  # H, W (divisible by 8)
        "target": "binary",  # pets: binary | trimap
        "num_samples": 256,  # synthetic: training images (val gets a quarter)
        "batch_size": 8,
        "num_workers": 0,
        "cache": False,
        "on_bad_sample": "error",  # error | skip
        "download": False,
        "holdout": None,  # camvid: a training sequence (e.g. 0006R0) left out of train, served as split 'holdout'
    },
    "model": {
        "width": 64,  # w: cells have w, 2w, 4w, 8w channels (the paper: 64)
        "num_nodes": 4,
        "ops": list(PAPER_OPS),
        "include_none": True,  # add DARTS's zero op to the search
        "expand_ratio": 4,  # MBConv hidden width = expand_ratio * channels
        "se_ratio": 0.25,
        # SEARCH-Net (train): GFLOPs per data.image_size image; when set, model.width becomes the
        # largest width whose forward pass fits (udarts.random_genotypes.width_for_budget).
        "flops_budget": None,
    },
    "search": {
        "epochs": 300,
        "warmup_epochs": 0,  # epochs that train the weights only
        "loss": "dice",
        "weight_optimizer": "adam",
        "weight_lr": 1.0e-3,
        "weight_decay": 0.0,
        "alpha_lr": 3.0e-4,
        # Size the alpha steps to the budget: when set, alpha_lr = alpha_travel / (number of alpha
        # steps), so Adam can move a logit by about alpha_travel over the search whatever its length
        # (DARTS's CIFAR search: ~20,000 steps x 3e-4 = 6). null = use alpha_lr as given.
        "alpha_travel": None,
        "alpha_betas": [0.5, 0.999],
        "alpha_weight_decay": 1.0e-3,
        "order": "first",  # first | second
        "unrolled_lr": None,  # xi of the second-order step; null = weight_lr
        "grad_clip": 5.0,
        "top_k": 2,  # kept incoming edges per node
        # at most this many 'identity' edges per derived cell (P-DARTS's cap; the weakest extra
        # ones take their edge's best other op; docs/search_modes.md); null = no cap
        "max_identity": None,
        # Cheaper search (docs/search_modes.md). mode: darts (every op) | gdas (one sampled op
        # per edge, Dong & Yang 2019) | pc_darts (1/K of the channels, Xu et al. 2020) | pc_gdas (both)
        "mode": "darts",
        "tau_max": 10.0,  # gdas: Gumbel-softmax temperature at the first epoch
        "tau_min": 0.1,  # gdas: ... at the last epoch
        "tau_schedule": "linear",  # gdas: linear | exponential
        "partial_channel_k": 4,  # pc_darts, pc_gdas: 1/K of each edge's channels go through the mixed op
        "prune_start_epoch": None,  # progressive op pruning: first pruning after this many epochs (null = off)
        "prune_every": 10,  # ... then every this many epochs
        "prune_ops_per_step": 1,  # ops dropped per edge per pruning
        "prune_min_ops": 2,  # ops an edge keeps at least ('none' is never dropped)
        "flops_penalty": 0.0,
        "beta_decay": 0.0,  # beta-DARTS's regulariser: weight of the mean log-sum-exp of the alphas (0 = off)  # alpha-loss weight per expected GFLOP per image (0 = off)
        "amp": "none",  # none | bf16 | fp16 (fp16 adds gradient scaling)
        "channels_last": False,  # NHWC memory format (for CUDA tensor cores)
        "checkpoint_cells": False,  # recompute cell activations in the backward pass
        "checkpoint_edges": False,  # recompute each mixed op's inner activations (finer, less memory)
        "compile": False,  # torch.compile the supernet (darts, pc_darts)
        "sync_batchnorm": True,  # under torchrun: BatchNorm statistics of the global batch
    },
    "train": {
        "model": "searchnet",  # searchnet | unet | unet_resnet34 | unetpp | fpn | deeplabv3 | setr
        "genotype": None,  # path to genotype.json (searchnet)
        "model_scale": "cpu",  # baselines: cpu | paper (see docs/baselines.md)
        "model_options": {},  # baselines: keyword options, e.g. {encoder_name: resnet34}
        "epochs": 200,
        "loss": "dice",  # dice | ce | dice_ce
        "optimizer": "sgd",  # sgd | adam | adamw
        "lr": 1.0e-3,
        "momentum": 0.9,
        "weight_decay": 5.0e-4,
        "scheduler": "cosine",  # cosine | none
        "min_lr": 0.0,
        "select_split": "val",  # split scored every epoch and used to pick best.pt (camvid with data.holdout: holdout)
        "sync_batchnorm": True,  # under torchrun: BatchNorm statistics of the global batch
    },
}

# Plain value tables (kept here rather than imported from the registries so that this module
# stays light; tests/test_reliability.py checks that they match the registries).
DATASETS = ("synthetic", "pets", "camvid", "folder")
PETS_TARGETS = ("binary", "trimap")
BAD_SAMPLE_POLICIES = ("error", "skip")
LOSSES = ("dice", "ce", "dice_ce")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("cosine", "none")
SEARCH_ORDERS = ("first", "second")
MODELS = ("searchnet", "unet", "unet_resnet34", "unetpp", "fpn", "deeplabv3", "setr")
MODEL_SCALES = ("cpu", "paper")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|(cuda|xpu)(:[0-9]+)?)$")
# Numeric keys whose default is null (a number, when given).
_NULLABLE_NUMBERS = {"search.unrolled_lr", "search.alpha_travel", "model.flops_budget", "search.grad_clip"}
# Common float spellings that YAML 1.1 (PyYAML) reads as strings: 1e-3, 5E+4, .5e-3 (no dot or no sign).
_FLOAT_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")

# Keys whose value may be null or of another type than the default's.
_NULLABLE = {"data.root", "data.holdout", "search.unrolled_lr", "search.alpha_travel", "model.flops_budget", "train.genotype", "search.grad_clip", "search.prune_start_epoch", "search.max_identity"}
# Mappings whose keys are free (passed on as keyword options), not checked against defaults.
_FREE_MAPPINGS = {"train.model_options"}


class ConfigError(ValueError):
    pass


def _check(value: Any, default: Any, key: str, origin: str) -> Any:
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{origin}: {key}: expected a mapping, got {value!r}")
        return value
    if value is None:
        if key in _NULLABLE:
            return None
        raise ConfigError(f"{origin}: {key}: must not be null")
    if isinstance(value, str) and not isinstance(default, (bool, str)) and (
        isinstance(default, (int, float)) or key in _NULLABLE_NUMBERS
    ):
        value = _number_from_text(value, key, origin)
    if default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{origin}: {key}: expected true or false, got {value!r}")
    elif isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{origin}: {key}: expected a number, got {value!r}")
        if isinstance(default, int) and not isinstance(value, int):
            if float(value).is_integer():
                value = int(value)
            else:
                raise ConfigError(f"{origin}: {key}: expected an integer, got {value!r}")
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{origin}: {key}: expected a string, got {value!r}")
    elif isinstance(default, list):
        if not isinstance(value, list):
            raise ConfigError(f"{origin}: {key}: expected a list, got {value!r}")
    return value


def _number_from_text(text: str, key: str, origin: str) -> int | float:
    """``"1e-3"`` -> ``0.001``: YAML 1.1 reads exponent floats without a dot as strings."""
    if not _FLOAT_TEXT.match(text.strip()):
        raise ConfigError(f"{origin}: {key}: expected a number, got {text!r}")
    number = float(text)
    return int(number) if number.is_integer() and re.match(r"^[-+]?\d+$", text.strip()) else number


def merge(base: dict[str, Any], override: dict[str, Any], origin: str, prefix: str = "") -> dict[str, Any]:
    """``base`` updated with ``override``; every key of ``override`` must exist in ``base``."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        full_key = f"{prefix}{key}"
        if key not in result:
            raise ConfigError(f"{origin}: unknown key {full_key!r}; expected one of {sorted(result)}")
        value = _check(value, result[key], full_key, origin)
        if isinstance(result[key], dict) and full_key not in _FREE_MAPPINGS:
            result[key] = merge(result[key], value, origin, f"{full_key}.")
        else:
            result[key] = value
    return result


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def set_dotted(target: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """``set_dotted(d, "search.epochs", 5)`` sets ``d["search"]["epochs"] = 5``; returns ``d``."""
    cursor = target
    parts = key.strip().split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return target


def parse_assignment(text: str) -> dict[str, Any]:
    """``"search.epochs=5"`` -> ``{"search": {"epochs": 5}}`` (the value is read as YAML)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, for example search.epochs=5")
    key, raw = text.split("=", 1)
    if not key.strip() or any(not part for part in key.strip().split(".")):
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE with a dotted key, for example search.epochs=5")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise ConfigError(f"--set {text!r}: the value {raw!r} is not valid YAML ({problem}); quote strings, "
                          f"write lists as [a,b]") from error
    return set_dotted({}, key, value)


def resolve(config_path: str | None = None, overrides: list[tuple[dict[str, Any], str]] = ()) -> dict[str, Any]:
    """Defaults <- the YAML file <- each ``(override, origin)`` in order."""
    config = copy.deepcopy(DEFAULTS)
    if config_path:
        config = merge(config, load_yaml(config_path), str(config_path))
    for override, origin in overrides:
        config = merge(config, override, origin)
    size = config["data"]["image_size"]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise ConfigError(f"data.image_size: expected [height, width] as two positive integers, got {size!r}")
    holdout = config["data"]["holdout"]
    if holdout is not None and not (isinstance(holdout, str) and holdout):
        raise ConfigError(f"data.holdout: expected the name of a sequence (a string such as '0006R0') or null, got {holdout!r}")
    check_search_settings(config["search"])
    check_values(config)
    return config


def _fail(key: str, message: str) -> ConfigError:
    return ConfigError(f"{key}: {message}")


def _one_of(config: dict[str, Any], key: str, choices: tuple[str, ...]) -> None:
    section, name = key.split(".")
    value = config[section][name]
    if value not in choices:
        raise _fail(key, f"expected one of {list(choices)}, got {value!r}")


def _number(config: dict[str, Any], key: str, minimum: float, *, strict: bool = False, nullable: bool = False) -> None:
    """``key`` is a finite number >= ``minimum`` (> with ``strict``), or null with ``nullable``."""
    section, name = key.split(".") if "." in key else (None, key)
    value = config[section][name] if section else config[name]
    if value is None and nullable:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(key, f"expected a number{' or null' if nullable else ''}, got {value!r}")
    if value < minimum or (strict and value == minimum):
        raise _fail(key, f"must be {'>' if strict else '>='} {minimum:g}, got {value!r}")


def check_values(config: dict[str, Any]) -> None:
    """Values (not only types) of every key, in one place, before anything is built or written;
    each error names the key and what was expected."""
    data, model, search, train = config["data"], config["model"], config["search"], config["train"]
    if not DEVICE_PATTERN.match(str(config["device"])):
        raise _fail("device", f"expected auto, cpu, cuda or cuda:N, got {config['device']!r}")
    _one_of(config, "data.name", DATASETS)
    _one_of(config, "data.target", PETS_TARGETS)
    if data["name"] != "pets" and data["target"] != "binary":
        raise _fail("data.target", f"{data['target']!r} applies to the pets dataset only (data.name is {data['name']!r}); "
                                   "leave it at 'binary'")
    _one_of(config, "data.on_bad_sample", BAD_SAMPLE_POLICIES)
    _number(config, "data.batch_size", 1)
    _number(config, "data.num_workers", 0)
    _number(config, "data.num_samples", 1)
    _number(config, "model.width", 1)
    _number(config, "model.num_nodes", 1)
    _number(config, "model.expand_ratio", 1)
    _number(config, "model.se_ratio", 0, strict=True)
    if model["se_ratio"] > 1:
        raise _fail("model.se_ratio", f"must be in (0, 1], got {model['se_ratio']!r}")
    _number(config, "model.flops_budget", 0, strict=True, nullable=True)
    from udarts.ops import OPS

    ops = model["ops"]
    if not ops or not all(isinstance(name, str) for name in ops):
        raise _fail("model.ops", f"expected a non-empty list of op names, got {ops!r}")
    unknown = [name for name in ops if name not in OPS]
    if unknown:
        raise _fail("model.ops", f"unknown op(s) {unknown}; known ops are {sorted(OPS)}")
    if len(set(ops)) != len(ops):
        raise _fail("model.ops", f"an op is listed twice: {ops}")
    if not [name for name in ops if name != "none"]:
        raise _fail("model.ops", f"needs at least one op besides 'none', got {ops}")

    for key in ("epochs",):
        _number(config, f"search.{key}", 1)
        _number(config, f"train.{key}", 1)
    _number(config, "search.warmup_epochs", 0)
    if search["warmup_epochs"] >= search["epochs"]:
        raise _fail("search.warmup_epochs", f"must be below search.epochs = {search['epochs']} (the alphas only move after "
                                            f"the warm-up), got {search['warmup_epochs']}")
    _one_of(config, "search.loss", LOSSES)
    _one_of(config, "search.weight_optimizer", OPTIMIZERS)
    _one_of(config, "search.order", SEARCH_ORDERS)
    _number(config, "search.weight_lr", 0, strict=True)
    _number(config, "search.alpha_lr", 0, strict=True)
    _number(config, "search.weight_decay", 0)
    _number(config, "search.alpha_weight_decay", 0)
    _number(config, "search.unrolled_lr", 0, strict=True, nullable=True)
    _number(config, "search.grad_clip", 0, strict=True, nullable=True)
    _number(config, "search.top_k", 1)
    betas = search["alpha_betas"]
    if not (len(betas) == 2 and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)):
        raise _fail("search.alpha_betas", f"expected two numbers in [0, 1), got {betas!r}")

    _one_of(config, "train.model", MODELS)
    _one_of(config, "train.model_scale", MODEL_SCALES)
    _one_of(config, "train.loss", LOSSES)
    _one_of(config, "train.optimizer", OPTIMIZERS)
    _one_of(config, "train.scheduler", SCHEDULERS)
    _number(config, "train.lr", 0, strict=True)
    _number(config, "train.momentum", 0)
    _number(config, "train.weight_decay", 0)
    _number(config, "train.min_lr", 0)
    if train["min_lr"] > train["lr"]:
        raise _fail("train.min_lr", f"must not exceed train.lr = {train['lr']}, got {train['min_lr']}")
    if not (isinstance(train["select_split"], str) and train["select_split"]):
        raise _fail("train.select_split", f"expected a split name such as 'val', got {train['select_split']!r}")
    if train["select_split"] == "holdout" and data["holdout"] is None:
        raise _fail("train.select_split", "'holdout' needs data.holdout (a CamVid training sequence left out of train)")
    if train["genotype"] is not None and not isinstance(train["genotype"], str):
        raise _fail("train.genotype", f"expected a path to genotype.json, got {train['genotype']!r}")


def check_search_settings(search: dict[str, Any]) -> None:
    """Values (not only types) of the cheaper-search keys; errors name the key."""
    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(f"search.{key}: {message}")

    if search["mode"] not in SEARCH_MODES:
        raise fail("mode", f"expected one of {list(SEARCH_MODES)}, got {search['mode']!r}")
    if search["amp"] not in AMP_MODES:
        raise fail("amp", f"expected one of {list(AMP_MODES)}, got {search['amp']!r}")
    if search["tau_schedule"] not in TAU_SCHEDULES:
        raise fail("tau_schedule", f"expected one of {list(TAU_SCHEDULES)}, got {search['tau_schedule']!r}")
    for key in ("tau_max", "tau_min"):
        if search[key] <= 0:
            raise fail(key, f"must be > 0, got {search[key]}")
    for key in ("partial_channel_k", "prune_every", "prune_ops_per_step", "prune_min_ops"):
        if search[key] < 1:
            raise fail(key, f"must be >= 1, got {search[key]}")
    for key in ("flops_penalty", "beta_decay"):
        if search[key] < 0:
            raise fail(key, f"must be >= 0, got {search[key]}")
    travel = search["alpha_travel"]
    if travel is not None and (isinstance(travel, bool) or not isinstance(travel, (int, float)) or travel <= 0):
        raise fail("alpha_travel", f"expected a number > 0 or null, got {travel!r}")
    max_identity = search["max_identity"]
    if max_identity is not None and (isinstance(max_identity, bool) or not isinstance(max_identity, int) or max_identity < 0):
        raise fail("max_identity", f"expected an integer >= 0 or null, got {max_identity!r}")
    start = search["prune_start_epoch"]
    if start is not None:
        if isinstance(start, bool) or not isinstance(start, int):
            raise fail("prune_start_epoch", f"expected an integer or null, got {start!r}")
        if start <= search["warmup_epochs"]:
            raise fail("prune_start_epoch", f"must come after the warm-up (search.warmup_epochs = {search['warmup_epochs']}), got {start}")
    if search["order"] == "second" and search["mode"] in SAMPLED_MODES:
        raise fail("order", "second-order DARTS needs a deterministic network; use it with mode darts or pc_darts")
    if search["order"] == "second" and search["amp"] == "fp16":
        raise fail("amp", "fp16 (gradient scaling) does not work with search.order = second; use bf16")
