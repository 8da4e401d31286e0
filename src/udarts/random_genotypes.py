"""Random architectures from the search space, and SEARCH-Net widths that fit a FLOPs or latency budget.

Random sampling from the same space is the baseline every architecture search must beat (Li &
Talwalkar, "Random Search and Reproducibility for Neural Architecture Search", UAI 2019; Yu et al.,
"Evaluating the Search Phase of Neural Architecture Search", ICLR 2020). A random genotype follows
the rule a derived one does: every intermediate node keeps ``top_k`` distinct incoming edges (all of
them when it has fewer), chosen uniformly among its sources, each with an op drawn uniformly from
the op set without ``none``. With ``top_k = 1`` a draw that leaves a cell input unread (a decoder
cell cut off its skip or its upsampled path) is redrawn, so the draw is uniform over the connected
genotypes, as ``udarts derive`` keeps them.

Genotype ``index`` of seed ``seed`` comes from its own generator, ``numpy.random.default_rng((seed,
index))``: the first N of ``--num 20`` are the ``--num N`` of the same seed.

FLOPs of SEARCH-Net depend on the genotype and grow with the width; ``width_for_budget`` gives the
largest width whose forward pass on one ``H x W`` image costs at most the budget (counted by
``torch.utils.flop_counter`` on the meta device: no memory, no compute). ``width_for_latency`` does
the same for CPU latency at batch 1 on one thread, timed on this machine (the budget a deployment
on a CPU cares about: SEARCH-Net's many small depthwise and Squeeze-Excitation ops cost more time
per FLOP than a ResNet's dense convolutions). ``width_matching_latency`` fits the latency of a
reference network instead (the UNet a SEARCH-Net is compared with), timing each width side by side
with it (``udarts.complexity.measure_latency_rounds``), so the match holds on a machine whose speed drifts
or whose cores differ, where an absolute budget in milliseconds does not.
"""

from __future__ import annotations

import statistics
from typing import Any, Callable, Sequence

import numpy as np
import torch

from udarts.complexity import count_flops, measure_latency, measure_latency_rounds
from udarts.data.pairs import single_threaded_torch
from udarts.genotype import CellGenotype, Genotype
from udarts.models import build_searchnet
from udarts.ops import NONE_OP, OpSettings
from udarts.space import all_edges, cell_slots

MAX_REDRAWS = 10_000  # of one genotype, before a budget is declared out of reach
MAX_WIDTH = 512


def _reads_every_input(nodes: Sequence[Sequence[tuple[str, int]]], num_inputs: int) -> bool:
    read = {source for genes in nodes for _, source in genes}
    return all(source in read for source in range(num_inputs))


def sample_cell(rng: np.random.Generator, name: str, num_inputs: int, op_names: Sequence[str], num_nodes: int, top_k: int) -> CellGenotype:
    """One cell drawn uniformly (see the module docstring)."""
    candidates = [op for op in op_names if op != NONE_OP]
    if not candidates:
        raise ValueError("the op set has no op besides 'none'")
    while True:
        nodes = []
        for node in range(num_nodes):
            sources = [source for target, source in all_edges(num_inputs, num_nodes) if target == node]
            kept = sorted(rng.choice(sources, size=min(top_k, len(sources)), replace=False).tolist())
            nodes.append(tuple((candidates[int(rng.integers(len(candidates)))], int(source)) for source in kept))
        if _reads_every_input(nodes, num_inputs):
            return CellGenotype(name, num_inputs, tuple(nodes))


def sample_genotype(
    seed: int,
    index: int,
    op_names: Sequence[str],
    num_nodes: int = 4,
    top_k: int = 2,
    settings: OpSettings = OpSettings(),
    meta: dict[str, Any] | None = None,
) -> Genotype:
    """Random genotype ``index`` of ``seed``: the eight cells C1..C8, each drawn uniformly."""
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    rng = np.random.default_rng((seed, index))
    cells = tuple(sample_cell(rng, slot.name, slot.num_inputs, op_names, num_nodes, top_k) for slot in cell_slots(1))
    search = {"method": "random", "seed": seed, "index": index, "top_k": top_k, **(meta or {})}
    return Genotype(cells, tuple(op_names), num_nodes, settings.expand_ratio, settings.se_ratio, search=search)


def searchnet_gflops(genotype: Genotype, width: int, image_size: Sequence[int], num_classes: int) -> float:
    """Forward GFLOPs of SEARCH-Net on one image, counted on the meta device."""
    with torch.device("meta"):
        model = build_searchnet(genotype, 3, num_classes, width)
    return count_flops(model, (1, 3, int(image_size[0]), int(image_size[1])), device="meta") / 1e9


def largest_fitting_width(cost: Callable[[int], float], budget: float, unit: str, max_width: int = MAX_WIDTH) -> tuple[int, float]:
    """``(width, cost(width))``: the largest width in 1..``max_width`` with ``cost(width) <= budget``,
    found by doubling then bisection (``cost`` is assumed to grow with the width; ``unit`` names
    what it counts, for the error).

    Raises ``ValueError`` when even width 1 does not fit."""
    if cost(1) > budget:
        raise ValueError(f"no SEARCH-Net width fits {budget} {unit} (width 1 costs {cost(1):.4f} {unit.split()[0]})")
    low, high = 1, 2  # cost(low) fits; grow high until it does not
    while high <= max_width and cost(high) <= budget:
        low, high = high, high * 2
    high = min(high, max_width + 1)
    while high - low > 1:  # invariant: cost(low) fits, cost(high) does not (or high is past max_width)
        middle = (low + high) // 2
        if cost(middle) <= budget:
            low = middle
        else:
            high = middle
    return low, cost(low)


def width_for_budget(genotype: Genotype, budget_gflops: float, image_size: Sequence[int], num_classes: int) -> tuple[int, float]:
    """``(width, gflops)``: the largest SEARCH-Net width whose FLOPs fit ``budget_gflops``.

    Raises ``ValueError`` when even width 1 does not fit."""
    return largest_fitting_width(lambda width: searchnet_gflops(genotype, width, image_size, num_classes),
                                 budget_gflops, f"GFLOPs at {image_size[0]}x{image_size[1]}")


def searchnet_latency_ms(genotype: Genotype, width: int, image_size: Sequence[int], num_classes: int,
                         repeats: int = 20) -> float:
    """Median CPU milliseconds of one SEARCH-Net forward pass on one image (batch 1, eval mode,
    one torch thread), measured on this machine."""
    model = build_searchnet(genotype, 3, num_classes, width)
    with single_threaded_torch():
        return 1000.0 * measure_latency(model, (1, 3, int(image_size[0]), int(image_size[1])), warmup=3, repeats=repeats)


def width_for_latency(genotype: Genotype, budget_ms: float, image_size: Sequence[int], num_classes: int,
                      repeats: int = 20, max_width: int = MAX_WIDTH) -> tuple[int, float]:
    """``(width, milliseconds)``: a SEARCH-Net width whose CPU latency at batch 1 on one thread
    (``searchnet_latency_ms``) fits ``budget_ms`` while the next width does not, as timed here, at
    most ``max_width``. Timings depend on the machine and its load (time on a quiet machine) and
    are noisy, so the bisection assumes, rather than checks, that latency grows with the width;
    each width is timed once, so the answer rests on one consistent set of timings.

    Raises ``ValueError`` when even width 1 does not fit."""
    measured: dict[int, float] = {}

    def cost(width: int) -> float:
        if width not in measured:
            measured[width] = searchnet_latency_ms(genotype, width, image_size, num_classes, repeats)
        return measured[width]

    return largest_fitting_width(cost, budget_ms, f"ms of CPU latency at {image_size[0]}x{image_size[1]}", max_width)


def width_matching_latency(genotype: Genotype, reference: torch.nn.Module, image_size: Sequence[int], num_classes: int,
                           rounds: int = 7, repeats: int = 4, max_width: int = MAX_WIDTH) -> tuple[int, float, float]:
    """``(width, searchnet_ms, reference_ms)``: the largest SEARCH-Net width (at most ``max_width``)
    whose CPU latency at batch 1 on one thread is at most ``reference``'s, each width timed side by
    side with the reference (``measure_latency_rounds``: ``rounds`` interleaved rounds of ``repeats``
    passes each) and judged by the median over the rounds of the ratio within a round, so a drift
    of the machine's speed, a move to a slower core or a burst of other work changes both timings of
    a round alike. The milliseconds are the chosen width's median rounds. Assumes, as
    ``width_for_latency`` does, that latency grows with the width.

    Raises ``ValueError`` when even width 1 is slower than the reference."""
    shape = (1, 3, int(image_size[0]), int(image_size[1]))
    measured: dict[int, dict[str, list[float]]] = {}  # width -> seconds per round of "searchnet" and "reference"

    def ratio(width: int) -> float:
        if width not in measured:
            searchnet = build_searchnet(genotype, 3, num_classes, width)
            with single_threaded_torch():
                measured[width] = measure_latency_rounds({"searchnet": searchnet, "reference": reference}, shape,
                                                         rounds=rounds, warmup=2, repeats=repeats)
        seconds = measured[width]
        return statistics.median_high([mine / theirs for mine, theirs in zip(seconds["searchnet"], seconds["reference"])])

    width, _ = largest_fitting_width(ratio, 1.0, f"x the reference's CPU latency at {image_size[0]}x{image_size[1]}", max_width)
    seconds = measured[width]
    return width, 1000.0 * statistics.median_high(seconds["searchnet"]), 1000.0 * statistics.median_high(seconds["reference"])


def sample_genotypes(
    num: int,
    seed: int,
    op_names: Sequence[str],
    num_nodes: int = 4,
    top_k: int = 2,
    settings: OpSettings = OpSettings(),
    *,
    flops_budget: float | None = None,
    width: int | None = None,
    image_size: Sequence[int] = (96, 128),
    num_classes: int = 11,
) -> list[tuple[Genotype, float | None]]:
    """``num`` random genotypes with their GFLOPs at ``width`` (``None`` without a width).

    With ``flops_budget`` (GFLOPs per ``image_size`` image at ``width``), only genotypes whose
    SEARCH-Net fits are kept: indices that do not fit are skipped, so the result is uniform over
    the genotypes under the budget."""
    if num < 1:
        raise ValueError(f"--num must be >= 1, got {num}")
    if flops_budget is not None and width is None:
        raise ValueError("a FLOPs budget needs the width to count the FLOPs at (--width)")
    meta: dict[str, Any] = {}
    if flops_budget is not None:
        meta = {"flops_budget_gflops": flops_budget, "width": width, "image_size": list(image_size)}
    chosen: list[tuple[Genotype, float | None]] = []
    index = 0
    while len(chosen) < num:
        if index >= MAX_REDRAWS * num:
            raise ValueError(f"only {len(chosen)} of {index} random genotypes fit {flops_budget} GFLOPs at width {width}; "
                             "raise the budget or lower the width")
        genotype = sample_genotype(seed, index, op_names, num_nodes, top_k, settings, meta)
        index += 1
        gflops = searchnet_gflops(genotype, width, image_size, num_classes) if width is not None else None
        if flops_budget is None or gflops <= flops_budget:
            chosen.append((genotype, gflops))
    return chosen
