"""Training curves (the paper's Figures 4 and 5): loss and validation mIoU per epoch.

Input is the per-epoch records of ``metrics.jsonl`` (``epoch``, ``train_loss``, ``val_loss``,
``val_miou``; search runs may log ``train_miou`` during warm-up and null val values). Missing or
null values are left out of a curve rather than drawn as zero.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from udarts.io import series
from udarts.viz.figures import new_figure, save_figure

Records = Sequence[Mapping[str, Any]]


def plot_run_curves(
    records: Records, path: str | os.PathLike, title: str | None = None, validation_name: str = "validation"
) -> Path:
    """One run: training and validation loss (left), validation mIoU in % (right).

    ``validation_name`` names the held-out data in the legend (a search measures on its alpha half).
    """
    if not records:
        raise ValueError("no metrics records to plot (the run's metrics log is empty or missing)")
    figure = new_figure(10, 4)
    loss_axes, miou_axes = figure.subplots(1, 2)
    for key, label, style in (("train_loss", "training loss", "-"), ("val_loss", f"{validation_name} loss", "--")):
        epochs, values = series(list(records), key)
        if epochs:
            loss_axes.plot(epochs, values, style, marker="o" if len(epochs) < 12 else None, label=label)
    for key, label, style in (("val_miou", f"{validation_name} mIoU", "-"), ("train_miou", "training mIoU (warm-up)", ":")):
        epochs, values = series(list(records), key)
        if epochs:
            miou_axes.plot(epochs, [100 * v for v in values], style, marker="o" if len(epochs) < 12 else None, label=label)
    _decorate(loss_axes, "loss")
    _decorate(miou_axes, "mIoU (%)")
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)


def mean_curve(runs: Sequence[Records], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(epochs, mean, std)`` of ``key`` over several runs (seeds), per epoch.

    Each epoch averages the runs that logged it; ``std`` is the sample standard deviation
    (0 where only one run has the epoch).
    """
    by_epoch: dict[int, list[float]] = {}
    for records in runs:
        for epoch, value in zip(*series(list(records), key)):
            by_epoch.setdefault(epoch, []).append(value)
    epochs = np.array(sorted(by_epoch), dtype=int)
    means = np.array([np.mean(by_epoch[epoch]) for epoch in epochs], dtype=float)
    stds = np.array([np.std(by_epoch[epoch], ddof=1) if len(by_epoch[epoch]) > 1 else 0.0 for epoch in epochs])
    return epochs, means, stds


def plot_comparison_curves(
    runs_by_model: Mapping[str, Sequence[Records]], path: str | os.PathLike, title: str | None = None
) -> Path:
    """Several models on one chart: training loss (left) and validation mIoU in % (right).

    ``runs_by_model`` maps a model's label to the records of each of its runs (one per seed);
    the line is the mean over seeds and the band one standard deviation either side.
    """
    if not any(runs for runs in runs_by_model.values()):
        raise ValueError("no runs to plot")
    figure = new_figure(11, 4.2)
    loss_axes, miou_axes = figure.subplots(1, 2)
    colours = _colours(len(runs_by_model))
    for colour, (label, runs) in zip(colours, runs_by_model.items()):
        for axes, key, scale, limits in ((loss_axes, "train_loss", 1.0, (-np.inf, np.inf)), (miou_axes, "val_miou", 100.0, (0.0, 100.0))):
            epochs, means, stds = mean_curve(runs, key)
            if len(epochs) == 0:
                continue
            seeds = f" ({len(runs)} seeds)" if len(runs) > 1 else ""
            axes.plot(epochs, scale * means, color=colour, marker="o" if len(epochs) < 12 else None, label=label + seeds)
            if np.any(stds > 0):
                lower = np.clip(scale * (means - stds), *limits)
                upper = np.clip(scale * (means + stds), *limits)
                axes.fill_between(epochs, lower, upper, color=colour, alpha=0.2, linewidth=0)
    _decorate(loss_axes, "training loss")
    _decorate(miou_axes, "validation mIoU (%)")
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)


def _colours(count: int) -> list:
    from matplotlib import colormaps

    palette = colormaps["tab10" if count <= 10 else "tab20"]
    return [palette(index % palette.N) for index in range(count)]


def _decorate(axes, ylabel: str) -> None:
    axes.set_xlabel("epoch")
    axes.set_ylabel(ylabel)
    axes.grid(True, alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize="small")
    axes.xaxis.get_major_locator().set_params(integer=True)


def plot_expected_latency(records: Records, path: str | os.PathLike, title: str | None = None) -> Path:
    """A latency-targeted search: the expected latency of the derived network per epoch
    (``expected_latency_ms``) and its target (``latency_target_ms``)."""
    epochs, values = series(list(records), "expected_latency_ms")
    if not epochs:
        raise ValueError("no expected latency to plot (the search had no latency target)")
    figure = new_figure(6, 4)
    axes = figure.subplots()
    axes.plot(epochs, values, "-", marker="o" if len(epochs) < 12 else None, label="expected latency")
    targets = [record["latency_target_ms"] for record in records if record.get("latency_target_ms") is not None]
    if targets:
        axes.axhline(targets[-1], color="0.4", linestyle="--", label=f"target {targets[-1]:g} ms")
    axes.set_xlabel("epoch")
    _decorate(axes, "ms")
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)
