"""Efficiency switches for the search (and any training loop): mixed precision, channels-last
memory format and ``torch.compile``. Activation checkpointing lives with the cells
(``SuperNet(checkpoint_cells=True)``), because what it recomputes is a cell.

- ``MixedPrecision("bf16" | "fp16" | "none", device)``: ``autocast()`` runs convolutions in the low
  precision (Micikevicius et al., "Mixed Precision Training", ICLR 2018); fp16 adds a
  ``GradScaler`` (dynamic loss scaling) because its gradients underflow; bf16 has fp32's range
  and needs none. Parameters, optimiser states and the loss stay fp32.
- ``channels_last``: NHWC tensors, the layout tensor-core convolutions want on CUDA.
- ``compile_model``: ``torch.compile`` in place (``nn.Module.compile``); it pays off for the fixed
  graphs of ``darts`` and ``pc_darts``; a ``gdas`` step changes its graph every step (another
  sampled op per edge), so compiling it recompiles or falls back to eager.
"""

from __future__ import annotations

import contextlib
import os
from typing import ContextManager, Iterator

import torch
from torch import Tensor, nn

AMP_MODES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class MixedPrecision:
    def __init__(self, mode: str, device: torch.device | str) -> None:
        if mode not in AMP_MODES:
            raise ValueError(f"search.amp must be one of {sorted(AMP_MODES)}, got {mode!r}")
        self.mode = mode
        self.dtype = AMP_MODES[mode]
        self.device_type = torch.device(device).type
        self.grad_scaler = torch.amp.GradScaler(self.device_type) if mode == "fp16" else None

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    def autocast(self) -> ContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


def to_channels_last(model: nn.Module) -> nn.Module:
    """Convert the 4-d parameters and buffers of ``model`` to channels-last, in place."""
    return model.to(memory_format=torch.channels_last)


def to_device(tensor: Tensor, device: torch.device, channels_last: bool = False) -> Tensor:
    """Move a batch tensor; images ``(B, C, H, W)`` become channels-last when asked."""
    tensor = tensor.to(device, non_blocking=True)
    if channels_last and tensor.dim() == 4:
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    return tensor


def compile_model(model: nn.Module, backend: str = "inductor", mode: str | None = None) -> nn.Module:
    """``torch.compile`` the module's forward in place (parameters and state-dict keys unchanged)."""
    model.compile(backend=backend, mode=mode)
    return model


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run torch with ``threads`` intra-op threads for the duration, then restore the setting."""
    before = torch.get_num_threads()
    if threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def use_threads(threads: int | None, device: torch.device, announce: bool = True) -> None:
    """Set torch's intra-op threads to ``threads`` (the config's ``threads``; None keeps torch's);
    on a CPU whose other jobs already keep its cores busy, say that more than one thread can run
    many times slower (docs/usage.md, "Threads on a CPU")."""
    if threads is not None:
        torch.set_num_threads(threads)
    threads, cores = torch.get_num_threads(), os.cpu_count() or 1
    if announce and device.type == "cpu" and threads > 1 and hasattr(os, "getloadavg"):
        load = os.getloadavg()[0]
        if load > cores - threads + 0.5:
            print(f"note: this machine is busy (load {load:.1f} on {cores} cores) and torch runs {threads} threads, which "
                  "then wait for each other at every op and can run many times slower; --set threads=1 avoids it "
                  "(docs/usage.md, \"Threads on a CPU\")")
