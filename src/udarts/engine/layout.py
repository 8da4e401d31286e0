"""The layout of a run folder: the name of every file a run (and the commands that read it) puts
there, written once. Everything else, the CLI, the application, reports, benchmarks and tests,
joins these names to a folder; ``engine.runs.Run`` reads and writes them.

    RUN_DIR/
      config.yaml        CONFIG_FILE      the resolved config (defaults <- config file <- flags)
      metrics.jsonl      METRICS_LOG      one JSON object per epoch
      alphas.jsonl       ALPHAS_LOG       (search) every cell's softmax(alphas), one line per epoch
      pruning.jsonl      PRUNING_LOG      (search with pruning) the ops dropped, one line per edge
      latency-table.json LATENCY_TABLE_FILE (search with a latency target) the table its alphas are priced with
      genotype.json      GENOTYPE_FILE    (search) the current derived architecture
      last.pt            LAST_CHECKPOINT  the last committed epoch (written atomically)
      best.pt            BEST_CHECKPOINT  the best epoch last.pt records
      best.pt.next       BEST_PENDING     a new best.pt, between its write and last.pt's commit
      tb/                TENSORBOARD_DIR  TensorBoard events
      run.lock           LOCK_FILE        locked (flock) by the process writing the run; names it
    written by other commands:
      genotype-top<K>[-maxid<N>][-pt<B>|-os<N>-b<B>].json   ``udarts derive`` with other settings
      one-shot-scores-top<K>-os<N>-b<B>.json / .png          ``udarts derive --selection one_shot``
      curves.png, alphas_final.png, alphas_history.png, cells.png, diagnostics.png, summary.md
                                                             ``udarts report``

The names are what old run folders hold: changing one breaks ``--resume``, ``derive``, ``report``
and ``compare`` on every run made before (``tests/engine/test_layout.py`` pins them).

Plain data, importing nothing: it sits in the lowest layer (``tests/test_architecture.py``), so the
search's parts that write to a run folder name its files from here too.
"""

from __future__ import annotations

CONFIG_FILE = "config.yaml"
METRICS_LOG = "metrics.jsonl"
ALPHAS_LOG = "alphas.jsonl"
PRUNING_LOG = "pruning.jsonl"
LATENCY_TABLE_FILE = "latency-table.json"
GENOTYPE_FILE = "genotype.json"
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
BEST_PENDING = "best.pt.next"
TENSORBOARD_DIR = "tb"
LOCK_FILE = "run.lock"

LOGS = (METRICS_LOG, ALPHAS_LOG, PRUNING_LOG)  # the append-only logs, cut back to last.pt's epoch on resume

# ``udarts report``'s output in a run folder
CURVES_PNG = "curves.png"
LATENCY_PNG = "latency.png"
ALPHAS_FINAL_PNG = "alphas_final.png"
ALPHAS_HISTORY_PNG = "alphas_history.png"
CELLS_PNG = "cells.png"
DIAGNOSTICS_PNG = "diagnostics.png"
SUMMARY_MARKDOWN = "summary.md"

# The names no module but this one spells out (``tests/engine/test_layout.py`` checks the sources).
RUN_FILES = (CONFIG_FILE, METRICS_LOG, ALPHAS_LOG, PRUNING_LOG, LATENCY_TABLE_FILE, GENOTYPE_FILE, LAST_CHECKPOINT,
             BEST_CHECKPOINT, BEST_PENDING, LOCK_FILE)


def derived_genotype_name(top_k: int, max_identity: int | None, suffix: str = "") -> str:
    """The file ``udarts derive`` writes beside a search's checkpoint when its settings differ from
    the search's own: ``genotype-top<K>[-maxid<N>]<suffix>.json`` (``suffix``: ``-pt<B>`` for
    perturbation, ``-os<N>-b<B>`` for one-shot selection)."""
    return f"genotype-top{top_k}" + (f"-maxid{max_identity}" if max_identity is not None else "") + suffix + ".json"


def one_shot_scores_name(top_k: int, suffix: str) -> str:
    """Where ``udarts derive --selection one_shot`` records every candidate's score
    (``one-shot-scores-top<K><suffix>.json``; its histogram takes the ``.png`` suffix)."""
    return f"one-shot-scores-top{top_k}{suffix}.json"
