"""Multi-process search and retraining under ``torchrun``: one process per device, the gradients
of the global batch on every process, and one process (rank 0) that writes the run folder.

Launch: ``torchrun --nproc_per_node N -m udarts.cli search ...`` or ``... udarts.cli train ...``
(``udarts`` reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``
from the environment; NCCL on CUDA with one GPU per process, gloo on CPU).

What both commands share:

- ``data.batch_size`` is the GLOBAL batch: every process draws the same shuffled batches and
  loads only its contiguous slice (``shard_loader``), so N processes follow the same trajectory
  as one process on the whole batch (up to random augmentation, see below);
- BatchNorm uses the statistics of the global batch (``GlobalBatchNorm2d``, on by default:
  ``search.sync_batchnorm``, ``train.sync_batchnorm``), so the forward pass matches the
  single-process one; without it the running statistics are taken from rank 0 at the end of
  every epoch;
- the losses are means over each process's slice; with a per-pixel-mean loss (``ce``) the
  averaged gradient is the global batch's gradient exactly; the Dice loss sums over its batch,
  so under N processes it is the mean of N slice-level Dice losses;
- random augmentation differs between the processes while the shuffling does not: every loader's
  generator (the sampler's order, and the base seed of its workers) is seeded alike on every
  process, but torch's global generator, which the transforms draw from, is reseeded per rank
  every epoch (``rank_seed``; ``udarts.engine.trainer.seed_epoch``), and so is every worker of a
  sharded loader (``shard_loader``). A single process, and rank 0, keep the seeds a single
  process always had; without workers the seeds are a function of (seed, epoch, rank), so a
  resumed run redraws them (persistent workers are seeded once, from the loader's generator at
  the first epoch the process runs, on one process as on N); with augmentation, N processes
  follow one process only statistically;
- rank 0 alone creates and writes the run folder; the others learn its path from rank 0.

How the gradients are averaged differs:

- search: explicitly (``Distributed.average_``, in buckets of about 25 MB) after rank 0's
  parameters and buffers were broadcast once; the alpha step takes ``autograd.grad``, which
  DistributedDataParallel's hooks (they reduce in ``backward()`` only) would not see;
- retraining: a plain ``backward()``, so the model is wrapped in DistributedDataParallel itself
  (``Distributed.data_parallel``), which broadcasts rank 0's state once and averages the weight
  gradients while the backward pass runs. Validation is sharded (``shard_dataset``: each process
  evaluates a contiguous block of the split) and the confusion matrices are summed, so the
  logged mIoU is the single-process one.
"""

from __future__ import annotations

import functools
import os
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

BUCKET_BYTES = 25 * 1024 * 1024


@dataclass
class Distributed:
    """The process group of a ``torchrun`` launch, as seen by one process."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def average_(self, tensors: Sequence[Tensor], bucket_bytes: int = BUCKET_BYTES) -> None:
        """Replace each tensor by its mean over the processes (in place, flattened in buckets)."""
        for bucket in _buckets([t for t in tensors if t is not None], bucket_bytes):
            flat = torch.cat([t.reshape(-1) for t in bucket])
            dist.all_reduce(flat)
            flat.div_(self.world_size)
            offset = 0
            for tensor in bucket:
                tensor.copy_(flat[offset : offset + tensor.numel()].view_as(tensor))
                offset += tensor.numel()

    def sum_(self, tensor: Tensor) -> Tensor:
        dist.all_reduce(tensor)
        return tensor

    def mean(self, values: Sequence[float]) -> list[float]:
        """The mean over the processes of each number (a per-process loss, say), in float64."""
        totals = self.sum_(torch.tensor(list(values), dtype=torch.float64, device=self.device))
        return (totals / self.world_size).tolist()

    def data_parallel(self, module: nn.Module) -> DistributedDataParallel:
        """``module`` wrapped in DistributedDataParallel: rank 0's parameters and buffers are
        copied to every process now, and every ``backward()`` averages the parameter gradients
        over the processes (in buckets, while the backward pass runs).

        ``static_graph``: a fixed network uses the same parameters at every step, but not always
        all of them (a genotype whose decoder cell reads only the encoder skip leaves the cells
        and the upsampling below it without a gradient); DDP learns the set at the first step
        instead of searching the autograd graph at every step (``find_unused_parameters``).
        Buffers (BatchNorm's running statistics) are copied from rank 0 before every forward
        pass, DDP's default: with global-batch BatchNorm they are the same everywhere anyway.
        """
        return DistributedDataParallel(
            module, device_ids=[self.device] if self.device.type == "cuda" else None, static_graph=True
        )

    def broadcast_module_(self, module: nn.Module, buffers_only: bool = False) -> None:
        """Copy rank 0's parameters (unless ``buffers_only``) and buffers to every process."""
        tensors = [] if buffers_only else [p.data for p in module.parameters()]
        tensors += [b for b in module.buffers()]
        with torch.no_grad():
            for tensor in tensors:
                dist.broadcast(tensor, src=0)

    def broadcast_object(self, value: Any) -> Any:
        holder = [value if self.is_main else None]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]


def _buckets(tensors: list[Tensor], bucket_bytes: int) -> Iterator[list[Tensor]]:
    bucket: list[Tensor] = []
    size = 0
    for tensor in tensors:
        nbytes = tensor.numel() * tensor.element_size()
        if bucket and (size + nbytes > bucket_bytes or tensor.dtype != bucket[0].dtype or tensor.device != bucket[0].device):
            yield bucket
            bucket, size = [], 0
        bucket.append(tensor)
        size += nbytes
    if bucket:
        yield bucket


def launched_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched_rank() -> int:
    """This process's rank under ``torchrun`` (0 in a single process), readable before the process
    group is joined: a resumed run reads its config (and its device) first."""
    return int(os.environ.get("RANK", "0")) if launched_world_size() > 1 else 0


def init_from_environment(device_name: str) -> Distributed | None:
    """Join the process group that ``torchrun`` set up; ``None`` for a single process.

    ``device_name`` is the config's ``device``: ``auto`` picks CUDA when available; with CUDA each
    process takes GPU ``LOCAL_RANK``; a fixed ``cuda:N`` is refused (torchrun assigns the GPUs).
    """
    world_size = launched_world_size()
    if world_size <= 1:
        return None
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    if device_name.startswith("cuda:"):
        raise ValueError(f"device: {device_name!r} under torchrun; use 'cuda' (each process takes GPU LOCAL_RANK) or 'auto'")
    if use_cuda:
        if torch.cuda.device_count() <= local_rank:
            raise ValueError(f"torchrun started local rank {local_rank} but only {torch.cuda.device_count()} GPU(s) are visible")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return Distributed(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def shutdown(context: Distributed | None) -> None:
    if context is not None and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


# ---- data -------------------------------------------------------------------------------------
class RankSliceBatchSampler(Sampler[list[int]]):
    """Yields this rank's contiguous slice of every batch that ``batch_sampler`` yields."""

    def __init__(self, batch_sampler: Any, rank: int, world_size: int) -> None:
        self.batch_sampler = batch_sampler
        self.rank = rank
        self.world_size = world_size

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batch_sampler:
            batch = list(batch)
            base, extra = divmod(len(batch), self.world_size)
            start = self.rank * base + min(self.rank, extra)
            yield batch[start : start + base + (self.rank < extra)]

    def __len__(self) -> int:
        return len(self.batch_sampler)


# Rank r's augmentation seed is the shared seed plus r times this odd 64-bit constant (2**64 over
# the golden ratio), modulo 2**64: far from the shared seeds of other epochs and of other workers.
RANK_SEED_STRIDE = 0x9E37_79B9_7F4A_7C15


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s random augmentation, derived from ``seed``, a seed that every
    process shares (an epoch's seed, a DataLoader worker's seed): ``seed`` itself on rank 0, so a
    single process and rank 0 draw what they drew before ranks had seeds of their own; on any
    other rank ``(seed + rank * RANK_SEED_STRIDE) mod 2**64``, a different stream per rank."""
    if rank == 0:
        return seed
    return (seed + rank * RANK_SEED_STRIDE) % 2**64


def seed_worker_for_rank(rank: int, chained: Callable[[int], None] | None, worker_id: int) -> None:
    """A DataLoader ``worker_init_fn`` (bound with ``functools.partial``): torch has seeded the
    worker from the loader's generator, alike on every process; move the worker's torch, ``random``
    and NumPy generators to this rank's stream (:func:`rank_seed`; nothing changes on rank 0),
    then run the loader's own ``worker_init_fn`` (``chained``), if any."""
    if rank != 0:
        seed = rank_seed(torch.initial_seed(), rank)
        torch.manual_seed(seed)
        random.seed(seed)
        try:
            import numpy as np
        except ImportError:  # pragma: no cover - numpy ships with udarts' dependencies
            pass
        else:
            np.random.seed(seed % 2**32)
    if chained is not None:
        chained(worker_id)


def shard_loader(loader: DataLoader, rank: int, world_size: int) -> DataLoader:
    """A loader over the same global batches as ``loader`` (same sampler and generator) that
    loads only this rank's slice of each. ``loader.batch_size`` must divide by ``world_size``.

    Its workers start from the seeds that ``loader``'s would (the generator is shared) and then
    move to this rank's augmentation stream (:func:`seed_worker_for_rank`); without workers the
    transforms draw from torch's global generator, which ``seed_epoch`` seeds per rank."""
    if loader.batch_size is None or loader.batch_size % world_size:
        raise ValueError(
            f"data.batch_size = {loader.batch_size} (the global batch) must be divisible by the {world_size} processes"
        )
    return DataLoader(
        loader.dataset,
        batch_sampler=RankSliceBatchSampler(loader.batch_sampler, rank, world_size),
        num_workers=loader.num_workers,
        pin_memory=loader.pin_memory,
        generator=loader.generator,
        worker_init_fn=functools.partial(seed_worker_for_rank, rank, loader.worker_init_fn),
        persistent_workers=loader.persistent_workers,
        collate_fn=loader.collate_fn,
    )


def shard_dataset(dataset: Dataset, rank: int, world_size: int) -> Subset:
    """This rank's contiguous block of ``dataset`` for evaluation: the blocks cover every sample
    exactly once (their sizes differ by at most one when ``world_size`` does not divide the
    length; no padding, so no sample is counted twice)."""
    base, extra = divmod(len(dataset), world_size)
    start = rank * base + min(rank, extra)
    return Subset(dataset, range(start, start + base + (rank < extra)))


# ---- BatchNorm over the global batch ------------------------------------------------------------
class _SumOverProcesses(torch.autograd.Function):
    """``y = sum over processes of x``; its gradient is the sum over processes of ``dL/dy``."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        total = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Tensor:
        grad = grad_output.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad


def sum_over_processes(tensor: Tensor) -> Tensor:
    """A differentiable all-reduce (sum)."""
    return _SumOverProcesses.apply(tensor)


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose training-mode statistics are those of the global batch of every process
    (two differentiable all-reduces: the per-channel sums and count, then the sums of squared
    deviations; ``torch.nn.SyncBatchNorm`` does the same on GPUs only). Outside a process group,
    or in eval mode, it is ``nn.BatchNorm2d``."""

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        channels = x.shape[1]
        shape = (1, channels, 1, 1)
        values = x if x.dtype in (torch.float32, torch.float64) else x.float()  # statistics in fp32 under autocast
        count = torch.full((1,), values.numel() / channels, dtype=values.dtype, device=values.device)
        # two passes, as a single-process BatchNorm: the mean, then the mean squared deviation
        # (one pass of sums of squares loses float32 digits when |mean| >> std)
        total = sum_over_processes(torch.cat([values.sum(dim=(0, 2, 3)), count]))
        n = total[-1]
        mean = total[:channels] / n
        centred = values - mean.view(shape)
        var = sum_over_processes(centred.square().sum(dim=(0, 2, 3))) / n
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked + 1)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
                unbiased = var.detach() * n / (n - 1).clamp_min(1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
                self.num_batches_tracked.add_(1)
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(x.dtype)


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm2d`` in ``module`` by a ``GlobalBatchNorm2d`` with the same
    parameters and buffers (state-dict keys unchanged)."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            floating = [t for t in list(child.parameters()) + list(child.buffers()) if t.is_floating_point()]
            replacement = GlobalBatchNorm2d(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats,
                device=floating[0].device if floating else None, dtype=floating[0].dtype if floating else None,
            )
            replacement.load_state_dict(child.state_dict())
            replacement.train(child.training)
            setattr(module, name, replacement)
        else:
            convert_batchnorm(child)
    return module
