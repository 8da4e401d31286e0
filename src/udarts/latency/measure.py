"""Timing SEARCH-Net's parts and whole networks on one runtime, and building a latency table from it.

Runtimes (``RUNTIMES``): ``eager`` (PyTorch on the CPU with ``threads`` intra-op threads),
``onnxruntime`` (each part exported to ONNX and run by an onnxruntime CPU session with
``threads`` intra-op threads and every graph optimisation on) and ``cuda`` (PyTorch on the GPU,
synchronised around every call). Every module runs in eval mode without gradients, on zero
inputs of batch ``batch_size``.

Parts are timed in interleaved rounds: each round times every part in turn (the median of
``repeats`` calls after one warm-up call), and a part's latency is the median over the rounds, so
a drift of the machine's speed or a burst of other work touches every part alike rather than the
parts that happened to run during it (as ``udarts.complexity.measure_latency_rounds`` does for
whole networks).
"""

from __future__ import annotations

import datetime
import math
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from udarts import __version__
from udarts.complexity import cpu_model
from udarts.efficiency import torch_threads
from udarts.genotype import Genotype
from udarts.latency.table import FIXED_PARTS, RUNTIMES, CellCosts, LatencyShape, LatencyTable, LatencyTableError
from udarts.models import build_searchnet
from udarts.nets.ushape import Downsample, Upsample
from udarts.ops import NONE_OP, ConvBnAct, OpSettings, build_op
from udarts.space import NUM_SCALES, cell_slots

Part = tuple[nn.Module, tuple[Tensor, ...]]  # a module and the inputs it is called with


class ConcatProject(nn.Module):
    """A cell's output: its nodes concatenated, then the 1x1 projection (``udarts.nets.cell.Cell``)."""

    def __init__(self, channels: int, num_nodes: int) -> None:
        super().__init__()
        self.project = ConvBnAct(num_nodes * channels, channels, 1)

    def forward(self, *nodes: Tensor) -> Tensor:
        return self.project(torch.cat(nodes, dim=1))


class NodeSum(nn.Module):
    """One node-sum addition."""

    def forward(self, first: Tensor, second: Tensor) -> Tensor:
        return first + second


def check_runtime(runtime: str) -> None:
    """Refuse an unknown runtime, or one this machine cannot run, in one line."""
    if runtime not in RUNTIMES:
        raise LatencyTableError(f"unknown runtime {runtime!r}; expected one of {list(RUNTIMES)}")
    if runtime == "onnxruntime":
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError:
            raise LatencyTableError("the onnxruntime runtime needs onnx and onnxruntime: pip install -e \".[export]\"") from None
    if runtime == "cuda" and not torch.cuda.is_available():
        raise LatencyTableError("the cuda runtime needs a CUDA GPU, and torch sees none on this machine")


def identity_of(runtime: str, threads: int, batch_size: int) -> dict[str, Any]:
    """Where and how a table is measured: the fields ``udarts.latency.table.mismatches`` compares."""
    check_runtime(runtime)
    versions = {"torch": torch.__version__, "udarts": __version__}
    if runtime == "onnxruntime":
        import onnxruntime

        versions["onnxruntime"] = onnxruntime.__version__
    device = torch.cuda.get_device_name() if runtime == "cuda" else f"{cpu_model()} ({platform.machine()})"
    return {"device": device, "runtime": runtime, "threads": threads if runtime != "cuda" else None,
            "batch_size": batch_size, "versions": versions}


# ---- the parts of SEARCH-Net ---------------------------------------------------------------------


def searchnet_parts(shape: LatencyShape, ops: Sequence[str], batch_size: int = 1) -> dict[str, Part]:
    """Every part the table times, keyed ``fixed/<part>``, ``<cell>/project``, ``<cell>/add`` and
    ``<cell>/op/<op>``; parts of equal shape (C1 and C8, ...) are one module timed once, under the
    first cell's key (``cell_key`` maps the others)."""
    settings = OpSettings(affine=True, expand_ratio=shape.expand_ratio, se_ratio=shape.se_ratio)
    height, width = shape.image_size
    widths = [shape.width * 2**scale for scale in range(NUM_SCALES)]

    def zeros(channels: int, scale: int) -> Tensor:
        return torch.zeros(batch_size, channels, height >> scale, width >> scale)

    parts: dict[str, Part] = {"fixed/stem": (ConvBnAct(3, shape.width, 3), (zeros(3, 0),))}
    for scale in range(1, NUM_SCALES):
        parts[f"fixed/down{scale}"] = (Downsample(widths[scale - 1], widths[scale], True), (zeros(widths[scale - 1], scale - 1),))
    for step, scale in enumerate(reversed(range(NUM_SCALES - 1))):
        parts[f"fixed/up{step}"] = (Upsample(widths[scale + 1], widths[scale], True), (zeros(widths[scale + 1], scale + 1),))
    parts["fixed/head"] = (nn.Conv2d(shape.width, shape.num_classes, 1), (zeros(shape.width, 0),))
    for slot in cell_slots(shape.width):
        if cell_key(slot.name) != slot.name:
            continue
        node = zeros(slot.channels, slot.scale)
        parts[f"{slot.name}/project"] = (ConcatProject(slot.channels, shape.num_nodes), (node,) * shape.num_nodes)
        parts[f"{slot.name}/add"] = (NodeSum(), (node, node))
        for op in ops:
            parts[f"{slot.name}/op/{op}"] = (build_op(op, slot.channels, settings), (node,))
    assert all(f"fixed/{part}" in parts for part in FIXED_PARTS)
    return parts


def cell_key(name: str) -> str:
    """The cell whose parts stand for ``name``'s: cells at one scale share channels and resolution
    (encoder cell s and the decoder cell at scale s; C4 and C5 at the lowest scale)."""
    scale = {slot.name: slot.scale for slot in cell_slots(1)}[name]
    return f"C{scale + 1}"


# ---- timing --------------------------------------------------------------------------------------


def _eager_caller(module: nn.Module, inputs: tuple[Tensor, ...], device: torch.device) -> Callable[[], Any]:
    module = module.to(device).eval()
    inputs = tuple(item.to(device) for item in inputs)
    if device.type == "cuda":
        def call() -> Any:
            with torch.inference_mode():
                module(*inputs)
            torch.cuda.synchronize(device)
        return call

    def call_cpu() -> Any:
        with torch.inference_mode():
            return module(*inputs)
    return call_cpu


def _onnx_caller(module: nn.Module, inputs: tuple[Tensor, ...], threads: int, path: Path) -> Callable[[], Any]:
    import onnxruntime

    names = [f"input{index}" for index in range(len(inputs))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation and tracer warnings
        torch.onnx.export(module.eval(), inputs, str(path), dynamo=False, opset_version=17, input_names=names,
                          output_names=["output"], do_constant_folding=True)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = {key: item.numpy() for key, item in zip(names, inputs)}
    return lambda: session.run(None, feeds)


def time_calls(callers: dict[str, Callable[[], Any]], rounds: int = 5, seconds_per_part: float = 0.02,
               max_repeats: int = 50, progress: Callable[[int, int], None] | None = None) -> dict[str, float]:
    """Milliseconds of one call of each caller: per round, the median of ``repeats`` calls after a
    warm-up call (``repeats`` sized so each part runs about ``seconds_per_part`` a round, 3 to
    ``max_repeats``); then the median over the ``rounds`` interleaved rounds."""
    repeats: dict[str, int] = {}
    for key, call in callers.items():  # first calls build kernels, sessions' buffers and caches
        call()
        start = time.perf_counter()
        call()
        elapsed = time.perf_counter() - start
        repeats[key] = int(min(max(math.ceil(seconds_per_part / max(elapsed, 1e-6)), 3), max_repeats))
    per_round: dict[str, list[float]] = {key: [] for key in callers}
    for round_index in range(rounds):
        for key, call in callers.items():
            call()
            times = []
            for _ in range(repeats[key]):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
            per_round[key].append(statistics.median(times))
        if progress is not None:
            progress(round_index + 1, rounds)
    return {key: 1000.0 * statistics.median(times) for key, times in per_round.items()}


def time_modules(modules: dict[str, Part], runtime: str, threads: int = 1, rounds: int = 5,
                 progress: Callable[[int, int], None] | None = None, **timing: Any) -> dict[str, float]:
    """Milliseconds per call of each ``(module, inputs)`` on ``runtime`` (``time_calls``)."""
    check_runtime(runtime)
    device = torch.device("cuda" if runtime == "cuda" else "cpu")
    with torch_threads(threads), tempfile.TemporaryDirectory(prefix="udarts-latency-") as folder:
        if runtime == "onnxruntime":
            callers = {key: _onnx_caller(module, inputs, threads, Path(folder) / f"part{index}.onnx")
                       for index, (key, (module, inputs)) in enumerate(modules.items())}
        else:
            callers = {key: _eager_caller(module, inputs, device) for key, (module, inputs) in modules.items()}
        return time_calls(callers, rounds=rounds, progress=progress, **timing)


def time_genotypes(genotypes: dict[str, Genotype], shape: LatencyShape, runtime: str, threads: int = 1,
                   batch_size: int = 1, rounds: int = 5, widths: dict[str, int] | None = None,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, float]:
    """Milliseconds of one whole SEARCH-Net forward pass per genotype (at ``widths[name]`` or the
    shape's width), measured side by side in interleaved rounds."""
    height, width = shape.image_size
    modules = {}
    for name, genotype in genotypes.items():
        network = build_searchnet(genotype, 3, shape.num_classes, (widths or {}).get(name, shape.width))
        modules[name] = (network, (torch.zeros(batch_size, 3, height, width),))
    return time_modules(modules, runtime, threads, rounds=rounds, progress=progress, seconds_per_part=0.1, max_repeats=20)


# ---- the table -----------------------------------------------------------------------------------


def measure_table(shape: LatencyShape, ops: Sequence[str], runtime: str = "eager", threads: int = 1,
                  batch_size: int = 1, rounds: int = 5, progress: Callable[[int, int], None] | None = None) -> LatencyTable:
    """Time every part of SEARCH-Net at ``shape`` for every op of ``ops`` (``none`` costs nothing and
    is left out) and return the (uncalibrated) table."""
    ops = tuple(op for op in ops if op != NONE_OP)
    identity = identity_of(runtime, threads, batch_size)
    started = time.perf_counter()
    milliseconds = time_modules(searchnet_parts(shape, ops, batch_size), runtime, threads, rounds=rounds, progress=progress)
    cells = {}
    for slot in cell_slots(shape.width):
        key = cell_key(slot.name)
        cells[slot.name] = CellCosts(milliseconds[f"{key}/project"], milliseconds[f"{key}/add"],
                                     {op: milliseconds[f"{key}/op/{op}"] for op in ops})
    return LatencyTable(
        identity, shape, ops, {part: milliseconds[f"fixed/{part}"] for part in FIXED_PARTS}, cells,
        measured_at=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        extra={"rounds": rounds, "seconds": round(time.perf_counter() - started, 1)},
    )


def fit_line(predicted: Sequence[float], measured: Sequence[float]) -> tuple[float, float]:
    """Least-squares ``measured = scale * predicted + offset``."""
    scale, offset = np.polyfit(np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float), 1)
    return float(scale), float(offset)


def calibrate(table: LatencyTable, genotypes: Sequence[Genotype], rounds: int = 3,
              progress: Callable[[int, int], None] | None = None) -> LatencyTable:
    """The table with ``calibration`` fitted on ``genotypes`` measured whole on its runtime (at least two)."""
    if len(genotypes) < 2:
        raise LatencyTableError(f"calibration needs at least 2 genotypes, got {len(genotypes)}")
    named = {f"g{index}": genotype for index, genotype in enumerate(genotypes)}
    measured = time_genotypes(named, table.shape, table.identity["runtime"], table.identity.get("threads") or 1,
                              table.identity["batch_size"], rounds=rounds, progress=progress)
    additive = [table.additive_ms(genotype) for genotype in named.values()]
    scale, offset = fit_line(additive, [measured[name] for name in named])
    from dataclasses import replace

    return replace(table, calibration={"scale": scale, "offset_ms": offset, "genotypes": len(genotypes)})
