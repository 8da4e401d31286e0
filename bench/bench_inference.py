"""Inference latency and throughput: PyTorch eager against ONNX Runtime fp32 and int8, side by side.

For SEARCH-Net (``configs/genotypes/pets-cpu-w8-seed0.json`` at width 12, the README's CamVid
network) and the ResNet-34 UNet (``unet_resnet34`` at ``model_scale=paper``), both with 11 classes
(CamVid) and random weights (speed does not depend on the weights), at 96x128 and 360x480, batch
1 and 8, the script times in one process, one after the other:

* PyTorch eager (``torch.no_grad``, eval mode);
* ONNX Runtime fp32 (CPUExecutionProvider, or CUDA with ``--device cuda``) on the file ``udarts
  export`` writes (opset 17), run through udarts' runner (which zero-pads the ResNet UNet's
  360x480 input to 384x480 and crops back, as the PyTorch model does);
* ONNX Runtime int8: static QDQ quantisation (per-channel int8 weights, int8 activations
  calibrated on ``--calib`` images at 96x128, or on random normalised images without it).

Each cell is the median of ``--repeats`` timed calls after ``--warmup`` untimed ones. PyTorch and
onnxruntime both get ``torch.get_num_threads()`` intra-op threads (set ``OMP_NUM_THREADS``).
torch.compile is left out by default: on this CPU it did not pay for a search step (BENCHMARKS.md,
"torch.compile") and compiling for four input shapes per model would take longer than the whole
run; ``--compile`` adds its column (compilation happens in the warm-up calls, not timed).

    OMP_NUM_THREADS=1 python bench/bench_inference.py --calib ../shared/data/camvid/train
    python bench/bench_inference.py --quick      # tiny sizes, a smoke test of the script

Prints a Markdown section (machine, date, load, command, one table with the ratios); ``--json
FILE`` also writes the raw numbers.
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
from typing import Any, Callable

import torch

from udarts.app.export import export_model, load_exported, quantize_onnx
from udarts.complexity import cpu_model
from udarts.models import build_model

REPO = Path(__file__).resolve().parents[1]
GENOTYPE = REPO / "configs" / "genotypes" / "pets-cpu-w8-seed0.json"
NUM_CLASSES = 11


def model_specs(quick: bool) -> dict[str, dict[str, Any]]:
    genotype = json.loads(GENOTYPE.read_text())
    width = 4 if quick else 12
    return {
        f"SEARCH-Net (w = {width})": {"name": "searchnet", "genotype": genotype, "width": width,
                                "in_channels": 3, "num_classes": NUM_CLASSES},
        f"UNet-ResNet34 ({'cpu' if quick else 'paper'})": {"name": "unet_resnet34", "scale": "cpu" if quick else "paper", "options": {},
                                  "in_channels": 3, "num_classes": NUM_CLASSES},
    }


def median_ms(call: Callable[[], Any], warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def export_pair(model: torch.nn.Module, spec: dict[str, Any], folder: Path, calib: str | None) -> tuple[Path, Path]:
    """The fp32 ONNX file of ``model`` and its static int8 copy."""
    state = {"model_spec": spec, "class_names": [f"c{i}" for i in range(NUM_CLASSES)], "ignore_index": None,
             "palette": None, "image_size": [96, 128], "config": None}
    fp32 = folder / f"{spec['name']}.onnx"
    export_model(model, state, "onnx", fp32, check=False)
    int8 = folder / f"{spec['name']}-int8-static.onnx"
    if calib is None:  # random normalised images as the calibration set
        import numpy as np
        from PIL import Image

        calib_folder = folder / "calib"
        calib_folder.mkdir(exist_ok=True)
        generator = np.random.default_rng(0)
        for index in range(8):
            Image.fromarray(generator.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(calib_folder / f"{index}.png")
        calib = str(calib_folder)
    quantize_onnx(fp32, int8, "static", calib=calib, max_images=16)
    return fp32, int8


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny widths and sizes: checks the script, measures nothing useful")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda (PyTorch on CUDA, onnxruntime's CUDA provider)")
    parser.add_argument("--calib", help="folder of images to calibrate the int8 models on (default: random images)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (compile time not counted)")
    parser.add_argument("--json", help="also write the raw numbers here")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    sizes = [(32, 48), (48, 64)] if args.quick else [(96, 128), (360, 480)]
    batches = [1, 2] if args.quick else [1, 8]
    threads = torch.get_num_threads()
    load_before = os.getloadavg()
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as temporary:
        for label, spec in model_specs(args.quick).items():
            torch.manual_seed(0)
            model = build_model(spec).eval()
            fp32_file, int8_file = export_pair(model, spec, Path(temporary), args.calib)
            model = model.to(device)
            runners: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"eager": model}
            if args.compile:
                runners["compile"] = torch.compile(model)
            runners["ort_fp32"] = load_exported(fp32_file, device, threads=threads)
            runners["ort_int8"] = load_exported(int8_file, device, threads=threads)
            for height, width in sizes:
                for batch in batches:
                    images = torch.randn(batch, 3, height, width, device=device)
                    row: dict[str, Any] = {"model": label, "size": f"{height}x{width}", "batch": batch}
                    for name, runner in runners.items():
                        def call(runner=runner):
                            with torch.no_grad():
                                output = runner(images)
                            if device.type == "cuda":
                                torch.cuda.synchronize()
                            return output
                        row[name] = median_ms(call, args.warmup, args.repeats)
                    with torch.no_grad():
                        reference = model(images).argmax(1)
                        row["int8_argmax_agreement"] = (runners["ort_int8"](images).argmax(1) == reference).float().mean().item()
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
    minutes = (time.perf_counter() - started) / 60
    load_after = os.getloadavg()

    names = list(rows[0].keys() - {"model", "size", "batch", "int8_argmax_agreement"})
    order = [name for name in ("eager", "compile", "ort_fp32", "ort_int8") if name in names]
    titles = {"eager": "PyTorch eager", "compile": "torch.compile", "ort_fp32": "ORT fp32", "ort_int8": "ORT int8"}
    command = "python bench/bench_inference.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [
        "## Inference: PyTorch eager vs ONNX Runtime",
        "",
        f"Date {datetime.date.today().isoformat()}; command "
        f"`OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')} {command.strip()}` on {cpu_model()} "
        f"({os.cpu_count()} cores, {threads} thread(s) per runtime, device {device}); load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after; {minutes:.1f} min; median of {args.repeats} calls "
        f"after {args.warmup} warm-up; random weights; int8 = static QDQ, calibrated on "
        f"{'`' + args.calib + '`' if args.calib else 'random images'}; the last column is the share of pixels whose "
        f"int8 arg-max equals eager's on random inputs (random weights give near-tied logits, so it understates "
        f"int8's agreement on a trained network).",
        "",
        "| model | input | batch | " + " | ".join(f"{titles[n]} ms" for n in order) + " | "
        + " | ".join(f"{titles[n]} img/s" for n in order) + " | " + " | ".join(f"{titles[n]} speed-up" for n in order[1:])
        + " | int8 argmax = eager |",
        "|---|---|---|" + "---|" * (3 * len(order) - 1) + "---|",
    ]
    for row in rows:
        cells = [row["model"], row["size"], str(row["batch"])]
        cells += [f"{row[n]:.1f}" for n in order]
        cells += [f"{1000 * row['batch'] / row[n]:.1f}" for n in order]
        cells += [f"{row['eager'] / row[n]:.2f}x" for n in order[1:]]
        cells.append(f"{100 * row['int8_argmax_agreement']:.1f}%")
        lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "threads": threads, "cpu": cpu_model(),
                                               "load": [load_before, load_after]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
