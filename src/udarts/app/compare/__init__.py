"""The paper's comparison (its Tables 1 and 2, Figures 4 to 8): several models, one budget.

A comparison folder holds one ordinary train run folder per (model, seed), trained by the same
code as ``udarts train`` on the same data, loss, epochs, optimizer and schedule, and the tables
and plots made from them::

    COMPARE_DIR/
      comparison.json            what was compared: models, seeds, the shared config, the budget
      genotypes/<label>.json     a frozen copy of each SEARCH-Net genotype
      runs/<label>/seed-<s>/     train run folders (config.yaml, metrics.jsonl, last.pt, ...)
      runs/<label>/seed-<s>.log  the output of the run's udarts train process(es)
      costs.json                 per model: parameters, FLOPs, latency (and the device it ran on)
      table.md, table.csv        one row per model: mean ± std over seeds
      runs.csv                   one row per run
      curves.png                 training loss and val mIoU of every model on one chart
      predictions.png            image | ground truth | each model's overlay, on the same val images
      summary.md                 the table, the budget, how each number is measured, the plots

Every number of the table comes from a run folder: the loss and mIoU are those of the final
epoch's validation pass as logged in ``metrics.jsonl`` (the model ``last.pt`` holds), the
training time is the sum of the logged epoch times. A comparison is resumable: a finished run
folder is reused, an interrupted one is resumed from its ``last.pt``, and a run folder made with
another config is an error rather than silently mixed in. Each run is a trial
(:mod:`udarts.app.trials`): a ``udarts train`` process, one or ``--jobs`` at a time on this
machine, or a Ray task on a cluster (``--backend ray``); its output goes to ``runs/<label>/seed-<s>.log``.

The work is split by concern: :mod:`~udarts.app.compare.plan` (the models, the planned runs,
``comparison.json``, resuming and reusing runs), :mod:`~udarts.app.compare.results` (the runs'
logged numbers, costs, mean ± std per model) and :mod:`~udarts.app.compare.render` (tables,
plots, ``summary.md``). Every name is importable from ``udarts.app.compare`` itself.
"""

from __future__ import annotations

from udarts.app.compare.plan import (
    COMPARISON_FILE,
    COMPARISON_FORMAT,
    COMPARISON_VERSION,
    IGNORED_CONFIG_KEYS,
    SEARCHNET,
    ComparisonError,
    ModelEntry,
    PlannedRun,
    adopt_genotypes,
    check_run_folders,
    checkpoint_epoch,
    config_differences,
    load_plan,
    parse_entries,
    plan_entries,
    prepare,
    run_finished,
    run_folder,
)
from udarts.app.compare.render import (
    CSV_COLUMNS,
    CURVES_PNG,
    PREDICTIONS_PNG,
    RUNS_CSV,
    SUMMARY_MARKDOWN,
    TABLE_CSV,
    TABLE_HEADER,
    TABLE_MARKDOWN,
    Samples,
    format_count,
    format_seconds,
    format_statistic,
    markdown_table,
    predict_masks,
    render,
    summary_markdown,
    take_samples,
    write_runs_csv,
    write_table_csv,
)
from udarts.app.compare.results import (
    COSTS_FILE,
    ModelCost,
    ModelRow,
    RunResult,
    Statistic,
    collect_results,
    describe_device,
    load_costs,
    measure_cost,
    measure_costs,
    read_run_result,
    summarize,
)

__all__ = [
    "COMPARISON_FILE", "COMPARISON_FORMAT", "COMPARISON_VERSION", "IGNORED_CONFIG_KEYS", "SEARCHNET", "ComparisonError",
    "ModelEntry", "PlannedRun", "adopt_genotypes", "check_run_folders", "checkpoint_epoch", "config_differences",
    "load_plan", "parse_entries", "plan_entries", "prepare", "run_finished", "run_folder",
    "CSV_COLUMNS", "CURVES_PNG", "PREDICTIONS_PNG", "RUNS_CSV", "SUMMARY_MARKDOWN", "TABLE_CSV", "TABLE_HEADER",
    "TABLE_MARKDOWN", "Samples", "format_count", "format_seconds", "format_statistic", "markdown_table", "predict_masks",
    "render", "summary_markdown", "take_samples", "write_runs_csv", "write_table_csv",
    "COSTS_FILE", "ModelCost", "ModelRow", "RunResult", "Statistic", "collect_results", "describe_device", "load_costs",
    "measure_cost", "measure_costs", "read_run_result", "summarize",
]
