"""SEARCH-Net against the ResNet-34 UNet at the 40-epoch CamVid protocol, scored on an unseen sequence.

Trains (or resumes, or reuses) ``udarts train --config configs/camvid-cpu.yaml`` for each model
and seed with one training sequence held out (``data.holdout``, default 0006R0, the selection
split: ``best.pt`` is chosen on it), then reports, side by side:

- held-out mIoU of ``best.pt`` (the number the selection sees) and of the last epoch (chosen by
  nothing, so free of selection bias), mean +- std over the seeds;
- CamVid val mIoU of ``best.pt`` (``udarts eval --split val``: val shares its sequence with the
  training frames, so it rewards fitting a familiar sequence);
- parameters, forward GFLOPs per image and CPU latency at batch 1, measured in this one process
  side by side (``--repeats`` forward passes per model in 5 interleaved rounds, the median round;
  one torch thread).

    OMP_NUM_THREADS=1 python bench/bench_protocol.py --root ../shared/data/camvid --out runs/protocol \\
        --genotype configs/genotypes/camvid-cpu.json --seeds 0,1,2

``--width W`` trains SEARCH-Net at width W instead of the config's budgets; ``--match-latency`` trains
SEARCH-Net at the largest width whose CPU latency (batch 1, one thread) is at most the ResNet-34
UNet's, each width timed side by side with the UNet in interleaved rounds and judged by the ratio
(``udarts.random_genotypes.width_matching_latency``), recorded in ``OUT/matched-width.json`` and
reused by every later run into OUT, so all seeds share one width. Time it on a quiet machine, and
let the first ``--match-latency`` run write the record before starting others in parallel (a run
folder trained at another width than the one asked for is refused, not mixed in):

    OMP_NUM_THREADS=1 python bench/bench_protocol.py --root ../shared/data/camvid --out runs/protocol-latency \\
        --models searchnet --match-latency --seeds 0,1,2

Run folders are ``OUT/<model>-s<seed>``; a finished one is reused, an interrupted one resumed.
Prints a Markdown section for BENCHMARKS.md; ``--json FILE`` also writes the numbers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
from pathlib import Path

import torch
import yaml

from udarts import experiment
from udarts.app.compare import run_finished
from udarts.app.compare.results import measure_checkpoint_costs
from udarts.builders import model_spec
from udarts.complexity import cpu_model
from udarts.config import resolve
from udarts.data.camvid import CAMVID_CLASS_NAMES
from udarts.engine.layout import BEST_CHECKPOINT, CONFIG_FILE, METRICS_LOG
from udarts.genotype import Genotype
from udarts.io import atomic_write_text, read_jsonl
from udarts.models import build_model
from udarts.random_genotypes import width_matching_latency

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS = {"searchnet": "SEARCH-Net", "unet_resnet34": "UNet (ResNet-34)", "unet": "UNet (classic)"}
# The protocol's reference UNet is smp's default (ResNet-34 encoder, decoder 256-16: 24.4 M parameters,
# 2.97 GFLOPs at 96x128), the baseline's "paper" scale; its "cpu" scale has a ResNet-18 encoder.
PAPER_SCALE = {"unet_resnet34": {"model_scale": "paper"}}


def run_dir(out: Path, model: str, seed: int) -> Path:
    return out / f"{model}-s{seed}"


def train(args: argparse.Namespace, model: str, seed: int) -> Path:
    """Train one run to the end: reuse it if finished, resume it if interrupted."""
    path = run_dir(args.out, model, seed)
    width = args.width if model == "searchnet" else None
    config = resolve(args.config, [({"seed": seed, "progress": False, "data": {"root": str(args.root), "holdout": args.holdout},
                                     "train": {"model": model, "select_split": "holdout",
                                               "genotype": str(args.genotype) if model == "searchnet" else None,
                                               **PAPER_SCALE.get(model, {})},
                                     **({"model": {"width": width, "flops_budget": None, "latency_budget": None}}
                                        if width is not None else {})},
                                    "bench_protocol")])
    if (path / CONFIG_FILE).is_file() and width is not None:
        recorded = recorded_width(path)
        if recorded != width:
            sys.exit(f"{path}: trained at SEARCH-Net width {recorded}, not the {width} asked for; use another --out")
    if finished(path):
        return path
    if (path / CONFIG_FILE).is_file():
        experiment.run_train(experiment.resumed_config(path, "train"), resume=path)
    else:
        experiment.run_train(config, path)
    return path


def recorded_width(path: Path) -> int | None:
    """``model.width`` in the config a run folder recorded."""
    return (yaml.safe_load((path / CONFIG_FILE).read_text()) or {}).get("model", {}).get("width")


def matched_width(args: argparse.Namespace) -> int:
    """The SEARCH-Net width whose CPU latency fits the ResNet-34 UNet's, timed once in this process
    (batch 1, one thread, each width side by side with the UNet) and kept in ``OUT/matched-width.json``;
    a later run into OUT reuses it when the genotype and the image size are the same."""
    record = args.out / "matched-width.json"
    genotype = Genotype.load(args.genotype)
    config = resolve(args.config, [({"train": {"model": "unet_resnet34", **PAPER_SCALE["unet_resnet34"]}}, "bench_protocol")])
    image_size = list(config.data.image_size)
    if record.is_file():
        try:
            recorded = json.loads(record.read_text())
            same = (recorded["genotype_cells"], recorded["image_size"]) == (genotype.to_dict(), image_size)
            width, unet_ms = int(recorded["width"]), float(recorded["unet_ms"])
        except (ValueError, KeyError, TypeError) as error:
            sys.exit(f"{record}: not a matched-width record ({error!r}; expected JSON with genotype_cells, image_size, "
                     "width, unet_ms); delete it to time again")
        if not same:
            sys.exit(f"{record}: matched for another genotype or image size (recorded {recorded['genotype']} at "
                     f"{recorded['image_size']}); use another --out")
        print(f"matched width {width} from {record} (UNet {unet_ms:.1f} ms, {recorded.get('date')}, {recorded.get('cpu')})")
        return width
    num_classes = len(CAMVID_CLASS_NAMES)
    unet = build_model(model_spec(config, num_classes))
    width, searchnet_ms, unet_ms = width_matching_latency(genotype, unet, image_size, num_classes, rounds=7,
                                                          repeats=max(1, args.repeats // 5))
    print(f"matched latency, side by side: SEARCH-Net width {width}, {searchnet_ms:.1f} ms against the UNet (ResNet-34)'s "
          f"{unet_ms:.1f} ms ({searchnet_ms / unet_ms:.2f}x)")
    atomic_write_text(record, json.dumps({"genotype": str(args.genotype), "genotype_cells": genotype.to_dict(),
                                          "width": width, "unet_ms": unet_ms, "searchnet_ms": searchnet_ms,
                                          "timing": "side by side, 7 interleaved rounds, median ratio",
                                          "image_size": image_size, "date": str(datetime.date.today()),
                                          "cpu": cpu_model()}, indent=2) + "\n", make_parent=True)
    return width


def finished(path: Path) -> bool:
    """Whether the run in ``path`` has checkpointed every epoch its config asks for and has a best.pt."""
    return run_finished(path) and (path / BEST_CHECKPOINT).is_file()


def score(path: Path, args: argparse.Namespace) -> dict[str, float]:
    """Held-out mIoU of best.pt and of the last epoch, and val mIoU of best.pt (cached in eval-val.json)."""
    records = read_jsonl(path / METRICS_LOG)
    best = max(records, key=lambda record: record["val_miou"])
    cached = path / "eval-val.json"
    if cached.is_file() and json.loads(cached.read_text()).get("epoch") == best["epoch"]:
        val = json.loads(cached.read_text())["miou"]
    else:  # scored once per best.pt (a resumed run may have a newer one)
        model, state = experiment.load_trained(path / BEST_CHECKPOINT)
        config = resolve(None, [(state["config"], str(path / BEST_CHECKPOINT)),
                                ({"progress": False, "data": {"root": str(args.root)}}, "bench_protocol")])
        val = experiment.evaluate(model, state, config, "val", torch.device("cpu"), source=str(path / BEST_CHECKPOINT))["miou"]
        atomic_write_text(cached, json.dumps({"checkpoint": str(path / BEST_CHECKPOINT), "epoch": state["epoch"], "split": "val",
                                              "miou": val}) + "\n")
    return {"holdout_best": best["val_miou"], "best_epoch": best["epoch"], "holdout_last": records[-1]["val_miou"],
            "val": val, "epochs": records[-1]["epoch"]}


def costs(paths: dict[str, Path], repeats: int) -> dict[str, dict[str, float]]:
    """Per model: SEARCH-Net's width, parameters, GFLOPs and CPU latency of its best.pt, the
    latencies measured side by side (``measure_checkpoint_costs``)."""
    measured = measure_checkpoint_costs({name: path / BEST_CHECKPOINT for name, path in paths.items()}, torch.device("cpu"),
                                        repeats=repeats)
    if len({tuple(cost.image_size) for cost in measured.values()}) > 1:
        sys.exit(f"the runs were trained at different image sizes {sorted({tuple(c.image_size) for c in measured.values()})}; "
                 "report them separately")
    return {name: {"width": recorded_width(paths[name]) if name == "searchnet" else None, "parameters": cost.parameters,
                   "gflops": cost.flops / 1e9, "latency_ms": cost.latency_ms, "image_size": cost.image_size}
            for name, cost in measured.items()}


def mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.fmean(values):.2f} +- {100 * spread:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, type=Path, help="CamVid root (SegNet layout)")
    parser.add_argument("--out", required=True, type=Path, help="folder of the run folders (reused on a re-run)")
    parser.add_argument("--genotype", type=Path, default=REPO_ROOT / "configs" / "genotypes" / "camvid-cpu.json")
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "configs" / "camvid-cpu.yaml")
    parser.add_argument("--width", type=int, help="SEARCH-Net at this width (default: the config's, which fits "
                        "model.flops_budget); `udarts train --dry-run --latency-budget MS` finds one that fits a latency")
    parser.add_argument("--match-latency", action="store_true", help="SEARCH-Net at the largest width whose CPU "
                        "latency fits the ResNet-34 UNet's, timed here once, side by side (OUT/matched-width.json)")
    parser.add_argument("--holdout", default="0006R0", help="training sequence held out as the selection split")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--models", default="searchnet,unet_resnet34", help=f"comma-separated, of {sorted(MODELS)}")
    parser.add_argument("--repeats", type=int, default=20, help="timed forward passes per model, in 5 interleaved rounds "
                        "(median)")
    parser.add_argument("--report-only", action="store_true", help="train nothing; report the finished runs")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    models = [name for name in args.models.split(",") if name]
    if args.width is not None and args.width < 1:
        parser.error(f"--width: expected a positive width, got {args.width}")
    if args.match_latency:
        if args.width is not None:
            parser.error("--width and --match-latency both set the width; give one")
        if "searchnet" in models and not args.report_only:
            args.width = matched_width(args)
    results: dict[str, dict] = {}
    for model in models:
        scores = []
        for seed in seeds:
            path = run_dir(args.out, model, seed) if args.report_only else train(args, model, seed)
            if not finished(path):
                print(f"{path}: not finished, left out", file=sys.stderr)
                continue
            scores.append({"seed": seed, **score(path, args)})
        if model == "searchnet" and len({recorded_width(run_dir(args.out, model, run["seed"])) for run in scores}) > 1:
            sys.exit(f"{args.out}: the SEARCH-Net runs have different widths ("
                     + ", ".join(f"s{run['seed']}: {recorded_width(run_dir(args.out, model, run['seed']))}" for run in scores)
                     + "); report runs of one width together")
        if scores:
            results[model] = {"runs": scores}
    for model, measured in costs({model: run_dir(args.out, model, result["runs"][0]["seed"])
                                  for model, result in results.items()}, args.repeats).items():
        results[model].update(measured)

    lines = [f"## SEARCH-Net against the ResNet-34 UNet, 40-epoch CamVid protocol, sequence {args.holdout} held out",
             "", f"`{' '.join(['python', *sys.argv])}`; {datetime.date.today()}, {cpu_model()} ({platform.machine()}), "
             "latency at batch 1 on one torch thread, the models timed side by side in rounds in one process.", "",
             f"| model | seeds | held-out mIoU ({BEST_CHECKPOINT}) | held-out mIoU (last epoch) | val mIoU ({BEST_CHECKPOINT}) | parameters "
             "| GFLOPs | CPU latency (ms) |",
             "|---|---|---|---|---|---|---|---|"]
    for model, result in results.items():
        runs = result["runs"]
        name = MODELS.get(model, model) + (f" (width {result['width']})" if model == "searchnet" else "")
        lines.append(f"| {name} | {','.join(str(run['seed']) for run in runs)} | "
                     f"{mean_std([run['holdout_best'] for run in runs])} | {mean_std([run['holdout_last'] for run in runs])} | "
                     f"{mean_std([run['val'] for run in runs])} | {result['parameters'] / 1e6:.2f} M | {result['gflops']:.2f} | "
                     f"{result['latency_ms']:.1f} |")
    lines += ["", "Per run (held-out best / last, val): " + "; ".join(
        f"{MODELS.get(model, model)} s{run['seed']}: {100 * run['holdout_best']:.2f} (epoch {run['best_epoch']}) / "
        f"{100 * run['holdout_last']:.2f}, {100 * run['val']:.2f}" for model, result in results.items() for run in result["runs"])]
    print("\n".join(lines))
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=2) + "\n", make_parent=True)


if __name__ == "__main__":
    main()
