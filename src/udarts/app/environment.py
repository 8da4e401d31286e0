"""``udarts env``: what a bug report or a benchmark entry needs to know about this machine.

One function gathers the facts (:func:`environment`: versions of udarts and the libraries it runs
on, the Python, the OS, the CPU and the kernels torch picked for it, the threads, the GPUs, bf16
support, memory and load) and one renders them as short lines to paste (:func:`render`). Nothing
here changes torch's state; a library that is not installed is reported as such, not an error.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from udarts import __version__

# distribution names, in the order they are reported
LIBRARIES = ("torch", "torchvision", "segmentation-models-pytorch", "timm", "numpy", "onnx", "onnxruntime")
# /proc/cpuinfo flags that decide how fast bf16 runs on a CPU
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def library_versions() -> dict[str, str | None]:
    """``{distribution: version}``; ``None`` for one that is not installed."""
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git_commit() -> str | None:
    """The short commit of the udarts checkout this module runs from, when it is a git work tree."""
    source = Path(__file__).resolve().parents[3]  # src/udarts/app/environment.py -> the repository
    if not (source / ".git").exists():
        return None
    try:
        done = subprocess.run(["git", "-C", str(source), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def _cpuinfo() -> tuple[str | None, set[str]]:
    """``(model name, flags)`` from /proc/cpuinfo (Linux); ``(None, set())`` elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None, set()
    model, flags = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return model, flags


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except (OSError, ValueError, IndexError):
        pass
    return None


def environment() -> dict[str, Any]:
    """The facts :func:`render` prints, as plain JSON-ready values."""
    import torch

    model, flags = _cpuinfo()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    try:
        cpu_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())  # oneDNN's own check
    except (AttributeError, RuntimeError):
        cpu_bf16 = None
    gpus = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            properties = torch.cuda.get_device_properties(index)
            gpus.append({"index": index, "name": properties.name,
                         "memory_gb": round(properties.total_memory / 1024**3, 1),
                         "capability": f"{properties.major}.{properties.minor}"})
    try:
        load = [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return {
        "udarts": __version__,
        "udarts_commit": _git_commit(),
        "python": platform.python_version(),
        "os": platform.platform(),
        "libraries": {**library_versions(), "torch": torch.__version__},  # with its build tag (+cpu, +cu130)
        "cpu": {
            "model": model or platform.processor() or None,
            "cores": os.cpu_count(),
            "usable_cores": usable,
            "torch_kernels": torch.backends.cpu.get_cpu_capability(),
            "bf16_flags": [flag for flag in CPU_BF16_FLAGS if flag in flags],
            "bf16_supported": cpu_bf16,
        },
        "threads": {
            "torch_intra_op": torch.get_num_threads(),
            "torch_inter_op": torch.get_num_interop_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        },
        "cuda": {
            "built_with": torch.version.cuda,
            "available": torch.cuda.is_available(),
            "bf16_supported": bool(torch.cuda.is_bf16_supported()) if torch.cuda.is_available() else None,
            "gpus": gpus,
        },
        "memory_gb": None if (memory := _memory_gb()) is None else round(memory, 1),
        "load_average": load,
    }


def render(facts: dict[str, Any]) -> list[str]:
    """Short ``key: value`` lines, the form to paste into a bug report or a BENCHMARKS.md entry."""
    libraries = ", ".join(f"{name} {version or 'not installed'}" for name, version in facts["libraries"].items())
    cpu = facts["cpu"]
    if cpu["bf16_supported"] is None:
        bf16 = "unknown"
    elif cpu["bf16_supported"]:
        bf16 = "yes" + (f" ({', '.join(cpu['bf16_flags'])})" if cpu["bf16_flags"] else "")
    else:
        bf16 = "no native bf16 (emulated, slow)"
    threads = facts["threads"]
    omp = threads["OMP_NUM_THREADS"]
    cuda = facts["cuda"]
    if cuda["gpus"]:
        gpu = "; ".join(f"cuda:{gpu['index']} {gpu['name']} ({gpu['memory_gb']} GB, sm {gpu['capability']})"
                        for gpu in cuda["gpus"]) + f"; bf16 {'yes' if cuda['bf16_supported'] else 'no'}"
    elif cuda["built_with"]:
        gpu = f"none (torch built with CUDA {cuda['built_with']}, no device visible)"
    else:
        gpu = "none (CPU-only torch)"
    load = facts["load_average"]
    commit = f" (git {facts['udarts_commit']})" if facts["udarts_commit"] else ""
    return [
        f"udarts: {facts['udarts']}{commit}",
        f"python: {facts['python']} on {facts['os']}",
        f"libraries: {libraries}",
        f"cpu: {cpu['model'] or 'unknown'}, {cpu['cores']} cores ({cpu['usable_cores']} usable), "
        f"torch kernels {cpu['torch_kernels']}",
        f"cpu bf16: {bf16}",
        f"threads: torch {threads['torch_intra_op']} intra-op, {threads['torch_inter_op']} inter-op; "
        f"OMP_NUM_THREADS={omp if omp is not None else 'unset'}",
        f"gpu: {gpu}",
        f"memory: {facts['memory_gb']} GB" if facts["memory_gb"] is not None else "memory: unknown",
        f"load average (1, 5, 15 min): {', '.join(map(str, load))}" if load else "load average: unknown",
    ]
