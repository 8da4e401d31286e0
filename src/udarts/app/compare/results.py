"""The numbers of a comparison: each run's logged outcome, each model's cost, and the mean ±
std over seeds per model (the rows of the table)."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from udarts.app.compare.plan import ComparisonError, ModelEntry, run_folder
from udarts.checkpoints import load_trained
from udarts.engine.layout import LAST_CHECKPOINT, METRICS_LOG
from udarts.io import atomic_write_text, read_jsonl

COSTS_FILE = "costs.json"


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
    records = read_jsonl(path / METRICS_LOG)
    if not records:
        raise ComparisonError(f"{path}: no {METRICS_LOG} records (the run has not finished an epoch)")
    logged = [record["epoch"] for record in records]
    if logged != list(range(1, len(records) + 1)):
        raise ComparisonError(f"{path / METRICS_LOG}: epochs {logged} are not 1..{len(records)}")
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

    model, state = load_trained(checkpoint, device)
    height, width = (int(side) for side in state["image_size"])
    shape = (1, 3, height, width)
    return ModelCost(
        parameters=count_parameters(model),
        flops=count_flops(model, shape, device=device),
        image_size=[height, width],
        latency_ms=1000.0 * measure_latency(model, shape, device=device, warmup=warmup, repeats=repeats),
        device=describe_device(device),
    )


def measure_checkpoint_costs(checkpoints: Mapping[str, Path], device: torch.device, repeats: int = 10) -> dict[str, ModelCost]:
    """``measure_cost`` of several checkpoints, their latencies timed side by side: every model in
    turn over 5 rounds of ``repeats // 5`` passes, the median round
    (``udarts.complexity.measure_latencies``; models trained at another image size are timed in
    their own group). Timing one model after the other is unfair when the process moves between
    cores of unequal speed (BENCHMARKS.md, the latency correction)."""
    from udarts.complexity import count_flops, count_parameters, measure_latencies

    loaded = {label: load_trained(path, device) for label, path in checkpoints.items()}
    shapes = {label: (1, 3, *(int(side) for side in state["image_size"])) for label, (_, state) in loaded.items()}
    latencies: dict[str, float] = {}
    for shape in set(shapes.values()):
        group = {label: model for label, (model, _) in loaded.items() if shapes[label] == shape}
        latencies.update(measure_latencies(group, shape, device, rounds=5, repeats=max(1, repeats // 5)))
    return {label: ModelCost(parameters=count_parameters(model), flops=count_flops(model, shapes[label], device=device),
                             image_size=list(shapes[label][2:]), latency_ms=1000.0 * latencies[label],
                             device=describe_device(device))
            for label, (model, _) in loaded.items()}


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
    checkpoints = {}
    for entry in entries:
        if only_missing and entry.label in costs:
            continue
        checkpoint = next((run_folder(root, entry.label, seed) / LAST_CHECKPOINT for seed in seeds
                           if (run_folder(root, entry.label, seed) / LAST_CHECKPOINT).is_file()), None)
        if checkpoint is None:
            log(f"{entry.label}: no finished run, no cost measured")
            continue
        checkpoints[entry.label] = checkpoint
    for label, cost in measure_checkpoint_costs(checkpoints, device, repeats=repeats).items():
        costs[label] = cost
        log(f"{label}: {cost.parameters:,} parameters, {cost.flops / 1e9:.3f} GFLOPs, "
            f"{cost.latency_ms:.2f} ms per image on {cost.device}")
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
