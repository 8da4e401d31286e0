"""GPU check: the paper-scale search settings measured on one GPU, inside a hard time budget.

Every paper-scale figure in BENCHMARKS.md (memory of a search step, hours of a 300-epoch search)
was extrapolated from CPU measurements. This script replaces them with measurements, in one run
that fits a short loan of a GPU (default budget: 8 minutes of wall time, from the start). In
order, at width 64, 256x256, batch 8 (``--width``, ``--size``, ``--batch``):

1. one training step (forward, backward, the retraining optimiser: SGD, Dice loss, fp32) of the
   ResNet-34 UNet (segmentation-models-pytorch, through ``udarts.baselines``) and of SEARCH-Net
   built from ``--genotype``;
2. one full search step (``DartsStrategy.step``: the alpha step on one batch, then the weight
   step on another, first order) of each recommended paper-scale setting: GDAS + edge
   checkpointing + bf16 + channels-last and PC-GDAS + bf16 (24 GB cards), PC-DARTS + cell
   checkpointing + bf16, and plain DARTS + edge checkpointing (80 GB cards), built by
   ``bench/bench_search_modes.py``'s ``make_step``;
3. a short real search through the command line (``python -m udarts.cli search`` as a
   subprocess) on the Oxford-IIIT Pet subset with the 24 GB setting, ``--search-epochs`` epochs,
   then ``--resume`` of it for as many more: the CUDA path end to end (AMP, pinned memory, data
   loader workers, checkpoints, resume).

The rows run in this order, except plain DARTS, which runs last: it is the most expensive and
matters only for 80 GB cards, so it is the one the time budget cuts first.

Each row: seconds per step (median of ``--steps`` steps after ``--warmup`` warm-up steps, CUDA-
synchronised around each step; a row stops timing after ``--row-seconds``), and
``torch.cuda.max_memory_allocated`` / ``max_memory_reserved`` since just before the model was
built (so parameters, gradients and optimiser state are included, as in BENCHMARKS.md's
extrapolated "(b) measured" column, which the table quotes beside them). On CPU the memory
columns are "n/a". Every row is caught on its own: an out-of-memory error records "OOM" and the
check goes on after ``torch.cuda.empty_cache()``; another error records its message.

Time guard: at the budget a SIGALRM interrupts whatever runs (a subprocess is killed), the rows
not reached are recorded as such, and the files are written; should the process be stuck in C
code, a watchdog thread writes the files and exits ``--grace`` seconds later. ``gpu_check.json``
and ``gpu_check.md`` in ``--out`` are rewritten (atomically) after every row, so a killed run
leaves what it had. The projected hours of a 300-epoch search assume the full Oxford-IIIT Pet the
paper searched on, as ``udarts search`` reads it: its train split, the 3680 trainval images less
the 20% udarts carves out for validation = 2944 (``--paper-train-images``), in two halves (weights,
alphas), one batch of each per step: 2944 / 2 / 8 = 184 steps per epoch. (BENCHMARKS.md's
extrapolated hours counted all 3680 trainval images, 230 steps.)

    python bench/gpu_check.py --dry-run               # what it would measure, and the budget
    python bench/gpu_check.py --out DIR               # on the GPU (about 5-8 minutes)
    python bench/gpu_check.py --out DIR --device cpu --width 4 --size 32x32 --batch 2 --steps 1 \\
        --search-data synthetic --search-set data.num_samples=8 --num-workers 0   # CPU smoke run
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from bench_search_modes import MODES, NUM_CLASSES, PAPER, make_step
from udarts.complexity import count_parameters, cpu_model
from udarts.config import DEFAULTS
from udarts.efficiency import to_device
from udarts.engine.layout import CONFIG_FILE, GENOTYPE_FILE, LAST_CHECKPOINT, METRICS_LOG
from udarts.io import atomic_write_text, read_jsonl

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("UDARTS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
GB = 2**30


@dataclass
class Row:
    name: str
    label: str
    kind: str  # train | search | cli
    settings: dict[str, Any] = field(default_factory=dict)
    # BENCHMARKS.md, "Search modes at the paper's scale" (2026-11-28), column "(b) measured": the
    # CPU allocation record extrapolated to width 64, 256x256, batch 8. Quoted for the ratio.
    extrapolated_gb: float | None = None


GDAS_24GB = {**MODES["gdas_checkpoint_edges_bf16"][1], "channels_last": True}
ROWS = [
    Row("unet_resnet34", "UNet (ResNet-34 encoder, smp), one training step", "train", {"model": "unet_resnet34"}, 1.1),
    Row("searchnet", "SEARCH-Net (--genotype), one training step", "train", {"model": "searchnet"}),
    Row("gdas_24gb", "GDAS + edge checkpointing + bf16 + channels-last (24 GB)", "search", GDAS_24GB, 16.2),
    Row("pc_gdas_bf16", "PC-GDAS + bf16 autocast (24 GB)", "search", MODES["pc_gdas_bf16"][1], 13.5),
    Row("pc_darts_cells_bf16", "PC-DARTS (K = 4) + cell checkpointing + bf16 autocast", "search",
        MODES["pc_darts_checkpoint_bf16"][1], 18.2),
    Row("search_cli", "udarts search, then --resume (end to end)", "cli"),
    Row("darts_edges", "DARTS mixture + edge checkpointing (80 GB)", "search", MODES["darts_checkpoint_edges"][1], 45.9),
]
ROW_NAMES = [row.name for row in ROWS]
SEARCH_ROWS = [row.name for row in ROWS if row.kind == "search"]


# ---- the time guard -----------------------------------------------------------------------------
class TimeBudgetExceeded(BaseException):
    """Raised by the SIGALRM guard inside the measurement it interrupts (a BaseException, so that
    no ``except Exception`` on the way swallows it)."""


class TimeGuard:
    """SIGALRM at the deadline raises :class:`TimeBudgetExceeded` while ``armed`` (elsewhere it
    only marks the budget spent); a watchdog thread calls ``on_stuck`` ``grace`` seconds later."""

    def __init__(self, started: float, budget_s: float, grace_s: float, on_stuck) -> None:
        self.deadline = started + budget_s
        self.expired = False
        self._armed = False
        self._previous = signal.signal(signal.SIGALRM, self._alarm)
        signal.setitimer(signal.ITIMER_REAL, max(self.remaining(), 1e-3))  # 0 would disarm the timer
        self._watchdog = threading.Timer(max(self.remaining(), 0.0) + grace_s, on_stuck)
        self._watchdog.daemon = True
        self._watchdog.start()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def _alarm(self, signum, frame) -> None:
        self.expired = True
        if self._armed:
            raise TimeBudgetExceeded()

    def call(self, function, *arguments) -> BaseException | None:
        """Run ``function(*arguments)`` armed; return what it raised (None if nothing). The alarm fires once,
        so if it comes while an error is being returned it escapes from here: catch it there."""
        try:
            self._armed = True
            if self.expired or self.remaining() <= 0:
                self.expired = True
                raise TimeBudgetExceeded()
            function(*arguments)
            return None
        except BaseException as error:  # noqa: BLE001 - classified by the caller
            return error
        finally:
            self._armed = False

    def close(self) -> None:
        self._armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._previous)
        self._watchdog.cancel()


# ---- the report: JSON + Markdown, rewritten after every row -------------------------------------
class Report:
    def __init__(self, args: argparse.Namespace, rows: list[Row], started: float) -> None:
        self.args, self.rows, self.started = args, rows, started
        self.lock = threading.Lock()
        self.records: dict[str, dict[str, Any]] = {row.name: {"status": "not run (time budget)"} for row in rows}
        self.meta = {"command": "python bench/gpu_check.py " + " ".join(args.argv), "date": datetime.date.today().isoformat(),
                     "device": args.device, "width": args.width, "size": list(args.size), "batch": args.batch,
                     "warmup_steps": args.warmup, "timed_steps": args.steps, "budget_s": args.budget,
                     "torch": torch.__version__, "cpu": f"{cpu_model()}, {os.cpu_count()} cores",
                     "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
                     "steps_per_epoch": steps_per_epoch(args), "epochs": PAPER["epochs"]}
        if args.device.startswith("cuda"):
            properties = torch.cuda.get_device_properties(args.device)
            self.meta.update(gpu=properties.name, gpu_memory_gb=properties.total_memory / GB, cuda=torch.version.cuda,
                             cudnn=torch.backends.cudnn.version(), bf16_supported=torch.cuda.is_bf16_supported())
        self.stopped_early = False

    def write(self, note: str | None = None) -> None:
        with self.lock:
            elapsed = time.monotonic() - self.started
            guard = {"budget_s": self.args.budget, "elapsed_s": round(elapsed, 1), "stopped_early": self.stopped_early}
            if note:
                guard["note"] = note
            document = {"meta": self.meta, "time_guard": guard, "rows": [
                {"name": row.name, "label": row.label, "kind": row.kind, "settings": row_settings(row, self.args),
                 "extrapolated_gb": row.extrapolated_gb, **self.records[row.name]} for row in self.rows]}
            atomic_write_text(self.args.out / "gpu_check.json", json.dumps(document, indent=2, default=str) + "\n")
            atomic_write_text(self.args.out / "gpu_check.md", self.markdown(guard) + "\n")

    def markdown(self, guard: dict[str, Any]) -> str:
        meta, args = self.meta, self.args
        machine = meta.get("gpu", meta["cpu"]) + (f" ({meta['gpu_memory_gb']:.0f} GB)" if "gpu" in meta else "")
        paper_size = (args.width, tuple(args.size), args.batch) == (PAPER["width"], PAPER["size"], PAPER["batch"])
        unet = self.records.get("unet_resnet34", {}).get("step_s")
        lines = [
            f"Command: `{meta['command']}`  ",
            f"Device: {args.device}, {machine}; torch {meta['torch']}; OMP_NUM_THREADS={meta['omp_num_threads']}.  ",
            f"Date: {meta['date']}; {guard['elapsed_s']:.0f} s of the {args.budget:.0f} s budget"
            + ("; **stopped early by the time guard**" if guard["stopped_early"] else "") + ".",
            "",
            f"Width {args.width}, {args.size[0]}x{args.size[1]}, batch {args.batch}; step = median of the timed steps after "
            f"{args.warmup} warm-up step(s); memory = peak since the model was built (GB = 2^30 bytes). Extrapolated = "
            "BENCHMARKS.md's CPU allocation record scaled to the paper's size"
            + ("" if paper_size else " (not comparable at this size)") + f". 300 epochs = 300 x {meta['steps_per_epoch']} "
            f"steps ({args.paper_train_images} images of the full Oxford-IIIT Pet / 2 halves / batch {args.batch}) at the "
            "measured step time.",
            "",
            "| row | status | step s | x UNet | max allocated GB | max reserved GB | extrapolated GB | measured / extrapolated "
            "| 300 epochs h |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [table_row(row, self.records[row.name], unet, paper_size) for row in self.rows]
        cli = self.records.get("search_cli", {})
        if cli.get("runs"):
            lines += ["", f"Search through the command line ({cli['data']}, {cli.get('steps_per_epoch', '?')} steps per epoch, "
                          f"{cli['num_workers']} loader workers; s per step = epoch seconds / steps, data loading included):",
                      "", f"| run | exit | epochs logged | epoch s | s per step | wall s | {LAST_CHECKPOINT} GB |",
                      "|---|---:|---|---|---|---:|---:|"]
            for run in cli["runs"]:
                epoch_s = ", ".join(fmt(seconds, ".1f") for seconds in run.get("epoch_s", [])) or "-"
                step_s = ", ".join(fmt(seconds, ".3f") for seconds in run.get("step_s", [])) or "-"
                lines.append(f"| {run['name']} | {run.get('returncode', '-')} | {run.get('epochs_logged', '-')} | {epoch_s} "
                             f"| {step_s} | {fmt(run.get('wall_s'), '.0f')} | {fmt(run.get('checkpoint_gb'), '.2f')} |")
        return "\n".join(lines)


def table_row(row: Row, record: dict[str, Any], unet_step: float | None, paper_size: bool) -> str:
    hours = fmt(record.get("projected_hours"), ".1f")
    if row.kind == "cli":
        return f"| {row.label} | {record['status']} | {fmt(record.get('end_to_end_step_s'), '.3f')} | - | - | - | - | - | {hours} |"
    step, allocated, memory = record.get("step_s"), record.get("max_allocated_gb"), record.get("memory")
    extrapolated = row.extrapolated_gb if paper_size else None
    ratio = allocated / extrapolated if allocated is not None and extrapolated else None
    times_unet = step / unet_step if step and unet_step else None
    return (f"| {row.label} | {record['status']} | {fmt(step, '.3f')} | {fmt(times_unet, '.1f')} | {fmt(allocated, '.1f', memory)} "
            f"| {fmt(record.get('max_reserved_gb'), '.1f', memory)} | {fmt(extrapolated, '.1f')} | {fmt(ratio, '.2f')} | {hours} |")


def fmt(value: Any, spec: str, na: str | None = None) -> str:
    if value is None:
        return na or "-"
    return format(value, spec)


def steps_per_epoch(args: argparse.Namespace) -> int:
    """Steps of one search epoch on the paper's data: two halves of the training images, one
    alpha and one weight batch per step."""
    return args.paper_train_images // 2 // args.batch


def row_settings(row: Row, args: argparse.Namespace) -> dict[str, Any]:
    if row.kind == "cli":
        workers = args.num_workers if args.num_workers is not None else "paper.yaml's"
        return {"setting": args.search_setting, **search_row(args).settings, "data": search_data(args)[0],
                "epochs": f"{args.search_epochs} + {args.search_epochs} resumed", "num_workers": workers}
    if row.kind == "train":
        train = DEFAULTS["train"]
        genotype = {"genotype": Path(args.genotype).name} if row.settings["model"] == "searchnet" else {}
        return {**row.settings, **genotype, "optimizer": train["optimizer"], "lr": train["lr"], "loss": train["loss"],
                "precision": "fp32"}
    return {"mode": "darts", "amp": "none", **row.settings, "optimizer": "adam (weights and alphas)", "loss": "dice"}


def search_row(args: argparse.Namespace) -> Row:
    return next(row for row in ROWS if row.name == args.search_setting)


def search_data(args: argparse.Namespace) -> tuple[str, Path | None]:
    """(dataset, root) of the command-line search: the Pet subset when found, else synthetic."""
    if args.search_data == "synthetic" or (args.search_data == "auto" and not (args.root / "oxford-iiit-pet").is_dir()):
        return "synthetic", None
    return "pets", args.root


# ---- one measured row ---------------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_batch(args: argparse.Namespace, device: torch.device, channels_last: bool, generator: torch.Generator):
    images = torch.randn(args.batch, 3, *args.size, generator=generator)
    masks = torch.randint(0, NUM_CLASSES, (args.batch, *args.size), generator=generator)
    return to_device(images, device, channels_last), masks.to(device)


def build_train_step(row: Row, args: argparse.Namespace, device: torch.device):
    """(model, step) for one training step as ``udarts train`` takes it (its defaults: SGD, Dice)."""
    from udarts.engine.trainer import build_optimizer, train_one_epoch
    from udarts.losses import build_loss
    from udarts.models import build_model

    torch.manual_seed(0)
    if row.settings["model"] == "searchnet":
        spec = {"name": "searchnet", "genotype": json.loads(Path(args.genotype).read_text()), "width": args.width}
    else:  # the paper's configuration: a ResNet-34 encoder from random weights
        spec = {"name": row.settings["model"], "scale": "paper"}
    model = build_model({**spec, "in_channels": 3, "num_classes": NUM_CLASSES}).to(device)
    train = DEFAULTS["train"]
    optimizer = build_optimizer(train["optimizer"], model.parameters(), train["lr"], momentum=train["momentum"],
                                weight_decay=train["weight_decay"])
    loss_fn = build_loss(train["loss"])
    batch = random_batch(args, device, False, torch.Generator().manual_seed(0))
    return model, lambda: train_one_epoch(model, [batch], loss_fn, optimizer, device, progress=False)


def build_search_step(row: Row, args: argparse.Namespace, device: torch.device):
    """(supernet, step) for one search step: alpha step on one batch, weight step on another."""
    model, step, _ = make_step(row.settings, args.width, args.size, device)
    generator = torch.Generator().manual_seed(0)
    channels_last = row.settings.get("channels_last", False)
    train_batch, val_batch = (random_batch(args, device, channels_last, generator) for _ in range(2))
    return model, lambda: float(step(train_batch, val_batch))


def measure_row(row: Row, args: argparse.Namespace, device: torch.device, record: dict[str, Any]) -> None:
    """Fills ``record`` as it goes, so that an interruption leaves what was measured."""
    build = build_train_step if row.kind == "train" else build_search_step
    model, step = build(row, args, device)
    record["parameters"] = count_parameters(model)
    times: list[float] = []
    record["step_times_s"] = times
    row_started = time.perf_counter()
    for index in range(args.warmup + args.steps):
        synchronize(device)
        started = time.perf_counter()
        step()
        synchronize(device)
        elapsed = time.perf_counter() - started
        if index < args.warmup:
            record["warmup_s"] = record.get("warmup_s", 0.0) + elapsed
            continue
        times.append(elapsed)
        record["step_s"] = statistics.median(times)
        if row.kind == "search":
            record["projected_hours"] = record["step_s"] * steps_per_epoch(args) * PAPER["epochs"] / 3600
        if time.perf_counter() - row_started > args.row_seconds and index + 1 < args.warmup + args.steps:
            record["note"] = f"stopped after {len(times)} timed step(s): --row-seconds {args.row_seconds:g} reached"
            break
    record["status"] = "ok"


def record_memory(device: torch.device, record: dict[str, Any]) -> None:
    if device.type == "cuda":
        record["max_allocated_gb"] = torch.cuda.max_memory_allocated(device) / GB
        record["max_reserved_gb"] = torch.cuda.max_memory_reserved(device) / GB
    else:
        record["memory"] = "n/a (CPU)"


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ---- the command-line search --------------------------------------------------------------------
def cli_commands(args: argparse.Namespace, run_dir: Path) -> list[tuple[str, list[str]]]:
    """The first search and its resumption, as ``udarts search`` command lines."""
    data, root = search_data(args)
    udarts = [sys.executable, "-m", "udarts.cli", "search"]
    first = [*udarts, "--config", str(REPO_ROOT / "configs" / "paper.yaml"), "--data", data, "--device", args.device,
             "--width", str(args.width), "--image-size", f"{args.size[0]}x{args.size[1]}", "--batch-size", str(args.batch),
             "--epochs", str(args.search_epochs), "--out", str(run_dir), "--no-progress"]
    if root is not None:
        first += ["--root", str(root)]
    if data == "synthetic":  # as many images as the Pet subset's train split
        first += ["--set", "data.num_samples=314"]
    if args.num_workers is not None:
        first += ["--num-workers", str(args.num_workers)]
    for key, value in search_row(args).settings.items():
        first += ["--set", f"search.{key}={value if isinstance(value, str) else json.dumps(value)}"]
    for item in args.search_set:
        first += ["--set", item]
    resume = [*udarts, "--resume", str(run_dir), "--epochs", str(2 * args.search_epochs)]
    return [("first", first), ("resume", resume)]


def kill_group(child: subprocess.Popen) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:  # already gone, workers included
        pass


def run_cli_search(args: argparse.Namespace, guard: TimeGuard, record: dict[str, Any], children: list) -> None:
    from udarts.data.factory import build_split

    search_dir = Path(args.search_dir) if args.search_dir else Path(tempfile.mkdtemp(prefix="gpu-check-search-"))
    run_dir = search_dir / "run"
    record.update(data=search_data(args)[0], runs=[], run_dir=str(run_dir),
                  num_workers=args.num_workers if args.num_workers is not None else "paper.yaml's")
    try:
        for name, command in cli_commands(args, run_dir):
            run = {"name": name, "command": " ".join(command)}
            record["runs"].append(run)
            started = time.perf_counter()
            with open(args.out / f"search-{name}.log", "w") as log:
                # a session of its own, so that its loader workers end with it
                child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, start_new_session=True)
                children.append(child)
                try:
                    run["returncode"] = child.wait(timeout=max(1.0, guard.remaining()))
                finally:
                    if child.poll() is None:  # still running (not reaped): its group is still its own
                        kill_group(child)
                        child.wait()
                    children.remove(child)
            run["wall_s"] = time.perf_counter() - started
            metrics = read_jsonl(run_dir / METRICS_LOG)
            run["epochs_logged"] = [m["epoch"] for m in metrics]
            run["epoch_s"] = [m["seconds"] for m in metrics[len(metrics) - args.search_epochs:]]
            if (run_dir / LAST_CHECKPOINT).is_file():
                run["checkpoint_gb"] = (run_dir / LAST_CHECKPOINT).stat().st_size / GB
            output = (args.out / f"search-{name}.log").read_text()
            run["device_line"] = next((line for line in output.splitlines() if line.startswith("search run:")), None)
            if run["returncode"] != 0:
                record["status"] = f"failed: {name} exited {run['returncode']} (see search-{name}.log)"
                return
        config = yaml.safe_load((run_dir / CONFIG_FILE).read_text())
        data = config["data"]
        train = build_split(data["name"], "train", root=data["root"], image_size=tuple(data["image_size"]),
                            target=data["target"], seed=config["seed"], num_samples=data["num_samples"])
        steps = len(train) // 2 // data["batch_size"]
        record.update(steps_per_epoch=steps, num_workers=data["num_workers"],
                      config={"device": config["device"], **{key: config["search"][key] for key in
                              ("mode", "amp", "channels_last", "checkpoint_edges", "checkpoint_cells")}})
        for run in record["runs"]:
            run["step_s"] = [seconds / steps for seconds in run["epoch_s"]]
        record["end_to_end_step_s"] = record["runs"][-1]["step_s"][-1]  # the resumed run's last epoch: warm
        record["projected_hours"] = record["end_to_end_step_s"] * steps_per_epoch(args) * PAPER["epochs"] / 3600
        expected = list(range(1, 2 * args.search_epochs + 1))
        problems = [f"epochs logged {record['runs'][-1]['epochs_logged']}, expected {expected}"] \
            if record["runs"][-1]["epochs_logged"] != expected else []
        problems += [f"no {name}" for name in (GENOTYPE_FILE, LAST_CHECKPOINT) if not (run_dir / name).is_file()]
        if args.device.startswith("cuda") and f"device {args.device}" not in (record["runs"][0]["device_line"] or ""):
            problems.append(f"the search did not report device {args.device}")
        record["status"] = "ok" if not problems else "failed: " + "; ".join(problems)
    finally:
        kept = args.out / "search-run"
        kept.mkdir(exist_ok=True)
        for name in (CONFIG_FILE, METRICS_LOG, GENOTYPE_FILE):
            if (run_dir / name).is_file():
                shutil.copy(run_dir / name, kept / name)
        if not args.search_dir:
            shutil.rmtree(search_dir, ignore_errors=True)


# ---- main ---------------------------------------------------------------------------------------
def dry_run(args: argparse.Namespace, rows: list[Row]) -> None:
    print(f"gpu check, dry run: nothing is built and no device is touched.\n"
          f"device {args.device}; width {args.width}, {args.size[0]}x{args.size[1]}, batch {args.batch}; "
          f"{args.warmup} warm-up + {args.steps} timed step(s) per row, at most {args.row_seconds:g} s of timing per row\n"
          f"time budget: {args.budget:g} s of wall time from the start (then the files are written; hard exit "
          f"{args.grace:g} s later if stuck)\nrows, in this order:")
    for number, row in enumerate(rows, start=1):
        settings = ", ".join(f"{key}={value}" for key, value in row_settings(row, args).items())
        print(f"  {number}. {row.name}: {row.label} [{settings}]")
        if row.kind == "cli":
            for name, command in cli_commands(args, Path("SEARCH_DIR/run")):
                print(f"       {name}: {' '.join(command)}")
    print(f"projection: {PAPER['epochs']} epochs x {steps_per_epoch(args)} steps ({args.paper_train_images} training "
          f"images of the full Oxford-IIIT Pet / 2 halves / batch {args.batch}) at each measured step time\noutput: {args.out}/gpu_check.json, gpu_check.md")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu-check", help="output folder (JSON, Markdown, search logs)")
    parser.add_argument("--dry-run", action="store_true", help="print the rows, their settings and the budget; measure nothing")
    parser.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu")
    parser.add_argument("--width", type=int, default=PAPER["width"])
    parser.add_argument("--size", default="x".join(map(str, PAPER["size"])), help="HEIGHTxWIDTH (default 256x256)")
    parser.add_argument("--batch", type=int, default=PAPER["batch"])
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per row")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per row")
    parser.add_argument("--row-seconds", type=float, default=60, help="stop timing a row after this (one timed step at least)")
    parser.add_argument("--budget", type=float, default=480, help="seconds of wall time for everything (default 8 min)")
    parser.add_argument("--grace", type=float, default=30, help="seconds after the budget before a stuck process is ended")
    parser.add_argument("--rows", help="comma-separated subset, in this order, of: " + ", ".join(ROW_NAMES))
    parser.add_argument("--genotype", default=str(REPO_ROOT / "configs" / "genotypes" / "pets-cpu-w8-seed0.json"))
    parser.add_argument("--paper-train-images", type=int, default=2944,
                        help="for the projection: the search's train split of the full Oxford-IIIT Pet (trainval less val)")
    parser.add_argument("--search-setting", default="gdas_24gb", choices=SEARCH_ROWS, help="setting of the command-line search")
    parser.add_argument("--search-data", default="auto", choices=("auto", "pets", "synthetic"),
                        help="auto: the Pet subset under --root when found, else synthetic data")
    parser.add_argument("--root", type=Path, default=SHARED_DATA, help="folder holding oxford-iiit-pet/")
    parser.add_argument("--search-epochs", type=int, default=1, help="epochs of the first search run (the resume adds as many)")
    parser.add_argument("--num-workers", type=int, help="loader workers of the search (default: configs/paper.yaml's)")
    parser.add_argument("--search-set", action="append", default=[], metavar="KEY=VALUE", help="extra --set for the search")
    parser.add_argument("--search-dir", help="keep the search run (checkpoints) here; default: a temporary folder, removed")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.size = tuple(int(side) for side in args.size.lower().split("x"))
    args.out = Path(args.out)
    unknown = set(args.rows.split(",")) - set(ROW_NAMES) if args.rows else set()
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}; expected some of {ROW_NAMES}")
    return args


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    rows = [row for name in args.rows.split(",") for row in ROWS if row.name == name] if args.rows else ROWS
    if args.dry_run:
        dry_run(args, rows)
        return 0
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; --device cpu runs the same check at a small size", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    report = Report(args, rows, started)
    children: list[subprocess.Popen] = []

    def on_stuck() -> None:  # watchdog thread: the main thread did not come back after the budget
        for child in list(children):
            if child.returncode is None:
                kill_group(child)
        for record in report.records.values():
            if record["status"] == "running":
                record["status"] = f"stuck: ended {args.grace:g} s after the budget"
        report.stopped_early = True
        report.write(note=f"hard exit: still busy {args.grace:g} s after the budget")
        os._exit(3)

    report.write()
    guard = TimeGuard(started, args.budget, args.grace, on_stuck)
    try:
        for row in rows:
            record: dict[str, Any] = {"status": "running"}
            report.records[row.name] = record
            free_memory(device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            print(f"{row.name}: {row.label} ...", file=sys.stderr, flush=True)
            try:
                if row.kind == "cli":
                    error = guard.call(run_cli_search, args, guard, record, children)
                else:
                    error = guard.call(measure_row, row, args, device, record)
            except TimeBudgetExceeded as late:  # the alarm came while an error was being returned
                error = late
            if isinstance(error, KeyboardInterrupt):
                raise error
            if isinstance(error, TimeBudgetExceeded):
                report.stopped_early = True
                record["status"] = "stopped by the time budget" if record["status"] == "running" else record["status"]
            elif isinstance(error, torch.cuda.OutOfMemoryError):
                record["status"] = "OOM"
            elif error is not None:
                record["status"] = f"error: {type(error).__name__}: {error}"
            del error  # its traceback holds the row's model
            if row.kind != "cli":
                record_memory(device, record)
            free_memory(device)
            report.write()
            print(f"  {record['status']}; step {fmt(record.get('step_s') or record.get('end_to_end_step_s'), '.3f')} s; "
                  f"peak {fmt(record.get('max_allocated_gb'), '.1f', na='n/a')} GB", file=sys.stderr, flush=True)
            if guard.expired:
                report.stopped_early = True
                break
    finally:
        guard.close()
        report.write()
    print((args.out / "gpu_check.md").read_text())
    print(f"projected hours of a {PAPER['epochs']}-epoch search: {PAPER['epochs']} x {steps_per_epoch(args)} steps "
          f"({args.paper_train_images} images, the search's train split of the full Oxford-IIIT Pet, the paper's data, "
          f"/ 2 halves / batch {args.batch})")
    for row in rows:
        hours = report.records[row.name].get("projected_hours")
        if hours is not None:
            print(f"  {row.name}: {hours:.1f} h")
    print(f"written: {args.out / 'gpu_check.json'}, {args.out / 'gpu_check.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
