"""The paper's comparison (its Tables 1 and 2, Figures 4 to 8): several models, one budget.

A comparison folder holds one ordinary train run folder per (model, seed), trained by the same
code as ``udarts train`` on the same data, loss, epochs, optimizer and schedule, and the tables
and plots made from them::

    COMPARE_DIR/
      comparison.json            what was compared: models, seeds, the shared config, the budget
      genotypes/<label>.json     a frozen copy of each SEARCH-Net genotype
      runs/<label>/seed-<s>/     train run folders (config.yaml, metrics.jsonl, last.pt, ...)
      costs.json                 per model: parameters, FLOPs, latency (and the device it ran on)
      table.md, table.csv        one row per model: mean ± std over seeds
      runs.csv                   one row per run
      curves.png                 training loss and val mIoU of every model on one chart
      predictions.png            image | ground truth | each model's overlay, on the same val images
      summary.md                 the table, the budget, how each number is measured, the plots

Every number of the table comes from a run folder: the loss and mIoU are those of the final
epoch's validation pass as logged in ``metrics.jsonl`` (the model ``last.pt`` holds), the
training time is the sum of the logged epoch times. A comparison is resumable: a finished run
folder is reused, an interrupted one is resumed from its ``last.pt``, and a run folder made with
another config is an error rather than silently mixed in.

This module never turns a config into keyword arguments (``udarts.cli`` does): it receives each
run's config as an opaque dict and a callback that trains one run.
"""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
import yaml

from udarts.config import ConfigError
from udarts.engine.logs import read_jsonl
from udarts.engine.runs import atomic_write_text, load_checkpoint

COMPARISON_FILE = "comparison.json"
COMPARISON_FORMAT = "udarts-comparison"
COMPARISON_VERSION = 1
COSTS_FILE = "costs.json"
TABLE_MARKDOWN = "table.md"
TABLE_CSV = "table.csv"
RUNS_CSV = "runs.csv"
CURVES_PNG = "curves.png"
PREDICTIONS_PNG = "predictions.png"
SUMMARY_MARKDOWN = "summary.md"
SEARCHNET = "searchnet"
# Config keys that may differ between a reused run folder and the comparison: where it ran, how
# it printed, the genotype's path (its content is pinned by genotypes/<label>.json), and the
# torchrun-only BatchNorm switch (a comparison trains in one process, where it does nothing;
# folders made before the key existed lack it).
IGNORED_CONFIG_KEYS = ("device", "progress", "out", "train.genotype", "train.sync_batchnorm")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class ComparisonError(ConfigError):
    """A comparison cannot go on as asked; the message names the folder, model or key."""


# ---- what is compared ----------------------------------------------------------------------


@dataclass(frozen=True)
class ModelEntry:
    """One model of the comparison: a table label, a baseline name or ``searchnet`` with a
    genotype file, and (baselines) keyword options of the network."""

    label: str
    model: str
    genotype: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "searched" if self.model == SEARCHNET else "baseline"


def _split_label(item: str) -> tuple[str | None, str]:
    """``"LABEL=VALUE"`` -> (LABEL, VALUE); ``"VALUE"`` -> (None, VALUE)."""
    if "=" in item:
        label, value = item.split("=", 1)
        return label.strip(), value.strip()
    return None, item.strip()


def parse_entries(
    models: Sequence[str],
    genotypes: Sequence[str] = (),
    options: Mapping[str, Mapping[str, Any]] | None = None,
    baselines: Sequence[str] | None = None,
) -> list[ModelEntry]:
    """The models of a comparison, in table order: the baselines, then the genotypes.

    ``models``: baseline names, each optionally ``LABEL=NAME`` (to compare one baseline at two
    settings). ``genotypes``: genotype paths, each optionally ``LABEL=PATH``; the default label
    is ``searchnet`` for a single genotype and ``searchnet-<name>`` otherwise, ``<name>`` being
    the search run folder's name (or the file's stem when it is not ``genotype.json``).
    ``options``: label -> keyword options of that baseline.
    """
    if baselines is None:
        from udarts.baselines import BASELINES as baselines
    entries: list[ModelEntry] = []
    options = {label: dict(values) for label, values in (options or {}).items()}
    for item in models:
        label, name = _split_label(item)
        if name == SEARCHNET:
            raise ComparisonError("searchnet is compared through --genotypes PATH (it needs a genotype)")
        if name not in baselines:
            raise ComparisonError(f"unknown model {name!r}; baselines are {', '.join(baselines)} (SEARCH-Net: --genotypes PATH)")
        entries.append(ModelEntry(label or name, name))
    for index, item in enumerate(genotypes):
        label, path = _split_label(item)
        if label is None:
            label = SEARCHNET if len(genotypes) == 1 else f"{SEARCHNET}-{_genotype_name(Path(path), index)}"
        entries.append(ModelEntry(label, SEARCHNET, genotype=path))
    if not entries:
        raise ComparisonError("nothing to compare: give --models and/or --genotypes")
    labels = [entry.label for entry in entries]
    for label in labels:
        if not _LABEL.match(label):
            raise ComparisonError(f"model label {label!r}: use letters, digits and _ . + - (it names a folder)")
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ComparisonError(f"model label(s) {repeated} given twice; name them apart with LABEL=NAME or LABEL=PATH")
    unknown = sorted(set(options) - set(labels))
    if unknown:
        raise ComparisonError(f"model options for {unknown}, which are not among the compared models {labels}")
    result = []
    for entry in entries:
        entry_options = options.get(entry.label, {})
        if entry_options and entry.model == SEARCHNET:
            raise ComparisonError(f"{entry.label}: SEARCH-Net takes no model options (its width is model.width)")
        result.append(ModelEntry(entry.label, entry.model, entry.genotype, entry_options))
    return result


def _genotype_name(path: Path, index: int) -> str:
    name = path.parent.name if path.name == "genotype.json" else path.stem
    name = re.sub(r"[^A-Za-z0-9_.+-]", "-", name).strip("-.") or str(index + 1)
    return name


def adopt_genotypes(root: Path, entries: Sequence[ModelEntry]) -> list[ModelEntry]:
    """Freeze each genotype into ``root/genotypes/<label>.json`` and point the entry there.

    A search keeps rewriting its ``genotype.json``; the copy makes every seed (and a later
    resumed comparison) train the same architecture. A label whose frozen copy holds another
    architecture than the file given now is an error.
    """
    from udarts.genotype import Genotype

    adopted = []
    for entry in entries:
        if entry.genotype is None:
            adopted.append(entry)
            continue
        source = Path(entry.genotype)
        genotype = Genotype.load(source)  # GenotypeError names the file
        frozen = root / "genotypes" / f"{entry.label}.json"
        if frozen.resolve() != source.resolve():
            if frozen.is_file():
                if Genotype.load(frozen) != genotype:
                    raise ComparisonError(
                        f"{frozen}: this comparison already trained {entry.label!r} from another architecture than "
                        f"{source}; give it another label (LABEL=PATH) or use another --out"
                    )
            else:
                frozen.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(frozen, source.read_text())
        adopted.append(ModelEntry(entry.label, entry.model, str(frozen.resolve()), dict(entry.options)))
    return adopted


def config_differences(stored: Any, expected: Any, ignore: Iterable[str] = IGNORED_CONFIG_KEYS, prefix: str = "") -> list[str]:
    """``"key: stored -> expected"`` for every leaf where two nested configs differ, skipping ``ignore``."""
    ignore = tuple(ignore)
    if prefix.rstrip(".") in ignore:
        return []
    if isinstance(stored, dict) and isinstance(expected, dict):
        differences = []
        for key in sorted(set(stored) | set(expected), key=str):
            differences += config_differences(stored.get(key), expected.get(key), ignore, f"{prefix}{key}.")
        return differences
    if stored != expected:
        return [f"{prefix.rstrip('.')}: {stored!r} -> {expected!r}"]
    return []


def prepare(
    root: Path, entries: Sequence[ModelEntry], seeds: Sequence[int], config: dict[str, Any], budget: dict[str, Any]
) -> list[ModelEntry]:
    """Make or reopen the comparison folder ``root``; returns the entries with frozen genotypes.

    A new folder must be missing or empty. An existing comparison must have been made with the
    same shared ``config`` (seeds and models may change: runs are added, finished ones reused).
    Writes ``comparison.json`` with the models, seeds, budget and shared config.
    """
    root = Path(root)
    path = root / COMPARISON_FILE
    if path.is_file():
        differences = config_differences(load_plan(root)["config"], config, IGNORED_CONFIG_KEYS + ("seed",))
        if differences:
            raise ComparisonError(
                f"{root} holds a comparison made with another config ({'; '.join(differences)}); "
                "use another --out to compare at another budget"
            )
    elif root.exists() and any(root.iterdir()):
        raise ComparisonError(f"{root}: folder exists, is not empty and is not a comparison (no {COMPARISON_FILE})")
    root.mkdir(parents=True, exist_ok=True)
    entries = adopt_genotypes(root, entries)
    plan = {
        "format": COMPARISON_FORMAT,
        "version": COMPARISON_VERSION,
        "models": [asdict(entry) for entry in entries],
        "seeds": list(seeds),
        "budget": budget,
        "config": config,
    }
    atomic_write_text(path, json.dumps(plan, indent=2) + "\n")
    return entries


def load_plan(root: Path) -> dict[str, Any]:
    path = Path(root) / COMPARISON_FILE
    if not path.is_file():
        raise ComparisonError(f"{root}: not a comparison folder (no {COMPARISON_FILE})")
    plan = json.loads(path.read_text())
    if plan.get("format") != COMPARISON_FORMAT or plan.get("version") != COMPARISON_VERSION:
        raise ComparisonError(f"{path}: not a udarts comparison of version {COMPARISON_VERSION}")
    return plan


def plan_entries(plan: Mapping[str, Any]) -> list[ModelEntry]:
    return [ModelEntry(**item) for item in plan["models"]]


# ---- running -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedRun:
    """One (model, seed) train run: its folder, its full config and its number of epochs."""

    entry: ModelEntry
    seed: int
    path: Path
    config: dict[str, Any]
    epochs: int


def run_folder(root: Path, label: str, seed: int) -> Path:
    return Path(root) / "runs" / label / f"seed-{seed}"


def checkpoint_epoch(run_path: Path) -> int | None:
    """The epoch ``run_path/last.pt`` was saved at, or None without a readable ``last.pt``."""
    path = run_path / "last.pt"
    if not path.is_file():
        return None
    try:
        return int(load_checkpoint(path)["epoch"])
    except (ValueError, KeyError):
        return None


TrainRun = Callable[[PlannedRun, bool], object]  # (run, resume) -> anything


def execute(plans: Sequence[PlannedRun], train_run: TrainRun, log: Callable[[str], None] = print) -> dict[Path, str]:
    """Bring every planned run to its last epoch; returns ``{path: "reused" | "resumed" | "trained"}``.

    ``train_run(run, resume)`` trains one run: from scratch into ``run.path`` with ``run.config``
    when ``resume`` is false, else continuing ``run.path`` from its ``last.pt``. A folder
    with a ``config.yaml`` that differs from ``run.config`` (beyond :data:`IGNORED_CONFIG_KEYS`)
    raises :class:`ComparisonError`; one with no checkpoint yet is cleared and trained anew.
    """
    outcome: dict[Path, str] = {}
    for number, run in enumerate(plans, start=1):
        name = f"[{number}/{len(plans)}] {run.entry.label} seed {run.seed}"
        if run.path.exists():
            config_path = run.path / "config.yaml"
            if config_path.is_file():
                differences = config_differences(yaml.safe_load(config_path.read_text()), run.config)
                if differences:
                    raise ComparisonError(
                        f"{run.path}: trained with another config ({'; '.join(differences)}); "
                        "remove that folder or use another --out"
                    )
                epoch = checkpoint_epoch(run.path)
                if epoch is not None and epoch >= run.epochs:
                    log(f"{name}: finished run reused ({run.path})")
                    outcome[run.path] = "reused"
                    continue
                if epoch is not None:
                    log(f"{name}: resuming at epoch {epoch + 1} of {run.epochs} ({run.path})")
                    train_run(run, True)
                    outcome[run.path] = "resumed"
                    continue
                shutil.rmtree(run.path)  # started but never checkpointed: nothing to keep
            elif any(run.path.iterdir()):
                raise ComparisonError(f"{run.path}: exists, is not empty and is not a run folder (no config.yaml)")
        log(f"{name}: training {run.epochs} epoch(s) into {run.path}")
        train_run(run, False)
        outcome[run.path] = "trained"
    return outcome


# ---- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    """The logged outcome of one run (from its ``metrics.jsonl``)."""

    label: str
    seed: int
    path: Path
    epochs: int
    val_loss: float
    val_miou: float
    best_val_miou: float
    best_epoch: int
    train_seconds: float


def read_run_result(label: str, seed: int, path: Path, epochs: int | None = None) -> RunResult:
    """Final-epoch val loss and mIoU, best val mIoU and summed epoch time of a finished run."""
    records = read_jsonl(path / "metrics.jsonl")
    if not records:
        raise ComparisonError(f"{path}: no metrics.jsonl records (the run has not finished an epoch)")
    logged = [record["epoch"] for record in records]
    if logged != list(range(1, len(records) + 1)):
        raise ComparisonError(f"{path}/metrics.jsonl: epochs {logged} are not 1..{len(records)}")
    if epochs is not None and len(records) != epochs:
        raise ComparisonError(f"{path}: {len(records)} epoch(s) logged, the comparison asks for {epochs}")
    final = records[-1]
    scored = [(record["val_miou"], -record["epoch"]) for record in records if record.get("val_miou") is not None]
    best_miou, negative_epoch = max(scored) if scored else (math.nan, 0)
    return RunResult(
        label=label,
        seed=seed,
        path=path,
        epochs=len(records),
        val_loss=_number(final.get("val_loss")),
        val_miou=_number(final.get("val_miou")),
        best_val_miou=float(best_miou),
        best_epoch=-negative_epoch,
        train_seconds=float(sum(record.get("seconds") or 0.0 for record in records)),
    )


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class Statistic:
    """Mean and sample standard deviation (None with a single value) of a few numbers."""

    mean: float
    std: float | None
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> "Statistic":
        values = [float(value) for value in values]
        if not values:
            return cls(math.nan, None, 0)
        return cls(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None, len(values))


@dataclass(frozen=True)
class ModelCost:
    """Size and speed of one model: parameters, forward FLOPs of one image, latency at batch 1."""

    parameters: int
    flops: int
    image_size: list[int]
    latency_ms: float
    device: str


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (cuda)"
    return f"cpu ({torch.get_num_threads()} threads)"


def measure_cost(checkpoint: Path, device: torch.device, warmup: int = 3, repeats: int = 10) -> ModelCost:
    """Rebuild the checkpoint's network and measure it at the image size it was trained on."""
    from udarts.complexity import count_flops, count_parameters, measure_latency
    from udarts.models import build_model

    state = load_checkpoint(checkpoint)
    model = build_model(state["model_spec"])
    model.load_state_dict(state["model"])
    model.to(device).eval()
    height, width = (int(side) for side in state["image_size"])
    shape = (1, 3, height, width)
    return ModelCost(
        parameters=count_parameters(model),
        flops=count_flops(model, shape, device=device),
        image_size=[height, width],
        latency_ms=1000.0 * measure_latency(model, shape, device=device, warmup=warmup, repeats=repeats),
        device=describe_device(device),
    )


def load_costs(root: Path) -> dict[str, ModelCost]:
    path = Path(root) / COSTS_FILE
    if not path.is_file():
        return {}
    return {label: ModelCost(**values) for label, values in json.loads(path.read_text()).items()}


def measure_costs(
    root: Path,
    entries: Sequence[ModelEntry],
    seeds: Sequence[int],
    device: torch.device,
    only_missing: bool = False,
    repeats: int = 10,
    log: Callable[[str], None] = print,
) -> dict[str, ModelCost]:
    """Measure each model (from its first seed's ``last.pt``) and store ``costs.json``.

    With ``only_missing`` the models already in ``costs.json`` keep their numbers (``udarts
    report`` re-renders without re-timing); models without a finished run are skipped.
    """
    costs = load_costs(root)
    for entry in entries:
        if only_missing and entry.label in costs:
            continue
        checkpoint = next((run_folder(root, entry.label, seed) / "last.pt" for seed in seeds
                           if (run_folder(root, entry.label, seed) / "last.pt").is_file()), None)
        if checkpoint is None:
            log(f"{entry.label}: no finished run, no cost measured")
            continue
        costs[entry.label] = measure_cost(checkpoint, device, repeats=repeats)
        log(f"{entry.label}: {costs[entry.label].parameters:,} parameters, {costs[entry.label].flops / 1e9:.3f} GFLOPs, "
            f"{costs[entry.label].latency_ms:.2f} ms per image on {costs[entry.label].device}")
    atomic_write_text(Path(root) / COSTS_FILE, json.dumps({label: asdict(cost) for label, cost in costs.items()}, indent=2) + "\n")
    return costs


@dataclass(frozen=True)
class ModelRow:
    """One row of the comparison table."""

    label: str
    model: str
    seeds: list[int]
    epochs: int
    val_loss: Statistic
    val_miou: Statistic
    best_val_miou: Statistic
    train_seconds: Statistic
    cost: ModelCost | None


def collect_results(
    root: Path, entries: Sequence[ModelEntry], seeds: Sequence[int], epochs: int | None = None
) -> tuple[list[RunResult], list[str]]:
    """The results of the finished runs in table order, and the unfinished runs as
    ``"label seed S: why"`` (missing, or fewer epochs logged than the comparison asks for)."""
    results, unfinished = [], []
    for entry in entries:
        for seed in seeds:
            path = run_folder(root, entry.label, seed)
            try:
                results.append(read_run_result(entry.label, seed, path, epochs))
            except ComparisonError as error:
                unfinished.append(f"{entry.label} seed {seed}: {error}")
    return results, unfinished


def summarize(entries: Sequence[ModelEntry], results: Sequence[RunResult], costs: Mapping[str, ModelCost]) -> list[ModelRow]:
    """One row per model: mean and spread over its seeds, with its cost."""
    rows = []
    for entry in entries:
        runs = [result for result in results if result.label == entry.label]
        if not runs:
            continue
        rows.append(ModelRow(
            label=entry.label,
            model=entry.model,
            seeds=[run.seed for run in runs],
            epochs=runs[0].epochs,
            val_loss=Statistic.of([run.val_loss for run in runs]),
            val_miou=Statistic.of([run.val_miou for run in runs]),
            best_val_miou=Statistic.of([run.best_val_miou for run in runs]),
            train_seconds=Statistic.of([run.train_seconds for run in runs]),
            cost=costs.get(entry.label),
        ))
    return rows


# ---- tables --------------------------------------------------------------------------------


def format_statistic(statistic: Statistic, scale: float = 1.0, digits: int = 4) -> str:
    """``"mean ± std"`` (just the mean for one seed); ``scale`` turns fractions into percent."""
    if statistic.count == 0 or math.isnan(statistic.mean):
        return "n/a"
    text = f"{scale * statistic.mean:.{digits}f}"
    if statistic.std is not None:
        text += f" ± {scale * statistic.std:.{digits}f}"
    return text


def format_count(value: float, unit: str = "") -> str:
    """``1234567`` -> ``"1.23 M"``: G, M, k prefixes with three significant digits."""
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}".strip()


def format_seconds(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


TABLE_HEADER = ("model", "val loss", "val mIoU %", "best val mIoU %", "params", "FLOPs", "latency (ms)", "training time")


def markdown_table(rows: Sequence[ModelRow]) -> str:
    """The comparison table in Markdown (loss, mIoU: final epoch, mean ± std over seeds)."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    for row in rows:
        cost = row.cost
        time_text = format_seconds(row.train_seconds.mean)
        if row.train_seconds.std is not None:
            time_text += f" ± {format_seconds(row.train_seconds.std)}"
        cells = [
            row.label,
            format_statistic(row.val_loss, digits=4),
            format_statistic(row.val_miou, scale=100, digits=2),
            format_statistic(row.best_val_miou, scale=100, digits=2),
            format_count(cost.parameters) if cost else "n/a",
            format_count(cost.flops) if cost else "n/a",
            f"{cost.latency_ms:.2f}" if cost else "n/a",
            time_text,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


CSV_COLUMNS = (
    "model", "network", "seeds", "epochs", "val_loss_mean", "val_loss_std", "val_miou_mean", "val_miou_std",
    "best_val_miou_mean", "best_val_miou_std", "parameters", "flops", "image_height", "image_width", "latency_ms",
    "latency_device", "train_seconds_mean", "train_seconds_std",
)


def write_table_csv(rows: Sequence[ModelRow], path: Path) -> Path:
    """The table with full-precision numbers (mIoU as a fraction, as logged); std empty for one seed."""

    def value(number: float | None) -> str:
        return "" if number is None or (isinstance(number, float) and math.isnan(number)) else repr(number)

    with open(path.with_name(path.name + ".tmp"), "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            cost = row.cost
            writer.writerow([
                row.label, row.model, " ".join(str(seed) for seed in row.seeds), row.epochs,
                value(row.val_loss.mean), value(row.val_loss.std), value(row.val_miou.mean), value(row.val_miou.std),
                value(row.best_val_miou.mean), value(row.best_val_miou.std),
                cost.parameters if cost else "", cost.flops if cost else "",
                cost.image_size[0] if cost else "", cost.image_size[1] if cost else "",
                value(cost.latency_ms) if cost else "", cost.device if cost else "",
                value(row.train_seconds.mean), value(row.train_seconds.std),
            ])
    path.with_name(path.name + ".tmp").replace(path)
    return path


def write_runs_csv(results: Sequence[RunResult], root: Path, path: Path) -> Path:
    """One line per run: its folder (relative to ``root``) and its logged numbers."""
    with open(path.with_name(path.name + ".tmp"), "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("model", "seed", "folder", "epochs", "val_loss", "val_miou", "best_val_miou", "best_epoch", "train_seconds"))
        for result in results:
            writer.writerow([result.label, result.seed, result.path.relative_to(root).as_posix(), result.epochs,
                             repr(result.val_loss), repr(result.val_miou), repr(result.best_val_miou), result.best_epoch,
                             repr(result.train_seconds)])
    path.with_name(path.name + ".tmp").replace(path)
    return path


# ---- predictions ---------------------------------------------------------------------------


@dataclass
class Samples:
    """A few validation images for the side-by-side picture."""

    inputs: torch.Tensor  # (N, 3, H, W) as the model sees them (normalised)
    images: list[np.ndarray]  # uint8 (H, W, 3) for display
    masks: list[np.ndarray]  # (H, W) ground truth
    class_names: list[str]
    palette: list[tuple[int, int, int]]


def take_samples(dataset, count: int) -> Samples:
    """``count`` images spread evenly over ``dataset`` (an evaluation split: no augmentation), so
    that a split of consecutive video frames (CamVid) shows different scenes."""
    from udarts.data.factory import palette_for
    from udarts.data.transforms import denormalize
    from udarts.viz.overlay import image_to_uint8

    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    count = min(count, len(dataset))
    pairs = [dataset[index * len(dataset) // count] for index in range(count)]
    inputs = torch.stack([image for image, _ in pairs])
    return Samples(
        inputs=inputs,
        images=[image_to_uint8(denormalize(image)) for image, _ in pairs],
        masks=[mask.numpy() for _, mask in pairs],
        class_names=list(dataset.class_names),
        palette=[tuple(colour) for colour in palette_for(dataset)],
    )


@torch.no_grad()
def predict_masks(checkpoint: Path, inputs: torch.Tensor, device: torch.device) -> list[np.ndarray]:
    """Arg-max class masks of a trained checkpoint on a batch of normalised images."""
    from udarts.models import build_model

    state = load_checkpoint(checkpoint)
    model = build_model(state["model_spec"])
    model.load_state_dict(state["model"])
    model.to(device).eval()
    logits = model(inputs.to(device))
    return [mask for mask in logits.argmax(dim=1).cpu().numpy()]


# ---- the whole report ----------------------------------------------------------------------


def render(
    root: Path,
    samples: Samples | None = None,
    device: torch.device | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Path]:
    """Write the tables, plots and ``summary.md`` of the comparison in ``root`` from its run
    folders and ``costs.json``; returns the written files by kind.

    ``samples`` (validation images) and ``device`` are needed for ``predictions.png``; without
    them it is left out (an existing one stays).
    """
    from udarts.viz.curves import plot_comparison_curves
    from udarts.viz.predictions import plot_predictions

    root = Path(root)
    plan = load_plan(root)
    entries, seeds = plan_entries(plan), list(plan["seeds"])
    epochs = plan["budget"].get("epochs")
    results, unfinished = collect_results(root, entries, seeds, epochs)
    for line in unfinished:
        log(f"left out of the table, not finished: {line}")
    if not results:
        raise ComparisonError(f"{root}: no finished run to report yet")
    costs = load_costs(root)
    rows = summarize(entries, results, costs)
    written = {
        "table_markdown": root / TABLE_MARKDOWN,
        "table_csv": write_table_csv(rows, root / TABLE_CSV),
        "runs_csv": write_runs_csv(results, root, root / RUNS_CSV),
    }
    atomic_write_text(written["table_markdown"], markdown_table(rows) + "\n")
    runs_by_model = {row.label: [read_jsonl(run_folder(root, row.label, seed) / "metrics.jsonl") for seed in row.seeds]
                     for row in rows}
    written["curves"] = plot_comparison_curves(runs_by_model, root / CURVES_PNG, title=_title(plan))
    if samples is not None and device is not None:
        # each model's first finished seed: the same seed for all when every run has finished
        predictions = {row.label: predict_masks(run_folder(root, row.label, row.seeds[0]) / "last.pt", samples.inputs, device)
                       for row in rows}
        shown_seeds = sorted({row.seeds[0] for row in rows})
        written["predictions"] = plot_predictions(
            samples.images, samples.masks, predictions, samples.palette, root / PREDICTIONS_PNG,
            class_names=samples.class_names,
            title=f"validation images; models after the final epoch (seed {', '.join(map(str, shown_seeds))})",
        )
    elif (root / PREDICTIONS_PNG).is_file():
        written["predictions"] = root / PREDICTIONS_PNG
    else:
        log("predictions.png left out (no validation images)")
    written["summary"] = root / SUMMARY_MARKDOWN
    atomic_write_text(written["summary"], summary_markdown(plan, rows, results, root, "predictions" in written, unfinished))
    return written


def _title(plan: Mapping[str, Any]) -> str:
    budget = plan["budget"]
    size = "x".join(str(side) for side in budget.get("image_size", []))
    return f"{budget.get('dataset', '?')} {size}, {budget.get('epochs', '?')} epochs, seeds {', '.join(map(str, plan['seeds']))}"


def summary_markdown(
    plan: Mapping[str, Any],
    rows: Sequence[ModelRow],
    results: Sequence[RunResult],
    root: Path,
    with_predictions: bool,
    unfinished: Sequence[str] = (),
) -> str:
    """The comparison's summary: budget, table, how each number is measured, plots, runs."""
    budget = plan["budget"]
    devices = sorted({row.cost.device for row in rows if row.cost})
    lines = [f"# Comparison: {_title(plan)}", "", "## Budget (the same for every model)", ""]
    lines += [f"- {key.replace('_', ' ')}: {_format_budget_value(value)}" for key, value in budget.items() if value is not None]
    lines += [f"- seeds: {', '.join(map(str, plan['seeds']))}", "", "## Results", "", markdown_table(rows), ""]
    lines += [
        "- **val loss / val mIoU**: the final epoch's validation pass, as logged in each run's `metrics.jsonl` "
        "(the model in `last.pt`); mean ± sample standard deviation over the seeds.",
        "- **best val mIoU**: the highest validation mIoU of any epoch (mean ± std over seeds).",
        "- **params / FLOPs**: the trained network; FLOPs of one forward pass of a 1x3xHxW image at the "
        "configured size, counted by `torch.utils.flop_counter` (a multiply-add is 2 FLOPs).",
        f"- **latency**: median forward time of one image (batch 1, eval mode) on {', '.join(devices) or 'n/a'}.",
        "- **training time**: the sum of the logged epoch times (one training pass and one validation pass per "
        "epoch), mean ± std over seeds.",
        "",
        f"![training loss and validation mIoU]({CURVES_PNG})",
        "",
    ]
    if with_predictions:
        lines += [f"![side-by-side predictions]({PREDICTIONS_PNG})", ""]
    lines += ["## Runs", "", "| model | seed | folder | val loss | val mIoU % | best (epoch) | time |", "|---|---|---|---|---|---|---|"]
    for result in results:
        lines.append(
            f"| {result.label} | {result.seed} | `{result.path.relative_to(root).as_posix()}` | {result.val_loss:.4f} | "
            f"{100 * result.val_miou:.2f} | {100 * result.best_val_miou:.2f} ({result.best_epoch}) | "
            f"{format_seconds(result.train_seconds)} |"
        )
    if unfinished:
        lines += ["", "Not finished, so not in the table (run the same `udarts compare` again to finish them):", ""]
        lines += [f"- {line}" for line in unfinished]
    models = [entry for entry in plan_entries(plan) if entry.genotype or entry.options]
    if models:
        lines += ["", "## Model settings", ""]
        for entry in models:
            detail = f"genotype `{Path(entry.genotype).name}` (frozen in `genotypes/`)" if entry.genotype else f"options {entry.options}"
            lines.append(f"- {entry.label}: {detail}")
    return "\n".join(lines) + "\n"


def _format_budget_value(value: Any) -> str:
    if isinstance(value, list) and len(value) == 2 and all(isinstance(side, int) for side in value):
        return f"{value[0]}x{value[1]}"
    return str(value)
