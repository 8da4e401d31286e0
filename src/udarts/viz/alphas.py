"""Heatmaps of a search's architecture weights (softmax of each cell's alphas), from ``alphas.jsonl``.

``alphas.jsonl`` has one line per epoch: ``{"epoch": e, "op_names": [...], "cells": {"C1": [[w, ...], ...], ...}}``,
one row per edge (node-major, as :func:`udarts.space.all_edges` orders them) and one column
per op. Two figures:

- :func:`plot_final_alphas`: per cell, edges x ops at the last logged epoch; with a genotype,
  the kept (edge, op) pairs are outlined in red.
- :func:`plot_alpha_history`: per cell, ops x epochs, each op's weight averaged over the cell's edges.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from udarts.genotype import Genotype
from udarts.space import all_edges, cell_slots, nodes_for_edges
from udarts.viz.figures import new_figure, save_figure
from udarts.viz.genotype_plot import state_names

Record = Mapping[str, Any]


def edge_labels(cell_name: str, num_inputs: int, num_edges: int) -> list[str]:
    """``"source → node"`` for each edge of a cell, in the log's row order."""
    num_nodes = nodes_for_edges(num_inputs, num_edges)
    names = state_names(cell_name, num_nodes)
    return [f"{names[source]} → n{node}" for node, source in all_edges(num_inputs, num_nodes)]


def _cell_inputs() -> dict[str, int]:
    return {slot.name: slot.num_inputs for slot in cell_slots(1)}


def _check(records: Sequence[Record]) -> None:
    if not records:
        raise ValueError("no alpha records to plot (the search's alpha log is empty or missing)")


def _grid(figure, count: int, columns: int = 4):
    rows = math.ceil(count / columns)
    axes = figure.subplots(rows, columns, squeeze=False)
    for index in range(count, rows * columns):
        axes[index // columns, index % columns].axis("off")
    return [axes[index // columns, index % columns] for index in range(count)]


def plot_final_alphas(records: Sequence[Record], path: str | os.PathLike, genotype: Genotype | None = None) -> Path:
    """Per cell, the softmax weights (edges x ops) of the last record; kept ops outlined in red."""
    from matplotlib.patches import Rectangle

    _check(records)
    last = records[-1]
    op_names = list(last["op_names"])
    cells = last["cells"]
    inputs = _cell_inputs()
    most_edges = max(len(weights) for weights in cells.values())
    # one colour scale for all cells, stretched over the weights present: early in a search every
    # weight is close to 1/num_ops, and a fixed 0..1 scale would show one flat colour
    low = min(float(np.min(weights)) for weights in cells.values())
    high = max(float(np.max(weights)) for weights in cells.values())
    high = max(high, low + 1e-6)
    figure = new_figure(4 * 3.4, 2 * (0.28 * most_edges + 1.6))
    image = None
    for axes, (cell_name, weights) in zip(_grid(figure, len(cells)), cells.items()):
        matrix = np.asarray(weights, dtype=float)
        image = axes.imshow(matrix, cmap="viridis", vmin=low, vmax=high, aspect="auto", interpolation="nearest")
        axes.set_yticks(range(matrix.shape[0]), edge_labels(cell_name, inputs[cell_name], matrix.shape[0]), fontsize=6)
        axes.set_xticks(range(len(op_names)), op_names, rotation=60, ha="right", fontsize=6)
        axes.set_title(cell_name, fontsize="medium")
        if matrix.size <= 120:
            for (row, column), value in np.ndenumerate(matrix):
                axes.text(column, row, f"{value:.3f}", ha="center", va="center", fontsize=5,
                          color="black" if value > low + 0.6 * (high - low) else "white")
        if genotype is not None:
            cell = genotype.cell(cell_name)
            edges = all_edges(cell.num_inputs, len(cell.nodes))
            for node, genes in enumerate(cell.nodes):
                for op_name, source in genes:
                    if (node, source) in edges and op_name in op_names:
                        row, column = edges.index((node, source)), op_names.index(op_name)
                        axes.add_patch(Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5))
    if image is not None:
        figure.colorbar(image, ax=figure.axes, shrink=0.6, label="softmax weight")
    kept = "; red: kept in the derived genotype" if genotype is not None else ""
    figure.suptitle(f"architecture weights per edge at epoch {last['epoch']}{kept}")
    return save_figure(figure, path)


def mean_weights_over_epochs(records: Sequence[Record], cell_name: str) -> tuple[list[int], np.ndarray]:
    """``(epochs, weights)`` with ``weights[op, e]`` = the op's weight averaged over the cell's edges at epoch ``e``."""
    epochs = [int(record["epoch"]) for record in records]
    columns = [np.asarray(record["cells"][cell_name], dtype=float).mean(axis=0) for record in records]
    return epochs, np.stack(columns, axis=1)


def plot_alpha_history(records: Sequence[Record], path: str | os.PathLike) -> Path:
    """Per cell, each op's mean weight (over the cell's edges) at every logged epoch (ops x epochs).

    All cells share one colour scale, stretched over the weights present (see :func:`plot_final_alphas`).
    """
    _check(records)
    op_names = list(records[-1]["op_names"])
    cell_names = list(records[-1]["cells"])
    histories = {cell_name: mean_weights_over_epochs(records, cell_name) for cell_name in cell_names}
    low = min(float(weights.min()) for _, weights in histories.values())
    high = max(max(float(weights.max()) for _, weights in histories.values()), low + 1e-6)
    figure = new_figure(4 * 3.4, 2 * (0.3 * len(op_names) + 1.5))
    image = None
    for axes, cell_name in zip(_grid(figure, len(cell_names)), cell_names):
        epochs, weights = histories[cell_name]
        image = axes.imshow(weights, cmap="magma", vmin=low, vmax=high, aspect="auto", interpolation="nearest",
                            extent=(epochs[0] - 0.5, epochs[-1] + 0.5, len(op_names) - 0.5, -0.5))
        axes.set_yticks(range(len(op_names)), op_names, fontsize=6)
        axes.set_xlabel("epoch", fontsize="small")
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.set_title(cell_name, fontsize="medium")
    if image is not None:
        figure.colorbar(image, ax=figure.axes, shrink=0.6, label="mean softmax weight")
    figure.suptitle("each op's weight averaged over the cell's edges, per epoch")
    return save_figure(figure, path)
