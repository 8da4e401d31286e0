"""Search until the genotype is settled: ``search.settle_epochs``.

A short search (a few dozen alpha steps) sometimes ends with one kept edge whose two best ops are
within the warning's margin of each other: that cell is close to a coin toss. With
``search.settle_epochs: N`` the search then goes on one epoch at a time, at most N times, while a
cell of its last epoch is weakly determined; each extra epoch is a resume of the run with
``search.epochs`` one higher and ``search.settle_epochs`` one lower (so their sum, the most epochs
the search may take, stays what was asked for), and with ``search.alpha_travel`` it also makes the
alpha steps smaller. Measured over seeds and CPU kernels in BENCHMARKS.md ("Do short searches end
settled on other CPUs?").
"""

from __future__ import annotations

from pathlib import Path

from udarts import experiment
from udarts.config import Config
from udarts.engine.distributed import launched_world_size
from udarts.engine.layout import ALPHAS_LOG


def unsettled_cells(search_dir: Path, config: Config) -> list[str]:
    """The warnings about weakly determined cells of the search's last logged epoch (empty when
    every cell is decided), as the end of a search prints them."""
    from udarts.io import read_jsonl
    from udarts.search.diagnostics import diagnose_record, genotype_warnings

    records = read_jsonl(search_dir / ALPHAS_LOG)
    _, diagnostics = diagnose_record(records[-1], config.model.num_nodes, config.search.top_k, config.search.max_identity)
    return [warning for warning in genotype_warnings(diagnostics) if warning.startswith("weakly determined")]


def search_until_settled(config: Config, out: str | Path | None = None, *,
                         resume: str | Path | None = None) -> experiment.SearchResult:
    """``experiment.run_search``, then up to ``search.settle_epochs`` more epochs while a cell is
    weakly determined (not under torchrun, where each process would have to agree on it)."""
    searched = experiment.run_search(config, out, resume=resume)
    if launched_world_size() > 1:
        return searched
    while config.search.settle_epochs > 0 and (unsettled := unsettled_cells(searched.run_dir, config)):
        epochs = config.search.epochs + 1
        print(f"search.settle_epochs: {unsettled[0].split(':')[0]}; one more search epoch ({epochs}, at most "
              f"{config.search.epochs + config.search.settle_epochs})")
        config = experiment.resumed_config(searched.run_dir, "search", [
            ({"search": {"epochs": epochs, "settle_epochs": config.search.settle_epochs - 1}}, "search.settle_epochs")])
        searched = experiment.run_search(config, resume=searched.run_dir)
    return searched
