"""Cost of one search step in each search mode, against one training step of a UNet.

Part 1 (measured): for plain DARTS and each switch of ``docs/search_modes.md`` (GDAS sampling,
PC-DARTS partial channels, pruning, activation checkpointing, mixed precision, channels-last,
the FLOPs penalty, and optionally ``torch.compile``), one search step (``DartsStrategy.step``:
an alpha step on one batch and a weight step on another) is timed, and the peak memory of the
process is recorded, next to one training step (forward, backward, Adam) of
segmentation-models-pytorch's UNet with a ResNet-34 encoder (random init) at the same input
size and batch. Every setting runs in a fresh subprocess, so each peak is its own: on CPU the
peak resident set size (``resource.getrusage``), on CUDA ``torch.cuda.max_memory_allocated``.

Part 2 (counted, and measured at the paper's width): the paper-scale cost (width 64, 256x256,
batch 8) of each mode. FLOPs of one step are counted on the meta device (no memory, no time;
``torch.utils.flop_counter``, convolutions and matmuls, a multiply-add = 2 FLOPs). Memory is
given two ways: (a) counted, the bytes of the tensors autograd saves in one forward pass (meta
device, fp32) plus 16 bytes per parameter (weights, gradients, Adam moments); (b) measured, the
live tensor bytes through real search steps of the width-64 supernet on the CPU (the profiler's
allocation record, ``profile_memory=True``: what ``torch.cuda.max_memory_allocated`` reports on a
GPU, without the CUDA caching allocator's slack and cuDNN workspaces), at a small input (32x32)
and batches 2 and 4. The two records list the same allocations in the same order and every
activation is proportional to batch x H x W, so each point of the record is extrapolated to the
paper's batch and size, and the peak is taken over the extrapolated record. The projected time of a
300-epoch search is given at ASSUMED sustained throughputs (stated in the output; not a GPU
measurement).

    python bench/bench_search_modes.py --quick          # width 8, 64x64, batch 2 (a few minutes on 2 cores)
    python bench/bench_search_modes.py                  # width 16, 96x128, batch 4 (the issue's CPU size)
    python bench/bench_search_modes.py --device cuda    # on a GPU (adds fp16 and channels-last)

Prints a Markdown section ready for BENCHMARKS.md; ``--json FILE`` also writes the raw numbers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from udarts.complexity import cpu_model
from udarts.search.supernet import PARTIAL_CHANNEL_MODES, SAMPLED_MODES

REPO_ROOT = Path(__file__).resolve().parents[1]
NUM_CLASSES = 2
PAPER = {"width": 64, "size": (256, 256), "batch": 8, "epochs": 300}

# name -> (label, settings). Settings: mode, amp, channels_last, checkpoint_cells, pruned,
# flops_penalty, compile; "cuda_only" marks switches meant for GPUs.
MODES: dict[str, tuple[str, dict[str, Any]]] = {
    "unet_resnet34": ("UNet (ResNet-34), one training step", {"kind": "unet"}),
    "unet_resnet34_bf16": ("UNet (ResNet-34) + bf16 autocast, one training step", {"kind": "unet", "amp": "bf16"}),
    "darts": ("DARTS mixture (first order), the reference", {}),
    "darts_pruned": ("DARTS after pruning (none + 1 op per edge)", {"pruned": True}),
    "darts_checkpoint": ("DARTS + cell checkpointing", {"checkpoint_cells": True}),
    "darts_checkpoint_edges": ("DARTS + edge checkpointing", {"checkpoint_edges": True}),
    "darts_bf16": ("DARTS + bf16 autocast", {"amp": "bf16"}),
    "darts_fp16": ("DARTS + fp16 autocast + grad scaling", {"amp": "fp16", "cuda_only": True}),
    "darts_channels_last": ("DARTS + channels-last", {"channels_last": True, "cuda_only": True}),
    "darts_flops_penalty": ("DARTS + expected-FLOPs penalty", {"flops_penalty": 1.0}),
    "darts_compile": ("DARTS + torch.compile (inductor)", {"compile": True, "optional": True}),
    "gdas": ("GDAS (one sampled op per edge)", {"mode": "gdas"}),
    "gdas_checkpoint": ("GDAS + cell checkpointing", {"mode": "gdas", "checkpoint_cells": True}),
    "gdas_bf16": ("GDAS + bf16 autocast", {"mode": "gdas", "amp": "bf16"}),
    "gdas_checkpoint_bf16": ("GDAS + cell checkpointing + bf16 autocast", {"mode": "gdas", "checkpoint_cells": True, "amp": "bf16"}),
    "gdas_checkpoint_edges": ("GDAS + edge checkpointing", {"mode": "gdas", "checkpoint_edges": True}),
    "gdas_checkpoint_edges_bf16": ("GDAS + edge checkpointing + bf16 autocast",
                                   {"mode": "gdas", "checkpoint_edges": True, "amp": "bf16"}),
    "pc_darts": ("PC-DARTS (K = 4)", {"mode": "pc_darts"}),
    "pc_darts_checkpoint": ("PC-DARTS (K = 4) + cell checkpointing", {"mode": "pc_darts", "checkpoint_cells": True}),
    "pc_gdas": ("PC-GDAS (one sampled op per edge on 1/4 of the channels)", {"mode": "pc_gdas"}),
    "pc_gdas_bf16": ("PC-GDAS + bf16 autocast", {"mode": "pc_gdas", "amp": "bf16"}),
    "pc_gdas_checkpoint_edges_bf16": ("PC-GDAS + edge checkpointing + bf16 autocast",
                                      {"mode": "pc_gdas", "checkpoint_edges": True, "amp": "bf16"}),
    "pc_darts_checkpoint_bf16": ("PC-DARTS (K = 4) + cell checkpointing + bf16 autocast",
                                 {"mode": "pc_darts", "checkpoint_cells": True, "amp": "bf16"}),
}
# Modes whose paper-scale FLOPs and activation memory are counted in part 2.
PAPER_MODES = ["unet_resnet34", "darts", "darts_pruned", "darts_checkpoint", "darts_checkpoint_edges", "gdas",
               "gdas_checkpoint", "gdas_bf16", "gdas_checkpoint_bf16", "gdas_checkpoint_edges", "gdas_checkpoint_edges_bf16",
               "pc_darts", "pc_darts_checkpoint", "pc_darts_checkpoint_bf16", "pc_gdas", "pc_gdas_bf16",
               "pc_gdas_checkpoint_edges_bf16"]
# Sampled modes -> the mixture mode whose pruned (one op per edge) network a sample is.
SAMPLED = {mode: "pc_darts" if mode in PARTIAL_CHANNEL_MODES else "darts" for mode in SAMPLED_MODES}
# The paper-scale memory is measured at the paper's width on this small input, batches 1 and 2.
PAPER_PROBE = {"size": (32, 32), "batches": (2, 4), "gdas_draws": 3}


# ---- building ----------------------------------------------------------------------------------
def search_config(settings: dict[str, Any], width: int, image_size: tuple[int, int] = (32, 32), loss: str = "dice"):
    """The udarts config of one setting of ``MODES`` (defaults for everything the setting leaves out)."""
    from udarts.config import Config

    return Config.from_dict({
        "model": {"width": width}, "data": {"image_size": list(image_size)},
        "search": {"mode": settings.get("mode", "darts"), "partial_channel_k": 4, "loss": loss,
                   "prune_start_epoch": 1 if settings.get("pruned", False) else None,
                   "checkpoint_cells": settings.get("checkpoint_cells", False),
                   "checkpoint_edges": settings.get("checkpoint_edges", False),
                   "amp": settings.get("amp", "none"), "flops_penalty": settings.get("flops_penalty", 0.0)},
    }, f"bench setting {settings}")


def build_supernet(settings: dict[str, Any], width: int, seed: int = 0):
    """The supernet of a setting, as ``udarts search`` builds it (``udarts.builders.build_supernet``)."""
    from udarts.builders import build_supernet as build

    torch.manual_seed(seed)
    model = build(search_config(settings, width), NUM_CLASSES)
    if settings.get("pruned", False):  # the state pruning ends in with prune_min_ops = 2: none + the strongest op
        keep_random_ops(model, seed, keep_none=True)
    return model


def keep_random_ops(model, seed: int, keep_none: bool) -> None:
    """Mask every edge down to one random op (plus ``none`` when ``keep_none``)."""
    generator = torch.Generator().manual_seed(seed)
    for cell in model.cells:
        mask = torch.zeros(cell.op_mask.shape, dtype=torch.bool, device="cpu")
        low = 1 if keep_none else 0
        kept = torch.randint(low, mask.shape[1], (mask.shape[0],), generator=generator, device="cpu")
        mask[torch.arange(mask.shape[0], device="cpu"), kept] = True
        mask[:, 0] |= keep_none
        cell.set_op_mask(mask)


def build_unet():
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    return smp.Unet("resnet34", encoder_weights=None, in_channels=3, classes=NUM_CLASSES)


def make_step(settings: dict[str, Any], width: int, image_size: tuple[int, int], device: torch.device, loss: str = "dice"):
    """(model, step function taking (train_batch, val_batch), optimizers) for one setting of ``MODES``."""
    from udarts.builders import build_strategy
    from udarts.efficiency import MixedPrecision, compile_model, to_channels_last
    from udarts.losses import cross_entropy, dice_loss

    loss_fn = dice_loss if loss == "dice" else (lambda logits, target: cross_entropy(logits, target))
    if settings.get("kind") == "unet":
        model = build_unet().to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        precision = MixedPrecision(settings.get("amp", "none"), device)

        def unet_step(train_batch, val_batch):
            optimizer.zero_grad(set_to_none=True)
            images, masks = train_batch
            with precision.autocast():
                logits = model(images)
            loss_value = loss_fn(logits.float(), masks)
            loss_value.backward()
            optimizer.step()
            return loss_value

        return model, unet_step, [optimizer]

    model = build_supernet(settings, width).to(device)
    if settings.get("channels_last"):
        to_channels_last(model)
    # the optimisers, precision and penalty of `udarts search` (udarts.builders.build_strategy)
    parts = build_strategy(search_config(settings, width, image_size, loss), model, steps_per_epoch=1,
                           ignore_index=None, device=device)
    if settings.get("compile"):
        compile_model(model)
    strategy = parts.strategy
    return model, lambda train_batch, val_batch: strategy.step(train_batch, val_batch)["train_loss"], \
        [parts.weight_optimizer, parts.alpha_optimizer]


# ---- part 1: one mode, measured in this (fresh) process ------------------------------------------
def current_rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(name: str, width: int, image_size: tuple[int, int], batch: int, steps: int, device_name: str) -> dict[str, Any]:
    device = torch.device(device_name)
    settings = MODES[name][1]
    model, step, _ = make_step(settings, width, image_size, device)
    generator = torch.Generator().manual_seed(0)

    def make_batch():
        images = torch.randn(batch, 3, *image_size, generator=generator).to(device)
        if settings.get("channels_last"):
            images = images.contiguous(memory_format=torch.channels_last)
        return images, torch.randint(0, NUM_CLASSES, (batch, *image_size), generator=generator).to(device)

    batches = [(make_batch(), make_batch()) for _ in range(steps + 1)]
    parameters = sum(p.numel() for p in model.parameters())
    parameter_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base_bytes = torch.cuda.memory_allocated(device)
    else:
        base_bytes = current_rss_bytes()
    times = []
    for train_batch, val_batch in batches:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        loss = step(train_batch, val_batch)
        float(loss)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    if device.type == "cuda":
        peak_bytes = torch.cuda.max_memory_allocated(device)
    else:
        peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    # Above the model: gradients (1x parameters) and Adam's moments (2x) come with the first step;
    # the rest is activation memory (and allocator slack).
    above_base = max(0, peak_bytes - base_bytes)
    return {
        "mode": name,
        "parameters": parameters,
        "first_step_s": times[0],
        "step_s": statistics.median(times[1:]) if len(times) > 1 else times[0],
        "peak_mb": peak_bytes / 2**20,
        "step_mb": above_base / 2**20,
        "activation_mb": max(0, above_base - 3 * parameter_bytes) / 2**20,
    }


def run_worker(name: str, args: argparse.Namespace, paper: bool = False) -> dict[str, Any] | None:
    """Measure one setting in a fresh process (part 1, or with ``paper`` the paper-scale memory)."""
    if paper:
        command = [sys.executable, __file__, "--paper-worker", name]
    else:
        command = [sys.executable, __file__, "--worker", name, "--width", str(args.width), "--size",
                   f"{args.size[0]}x{args.size[1]}", "--batch", str(args.batch), "--steps", str(args.steps),
                   "--device", args.device]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=args.timeout)
    if result.returncode != 0:
        print(f"  {name}: failed ({result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode})",
              file=sys.stderr)
        return None
    record = json.loads(result.stdout.strip().splitlines()[-1])
    wall = time.perf_counter() - started
    if paper:
        print(f"  {name}: paper-scale peak {record['paper_bytes_max'] / 2**30:.1f} GB ({wall:.0f} s wall)", file=sys.stderr)
    else:
        record["batch"] = args.batch
        print(f"  {name} (batch {args.batch}): step {record['step_s']:.3f} s, peak {record['peak_mb']:.0f} MB "
              f"({wall:.0f} s wall)", file=sys.stderr)
    return record


# ---- part 2: paper-scale FLOPs and activation memory on the meta device --------------------------
class SavedTensorCounter:
    """Bytes of the distinct tensors autograd saves for backward (the activation memory of one
    forward pass), per cell of a supernet and in total."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.total = 0
        self.per_cell: dict[int, int] = {}
        self.cell_inputs: dict[int, int] = {}
        self._seen: dict[int, torch.Tensor] = {}
        self._current: int | None = None
        self._handles = []
        for index, cell in enumerate(getattr(model, "cells", [])):
            self._handles.append(cell.register_forward_pre_hook(self._enter(index)))
            self._handles.append(cell.register_forward_hook(self._leave()))

    def _enter(self, index: int):
        def hook(module, inputs):
            self._current = index
            self.cell_inputs[index] = sum(t.numel() * t.element_size() for t in inputs[0])
        return hook

    def _leave(self):
        def hook(module, inputs, output):
            self._current = None
        return hook

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        key = id(tensor)
        if key not in self._seen and not isinstance(tensor, torch.nn.Parameter):
            self._seen[key] = tensor  # keeps the id unique while counting
            size = tensor.numel() * tensor.element_size()
            self.total += size
            if self._current is not None:
                self.per_cell[self._current] = self.per_cell.get(self._current, 0) + size
        return tensor

    def checkpointed_estimate(self) -> int:
        """Activation memory with every cell checkpointed: all but the cells' own saved tensors,
        plus each cell's inputs (kept for the recomputation), plus the largest cell (recomputed
        in the backward pass, one at a time)."""
        cells = sum(self.per_cell.values())
        return self.total - cells + sum(self.cell_inputs.values()) + max(self.per_cell.values(), default=0)


def paper_scale_costs(name: str, seeds: int = 3) -> dict[str, Any]:
    """FLOPs of one step and activation bytes of one forward pass at the paper's scale (meta)."""
    from torch.utils.flop_counter import FlopCounterMode

    width, (height, image_width), batch = PAPER["width"], PAPER["size"], PAPER["batch"]
    settings = dict(MODES[name][1])
    checkpointed = settings.pop("checkpoint_cells", False)
    edges_checkpointed = settings.pop("checkpoint_edges", False)
    settings.pop("amp", None)  # counted in fp32 (autocast has no meta device)
    flops, activations, parameters = [], [], 0
    # GDAS computes one sampled op per edge: on the meta device (no values to sample from) each
    # count takes a random op per edge (a mask); the mean over a few draws is the expected cost.
    sampled = settings.get("mode") in SAMPLED
    for seed in range(seeds if sampled else 1):
        counted = {**settings, "mode": SAMPLED.get(settings.get("mode")), "pruned": True} if sampled else settings
        with torch.device("meta"):
            model, step, _ = make_step(counted, width, PAPER["size"], torch.device("meta"), loss="ce")
            if sampled:
                keep_random_ops(model, seed, keep_none=False)
            images = torch.empty(batch, 3, height, image_width)
            masks = torch.zeros(batch, height, image_width, dtype=torch.long)
        parameters = sum(p.numel() for p in model.parameters())
        counter = FlopCounterMode(display=False)
        with counter:
            step((images, masks), (images, masks))
        step_flops = counter.get_total_flops()
        saved = SavedTensorCounter(model)
        with torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda tensor: tensor):
            model(images).sum()
        if checkpointed or edges_checkpointed:  # recomputing the cells' forward (an upper bound for edges)
            step_flops += 2 * _cells_forward_flops(model, images)  # the alpha and the weight step
        flops.append(step_flops)
        activations.append(saved.checkpointed_estimate() if checkpointed else saved.total)
    return {"mode": name, "parameters": parameters, "step_flops": statistics.mean(flops),
            # not counted for edge checkpointing (the counter does not model it): measured only
            "activation_bytes": None if edges_checkpointed else statistics.mean(activations)}


def live_bytes_record(function, *inputs) -> list[int]:
    """Live tensor bytes after every allocation and free while ``function(*inputs)`` runs,
    relative to the level before it: the CPU allocator's record under ``torch.profiler``
    (``profile_memory=True``). The record only knows the size of tensors allocated while a
    profiler was recording, so a tensor the function frees must come from an earlier profiled
    call (see ``measure_paper_memory``)."""
    import tempfile

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        float(function(*inputs))
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "trace.json"
        profiler.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text())["traceEvents"]
    records = sorted((e["ts"], e["args"]["Ev Idx"], e["args"]) for e in events
                     if e.get("name") == "[memory]" and e["args"].get("Device Type") == 0)
    if not records:
        return [0]
    before = records[0][2]["Total Allocated"] - records[0][2]["Bytes"]
    return [args["Total Allocated"] - before for _, _, args in records]


def live_state_bytes(model: torch.nn.Module, optimizers) -> dict[str, int]:
    """Bytes of the parameters, of the gradients alive now, and of the optimisers' state."""
    parameters = list(model.parameters())
    state = sum(t.numel() * t.element_size() for optimizer in optimizers for values in optimizer.state.values()
                for t in values.values() if torch.is_tensor(t) and t.dim() > 0)
    return {
        "parameter_bytes": sum(p.numel() * p.element_size() for p in parameters),
        "gradient_bytes": sum(p.grad.numel() * p.grad.element_size() for p in parameters if p.grad is not None),
        "optimizer_bytes": state,
    }


def measure_paper_memory(name: str) -> dict[str, Any]:
    """Peak live tensor memory of a search step at the paper's width and size, extrapolated from
    the allocation records of steps on the small probe input at two batches (the same random
    draws at both). The two records list the same allocations and frees in the same order; each
    tensor's size is a constant (a gradient, an Adam temporary) plus a part proportional to
    batch x H x W (an activation), so at every point of the record

        live bytes at the paper's size = at batch b + (8 x (256 x 256) / (32 x 32) - b) x (growth per image)

    and the step's peak is the largest of these over the record (the peak moves with the scale:
    at the probe size the weight gradients outweigh the activations). Added to it: the
    parameters, the optimisers' state and the gradients alive when the step starts."""
    settings = MODES[name][1]
    size = PAPER_PROBE["size"]
    small, large = PAPER_PROBE["batches"]
    model, step, optimizers = make_step(settings, PAPER["width"], size, torch.device("cpu"))
    for group in optimizers[-1].param_groups:  # alphas frozen: GDAS samples the same ops from the same noise
        group["lr"] = 0.0
    generator = torch.Generator().manual_seed(0)

    def batch(count: int):
        return (torch.randn(count, 3, *size, generator=generator),
                torch.randint(0, NUM_CLASSES, (count, *size), generator=generator))

    def reseed(seed: int) -> None:
        torch.manual_seed(seed)
        if hasattr(model, "reseed_sampler"):
            model.reseed_sampler(seed)  # GDAS draws from a generator of its own

    # Adam moments of every op (GDAS and pruning would otherwise add them inside the measured steps,
    # as new ops get sampled): one step with zero gradients, which leaves the weights unchanged
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                parameter.grad = torch.zeros_like(parameter)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    # warm-up, profiled, so that the allocation record knows the size of the gradients the
    # measured steps free
    live_bytes_record(step, batch(small), batch(small))
    parameters = sum(p.numel() for p in model.parameters())
    paper_images = PAPER["batch"] * PAPER["size"][0] * PAPER["size"][1] / (size[0] * size[1])
    draws = []
    for draw in range(PAPER_PROBE["gdas_draws"] if settings.get("mode") in SAMPLED else 1):
        records, states = {}, {}
        for count in (small, large):
            train_batch, val_batch = batch(count), batch(count)
            # The same sampled ops at both batches (GDAS), and the same gradients alive when the step
            # starts: a step on the same draw first (its gradients live on into the alpha step)
            reseed(1000 + draw)
            live_bytes_record(step, train_batch, val_batch)
            reseed(1000 + draw)
            states[count] = live_state_bytes(model, optimizers)
            records[count] = live_bytes_record(step, train_batch, val_batch)
        if len(records[small]) != len(records[large]) or states[small] != states[large]:
            raise RuntimeError(f"{name}: the steps at batch {small} and {large} differ in their allocations "
                               f"({len(records[small])} and {len(records[large])} records); cannot extrapolate")
        state = states[small]
        base = state["parameter_bytes"] + state["gradient_bytes"] + state["optimizer_bytes"]
        extrapolated = [at_small + (paper_images - small) * (at_large - at_small) / (large - small)
                        for at_small, at_large in zip(records[small], records[large])]
        peak_index = max(range(len(extrapolated)), key=extrapolated.__getitem__)
        draws.append({**state, "records": len(extrapolated),
                      "probe_peak_bytes": {str(count): base + max(records[count]) for count in (small, large)},
                      "paper_activation_bytes": extrapolated[peak_index],
                      "peak_at_fraction_of_step": peak_index / max(1, len(extrapolated) - 1),
                      "paper_bytes": base + max(0.0, extrapolated[peak_index])})
    return {"mode": name, "parameters": parameters, "probe_size": list(size), "probe_batches": [small, large],
            "draws": draws, "paper_bytes_mean": statistics.mean(d["paper_bytes"] for d in draws),
            "paper_bytes_max": max(d["paper_bytes"] for d in draws)}


def _cells_forward_flops(model, images) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    total = [0]

    def pre(module, inputs):
        module._counter = FlopCounterMode(display=False)
        module._counter.__enter__()

    def post(module, inputs, output):
        module._counter.__exit__(None, None, None)
        total[0] += module._counter.get_total_flops()

    handles = [h for cell in model.cells for h in (cell.register_forward_pre_hook(pre), cell.register_forward_hook(post))]
    with torch.no_grad():
        model(images)
    for handle in handles:
        handle.remove()
    return total[0]


# ---- report --------------------------------------------------------------------------------------
def hours(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:,.0f}"


def part_one_table(args: argparse.Namespace, measured: list[dict]) -> list[str]:
    lines = [
        "",
        "A search step is an alpha step on one batch plus a weight step on another (first order); the UNet "
        "step is one forward, backward and Adam step. Peak = the process's peak "
        + ("allocated GPU memory" if args.device == "cuda" else "resident set size (includes Python and torch, about 0.3 GB)")
        + "; step = peak minus the memory before the first step (parameters and data); activations = step minus "
        "gradients and Adam moments (3x the parameter bytes).",
        "",
        "| setting | parameters | step s | x UNet | peak MB | x UNet | step MB | activations MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    unet = next((r for r in measured if r["mode"] == "unet_resnet34"), None)
    for record in measured:
        ratio_time = f"{record['step_s'] / unet['step_s']:.1f}" if unet else "-"
        ratio_memory = f"{record['peak_mb'] / unet['peak_mb']:.1f}" if unet else "-"
        lines.append(
            f"| {MODES[record['mode']][0]} | {record['parameters'] / 1e6:.2f} M | {record['step_s']:.3f} | {ratio_time} | "
            f"{record['peak_mb']:.0f} | {ratio_memory} | {record['step_mb']:.0f} | {record['activation_mb']:.0f} |"
        )
    return lines


def markdown(args: argparse.Namespace, measured: list[dict], paper: list[dict], paper_memory: list[dict],
             started: float) -> str:
    device = torch.cuda.get_device_name(0) if args.device == "cuda" else f"{cpu_model()}, {os.cpu_count()} cores"
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    load = os.getloadavg()[0]
    lines = [
        "## Search modes: cost of one search step",
        "",
        f"Command: `python bench/bench_search_modes.py {' '.join(sys.argv[1:])}` "
        f"(width {args.width}, {args.size[0]}x{args.size[1]}, batch {args.batch}, {NUM_CLASSES} classes, "
        f"median of {args.steps} steps after one warm-up step, each setting in a fresh process).  ",
        f"Machine: {device}; OMP_NUM_THREADS={threads}; torch {torch.__version__}; "
        f"1-minute load average {load:.1f} at the end.  ",
        f"Date: {datetime.date.today().isoformat()}; took {(time.perf_counter() - started) / 60:.1f} min.",
    ]
    if measured:
        lines += part_one_table(args, measured)
    if paper:
        memory = {record["mode"]: record for record in paper_memory}
        steps_per_epoch = args.paper_train_images // 2 // PAPER["batch"]
        probe = PAPER_PROBE["size"]
        lines += [
            "",
            f"### Paper scale (width {PAPER['width']}, {PAPER['size'][0]}x{PAPER['size'][1]}, batch {PAPER['batch']})",
            "",
            "FLOPs of one search step counted on the meta device (convolutions and matmuls; GDAS: mean over 3 "
            "random samples; checkpointing adds one forward pass of the cells per step). Memory (a) counted: "
            "16 bytes per parameter (fp32 weights, gradients, Adam moments) + the bytes of the tensors autograd saves in "
            "one fp32 forward pass (meta device; with checkpointing: the rest of the net, the cells' inputs and the "
            "largest cell). Memory (b) measured: the live tensor bytes through real search steps of the "
            f"width-{PAPER['width']} supernet on the CPU (torch.profiler's allocation record, the CPU counterpart of "
            f"`torch.cuda.max_memory_allocated`), at {probe[0]}x{probe[1]} and batches "
            f"{' and '.join(map(str, PAPER_PROBE['batches']))}; the two records list the same allocations in the same "
            "order, so every point is extrapolated linearly in batch x H x W to the paper's batch and size, and the "
            "peak is taken over the extrapolated record (at the paper's size the peak falls elsewhere in the step than "
            "at the probe's); plus the parameters, Adam moments of every op and the gradients alive when the step "
            f"starts. GDAS: the largest of {PAPER_PROBE['gdas_draws']} sampled architectures (mean in brackets). Neither "
            "includes the "
            "CUDA caching allocator's slack or cuDNN workspaces (typically a few GB). Fits 24 GB: by (b). "
            f"A 300-epoch search = 300 x {steps_per_epoch} steps ({args.paper_train_images} training images split in "
            f"two halves, batch {PAPER['batch']}); hours at ASSUMED sustained throughputs of 30 TFLOP/s (an RTX "
            "3090-class card, TF32) and 200 TFLOP/s (an H100, bf16), not measured.",
            "",
            "| setting | parameters | TFLOPs per step | memory GB (a) counted | (b) measured | fits 24 GB | "
            "300 epochs, h at 30 / 200 TFLOP/s |",
            "|---|---:|---:|---:|---:|---|---:|",
        ]
        for record in paper:
            name = record["mode"]
            counted = "-" if record["activation_bytes"] is None else \
                f"{(16 * record['parameters'] + record['activation_bytes']) / 2**30:.1f}"
            measured = memory.get(name)
            if measured is not None:
                largest, mean = measured["paper_bytes_max"] / 2**30, measured["paper_bytes_mean"] / 2**30
                measured_text = f"{largest:.1f}" + (f" ({mean:.1f})" if len(measured["draws"]) > 1 else "")
                fits = "yes" if largest <= 24 else ("some samples" if mean <= 24 else "no")
            else:
                measured_text, fits = "-", "-"
            total_flops = record["step_flops"] * steps_per_epoch * PAPER["epochs"]
            lines.append(
                f"| {MODES[name][0]} | {record['parameters'] / 1e6:.1f} M | {record['step_flops'] / 1e12:.1f} | "
                f"{counted} | {measured_text} | {fits} | "
                f"{hours(total_flops / 30e12 / 3600)} / {hours(total_flops / 200e12 / 3600)} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="width 8, 64x64, batch 2, 3 steps")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--modes", help="comma-separated subset of: " + ", ".join(MODES))
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile (slow to compile on CPU)")
    parser.add_argument("--no-paper-scale", action="store_true", help="skip the paper-scale estimate")
    parser.add_argument("--paper-scale-only", action="store_true", help="only the paper-scale costs (no part 1)")
    parser.add_argument("--paper-train-images", type=int, default=3680, help="Oxford-IIIT Pet trainval (default 3680)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per setting")
    parser.add_argument("--json", help="also write the raw numbers here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--paper-worker", help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int)
    parser.add_argument("--size")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--steps", type=int)
    args = parser.parse_args()
    defaults = {"width": 8, "size": "64x64", "batch": 2, "steps": 3} if args.quick else {
        "width": 16, "size": "96x128", "batch": 4, "steps": 5}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.size = tuple(int(v) for v in str(args.size).split("x"))

    if args.worker:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
        print(json.dumps(measure(args.worker, args.width, args.size, args.batch, args.steps, args.device)))
        return
    if args.paper_worker:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
        print(json.dumps(measure_paper_memory(args.paper_worker)))
        return

    started = time.perf_counter()
    names = args.modes.split(",") if args.modes else list(MODES)
    names = [n for n in names if n in MODES and not n.startswith("_")]
    if args.device != "cuda":
        names = [n for n in names if not MODES[n][1].get("cuda_only")]
    if not args.compile:
        names = [n for n in names if not MODES[n][1].get("optional")]
    print(f"measuring {len(names)} settings at width {args.width}, {args.size}, batch {args.batch}", file=sys.stderr)
    measured = [] if args.paper_scale_only else [record for record in (run_worker(name, args) for name in names) if record]
    paper, paper_memory = [], []
    if not args.no_paper_scale:
        print("counting the paper-scale costs on the meta device", file=sys.stderr)
        paper = [paper_scale_costs(name) for name in PAPER_MODES if name in names]
        print(f"measuring the paper-scale memory at width {PAPER['width']}, {PAPER_PROBE['size']}", file=sys.stderr)
        paper_memory = [r for r in (run_worker(name, args, paper=True) for name in PAPER_MODES if name in names) if r]
    print(markdown(args, measured, paper, paper_memory, started))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": {k: v for k, v in vars(args).items()}, "measured": measured,
                                               "paper_scale": paper, "paper_scale_memory": paper_memory},
                                              indent=2, default=str) + "\n")

if __name__ == "__main__":
    main()
