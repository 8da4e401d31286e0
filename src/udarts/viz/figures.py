"""Shared plumbing for the PNG plots: figures without pyplot, saved atomically.

Figures are built as ``matplotlib.figure.Figure`` objects drawn by the Agg canvas, never through
``pyplot``: nothing depends on the interactive backend of the session (a notebook keeps its own),
no global figure list grows, and it works on machines without a display.
"""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from udarts.io import atomic_write

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DPI = 110


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches attached to an Agg canvas."""
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: str | os.PathLike) -> Path:
    """Write ``figure`` as a PNG to ``path`` (``udarts.io.atomic_write``) and return the path."""
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png"), make_parent=True)


def is_png(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file starting with the PNG signature."""
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "rb") as handle:
        return handle.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE
