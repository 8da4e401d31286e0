"""The report of a comparison: Markdown and CSV tables, training curves, side-by-side
predictions and ``summary.md``, made from the run folders and ``costs.json``."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from udarts.app.compare.plan import ComparisonError, load_plan, plan_entries, run_folder
from udarts.app.compare.results import ModelRow, RunResult, Statistic, collect_results, load_costs, summarize
from udarts.checkpoints import load_trained
from udarts.engine.layout import LAST_CHECKPOINT, METRICS_LOG
from udarts.io import atomic_write, atomic_write_text, read_jsonl

TABLE_MARKDOWN = "table.md"
TABLE_CSV = "table.csv"
RUNS_CSV = "runs.csv"
CURVES_PNG = "curves.png"
PREDICTIONS_PNG = "predictions.png"
SUMMARY_MARKDOWN = "summary.md"


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

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
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

    return atomic_write(path, write)


def write_runs_csv(results: Sequence[RunResult], root: Path, path: Path) -> Path:
    """One line per run: its folder (relative to ``root``) and its logged numbers."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(("model", "seed", "folder", "epochs", "val_loss", "val_miou", "best_val_miou", "best_epoch",
                             "train_seconds"))
            for result in results:
                writer.writerow([result.label, result.seed, result.path.relative_to(root).as_posix(), result.epochs,
                                 repr(result.val_loss), repr(result.val_miou), repr(result.best_val_miou), result.best_epoch,
                                 repr(result.train_seconds)])

    return atomic_write(path, write)


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
    model, _ = load_trained(checkpoint, device)
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
    runs_by_model = {row.label: [read_jsonl(run_folder(root, row.label, seed) / METRICS_LOG) for seed in row.seeds]
                     for row in rows}
    written["curves"] = plot_comparison_curves(runs_by_model, root / CURVES_PNG, title=_title(plan))
    if samples is not None and device is not None:
        # each model's first finished seed: the same seed for all when every run has finished
        predictions = {row.label: predict_masks(run_folder(root, row.label, row.seeds[0]) / LAST_CHECKPOINT, samples.inputs, device)
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
        f"- **val loss / val mIoU**: the final epoch's validation pass, as logged in each run's `{METRICS_LOG}` "
        f"(the model in `{LAST_CHECKPOINT}`); mean ± sample standard deviation over the seeds.",
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
