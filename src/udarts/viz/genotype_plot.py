"""Drawings of derived cells (the paper's Figure 3 for each of C1..C8), in plain matplotlib.

Each cell is drawn as its DAG: the cell's inputs on the left (grey), the intermediate nodes
``n0, n1, ...`` (blue) left to right, and the output (green), which concatenates every
intermediate node and projects it back with a 1x1 conv (dashed edges). Each kept edge is an
arrow labelled with its op. Input names say where the input comes from in the U:
``stem``, ``C1 ↓`` (the previous encoder cell, downsampled), ``C3 skip`` (the encoder cell of
the same scale) or ``C5 ↑`` (the previous decoder cell, upsampled).
"""

from __future__ import annotations

import os
from pathlib import Path

from udarts.genotype import CellGenotype, Genotype
from udarts.space import cell_slots
from udarts.viz.figures import new_figure, save_figure

INPUT_COLOUR = "#d9d9d9"
NODE_COLOUR = "#9ecae1"
OUTPUT_COLOUR = "#a1d99b"


def input_names(cell_name: str) -> list[str]:
    """Where each input of cell ``cell_name`` ("C1".."C8") comes from, in input order."""
    slots = cell_slots(1)
    by_name = {slot.name: slot for slot in slots}
    if cell_name not in by_name:
        raise ValueError(f"unknown cell {cell_name!r}; expected one of {[slot.name for slot in slots]}")
    slot = by_name[cell_name]
    if slot.index == 0:
        return ["stem"]
    previous = slots[slot.index - 1].name
    if slot.role == "encoder":
        return [f"{previous} ↓"]
    if slot.num_inputs == 1:
        return [previous]
    encoder = next(other.name for other in slots if other.role == "encoder" and other.scale == slot.scale)
    return [f"{encoder} skip", f"{previous} ↑"]


def state_names(cell_name: str, num_nodes: int) -> list[str]:
    """Names of every state of a cell: its inputs, then ``n0 .. n{num_nodes-1}``."""
    return input_names(cell_name) + [f"n{node}" for node in range(num_nodes)]


NODE_SPACING = 1.3  # vertical distance between intermediate nodes
NODE_COLUMN = 3.0  # x of the intermediate nodes (inputs at 0)
OUTPUT_COLUMN = 5.4


def _positions(num_inputs: int, num_nodes: int) -> list[tuple[float, float]]:
    """Layout: inputs in a column at x=0, intermediate nodes n0 (top) .. n{k-1} in a column, the output right."""
    height = NODE_SPACING * (num_nodes - 1)
    input_spacing = height / num_inputs if num_inputs > 1 else 0.0
    positions = [(0.0, input_spacing * ((num_inputs - 1) / 2 - index)) for index in range(num_inputs)]
    positions += [(NODE_COLUMN, height / 2 - NODE_SPACING * node) for node in range(num_nodes)]
    positions.append((OUTPUT_COLUMN, 0.0))
    return positions


def _curve_point(start: tuple[float, float], end: tuple[float, float], bend: float, fraction: float) -> tuple[float, float]:
    """The point at ``fraction`` along matplotlib's ``arc3,rad=bend`` quadratic curve (equal-aspect axes)."""
    (x0, y0), (x1, y1) = start, end
    control_x = (x0 + x1) / 2 + bend * (y1 - y0)
    control_y = (y0 + y1) / 2 - bend * (x1 - x0)
    weights = ((1 - fraction) ** 2, 2 * fraction * (1 - fraction), fraction**2)
    return (weights[0] * x0 + weights[1] * control_x + weights[2] * x1,
            weights[0] * y0 + weights[1] * control_y + weights[2] * y1)


def draw_cell(axes, cell: CellGenotype, role: str | None = None) -> None:
    """Draw ``cell``'s DAG on ``axes`` (equal aspect, no frame).

    Input edges are straight lines labelled near their node (where they fan apart); node-to-node
    edges run down the node column, straight between neighbours and bulging right otherwise.
    """
    from matplotlib.patches import FancyArrowPatch

    num_nodes = len(cell.nodes)
    names = state_names(cell.name, num_nodes) + ["out"]
    positions = _positions(cell.num_inputs, num_nodes)
    colours = [INPUT_COLOUR] * cell.num_inputs + [NODE_COLOUR] * num_nodes + [OUTPUT_COLOUR]
    radius = 0.34
    circles = [_circle(position, radius, colour) for position, colour in zip(positions, colours)]

    def arrow(start: int, end: int, bend: float, style: str, colour: str) -> None:
        # patchA/patchB clip the arrow at the circles' rims
        axes.add_patch(FancyArrowPatch(
            positions[start], positions[end], connectionstyle=f"arc3,rad={bend}", arrowstyle="-|>", mutation_scale=10,
            patchA=circles[start], patchB=circles[end], shrinkA=1, shrinkB=1, linestyle=style, color=colour,
            linewidth=1.0, zorder=1,
        ))

    output = len(positions) - 1
    for node in range(num_nodes):
        arrow(cell.num_inputs + node, output, 0.0, "--", "0.6")
    for node, genes in enumerate(cell.nodes):
        target = cell.num_inputs + node
        for op_name, source in genes:
            if source < cell.num_inputs:
                # two inputs' labels are staggered so that edges meeting at one node keep them apart
                bend, fraction = 0.0, 0.6 if source % 2 == 0 else 0.38
            else:
                # down the node column; skipping nodes bulges right, away from the input edges, by a
                # third of its length: the label clears the skipped nodes, longer arcs pass outside shorter
                bend, fraction = (0.0 if target - source == 1 else -0.66), 0.5
            arrow(source, target, bend, "-", "0.15")
            label_x, label_y = _curve_point(positions[source], positions[target], bend, fraction)
            axes.text(label_x, label_y, op_name, fontsize=7, ha="center", va="center", zorder=3,
                      bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="0.7", linewidth=0.5, alpha=0.9))
    for (x, y), name, circle in zip(positions, names, circles):
        axes.add_patch(circle)
        axes.text(x, y, name, fontsize=7, ha="center", va="center", zorder=5)
    xs = [x for x, _ in positions]
    ys = [y for _, y in positions]
    axes.set_xlim(min(xs) - 0.5, max(xs) + 0.5)
    axes.set_ylim(min(ys) - 0.5, max(ys) + 0.5)
    axes.set_aspect("equal")
    axes.axis("off")
    axes.set_title(cell.name + (f" ({role})" if role else ""), fontsize="medium")


def _circle(centre: tuple[float, float], radius: float, colour: str):
    from matplotlib.patches import Circle

    return Circle(centre, radius, facecolor=colour, edgecolor="0.3", linewidth=0.8, zorder=4)


def plot_genotype(genotype: Genotype, path: str | os.PathLike, title: str | None = None) -> Path:
    """All cells of ``genotype`` in one PNG, laid out like the U: one row per scale, the encoder
    cell on the left (C1..C4 going down) and the decoder cell of the same scale on the right."""
    slots = {slot.name: slot for slot in cell_slots(1)}
    scales = sorted({slots[cell.name].scale for cell in genotype.cells})
    num_nodes = max(len(cell.nodes) for cell in genotype.cells)
    panel_height = 0.55 * NODE_SPACING * max(num_nodes - 1, 1) + 1.0
    figure = new_figure(10, panel_height * len(scales) + 0.6)
    grid = figure.subplots(len(scales), 2, squeeze=False)
    used = set()
    for cell in genotype.cells:
        slot = slots[cell.name]
        row, column = scales.index(slot.scale), 0 if slot.role == "encoder" else 1
        draw_cell(grid[row, column], cell, slot.role)
        used.add((row, column))
    for row in range(len(scales)):
        for column in range(2):
            if (row, column) not in used:
                grid[row, column].axis("off")
    figure.suptitle(title or "derived cells (edges: kept ops; dashed: concatenated into the output)")
    return save_figure(figure, path)
