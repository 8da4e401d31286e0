"""Search cost at a fair budget: one search epoch against one training epoch of the UNet baseline,
and SEARCH-Net's size and speed against UNet's, in one run on one machine.

What it runs, in process, through the same code as the ``udarts`` command:

1. ``udarts search`` for ``--epochs`` epochs (the supernet at ``--width``, first-order DARTS
   unless ``--set search.order=second`` or another ``--set`` says otherwise);
2. ``udarts train --model unet_resnet34`` (smp UNet on a ResNet-34 encoder at
   ``--unet-scale``) for as many epochs, on the same data, image size and batch size;
3. the parameters, FLOPs (one 1x3xHxW image, ``torch.utils.flop_counter``) and CPU latency
   (median of ``--latency-repeats`` forward passes at batch 1) of SEARCH-Net built from the
   genotype the search derived, of the same UNet, and of the classic UNet (Ronneberger et al.,
   paper scale 64 -> 1024 channels); plus the supernet's size and FLOPs.

An epoch's time is what each command logs in ``metrics.jsonl``: a search epoch is one pass over
both halves of the train split with a weight step and an architecture step per batch pair; a
training epoch is one pass over the train split plus the validation pass. The ratio uses the
mean of the epochs after the first (the first one pays start-up costs) when there are several.

    python bench/bench_search_cost.py                         # CamVid 96x128, width 16, 2 epochs
    python bench/bench_search_cost.py --width 8 --epochs 3
    python bench/bench_search_cost.py --set search.mode=pc_darts
    python bench/bench_search_cost.py --quick                 # a check that it runs (seconds)

Prints a Markdown section for BENCHMARKS.md; ``--json FILE`` also writes the numbers. Run it with
``OMP_NUM_THREADS`` set to the cores you mean to use (the latency depends on it).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from udarts import experiment
from udarts.builders import describe_supernet, resolve_device
from udarts.complexity import count_flops, count_parameters, cpu_model, measure_latency
from udarts.config import Config, parse_assignment, resolve
from udarts.engine.layout import GENOTYPE_FILE, LAST_CHECKPOINT, METRICS_LOG
from udarts.engine.runs import load_checkpoint
from udarts.genotype import Genotype
from udarts.io import read_jsonl
from udarts.models import build_model

REPO_ROOT = Path(__file__).resolve().parents[1]
QUICK = {"data": "synthetic", "width": 8, "image_size": "32x32", "batch_size": 4, "epochs": 1, "num_samples": 16,
         "latency_repeats": 2, "unet_scale": "cpu"}


def parse_size(text: str) -> list[int]:
    height, width = (int(side) for side in text.lower().split("x"))
    return [height, width]


def base_config(args: argparse.Namespace) -> Config:
    """The config both commands share: data, size, batch, width, seed, CPU, no progress bars."""
    data: dict[str, Any] = {"name": args.data, "image_size": parse_size(args.image_size), "batch_size": args.batch_size,
                            "num_samples": args.num_samples}
    if args.data != "synthetic":
        data["root"] = str(args.root)
    shared = {"seed": args.seed, "device": args.device, "progress": False, "data": data, "model": {"width": args.width},
              "search": {"epochs": args.epochs, "warmup_epochs": 0}, "train": {"epochs": args.epochs}}
    overrides = [(shared, "bench settings")] + [(parse_assignment(item), f"--set {item}") for item in args.set or []]
    return resolve(None, overrides)


def epoch_seconds(run_dir: Path) -> dict[str, Any]:
    """Per-epoch seconds from ``metrics.jsonl`` and the steady-state figure (epochs after the first)."""
    seconds = [float(record["seconds"]) for record in read_jsonl(run_dir / METRICS_LOG)]
    steady = seconds[1:] if len(seconds) > 1 else seconds
    return {"per_epoch": seconds, "steady": statistics.fmean(steady)}


def measure(spec: dict[str, Any], image_size: list[int], device: torch.device, repeats: int) -> dict[str, Any]:
    model = build_model(spec).to(device).eval()
    shape = (1, 3, *image_size)
    return {
        "parameters": count_parameters(model),
        "gflops": count_flops(model, shape, device=device) / 1e9,
        "latency_ms": 1000 * measure_latency(model, shape, device=device, warmup=2, repeats=repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_shared = Path(os.environ.get("UDARTS_SHARED_DATA", str(REPO_ROOT.parent / "shared" / "data")))
    parser.add_argument("--data", default="camvid", help="camvid (default) | pets | synthetic")
    parser.add_argument("--root", type=Path, default=default_shared / "camvid", help="dataset root")
    parser.add_argument("--width", type=int, default=16, help="SEARCH-Net / supernet base width")
    parser.add_argument("--image-size", default="96x128", help="HEIGHTxWIDTH")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-samples", type=int, default=256, help="synthetic: training images")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each command")
    parser.add_argument("--unet-scale", default="paper", help="scale of the unet_resnet34 baseline: paper (ResNet-34) | cpu")
    parser.add_argument("--latency-repeats", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override for both commands")
    parser.add_argument("--out", type=Path, help="keep the run folders here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument("--quick", action="store_true", help="tiny synthetic settings: checks that the script runs")
    args = parser.parse_args()
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if args.unet_scale == "cpu":
        unet_options = {"encoder_name": "resnet34"}  # the cpu scale's ResNet-18 would not be the baseline named here
    else:
        unet_options = {}

    config = base_config(args)
    device = resolve_device(config.device)
    out = args.out or Path(tempfile.mkdtemp(prefix="udarts-bench-"))
    load_before = os.getloadavg()[0]
    started = time.perf_counter()

    print(f"[1/3] search: {args.epochs} epoch(s), width {args.width}, {args.image_size}, {args.data}", file=sys.stderr)
    search_dir = experiment.run_search(config, out / "search").run_dir
    print(f"[2/3] train unet_resnet34 ({args.unet_scale}): {args.epochs} epoch(s)", file=sys.stderr)
    train_config = config.updated({"train": {"model": "unet_resnet34", "model_scale": args.unet_scale,
                                             "model_options": unet_options}}, "bench")
    train_dir = experiment.run_train(train_config, out / "train-unet").run_dir
    search_time, train_time = epoch_seconds(search_dir), epoch_seconds(train_dir)

    print("[3/3] parameters, FLOPs and latency", file=sys.stderr)
    state = load_checkpoint(train_dir / LAST_CHECKPOINT)
    num_classes = len(state["class_names"])
    image_size = list(config.data.image_size)
    genotype = Genotype.load(search_dir / GENOTYPE_FILE)
    specs = {
        f"SEARCH-Net (width {args.width}, searched here)": {
            "name": "searchnet", "genotype": genotype.to_dict(), "width": args.width, "in_channels": 3, "num_classes": num_classes},
        f"UNet, smp ResNet-34 ({args.unet_scale} scale)": state["model_spec"],
        "UNet, classic (paper scale, 64 -> 1024)": {
            "name": "unet", "scale": "paper", "options": {}, "in_channels": 3, "num_classes": num_classes},
    }
    costs = {name: measure(spec, image_size, device, args.latency_repeats) for name, spec in specs.items()}
    supernet = describe_supernet(config, num_classes)
    total_minutes = (time.perf_counter() - started) / 60

    ratio = search_time["steady"] / train_time["steady"]
    result = {
        "settings": {key: getattr(args, key) for key in ("data", "width", "image_size", "batch_size", "epochs", "unet_scale",
                                                          "latency_repeats", "seed", "device")},
        "set": args.set or [], "root": str(args.root) if args.data != "synthetic" else None,
        "search_epoch_seconds": search_time, "unet_train_epoch_seconds": train_time, "ratio": ratio,
        "costs": costs, "supernet": {"parameters": supernet["parameters"], "gflops": supernet["forward_gflops_per_image"]},
        "threads": torch.get_num_threads(), "cpu": cpu_model(), "torch": torch.__version__, "minutes": total_minutes,
        "load_average": [load_before, os.getloadavg()[0]], "run_folders": str(out),
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")

    command = "python bench/bench_search_cost.py " + " ".join(sys.argv[1:])
    print("## Search cost against training the UNet baseline\n")
    print(f"Command: `OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')} {command.strip()}`  ")
    print(f"Settings: {args.data}, {args.image_size}, batch {args.batch_size}, width {args.width}, {args.epochs} epoch(s) "
          f"each, seed {args.seed}, device {device}{'; ' + ', '.join(args.set) if args.set else ''}.  ")
    print(f"Machine: {cpu_model()}, {os.cpu_count()} CPU cores, torch {torch.__version__} on {torch.get_num_threads()} "
          f"thread(s); 1-minute load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after.  ")
    print(f"Date: {datetime.date.today().isoformat()}; the whole run took {total_minutes:.1f} min.\n")
    print("| | seconds per epoch (each epoch) | steady epoch s |")
    print("|---|---|---:|")
    print(f"| search epoch (supernet, {supernet['parameters'] / 1e6:.1f} M parameters) | "
          f"{', '.join(f'{s:.1f}' for s in search_time['per_epoch'])} | {search_time['steady']:.1f} |")
    print(f"| training epoch, UNet ResNet-34 ({args.unet_scale}) | "
          f"{', '.join(f'{s:.1f}' for s in train_time['per_epoch'])} | {train_time['steady']:.1f} |")
    print(f"\n**One search epoch costs {ratio:.1f} training epochs of the UNet baseline** at this setting.\n")
    print(f"| model | parameters | GFLOPs ({image_size[0]}x{image_size[1]}) | CPU latency, batch 1 (ms) |")
    print("|---|---:|---:|---:|")
    print(f"| supernet (search, width {args.width}) | {supernet['parameters'] / 1e6:.2f} M | "
          f"{supernet['forward_gflops_per_image']:.2f} | - |")
    for name, cost in costs.items():
        print(f"| {name} | {cost['parameters'] / 1e6:.2f} M | {cost['gflops']:.2f} | {cost['latency_ms']:.1f} |")
    print("\nA search epoch is one pass over both halves of the train split (a weight step and an architecture step "
          "per pair of batches); a training epoch is one pass over the train split plus the validation pass, as "
          "each command logs them. FLOPs count a multiply-add as 2. SEARCH-Net's genotype comes from this run's "
          f"short search, so its size is that of one possible cell choice. Run folders: `{out}`.")


if __name__ == "__main__":
    main()
