"""A search's diagnostics per epoch (``udarts.search.diagnostics``): per cell, the normalised alpha
entropy, the smallest top-1 margin of the kept edges and the identity share, one line per cell."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from udarts.search.diagnostics import ENTROPY_WARNING, MARGIN_WARNING, CellDiagnostics
from udarts.viz.figures import new_figure, save_figure

PANELS = (
    ("entropy", "normalised alpha entropy (1 = uniform)", ENTROPY_WARNING),
    ("min_margin", "smallest top-1 margin of a kept edge", MARGIN_WARNING),
    ("identity_share", "identity share of the kept edges", None),
)


def plot_diagnostics_history(
    epochs: Sequence[int], history: Sequence[Sequence[CellDiagnostics]], path: str | os.PathLike,
) -> Path:
    """Three panels (entropy, smallest margin, identity share), one line per cell over ``epochs``;
    the warning thresholds dashed. ``history[e]`` holds the cells' diagnostics at ``epochs[e]``."""
    if not history:
        raise ValueError("no diagnostics to plot (the search's alpha log is empty or missing)")
    figure = new_figure(13, 3.6)
    axes_row = figure.subplots(1, len(PANELS), squeeze=False)[0]
    names = [item.name for item in history[0]]
    marker = "o" if len(epochs) <= 30 else None
    for axes, (key, title, threshold) in zip(axes_row, PANELS):
        for position, name in enumerate(names):
            values = [float(getattr(cells[position], key)) for cells in history]
            axes.plot(epochs, values, label=name, marker=marker, markersize=3, linewidth=1.2,
                      linestyle="-" if position < 4 else "--")
        if key != "min_margin":
            axes.set_ylim(-0.02, 1.02)
        if threshold is not None:
            axes.axhline(threshold, color="grey", linestyle=":", linewidth=1, label="warning threshold")
        axes.set_title(title, fontsize="medium")
        axes.set_xlabel("epoch", fontsize="small")
        axes.xaxis.get_major_locator().set_params(integer=True)
    axes_row[0].legend(fontsize="x-small", ncol=2)
    figure.suptitle("how determined each cell is, per epoch (solid: encoder C1-C4; dashed: decoder C5-C8)")
    return save_figure(figure, path)
