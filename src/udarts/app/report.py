"""``udarts report RUN_DIR``: plots and a Markdown summary of a train run or a search run, read
from the run folder alone (comparison folders are rendered by :func:`udarts.app.compare.render`).

- train run: ``curves.png`` (loss and val mIoU per epoch) and ``summary.md`` (model, size,
  budget, final and best metrics, per-class IoU of the final epoch).
- search run: ``curves.png``, ``alphas_final.png`` (every cell's edge x op weights at the last
  epoch, the kept ops outlined), ``alphas_history.png`` (each op's mean weight per epoch),
  ``cells.png`` (a drawing of every derived cell), ``diagnostics.png`` (per cell and epoch: alpha
  entropy, smallest top-1 margin, identity share) and ``summary.md`` (with the derived genotype,
  the last epoch's diagnostics and the warnings of ``udarts.search.diagnostics``). The
  diagnostics are always computed from the weights stored in ``alphas.jsonl`` (so old logs
  without a ``diagnostics`` key work alike), re-deriving each epoch's genotype with the run's
  ``search.top_k`` and ``search.max_identity``.

Everything is written into the run folder.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from udarts.app.compare.plan import COMPARISON_FILE
from udarts.app.compare.render import format_count, format_seconds
from udarts.checkpoints import load_trained
from udarts.engine.layout import (
    ALPHAS_FINAL_PNG,
    ALPHAS_HISTORY_PNG,
    ALPHAS_LOG,
    CELLS_PNG,
    CONFIG_FILE,
    CURVES_PNG,
    DIAGNOSTICS_PNG,
    GENOTYPE_FILE,
    LAST_CHECKPOINT,
    LATENCY_PNG,
    METRICS_LOG,
    SUMMARY_MARKDOWN,
)
from udarts.io import atomic_write_text, read_jsonl


def folder_kind(path: Path) -> str:
    """``"comparison"``, ``"search"`` or ``"train"``; anything else raises ``FileNotFoundError``."""
    path = Path(path)
    if (path / COMPARISON_FILE).is_file():
        return "comparison"
    if not (path / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{path}: not a udarts run or comparison folder (no {CONFIG_FILE}, no {COMPARISON_FILE})")
    if (path / ALPHAS_LOG).is_file() or (path / GENOTYPE_FILE).is_file():
        return "search"
    return "train"


def _config(path: Path) -> dict[str, Any]:
    return yaml.safe_load((path / CONFIG_FILE).read_text()) or {}


def _percent(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}"


def _loss(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _size(config: dict[str, Any]) -> str:
    return "x".join(str(side) for side in config.get("data", {}).get("image_size", []))


def _data_line(config: dict[str, Any]) -> str:
    data = config.get("data", {})
    root = f" at `{data['root']}`" if data.get("root") else ""
    return f"{data.get('name', '?')}{root}, {_size(config)}, batch {data.get('batch_size', '?')}"


def report_train_run(path: Path) -> dict[str, Path]:
    """Write ``curves.png`` and ``summary.md`` for the train run in ``path``."""
    from udarts.viz.curves import plot_run_curves

    path = Path(path)
    config = _config(path)
    records = read_jsonl(path / METRICS_LOG)
    if not records:
        raise FileNotFoundError(f"{path / METRICS_LOG}: no epoch logged yet, nothing to report")
    train = config.get("train", {})
    model_line, class_names = _model_line(path, config)
    written = {"curves": plot_run_curves(records, path / CURVES_PNG, title=f"{path.name}: {train.get('model', '?')}")}
    final = records[-1]
    best = max((record for record in records if record.get("val_miou") is not None), key=lambda record: record["val_miou"], default=None)
    lines = [
        f"# Train run `{path.name}`",
        "",
        f"- model: {model_line}",
        f"- data: {_data_line(config)}",
        f"- budget: {final['epoch']} of {train.get('epochs', '?')} epochs, {train.get('optimizer', '?')} lr {train.get('lr', '?')}, "
        f"{train.get('scheduler', '?')} schedule, {train.get('loss', '?')} loss, seed {config.get('seed', '?')}",
        f"- training time: {format_seconds(sum(record.get('seconds') or 0.0 for record in records))} "
        "(sum of the logged epoch times, training and validation passes)",
        "",
        "| | final (epoch {}) | best val mIoU (epoch {}) |".format(final["epoch"], best["epoch"] if best else "n/a"),
        "|---|---|---|",
        f"| val loss | {_loss(final.get('val_loss'))} | {_loss(best.get('val_loss')) if best else 'n/a'} |",
        f"| val mIoU % | {_percent(final.get('val_miou'))} | {_percent(best.get('val_miou')) if best else 'n/a'} |",
        f"| val pixel accuracy % | {_percent(final.get('val_pixel_accuracy'))} | "
        f"{_percent(best.get('val_pixel_accuracy')) if best else 'n/a'} |",
        f"| train loss | {_loss(final.get('train_loss'))} | {_loss(best.get('train_loss')) if best else 'n/a'} |",
        "",
    ]
    per_class = final.get("val_iou_per_class")
    if per_class:
        names = class_names or [str(index) for index in range(len(per_class))]
        lines += ["Per-class val IoU at the final epoch:", "", "| class | IoU % |", "|---|---|"]
        lines += [f"| {name} | {_percent(iou) if iou is not None else 'n/a (absent)'} |" for name, iou in zip(names, per_class)]
        lines.append("")
    lines += [f"![loss and validation mIoU per epoch]({CURVES_PNG})", ""]
    written["summary"] = path / SUMMARY_MARKDOWN
    atomic_write_text(written["summary"], "\n".join(lines))
    return written


def _model_line(path: Path, config: dict[str, Any]) -> tuple[str, list[str] | None]:
    """The network, its size and FLOPs (from ``last.pt``), and the class names it was trained on."""
    checkpoint = path / LAST_CHECKPOINT
    train = config.get("train", {})
    if not checkpoint.is_file():
        return f"{train.get('model', '?')} (no checkpoint yet)", None
    from udarts.complexity import count_flops, count_parameters

    model, state = load_trained(checkpoint)
    spec = state["model_spec"]
    height, width = state["image_size"]
    flops = count_flops(model, (1, 3, height, width))
    if spec["name"] == "searchnet":
        detail = f"SEARCH-Net, width {spec['width']}, genotype `{train.get('genotype')}`"
    else:
        detail = f"{spec['name']} (scale {spec.get('scale')}, options {spec.get('options') or {}})"
    return (f"{detail}; {format_count(count_parameters(model))} parameters, "
            f"{format_count(flops, 'FLOPs')} per {height}x{width} image"), list(state.get("class_names") or []) or None


def report_search_run(path: Path) -> dict[str, Path]:
    """Write the alpha heatmaps, the cell drawings, ``curves.png`` and ``summary.md`` for a search run."""
    from udarts.genotype import Genotype
    from udarts.viz.alphas import plot_alpha_history, plot_final_alphas
    from udarts.viz.curves import plot_run_curves
    from udarts.viz.genotype_plot import state_names

    path = Path(path)
    config = _config(path)
    search = config.get("search", {})
    written: dict[str, Path] = {}
    genotype = Genotype.load(path / GENOTYPE_FILE) if (path / GENOTYPE_FILE).is_file() else None
    alphas = read_jsonl(path / ALPHAS_LOG)
    diagnostics_lines: list[str] = []
    if alphas:
        written["alphas_final"] = plot_final_alphas(alphas, path / ALPHAS_FINAL_PNG, genotype)
        written["alphas_history"] = plot_alpha_history(alphas, path / ALPHAS_HISTORY_PNG)
        diagnostics_lines = _diagnostics_section(path, config, alphas, written)
    if genotype is not None:
        from udarts.viz.genotype_plot import plot_genotype

        written["cells"] = plot_genotype(genotype, path / CELLS_PNG, title=f"cells derived by {path.name}")
    records = read_jsonl(path / METRICS_LOG)
    if records:
        written["curves"] = plot_run_curves(records, path / CURVES_PNG, title=f"{path.name}: search",
                                            validation_name="alpha-half")
    latencies = [record for record in records if record.get("expected_latency_ms") is not None]
    if latencies:
        from udarts.viz.curves import plot_expected_latency

        written["latency"] = plot_expected_latency(latencies, path / LATENCY_PNG, title=f"{path.name}: expected latency")
    lines = [
        f"# Search run `{path.name}`",
        "",
        f"- data: {_data_line(config)}",
        f"- supernet: width {config.get('model', {}).get('width', '?')}, {config.get('model', {}).get('num_nodes', '?')} nodes per cell, "
        f"ops {', '.join(alphas[-1]['op_names']) if alphas else config.get('model', {}).get('ops', '?')}",
        f"- search: {records[-1]['epoch'] if records else 0} of {search.get('epochs', '?')} epochs "
        f"({search.get('warmup_epochs', 0)} warm-up), {search.get('mode', 'darts')} mode, {search.get('order', '?')}-order, "
        f"{search.get('loss', '?')} loss, "
        f"seed {config.get('seed', '?')}",
    ]
    if records:
        final = records[-1]
        lines += [
            f"- search time: {format_seconds(sum(record.get('seconds') or 0.0 for record in records))}",
            f"- final epoch: train loss {_loss(final.get('train_loss'))}, loss on the alpha half {_loss(final.get('val_loss'))}, "
            f"mIoU on the alpha half {_percent(final.get('val_miou'))} %",
        ]
    if latencies:
        lines.append(f"- expected latency of the derived network: {latencies[0]['expected_latency_ms']:.2f} ms at epoch "
                     f"{latencies[0]['epoch']}, {latencies[-1]['expected_latency_ms']:.2f} ms at epoch {latencies[-1]['epoch']} "
                     f"(target {latencies[-1]['latency_target_ms']:g} ms; ![expected latency]({LATENCY_PNG}))")
    lines.append("")
    if genotype is not None:
        lines += ["## Derived cells", "", "| cell | node | inputs (op ← state) |", "|---|---|---|"]
        for cell in genotype.cells:
            names = state_names(cell.name, len(cell.nodes))
            for node, genes in enumerate(cell.nodes):
                inputs = ", ".join(f"{op_name} ← {names[source]}" for op_name, source in genes)
                lines.append(f"| {cell.name} | n{node} | {inputs} |")
        lines += ["", f"![derived cells]({CELLS_PNG})", ""]
    lines += diagnostics_lines
    if alphas:
        lines += [
            "## Architecture weights",
            "",
            f"![alpha weights at the last epoch]({ALPHAS_FINAL_PNG})",
            "",
            f"![mean op weight per epoch]({ALPHAS_HISTORY_PNG})",
            "",
        ]
    if records:
        lines += ["## Curves", "", f"![search loss and mIoU]({CURVES_PNG})", ""]
    written["summary"] = path / SUMMARY_MARKDOWN
    atomic_write_text(written["summary"], "\n".join(lines))
    return written


def _diagnostics_section(path: Path, config: dict[str, Any], alphas: list[dict[str, Any]], written: dict[str, Path]) -> list[str]:
    """Plot the diagnostics of every logged epoch and return the summary's section for the last."""
    from udarts.search.diagnostics import ENTROPY_WARNING, MARGIN_WARNING, diagnose_record, genotype_warnings
    from udarts.viz.diagnostics import plot_diagnostics_history

    search = config.get("search", {})
    top_k, max_identity = search.get("top_k", 2), search.get("max_identity")
    num_nodes = config.get("model", {}).get("num_nodes")
    history = [diagnose_record(record, num_nodes, top_k, max_identity)[1] for record in alphas]
    written["diagnostics"] = plot_diagnostics_history([int(record["epoch"]) for record in alphas], history,
                                                      path / DIAGNOSTICS_PNG)
    last = history[-1]

    def margin(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    lines = [
        f"## How determined is the genotype (epoch {alphas[-1]['epoch']})",
        "",
        f"Computed from `{ALPHAS_LOG}`, the kept edges derived with top_k {top_k}, max_identity {max_identity}. "
        "Entropy: mean over the cell's edges of the softmax's entropy / log(number of ops) (1 = uniform); "
        "top-1 margin: a kept edge's op weight minus its runner-up's; edge margin: the smallest gap between "
        "a node's last kept and first dropped edge; identity share: kept edges that are identity. "
        f"Warnings above entropy {ENTROPY_WARNING} or below margin {MARGIN_WARNING}.",
        "",
        "| cell | entropy | min top-1 margin | mean top-1 margin | edge margin | identity share | unread inputs |",
        "|---|---|---|---|---|---|---|",
    ]
    for item in last:
        unread = ", ".join(str(source) for source in item.unread_inputs) or "-"
        lines.append(f"| {item.name} | {item.entropy:.3f} | {margin(item.min_margin)} | {margin(item.mean_margin)} | "
                     f"{margin(item.edge_margin)} | {item.identity_share:.2f} | {unread} |")
    lines.append("")
    warnings = genotype_warnings(last)
    if warnings:
        lines += ["Warnings:", ""] + [f"- {warning}" for warning in warnings]
    else:
        lines.append("No warnings: every cell is clearly determined and connected.")
    lines += ["", f"![diagnostics per epoch]({DIAGNOSTICS_PNG})", ""]
    return lines
