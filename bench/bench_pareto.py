"""The most accurate network for a latency budget: latency-targeted SEARCH-Nets against random
genotypes fitted to the same latency and against the light networks a user would pick instead,
on the 40-epoch CamVid protocol, held-out mIoU against CPU latency (a Pareto front).

Three steps, each resumable (every output is a file in OUT; a finished step is reused):

1. ``plan`` (on the target device: this CPU, batch 1, one thread):
   - times the light baselines and the ResNet-34 UNet side by side (eager PyTorch, interleaved
     rounds); the targets are the latencies of ``--target-models`` (fastest to the ResNet-18 UNet);
   - measures a calibrated latency table (``udarts latency-table``) at 96x128 for every SEARCH-Net
     width in ``--widths``;
   - fits each of ``--random`` random genotypes (seed 0) to each target: the largest width whose
     predicted latency fits;
   - for each target, picks the width to search at: the one where the median random genotype is
     predicted at ``target / --slack`` (so the search must find a genotype ``slack`` times cheaper
     than a typical draw, and the width it saves is spent on capacity), and writes OUT/plan.json.
2. ``run`` (anywhere, e.g. a GPU machine with the tables carried over): the searches (CamVid train
   without the selection sequence, ``configs/camvid-search-lowres-cpu.yaml`` with the target and
   the table of its width), each derived genotype fitted to its target by the predictor and
   retrained at ``--seeds``; the random genotypes (seed 0) and the baselines (``--seeds``); every
   training is ``udarts train --config configs/camvid-cpu.yaml`` with sequence 0006R0 held out and
   selecting ``best.pt``, then ``udarts eval best.pt --split val``; each a trial of
   ``udarts.app.trials`` (``--jobs`` local processes, or ``--backend ray``), a search's trainings
   submitted as it ends; ``--deadline`` seconds ends the running trials in time for a partial report
   (their folders resume on a re-run).
``scores`` prints the scores of every training folder in OUT grouped by name (``NAME-seedN``), mean
+- std over seeds: for trainings run outside ``run`` (for example the searched genotypes and the
baselines retrained on a CPU with the same flags), beside a report; with ``--time`` each group's
network is timed side by side as ``report`` does, and ``--plot`` draws them (mIoU against ms); ``--json`` keeps
the record (every run's scores, each group's costs) that ``--from-json`` prints and draws again once the run
folders are gone (records of the CPU runs are in ``bench/results/``). ``fit`` times
``--genotypes`` at ``--widths`` side by side with ``--target-models`` and prints, for each, the
largest width at or below each baseline's latency (no OUT folder is written).

3. ``report`` (on the target device): every trained network timed side by side (eager, one thread;
   onnxruntime as a second column), the table, the searched genotype's percentile among the random
   ones at each target, each front's hypervolume, and the picture (mIoU against ms, log scale).

    OMP_NUM_THREADS=1 python bench/bench_pareto.py plan --root ../shared/data/camvid --out runs/pareto
    python bench/bench_pareto.py run --root ../shared/data/camvid --out runs/pareto --device cuda --jobs 16
    OMP_NUM_THREADS=1 python bench/bench_pareto.py report --root ../shared/data/camvid --out runs/pareto \\
        --plot docs/images/pareto-camvid.png
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import hashlib
import json
import statistics
import threading
from pathlib import Path
from typing import Any

import torch

from udarts.app.trials import Step, Trial, TrialExecutor, add_executor_arguments, executor_settings
from udarts.engine.layout import ALPHAS_LOG, BEST_CHECKPOINT, CONFIG_FILE, GENOTYPE_FILE, METRICS_LOG

REPO_ROOT = Path(__file__).resolve().parents[1]
LIGHT = ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "unet_mobilenet_v2", "unet_efficientnet_b0",
         "unet_resnet18")
REFERENCE = "unet_resnet34"  # the protocol's UNet (ResNet-34 encoder, the "paper" scale)
IMAGE_SIZE = (96, 128)
NUM_CLASSES = 11
TRAIN_CONFIG = REPO_ROOT / "configs" / "camvid-cpu.yaml"
SEARCH_CONFIG = REPO_ROOT / "configs" / "camvid-search-lowres-cpu.yaml"
EVAL_VAL = "eval-val.json"  # beside a training's files: its best.pt scored on val


def write_json(path: Path, data: Any) -> None:
    from udarts.io import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=1) + "\n", make_parent=True)


def baseline_spec(name: str) -> dict[str, Any]:
    scale = "paper" if name == REFERENCE else "cpu"
    return {"name": name, "scale": scale, "options": {}, "in_channels": 3, "num_classes": NUM_CLASSES}


# ---- 1. plan -------------------------------------------------------------------------------------


def plan(args: argparse.Namespace) -> None:
    from udarts.app.latency import make_latency_table
    from udarts.complexity import cpu_model, measure_latencies
    from udarts.config import resolve
    from udarts.efficiency import torch_threads
    from udarts.models import build_model
    from udarts.ops import PAPER_OPS
    from udarts.random_genotypes import sample_genotype

    out = args.out
    baselines_file = out / "baseline-latency.json"
    if not baselines_file.is_file():
        models = {name: build_model(baseline_spec(name)) for name in (*LIGHT, REFERENCE)}
        with torch_threads(1):
            seconds = measure_latencies(models, (1, 3, *IMAGE_SIZE), rounds=7, repeats=10)
        write_json(baselines_file, {"ms": {name: 1000 * value for name, value in seconds.items()}, "cpu": cpu_model(),
                                    "date": str(datetime.date.today()), "timing": "eager, 1 thread, batch 1, 7 rounds"})
    baseline_ms = json.loads(baselines_file.read_text())["ms"]
    print("baselines (ms):", {name: round(ms, 2) for name, ms in baseline_ms.items()})
    targets = sorted(baseline_ms[name] for name in args.target_models.split(","))

    tables = {}
    for width in args.widths:
        config = resolve(None, [({"progress": False, "data": {"name": "camvid", "root": str(args.root),
                                                             "image_size": list(IMAGE_SIZE)},
                                  "model": {"width": width}}, "bench_pareto")])
        path = out / "tables" / f"eager-w{width}.json"
        tables[width], reused = make_latency_table(config, path, calibrate_genotypes=args.calibrate,
                                                   num_classes=NUM_CLASSES)
        print(f"width {width}: {'reused' if reused else 'measured'} {path}")
    genotypes = [sample_genotype(0, index, PAPER_OPS) for index in range(args.random)]
    predicted = [{width: tables[width].predict_ms(genotype) for width in args.widths} for genotype in genotypes]
    medians = {width: statistics.median(by_width[width] for by_width in predicted) for width in args.widths}

    plan_targets = []
    for target in targets:
        random_fits = []
        for index, by_width in enumerate(predicted):
            width, milliseconds = largest_fit(by_width, target)
            random_fits.append({"index": index, "width": width, "predicted_ms": milliseconds})
        # the width where the median random genotype is predicted at target / slack
        search_width = min(args.widths, key=lambda width: abs(medians[width] - target / args.slack))
        plan_targets.append({"target_ms": target, "search_width": search_width,
                             "table": str((out / "tables" / f"eager-w{search_width}.json").relative_to(out)),
                             "random": random_fits,
                             "median_random_ms_at_search_width": medians[search_width]})
        print(f"target {target:.2f} ms: search at width {search_width} (median random {medians[search_width]:.2f} ms); "
              f"random widths {[item['width'] for item in random_fits]}")
    for index, genotype in enumerate(genotypes):
        genotype.save(out / "random" / f"random-0-{index:03d}.json")
    write_json(out / "plan.json", {"targets": plan_targets, "widths": args.widths, "slack": args.slack,
                                   "baselines": list(LIGHT) + [REFERENCE], "baseline_ms": baseline_ms,
                                   "image_size": list(IMAGE_SIZE), "cpu": cpu_model(), "date": str(datetime.date.today())})
    print(f"wrote {out / 'plan.json'}")


# ---- 2. run --------------------------------------------------------------------------------------


def train_trial(args: argparse.Namespace, folder: Path, seed: int, model: str, genotype: Path | None = None,
                width: int | None = None) -> Trial:
    """Train ``folder`` (resumed or reused by the executor), then score its best.pt on val."""
    flags = ["--config", str(TRAIN_CONFIG), "--root", str(args.root), "--seed", str(seed), "--device", args.device,
             "--no-progress", "--model", model, "--set", f"data.holdout={args.holdout}",
             "--set", "train.select_split=holdout", *args.train_set]
    if model == "searchnet":
        flags += ["--genotype", str(genotype), "--width", str(width), "--set", "model.flops_budget=null"]
    elif model == REFERENCE:
        flags += ["--set", "train.model_scale=paper"]
    evaluate = Step(("eval", str(folder / BEST_CHECKPOINT), "--root", str(args.root), "--split", "val", "--device",
                     args.device, "--json", str(folder / EVAL_VAL), "--no-progress"), folder / EVAL_VAL)
    return Trial(folder.name, "train", folder, flags=tuple(flags), cpus=args.settings.trial_cpus(),
                 gpus=args.settings.gpus, then=(evaluate,))


def searched_width(out: Path, genotype_path: Path, target: float, widths: list[int]) -> int | None:
    """The largest width of the plan whose predicted latency of the genotype fits ``target``."""
    from udarts.genotype import Genotype
    from udarts.latency import LatencyTable

    genotype = Genotype.load(genotype_path)
    predicted = {width: LatencyTable.load(out / "tables" / f"eager-w{width}.json").predict_ms(genotype) for width in widths}
    return largest_fit(predicted, target)[0]


def largest_fit(predicted: dict[int, float], target: float) -> tuple[int | None, float | None]:
    """``(width, ms)``: the largest width whose predicted ms fit ``target``; ``(None, None)`` when none does."""
    fitting = [(width, milliseconds) for width, milliseconds in predicted.items() if milliseconds <= target]
    return max(fitting) if fitting else (None, None)


def run(args: argparse.Namespace) -> None:
    """The searches, then their genotypes' trainings as each search ends; the random genotypes and
    the baselines beside them; every one a trial of ``udarts.app.trials`` (local processes or Ray)."""
    out = args.out
    data = json.loads((out / "plan.json").read_text())
    seeds = [int(seed) for seed in args.seeds.split(",")]
    futures: list[concurrent.futures.Future] = []
    searches: dict[concurrent.futures.Future, tuple[Path, dict[str, Any], int]] = {}
    with TrialExecutor(args.settings.backend, args.settings.jobs, args.settings.address, args.settings.retries) as executor:
        timer = threading.Timer(args.deadline, executor.stop) if args.deadline != float("inf") else None
        if timer is not None:
            timer.daemon = True
            timer.start()

        def retrain(search_dir: Path, target: dict[str, Any], k: int) -> None:
            width = searched_width(out, search_dir / GENOTYPE_FILE, target["target_ms"], data["widths"])
            print(f"{search_dir.name}: derived genotype fits {target['target_ms']:.2f} ms at width {width}", flush=True)
            for seed in seeds if width is not None else ():
                folder = out / f"searched-t{k}-s{search_dir.name.rsplit('-s', 1)[1]}-seed{seed}"
                try:
                    futures.append(executor.submit(train_trial(args, folder, seed, "searchnet",
                                                               genotype=search_dir / GENOTYPE_FILE, width=width)))
                except RuntimeError:  # the deadline stopped the executor: the next run trains it
                    print(f"{folder.name}: not started (deadline)", flush=True)

        for k, target in enumerate(data["targets"]):
            for search_seed in args.search_seeds:
                search_dir = out / f"search-t{k}-s{search_seed}"
                if args.accept_partial_searches and (search_dir / GENOTYPE_FILE).is_file():
                    retrain(search_dir, target, k)  # a partial search's genotype: that of its last finished epoch
                    continue
                trial = Trial(search_dir.name, "search", search_dir, cpus=args.settings.trial_cpus(), gpus=args.settings.gpus,
                              flags=("--config", str(SEARCH_CONFIG), "--root", str(args.root), "--seed", str(search_seed),
                                     "--device", args.device, "--no-progress",
                                     "--latency-target", f"{target['target_ms']:.4f}",
                                     "--latency-table", str(out / target["table"]),
                                     "--set", f"data.holdout={args.holdout}", *args.search_set))
                searches[executor.submit(trial)] = (search_dir, target, k)
        for k, target in enumerate(data["targets"]):
            for item in target["random"]:
                if item["width"] is not None:
                    folder = out / f"random-t{k}-{item['index']:03d}-seed0"
                    genotype = out / "random" / f"random-0-{item['index']:03d}.json"
                    futures.append(executor.submit(train_trial(args, folder, 0, "searchnet", genotype=genotype,
                                                               width=item["width"])))
        for seed in seeds:
            for name in data["baselines"]:
                if name != REFERENCE or args.reference:
                    futures.append(executor.submit(train_trial(args, out / f"{name}-seed{seed}", seed, name)))
        while searches:  # each search's trainings are submitted as it ends
            done, _ = concurrent.futures.wait(list(searches), return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                search_dir, target, k = searches.pop(future)
                futures.append(future)
                if not future.cancelled() and future.exception() is None:
                    retrain(search_dir, target, k)
        concurrent.futures.wait(futures)
        if timer is not None:
            timer.cancel()
    failed = [str(future.exception()) for future in futures if not future.cancelled() and future.exception() is not None]
    print(f"{len(futures) - len(failed)} of {len(futures)} trials ended well" + (f"; failed: {failed}" if failed else ""))



# ---- 3. report -----------------------------------------------------------------------------------


def training_folders(out: Path) -> list[Path]:
    """OUT's training runs, sorted: folders with a config and a metrics log, searches (which also
    write the alphas' log) left out."""
    return sorted(path for path in out.iterdir() if (path / METRICS_LOG).is_file() and (path / CONFIG_FILE).is_file()
                  and not (path / ALPHAS_LOG).is_file())


def scores(folder: Path) -> dict[str, float] | None:
    """Held-out mIoU of best.pt (the epoch the selection split chose) and of the last epoch, val
    mIoU of best.pt (``None`` where best.pt was not scored on val: a run copied back without its
    checkpoints); ``epochs`` and ``of`` say how many of its epochs a run trained (a run stopped early
    is reported as such, with ``--partial``); ``None`` for a run without a finished epoch."""
    import yaml

    from udarts.io import read_jsonl

    records = read_jsonl(folder / METRICS_LOG)
    epochs = (yaml.safe_load((folder / CONFIG_FILE).read_text()) or {}).get("train", {}).get("epochs")
    if not records:
        return None
    best = max(records, key=lambda record: record["val_miou"])
    val = json.loads((folder / EVAL_VAL).read_text())["miou"] if (folder / EVAL_VAL).is_file() else None
    return {"holdout_best": 100 * best["val_miou"], "holdout_last": 100 * records[-1]["val_miou"],
            "val": None if val is None else 100 * val, "epochs": records[-1]["epoch"], "of": epochs,
            "train_minutes": sum(record.get("seconds", 0.0) for record in records) / 60}


def network_of(folder: Path) -> tuple[str, torch.nn.Module]:
    """A run folder's network (from its recorded config; weights do not change latency) and its key."""
    import yaml

    from udarts.builders import model_spec
    from udarts.config import Config
    from udarts.models import build_model

    config = Config.from_dict(yaml.safe_load((folder / CONFIG_FILE).read_text()), origin=str(folder / CONFIG_FILE))
    recorded = Path(config.train.genotype) if config.train.genotype else None
    if recorded is not None and not recorded.is_file():  # trained on another machine: the same place in this OUT
        config = config.updated({"train": {"genotype": str(folder.parent / recorded.parent.name / recorded.name)}}, "report")
    spec = model_spec(config, NUM_CLASSES)
    if spec["name"] != "searchnet":
        return spec["name"], build_model(spec)
    digest = hashlib.sha1(json.dumps(spec["genotype"]["cells"], sort_keys=True).encode()).hexdigest()[:10]
    return f"searchnet-w{spec['width']}-{digest}", build_model(spec)


def hypervolume(points: list[tuple[float, float]], reference_ms: float) -> float:
    """Area dominated by ``(ms, miou)`` points (lower ms, higher mIoU) in the plane of log10(ms) and
    mIoU, bounded by ``reference_ms`` and mIoU 0."""
    import math

    front = sorted((ms, miou) for ms, miou in points if ms < reference_ms)
    area, best = 0.0, 0.0
    for index, (ms, miou) in enumerate(front):
        best = max(best, miou)
        right = front[index + 1][0] if index + 1 < len(front) else reference_ms
        area += (math.log10(right) - math.log10(ms)) * best
    return area


def time_networks(networks: dict[str, torch.nn.Module], rounds: int = 7) -> dict[str, dict[str, float]]:
    """Parameters, GFLOPs per 96x128 image and latency of each network, all timed side by side in
    this process (batch 1, one thread): eager PyTorch in ``rounds`` interleaved rounds (median),
    then onnxruntime."""
    from udarts.complexity import count_flops, count_parameters, measure_latencies
    from udarts.efficiency import torch_threads
    from udarts.latency.measure import time_modules

    print(f"timing {len(networks)} networks side by side (eager, then onnxruntime; 1 thread, batch 1) ...", flush=True)
    shape = (1, 3, *IMAGE_SIZE)
    with torch_threads(1):
        eager = {key: 1000 * value for key, value in measure_latencies(networks, shape, rounds=rounds, repeats=10).items()}
    onnx = time_modules({key: (module, (torch.zeros(shape),)) for key, module in networks.items()}, "onnxruntime",
                        rounds=5, seconds_per_part=0.1, max_repeats=20)
    return {key: {"parameters": count_parameters(module), "gflops": count_flops(module, shape) / 1e9,
                  "ms_eager": eager[key], "ms_onnxruntime": onnx[key]} for key, module in networks.items()}


def report(args: argparse.Namespace) -> None:
    from udarts.complexity import cpu_model

    out = args.out
    data = json.loads((out / "plan.json").read_text())
    runs: list[dict[str, Any]] = []
    for folder in training_folders(out):
        result = scores(folder)
        if result is None or (result["epochs"] != result["of"] and not args.partial):
            print(f"{folder.name}: not finished, left out" + (" (--partial reports it)" if result else ""))
            continue
        name = folder.name
        group = "searched" if name.startswith("searched-") else "random" if name.startswith("random-") else "baseline"
        target = int(name.split("-t")[1].split("-")[0]) if group != "baseline" else None
        model = name.rsplit("-seed", 1)[0] if group == "baseline" else "searchnet"
        runs.append({"folder": name, "group": group, "target": target, "model": model,
                     "seed": int(name.rsplit("seed", 1)[1]), **result})
    networks: dict[str, torch.nn.Module] = {}
    for run in runs:
        run["network"], module = network_of(out / run["folder"])
        networks.setdefault(run["network"], module)
    costs = time_networks(networks)
    for run in runs:
        run.update(costs[run["network"]])
    summary = summarise(runs, data)
    summary.update({"cpu": cpu_model(), "date": str(datetime.date.today()), "torch": torch.__version__})
    print(render(summary, runs, data))
    if args.json:
        write_json(args.json, {"summary": summary, "runs": runs, "plan": data})
    if args.plot:
        plot(summary, runs, data, args.plot)
        print(f"wrote {args.plot}")


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def finished_first(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs that trained every epoch, or all of them when none did (then marked by their epochs)."""
    return [run for run in items if run["epochs"] == run["of"]] or items


def summarise(runs: list[dict[str, Any]], data: dict[str, Any]) -> dict[str, Any]:
    """Per target: the searched genotype (mean +- std over seeds), the random ones, the baselines at
    most as slow, the searched genotype's percentile; each front's hypervolume. A group with runs
    that trained every epoch is summarised by those alone."""
    runs = [run for group in _groups(runs).values() for run in finished_first(group)]
    by_model: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        if run["group"] == "baseline":
            by_model.setdefault(run["model"], []).append(run)
    baselines = {name: {"holdout": _mean_std([r["holdout_best"] for r in items]), "ms": items[0]["ms_eager"],
                        "seeds": len(items)} for name, items in by_model.items()}
    targets = []
    for k, target in enumerate(data["targets"]):
        searched = [run for run in runs if run["group"] == "searched" and run["target"] == k]
        random = [run for run in runs if run["group"] == "random" and run["target"] == k]
        entry: dict[str, Any] = {"target_ms": target["target_ms"], "searched_seeds": len(searched), "random": len(random),
                                 "searched_epochs": sorted({f"{r['epochs']}/{r['of']}" for r in searched})}
        if searched:
            mean, std = _mean_std([run["holdout_best"] for run in searched])
            entry.update({"searched_holdout": [mean, std], "searched_ms": statistics.fmean(r["ms_eager"] for r in searched)})
            if random:
                values = sorted(run["holdout_best"] for run in random)
                entry["percentile"] = 100 * sum(value < mean for value in values) / len(values)
                entry["random_p75"] = statistics.quantiles(values, n=4)[2] if len(values) > 1 else values[0]
            slower = [name for name, item in baselines.items() if item["ms"] >= entry["searched_ms"] and name != REFERENCE]
            entry["beats_baselines_at_least_as_slow"] = {
                name: mean - baselines[name]["holdout"][0] > max(std, baselines[name]["holdout"][1]) for name in slower}
        if random:
            entry["random_holdout"] = list(_mean_std([run["holdout_best"] for run in random]))
        targets.append(entry)
    reference_ms = 1.05 * max(run["ms_eager"] for run in runs)
    fronts = {group: hypervolume([(run["ms_eager"], run["holdout_best"]) for run in runs if run["group"] == group],
                                 reference_ms) for group in ("searched", "random")}
    fronts["light baselines"] = hypervolume([(item["ms"], item["holdout"][0]) for name, item in baselines.items()
                                             if name != REFERENCE], reference_ms)
    return {"targets": targets, "baselines": baselines, "hypervolume": fronts, "hypervolume_reference_ms": reference_ms}


def _groups(runs: list[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    """Runs by (group, target, network): the seeds of one network at one target."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run in runs:
        label = run["model"] if run["group"] == "baseline" else run["folder"].rsplit("-seed", 1)[0]
        groups.setdefault((run["group"] != "baseline", run["target"] if run["target"] is not None else -1, label), []).append(run)
    return groups


def render(summary: dict[str, Any], runs: list[dict[str, Any]], data: dict[str, Any]) -> str:
    lines = [f"Machine: {summary['cpu']}, batch 1, one thread; torch {summary['torch']}; {summary['date']}.", "",
             f"| network | target | width | seeds | epochs | held-out mIoU ({BEST_CHECKPOINT}) | held-out (last) | val mIoU | params "
             "| GFLOPs | ms eager | ms onnxruntime | train min |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (_, target, label), items in sorted(_groups(runs).items(), key=lambda item: (item[1][0]["ms_eager"], item[0][2])):
        first = items[0]
        width = "" if first["group"] == "baseline" else first["network"].split("-w")[1].split("-")[0]
        def cell(key: str) -> str:
            values = [run[key] for run in items if run[key] is not None]
            if not values:
                return "n/a"
            mean, std = _mean_std(values)
            return f"{mean:.2f} +- {std:.2f}" if len(values) > 1 else f"{mean:.2f}"

        target_ms = f"{data['targets'][target]['target_ms']:.1f}" if target >= 0 else ""
        epochs = ", ".join(sorted({str(r["epochs"]) if r["epochs"] == r["of"] else f"{r['epochs']}/{r['of']}" for r in items}))
        lines.append(f"| {label} | {target_ms} | {width} | {len(items)} | {epochs} | {cell('holdout_best')} | {cell('holdout_last')} "
                     f"| {cell('val')} | {first['parameters'] / 1e6:.2f} M | {first['gflops']:.3f} | {first['ms_eager']:.2f} "
                     f"| {first['ms_onnxruntime']:.2f} | {statistics.fmean(r['train_minutes'] for r in items):.1f} |")
    lines += ["", "| target ms | searched held-out | searched ms | random held-out (n) | random 75th pct | searched "
              "percentile | above every light baseline at least as slow, by more than the spread |",
              "|---:|---:|---:|---:|---:|---:|---|"]
    for entry in summary["targets"]:
        searched = entry.get("searched_holdout")
        random = entry.get("random_holdout")
        beats = entry.get("beats_baselines_at_least_as_slow", {})
        searched_text = f"{searched[0]:.2f} +- {searched[1]:.2f}" if searched else "n/a"
        if searched and entry["searched_epochs"] != ["40/40"]:
            searched_text += f" ({', '.join(entry['searched_epochs'])} epochs)"
        random_text = f"{random[0]:.2f} +- {random[1]:.2f} ({entry['random']})" if random else "n/a"
        beats_text = ", ".join(f"{name}: {'yes' if won else 'no'}" for name, won in beats.items()) or "none as slow"
        lines.append(f"| {entry['target_ms']:.1f} | {searched_text} | {entry.get('searched_ms', float('nan')):.2f} "
                     f"| {random_text} | {entry.get('random_p75', float('nan')):.2f} "
                     f"| {entry.get('percentile', float('nan')):.0f} | {beats_text} |")
    volumes = summary["hypervolume"]
    lines += ["", "Hypervolume (log10 ms x mIoU, reference " f"{summary['hypervolume_reference_ms']:.1f} ms, mIoU 0): "
              + ", ".join(f"{group} {value:.2f}" for group, value in volumes.items())]
    return "\n".join(lines)


def log_milliseconds_axis(axes) -> None:
    """A log-scale x axis labelled in plain milliseconds (5, 10, 20) rather than powers of ten."""
    from matplotlib.ticker import FormatStrFormatter

    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    axes.xaxis.set_minor_formatter(FormatStrFormatter("%g"))


def plot(summary: dict[str, Any], runs: list[dict[str, Any]], data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5.5))
    random = [run for run in runs if run["group"] == "random"]
    axes.scatter([r["ms_eager"] for r in random], [r["holdout_best"] for r in random], s=18, color="0.6",
                 label="random genotypes fitted to the targets (1 seed)")
    searched: dict[int, list[dict[str, Any]]] = {}
    for run in runs:
        if run["group"] == "searched":
            searched.setdefault(run["target"], []).append(run)
    points = []
    for items in searched.values():
        items = finished_first(items)
        epochs = "" if items[0]["epochs"] == items[0]["of"] else f"{items[0]['epochs']}/{items[0]['of']} epochs"
        points.append((statistics.fmean(r["ms_eager"] for r in items), *_mean_std([r["holdout_best"] for r in items]), epochs))
    points.sort()
    if points:
        axes.errorbar([p[0] for p in points], [p[1] for p in points], yerr=[p[2] for p in points], color="tab:red",
                      marker="o", capsize=3, label="latency-targeted SEARCH-Net (mean +- std, 3 seeds)")
        for ms, miou, _, epochs in points:
            if epochs:
                axes.annotate(epochs, (ms, miou), fontsize=7, color="tab:red", xytext=(4, 6), textcoords="offset points")
    for name, item in summary["baselines"].items():
        colour = "black" if name == REFERENCE else "tab:blue"
        axes.errorbar([item["ms"]], [item["holdout"][0]], yerr=[item["holdout"][1]], color=colour, marker="s", capsize=3)
        axes.annotate(name.replace("_", " "), (item["ms"], item["holdout"][0]), fontsize=7, xytext=(4, -10),
                      textcoords="offset points")
    for target in data["targets"]:
        axes.axvline(target["target_ms"], color="0.85", linestyle="--", zorder=0)
    log_milliseconds_axis(axes)
    axes.set_xlabel("CPU latency, ms (batch 1, one thread, eager PyTorch, 96x128)")
    axes.set_ylabel(f"held-out mIoU (CamVid 0006R0, {BEST_CHECKPOINT})")
    axes.set_title("CamVid, 40 epochs: accuracy against latency")
    axes.plot([], [], "s", color="tab:blue", label="light baselines (mean +- std over seeds)")
    axes.plot([], [], "s", color="black", label="ResNet-34 UNet, the protocol's reference")
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=130)


def collect_scores(args: argparse.Namespace) -> dict[str, Any]:
    """The record ``scores`` prints from: OUT's training folders grouped by name (``NAME-seedN``),
    each run's scores, and with ``--time`` each group's network timed side by side
    (``time_networks``) and the groups sorted by latency. ``--json`` keeps it, so that the table and
    the picture can be drawn again (``--from-json``) once the run folders are gone."""
    groups: dict[str, dict[str, Any]] = {}
    folders: dict[str, Path] = {}
    for folder in training_folders(args.out):
        score = scores(folder)
        if score is not None and (args.partial or score["epochs"] == score["of"]):
            name = folder.name.rsplit("-seed", 1)[0]
            groups.setdefault(name, {"runs": []})["runs"].append({"folder": folder.name, **score})
            folders.setdefault(name, folder)
    record: dict[str, Any] = {"date": str(datetime.date.today()), "groups": groups}
    if args.time:
        from udarts.complexity import cpu_model

        networks = {name: network_of(folder) for name, folder in folders.items()}
        timed = time_networks({key: module for key, module in networks.values()}, rounds=args.rounds)
        for name, (key, _) in networks.items():
            groups[name].update(network=key, costs=timed[key])
        record.update(machine=f"{cpu_model()}, batch 1, one thread; torch {torch.__version__}",
                      groups=dict(sorted(groups.items(), key=lambda item: item[1]["costs"]["ms_eager"])))
    return record


def scores_table(args: argparse.Namespace) -> None:
    """The held-out (best.pt and last epoch) and val mIoU per group of seeds, from OUT's training
    folders (``collect_scores``) or from a record ``--json`` wrote (``--from-json``); with costs,
    the rows carry them (sorted by latency) and ``--plot`` draws held-out mIoU against latency."""
    if args.from_json:
        try:
            record = json.loads(args.from_json.read_text())
        except (OSError, ValueError) as error:
            raise SystemExit(f"scores --from-json {args.from_json}: expected a record written by scores --json ({error})")
        if not isinstance(record, dict) or not isinstance(record.get("groups"), dict):
            raise SystemExit(f"scores --from-json {args.from_json}: expected a record written by scores --json "
                             "(an object with its groups)")
    else:
        record = collect_scores(args)
        if args.json:
            write_json(args.json, record)
    groups = record["groups"]
    timed = bool(groups) and all("costs" in group for group in groups.values())
    if "machine" in record:
        print(f"Machine: {record['machine']}; {record['date']}.\n")

    def cell(items: list[dict[str, float]], key: str) -> str:
        values = [item[key] for item in items if item[key] is not None]
        if not values:
            return "n/a"
        mean, std = _mean_std(values)
        return f"{mean:.2f} +- {std:.2f}" if len(values) > 1 else f"{mean:.2f}"

    timed_header = " params | GFLOPs | ms eager | ms onnxruntime |" if timed else ""
    print(f"| network | seeds | epochs | held-out mIoU ({BEST_CHECKPOINT}) | held-out (last) | val mIoU |{timed_header} train min |")
    print("|---|---:|---:|---:|---:|---:|" + "---:|" * (4 if timed else 0) + "---:|")
    for name, group in groups.items():
        items = group["runs"]
        epochs = ", ".join(sorted({f"{item['epochs']}/{item['of']}" if item["epochs"] != item["of"] else str(item["of"])
                                   for item in items}))
        timed_cells = ""
        if timed:
            cost = group["costs"]
            timed_cells = (f" {cost['parameters'] / 1e6:.2f} M | {cost['gflops']:.3f} | {cost['ms_eager']:.2f} "
                           f"| {cost['ms_onnxruntime']:.2f} |")
        print(f"| {name} | {len(items)} | {epochs} | {cell(items, 'holdout_best')} | {cell(items, 'holdout_last')} "
              f"| {cell(items, 'val')} |{timed_cells} {statistics.fmean(item['train_minutes'] for item in items):.1f} |")
    if args.plot:
        if not timed:
            raise SystemExit("scores --plot: the groups have no latency (run with --time, or a record written with --time)")
        plot_scores(groups, args.plot, record.get("machine", ""))
        print(f"wrote {args.plot}")


def plot_scores(groups: dict[str, dict[str, Any]], path: Path, machine: str = "") -> None:
    """Held-out mIoU (mean +- std over seeds) against eager latency, one labelled point a group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5.5))
    for name, group in groups.items():
        mean, std = _mean_std([item["holdout_best"] for item in group["runs"]])
        ms = group["costs"]["ms_eager"]
        searched = group["network"].startswith("searchnet")
        colour = "tab:red" if searched else "black" if name.startswith(REFERENCE) else "tab:blue"
        axes.errorbar([ms], [mean], yerr=[std], color=colour, marker="o" if searched else "s", capsize=3)
        axes.annotate(f"{name} ({len(group['runs'])})", (ms, mean), fontsize=7, xytext=(4, 5), textcoords="offset points")
    axes.plot([], [], "o", color="tab:red", label="SEARCH-Net (mean +- std over seeds; seeds in brackets)")
    axes.plot([], [], "s", color="tab:blue", label="light baselines")
    log_milliseconds_axis(axes)
    axes.set_xlabel("CPU latency, ms (batch 1, one thread, eager PyTorch, 96x128; timed side by side)")
    axes.set_ylabel(f"held-out mIoU (CamVid 0006R0, {BEST_CHECKPOINT})")
    axes.set_title("CamVid, 40 epochs, every network trained on the CPU" + (f"\n{machine}" if machine else ""),
                   fontsize=10)
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=130)


def fit_widths(args: argparse.Namespace) -> None:
    """Each ``--genotypes`` file at each of ``--widths``, timed side by side with ``--target-models``
    in one process (eager, one thread, batch 1, interleaved rounds), and for each genotype and
    baseline the largest width at or below the baseline's latency: a width fit that a busy machine
    cannot skew, since every network sees the same load."""
    from udarts.complexity import count_flops, cpu_model, measure_latencies
    from udarts.efficiency import torch_threads
    from udarts.genotype import Genotype
    from udarts.models import build_model

    shape = (1, 3, *IMAGE_SIZE)
    baselines = [name for name in args.target_models.split(",") if name]
    networks = {name: build_model(baseline_spec(name)) for name in baselines}
    for path in args.genotypes:
        genotype = Genotype.load(path).to_dict()
        for width in args.widths:
            networks[f"{path.stem}@w{width}"] = build_model({"name": "searchnet", "genotype": genotype, "width": width,
                                                            "in_channels": 3, "num_classes": NUM_CLASSES})
    print(f"timing {len(networks)} networks side by side (eager, 1 thread, batch 1, {args.rounds} rounds) "
          f"on {cpu_model()}, {datetime.date.today()} ...")
    with torch_threads(1):
        ms = {key: 1000 * value for key, value in measure_latencies(networks, shape, rounds=args.rounds, repeats=10).items()}
    print("| network | GFLOPs | ms eager |\n|---|---:|---:|")
    for key, module in networks.items():
        print(f"| {key} | {count_flops(module, shape) / 1e9:.3f} | {ms[key]:.2f} |")
    print("\n| genotype | " + " | ".join(f"largest width at or below {name} ({ms[name]:.1f} ms)" for name in baselines)
          + " |\n|---|" + "---:|" * len(baselines))
    for path in args.genotypes:
        fits = []
        for name in baselines:
            width, fitted_ms = largest_fit({width: ms[f"{path.stem}@w{width}"] for width in args.widths}, ms[name])
            fits.append("none" if width is None else f"{width} ({fitted_ms:.1f} ms)")
        print(f"| {path.stem} | " + " | ".join(fits) + " |")


# ---- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("plan", "run", "report", "scores", "fit"))
    parser.add_argument("--root", type=Path, help="CamVid root (SegNet layout); plan, run and report")
    parser.add_argument("--out", type=Path, help="the benchmark's folder (reused on a re-run); every step but "
                        "scores --from-json")
    parser.add_argument("--holdout", default="0006R0", help="training sequence held out: the selection split")
    parser.add_argument("--target-models", default="lraspp_mobilenet_v3_large,unet_mobilenet_v2,unet_resnet18",
                        help="plan: the baselines whose latencies are the targets")
    parser.add_argument("--widths", default="3-20", help="plan: SEARCH-Net widths with a latency table, e.g. 3-20")
    parser.add_argument("--calibrate", type=int, default=8, help="plan: whole networks each table is calibrated on")
    parser.add_argument("--random", type=int, default=8, help="plan: random genotypes fitted to each target")
    parser.add_argument("--slack", type=float, default=0.7, help="plan: the search's target as a share of a typical "
                        "random genotype's latency at the width it searches at")
    parser.add_argument("--seeds", default="0,1,2", help="run: training seeds of the searched genotypes and baselines")
    parser.add_argument("--search-seeds", default="0", help="run: search seeds per target")
    parser.add_argument("--search-set", action="append", default=[], metavar="KEY=VALUE",
                        help="run: a config override for the searches (repeatable)")
    parser.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE",
                        help="run: a config override for the trainings (repeatable; for a quick check only)")
    parser.add_argument("--accept-partial-searches", action="store_true",
                        help="run: retrain the genotype of a search stopped early (its last finished epoch) instead of "
                             "searching on")
    parser.add_argument("--reference", action="store_true", help="run: also train the ResNet-34 UNet")
    parser.add_argument("--device", default="cpu", help="run: where the trainings run (cpu, cuda)")
    parser.add_argument("--deadline", type=float, default=float("inf"), help="run: seconds after which the running "
                        "trials stop (they resume on the next run)")
    add_executor_arguments(parser, cpus_default=1)
    parser.add_argument("--plot", type=Path, help="report, scores (with --time): the picture's path")
    parser.add_argument("--time", action="store_true", help="scores: also time each group's network side by side")
    parser.add_argument("--partial", action="store_true", help="report, scores: also runs stopped before their last epoch, "
                        "marked with the epochs they trained")
    parser.add_argument("--json", type=Path, help="report, scores: also write the numbers here (scores: a record "
                        "that --from-json draws again without the run folders)")
    parser.add_argument("--from-json", type=Path, help="scores: the table (and --plot) from a record --json wrote")
    parser.add_argument("--genotypes", type=Path, nargs="+", default=[], help="fit: genotype files to time at --widths")
    parser.add_argument("--rounds", type=int, default=7, help="fit, scores --time: interleaved timing rounds (median)")
    args = parser.parse_args()
    if args.out is None and not (args.step == "scores" and args.from_json):
        parser.error(f"{args.step} needs --out (the benchmark's folder)")
    if args.step == "scores":
        if args.plot and not (args.time or args.from_json):
            parser.error("scores --plot needs --time (the picture's x axis is the latency)")
        torch.set_num_threads(1)
        scores_table(args)
        return
    low, _, high = args.widths.partition("-")
    args.widths = list(range(int(low), int(high or low) + 1))
    if args.step == "fit":
        if not args.genotypes:
            parser.error("fit needs --genotypes FILE [FILE ...]")
        torch.set_num_threads(1)
        fit_widths(args)
        return
    if args.root is None:
        parser.error(f"{args.step} needs --root (the CamVid root)")
    args.search_seeds = [int(seed) for seed in args.search_seeds.split(",")]
    args.search_set = [item for assignment in args.search_set for item in ("--set", assignment)]
    args.train_set = [item for assignment in args.train_set for item in ("--set", assignment)]
    args.settings = executor_settings(args)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    {"plan": plan, "run": run, "report": report}[args.step](args)


if __name__ == "__main__":
    main()
