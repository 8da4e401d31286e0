"""The config schema: one frozen dataclass per section, each default written once and each value
checked once (in ``__post_init__``; a name against its table of ``udarts.config.names``), with
errors naming the dotted key. Plain data only: the config package imports nothing else from udarts."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

from udarts.config.errors import ConfigError
from udarts.config.merging import KeyKinds, merge
from udarts.config.names import NAMED_KEYS, PAPER_OPS, SAMPLED_MODES

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|(cuda|xpu)(:[0-9]+)?)$")


# ---- checks --------------------------------------------------------------------------------------


def _fail(key: str, message: str) -> ConfigError:
    return ConfigError(f"{key}: {message}")


def _names(section: str, values: Any) -> None:
    """Every name-valued key of ``section`` against its table (``udarts.config.names.NAMED_KEYS``)."""
    for key, choices in NAMED_KEYS.items():
        owner, _, name = key.partition(".")
        if owner == section and getattr(values, name) not in choices:
            raise _fail(key, f"expected one of {list(choices)}, got {getattr(values, name)!r}")


def _number(key: str, value: Any, minimum: float, *, strict: bool = False, nullable: bool = False) -> None:
    """``value`` is a finite number >= ``minimum`` (> with ``strict``), or null with ``nullable``."""
    if value is None and nullable:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(key, f"expected a number{' or null' if nullable else ''}, got {value!r}")
    if value < minimum or (strict and value == minimum):
        raise _fail(key, f"must be {'>' if strict else '>='} {minimum:g}, got {value!r}")


def _integer_or_null(key: str, value: Any, minimum: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
        raise _fail(key, f"expected an integer >= {minimum} or null, got {value!r}")


# ---- sections ------------------------------------------------------------------------------------
# Method settings default to the paper (and DARTS where the paper is silent); the data and the
# width default to something that runs anywhere.


@dataclass(frozen=True)
class DataConfig:
    name: str = "synthetic"  # synthetic | pets | camvid | folder
    root: str | None = None
    image_size: tuple[int, int] = (64, 64)  # H, W (divisible by 8 for the U-shaped networks)
    target: str = "binary"  # pets: binary | trimap
    num_samples: int = 256  # synthetic: training images (val gets a quarter)
    batch_size: int = 8
    num_workers: int = 0
    cache: bool = False
    on_bad_sample: str = "error"  # error | skip
    download: bool = False
    holdout: str | None = None  # camvid: a training sequence (e.g. 0006R0) left out of train, served as split 'holdout'

    def __post_init__(self) -> None:
        size = self.image_size
        if not (len(size) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
            raise _fail("data.image_size", f"expected [height, width] as two positive integers, got {list(size)!r}")
        _names("data", self)
        if self.name != "pets" and self.target != "binary":
            raise _fail("data.target", f"{self.target!r} applies to the pets dataset only (data.name is {self.name!r}); "
                                       "leave it at 'binary'")
        _number("data.batch_size", self.batch_size, 1)
        _number("data.num_workers", self.num_workers, 0)
        _number("data.num_samples", self.num_samples, 1)
        if self.holdout is not None and not (isinstance(self.holdout, str) and self.holdout):
            raise _fail("data.holdout", f"expected the name of a sequence (a string such as '0006R0') or null, got {self.holdout!r}")


@dataclass(frozen=True)
class ModelConfig:
    width: int = 64  # w: cells have w, 2w, 4w, 8w channels (the paper: 64)
    num_nodes: int = 4
    ops: tuple[str, ...] = PAPER_OPS  # candidate ops (names from udarts.ops.OPS, checked where the network is built)
    include_none: bool = True  # add DARTS's zero op to the search
    expand_ratio: int = 4  # MBConv hidden width = expand_ratio * channels
    se_ratio: float = 0.25
    # SEARCH-Net (train): GFLOPs per data.image_size image; when set, model.width becomes the
    # largest width whose forward pass fits (udarts.random_genotypes.width_for_budget).
    flops_budget: float | None = None
    # SEARCH-Net (train): milliseconds of CPU latency per data.image_size image at batch 1 on one
    # thread, timed on the machine that starts the run; when set, model.width becomes the largest
    # width that fits (udarts.random_genotypes.width_for_latency); with flops_budget too, the
    # smaller of the two widths.
    latency_budget: float | None = None

    def __post_init__(self) -> None:
        _number("model.width", self.width, 1)
        _number("model.num_nodes", self.num_nodes, 1)
        _number("model.expand_ratio", self.expand_ratio, 1)
        _number("model.se_ratio", self.se_ratio, 0, strict=True)
        if self.se_ratio > 1:
            raise _fail("model.se_ratio", f"must be in (0, 1], got {self.se_ratio!r}")
        _number("model.flops_budget", self.flops_budget, 0, strict=True, nullable=True)
        _number("model.latency_budget", self.latency_budget, 0, strict=True, nullable=True)
        if not self.ops or not all(isinstance(name, str) for name in self.ops):
            raise _fail("model.ops", f"expected a non-empty list of op names, got {list(self.ops)!r}")
        if len(set(self.ops)) != len(self.ops):
            raise _fail("model.ops", f"an op is listed twice: {list(self.ops)}")
        if not [name for name in self.ops if name != "none"]:
            raise _fail("model.ops", f"needs at least one op besides 'none', got {list(self.ops)}")


@dataclass(frozen=True)
class SearchConfig:
    epochs: int = 300
    warmup_epochs: int = 0  # epochs that train the weights only
    loss: str = "dice"
    weight_optimizer: str = "adam"
    weight_lr: float = 1.0e-3
    weight_decay: float = 0.0
    alpha_lr: float = 3.0e-4
    # Size the alpha steps to the budget: when set, alpha_lr = alpha_travel / (number of alpha
    # steps), so Adam can move a logit by about alpha_travel over the search whatever its length
    # (DARTS's CIFAR search: ~20,000 steps x 3e-4 = 6). null = use alpha_lr as given.
    alpha_travel: float | None = None
    # After search.epochs, search on one epoch at a time, at most this many, while a cell of the
    # last epoch is weakly determined (udarts.app.settling; `udarts search` and the demo). 0 = off.
    settle_epochs: int = 0
    alpha_betas: tuple[float, float] = (0.5, 0.999)
    # Coupled L2 decay on the alphas (Adam's weight_decay). Off by default: DARTS's 1e-3 assumes
    # alpha gradients far above 1e-3, but udarts measures a typical one at 2e-5 (demo) to 2e-4
    # (CamVid), where Adam, which normalises gradient plus decay, stops a logit at about
    # gradient / decay = 0.02-0.18 whatever the travel (bench/bench_alpha_signal.py, BENCHMARKS.md).
    alpha_weight_decay: float = 0.0
    order: str = "first"  # first | second
    unrolled_lr: float | None = None  # xi of the second-order step; null = weight_lr
    grad_clip: float | None = 5.0
    top_k: int = 2  # kept incoming edges per node
    # at most this many 'identity' edges per derived cell (P-DARTS's cap; the weakest extra ones
    # take their edge's best other op; docs/search_modes.md); null = no cap
    max_identity: int | None = None
    # Cheaper search (docs/search_modes.md). mode: darts (every op) | gdas (one sampled op per
    # edge, Dong & Yang 2019) | pc_darts (1/K of the channels, Xu et al. 2020) | pc_gdas (both)
    mode: str = "darts"
    tau_max: float = 10.0  # gdas: Gumbel-softmax temperature at the first epoch
    tau_min: float = 0.1  # gdas: ... at the last epoch
    tau_schedule: str = "linear"  # gdas: linear | exponential
    partial_channel_k: int = 4  # pc_darts, pc_gdas: 1/K of each edge's channels go through the mixed op
    prune_start_epoch: int | None = None  # progressive op pruning: first pruning after this many epochs (null = off)
    prune_every: int = 10  # ... then every this many epochs
    prune_ops_per_step: int = 1  # ops dropped per edge per pruning
    prune_min_ops: int = 2  # ops an edge keeps at least ('none' is never dropped)
    flops_penalty: float = 0.0  # alpha-loss weight per expected GFLOP per image (0 = off)
    # Latency-aware search (udarts.search.latency, docs/latency.md): the alpha loss gains
    # latency_weight * max(0, log(expected ms / latency_target_ms)), the expected latency of the
    # derived network from a device's latency table (latency_table: a file from `udarts
    # latency-table`; null = timed on this machine at the search's own image size and width).
    latency_target_ms: float | None = None
    latency_table: str | None = None
    latency_weight: float = 1.0
    beta_decay: float = 0.0  # beta-DARTS's regulariser: weight of the mean log-sum-exp of the alphas (0 = off)
    amp: str = "none"  # none | bf16 | fp16 (fp16 adds gradient scaling)
    channels_last: bool = False  # NHWC memory format (for CUDA tensor cores)
    checkpoint_cells: bool = False  # recompute cell activations in the backward pass
    checkpoint_edges: bool = False  # recompute each mixed op's inner activations (finer, less memory)
    compile: bool = False  # torch.compile the supernet (darts, pc_darts)
    sync_batchnorm: bool = True  # under torchrun: BatchNorm statistics of the global batch

    def __post_init__(self) -> None:
        _number("search.epochs", self.epochs, 1)
        _number("search.warmup_epochs", self.warmup_epochs, 0)
        _number("search.settle_epochs", self.settle_epochs, 0)
        if self.warmup_epochs >= self.epochs:
            raise _fail("search.warmup_epochs", f"must be below search.epochs = {self.epochs} (the alphas only move after "
                                                f"the warm-up), got {self.warmup_epochs}")
        _names("search", self)
        for key in ("weight_lr", "alpha_lr", "tau_max", "tau_min"):
            _number(f"search.{key}", getattr(self, key), 0, strict=True)
        for key in ("weight_decay", "alpha_weight_decay", "flops_penalty", "beta_decay", "latency_weight"):
            _number(f"search.{key}", getattr(self, key), 0)
        for key in ("unrolled_lr", "grad_clip", "alpha_travel", "latency_target_ms"):
            _number(f"search.{key}", getattr(self, key), 0, strict=True, nullable=True)
        for key in ("top_k", "partial_channel_k", "prune_every", "prune_ops_per_step", "prune_min_ops"):
            _number(f"search.{key}", getattr(self, key), 1)
        _integer_or_null("search.max_identity", self.max_identity, 0)
        _integer_or_null("search.prune_start_epoch", self.prune_start_epoch, 0)
        if self.prune_start_epoch is not None and self.prune_start_epoch <= self.warmup_epochs:
            raise _fail("search.prune_start_epoch", f"must come after the warm-up (search.warmup_epochs = "
                                                    f"{self.warmup_epochs}), got {self.prune_start_epoch}")
        betas = self.alpha_betas
        if not (len(betas) == 2 and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)):
            raise _fail("search.alpha_betas", f"expected two numbers in [0, 1), got {list(betas)!r}")
        if self.latency_table is not None and not (isinstance(self.latency_table, str) and self.latency_table):
            raise _fail("search.latency_table", f"expected a path to a latency table (JSON) or null, got {self.latency_table!r}")
        if self.latency_table is not None and self.latency_target_ms is None:
            raise _fail("search.latency_table", "is used only with search.latency_target_ms (--latency-target MS); set both")
        if self.order == "second" and self.mode in SAMPLED_MODES:
            raise _fail("search.order", "second-order DARTS needs a deterministic network; use it with mode darts or pc_darts")
        if self.order == "second" and self.amp == "fp16":
            raise _fail("search.amp", "fp16 (gradient scaling) does not work with search.order = second; use bf16")


@dataclass(frozen=True)
class TrainConfig:
    model: str = "searchnet"  # searchnet or a baseline of MODELS (udarts.baselines.BASELINES)
    genotype: str | None = None  # path to genotype.json (searchnet)
    model_scale: str = "cpu"  # baselines: cpu | paper (see docs/baselines.md)
    model_options: dict[str, Any] = field(default_factory=dict)  # baselines: keyword options, e.g. {encoder_name: resnet34}
    epochs: int = 200
    loss: str = "dice"  # dice | ce | dice_ce
    optimizer: str = "sgd"  # sgd | adam | adamw
    lr: float = 1.0e-3
    momentum: float = 0.9
    weight_decay: float = 5.0e-4
    scheduler: str = "cosine"  # cosine | none
    min_lr: float = 0.0
    select_split: str = "val"  # split scored every epoch and used to pick best.pt (camvid with data.holdout: holdout)
    sync_batchnorm: bool = True  # under torchrun: BatchNorm statistics of the global batch

    def __post_init__(self) -> None:
        _number("train.epochs", self.epochs, 1)
        _names("train", self)
        _number("train.lr", self.lr, 0, strict=True)
        _number("train.momentum", self.momentum, 0)
        _number("train.weight_decay", self.weight_decay, 0)
        _number("train.min_lr", self.min_lr, 0)
        if self.min_lr > self.lr:
            raise _fail("train.min_lr", f"must not exceed train.lr = {self.lr}, got {self.min_lr}")
        if not (isinstance(self.select_split, str) and self.select_split):
            raise _fail("train.select_split", f"expected a split name such as 'val', got {self.select_split!r}")
        if self.genotype is not None and not isinstance(self.genotype, str):
            raise _fail("train.genotype", f"expected the path of a genotype file (a search's JSON), got {self.genotype!r}")


@dataclass(frozen=True)
class Config:
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    out: str = "runs"  # parent folder of new run folders
    progress: bool = True
    # torch's intra-op threads in a run's process (null: torch's default, one per core). On a CPU
    # with another job running, more than one thread can make small networks many times slower
    # (docs/usage.md, "Threads on a CPU").
    threads: int | None = None
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if not DEVICE_PATTERN.match(str(self.device)):
            raise _fail("device", f"expected auto, cpu, cuda or cuda:N, got {self.device!r}")
        _integer_or_null("threads", self.threads, 1)
        if self.train.select_split == "holdout" and self.data.holdout is None:
            raise _fail("train.select_split", "'holdout' needs data.holdout (a CamVid training sequence left out of train)")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, not tuples) for config.yaml and checkpoints."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "config") -> "Config":
        """A config from a (possibly partial) mapping: defaults <- ``data``."""
        return _build(merge(DEFAULTS, data, origin, KEY_KINDS))

    def updated(self, override: dict[str, Any], origin: str) -> "Config":
        """This config with ``override`` (a nested mapping, checked like a config file) on top."""
        return _build(merge(self.to_dict(), override, origin, KEY_KINDS))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


SECTIONS = {"data": DataConfig, "model": ModelConfig, "search": SearchConfig, "train": TrainConfig}


def _key_kinds() -> KeyKinds:
    """What ``merge`` needs to know of the sections' fields: which admit null (``| None``), which
    hold numbers, and the free mappings (keyword options passed on as they are)."""
    types = {f"{name}.{item.name}": str(item.type) for name, section in SECTIONS.items()
             for item in dataclasses.fields(section)}
    types.update({item.name: str(item.type) for item in dataclasses.fields(Config) if item.name not in SECTIONS})
    return KeyKinds(
        nullable=frozenset(key for key, kind in types.items() if "None" in kind),
        numeric=frozenset(key for key, kind in types.items()
                          if ("int" in kind or "float" in kind) and "tuple" not in kind),
        free=frozenset({"train.model_options"}),
    )


KEY_KINDS = _key_kinds()


def _build(data: dict[str, Any]) -> Config:
    sections = {}
    for name, section in SECTIONS.items():
        values = dict(data[name])
        for item in dataclasses.fields(section):
            if isinstance(item.default, tuple):
                values[item.name] = tuple(values[item.name])
        sections[name] = section(**values)
    return Config(**{key: value for key, value in data.items() if key not in SECTIONS}, **sections)


DEFAULTS: dict[str, Any] = Config().to_dict()
