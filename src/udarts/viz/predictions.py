"""Side-by-side predictions (the paper's Figures 6 to 8): for each image, the image, its ground
truth and every model's prediction, each overlaid on the image, in one grid.

Rows are images, columns are ``image | ground truth | model 1 | model 2 | ...``; a legend maps
the palette's colours to class names. Ground-truth pixels without a class (ignore index) show
the bare image.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from udarts.viz.figures import new_figure, save_figure
from udarts.viz.overlay import overlay


def plot_predictions(
    images: Sequence[np.ndarray],
    truths: Sequence[np.ndarray],
    predictions: Mapping[str, Sequence[np.ndarray]],
    palette: Sequence[Sequence[int]],
    path: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    alpha: float = 0.5,
    title: str | None = None,
) -> Path:
    """Write the grid to ``path``.

    ``images``: uint8 ``(H, W, 3)`` each; ``truths``: class-index masks ``(H, W)``;
    ``predictions``: model label -> one mask ``(H, W)`` per image, in the same order.
    """
    count = len(images)
    if count == 0:
        raise ValueError("no images to show")
    if len(truths) != count:
        raise ValueError(f"{count} images but {len(truths)} ground-truth masks")
    for label, masks in predictions.items():
        if len(masks) != count:
            raise ValueError(f"{label}: {len(masks)} predicted masks for {count} images")
    columns = ["image", "ground truth", *predictions]
    height, width = np.asarray(images[0]).shape[:2]
    panel = 2.2
    figure = new_figure(panel * len(columns) * max(1.0, width / height), panel * count + (0.5 if class_names else 0.2))
    grid = np.atleast_2d(figure.subplots(count, len(columns), squeeze=False))
    for row in range(count):
        image = np.asarray(images[row])
        panels = [image, overlay(image, truths[row], palette, alpha)]
        panels += [overlay(image, masks[row], palette, alpha) for masks in predictions.values()]
        for column, picture in enumerate(panels):
            axes = grid[row, column]
            axes.imshow(picture, interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            if row == 0:
                axes.set_title(columns[column], fontsize="medium")
    if class_names:
        from matplotlib.patches import Patch

        handles = [Patch(color=np.asarray(colour) / 255.0, label=name) for name, colour in zip(class_names, palette)]
        figure.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 8), fontsize="small")
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)
