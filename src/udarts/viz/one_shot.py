"""The one-shot scores of ``udarts derive --selection one_shot``: how the random candidates spread,
where the chosen one and the alpha-derived genotype stand."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from udarts.viz.figures import new_figure, save_figure


def plot_one_shot_scores(candidate_mious: Sequence[float], chosen: int, alpha_miou: float | None,
                         path: str | os.PathLike) -> Path:
    """A histogram of the candidates' one-shot mIoU (%), the chosen candidate and the
    alpha-derived genotype marked."""
    figure = new_figure(5.5, 3.2)
    axes = figure.add_subplot()
    scores = [100 * value for value in candidate_mious]
    axes.hist(scores, bins=min(30, max(5, len(scores) // 4)), color="0.7", label=f"{len(scores)} random candidates")
    axes.axvline(scores[chosen], color="tab:red", linewidth=2, label=f"chosen (#{chosen}): {scores[chosen]:.2f}")
    if alpha_miou is not None:
        axes.axvline(100 * alpha_miou, color="tab:blue", linestyle="--", linewidth=2,
                     label=f"alpha-derived genotype: {100 * alpha_miou:.2f}")
    axes.set_xlabel("one-shot mIoU (%) on the search's alpha half")
    axes.set_ylabel("candidates")
    axes.legend(fontsize=7)
    return save_figure(figure, path)
