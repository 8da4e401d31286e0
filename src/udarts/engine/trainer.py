"""Training and evaluation of a fixed network (SEARCH-Net or a baseline).

Under ``torchrun`` (``distributed``, see ``udarts.engine.distributed``) every process runs
``fit`` on its slice of every global batch: the weights train through DistributedDataParallel,
each process evaluates its block of the validation split, and the epoch's losses and confusion
matrix are reduced over the processes, so every process holds the metrics that rank 0 logs.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from udarts.engine.distributed import Distributed, rank_seed
from udarts.engine.layout import LAST_CHECKPOINT
from udarts.engine.runs import Run
from udarts.metrics import ConfusionMatrix, chance_miou

# A weight this large means the run has diverged (sane networks stay many orders of magnitude below).
MAX_ABS_WEIGHT = 1.0e6


class DivergenceError(FloatingPointError):
    """A loss or a weight became non-finite or exploded; nothing of that epoch was saved."""


def divergence_problem(model: nn.Module | None, losses: dict[str, float | None]) -> str | None:
    """What shows that a run diverged (a non-finite loss, a non-finite or exploded weight of
    ``model``), or None."""
    for name, value in losses.items():
        if value is not None and not math.isfinite(value):
            return f"the {name} is {value}"
    if model is None:
        return None
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if not bool(torch.isfinite(parameter).all()):
                return f"parameter {name} is not finite"
            largest = float(parameter.abs().max()) if parameter.numel() else 0.0
            if largest > MAX_ABS_WEIGHT:
                return f"parameter {name} exploded (|value| up to {largest:.3g})"
        for name, buffer in model.named_buffers():
            if buffer.is_floating_point() and not bool(torch.isfinite(buffer).all()):
                return f"buffer {name} is not finite"
    return None


def divergence_error(what: str, epoch: int, problem: str, lr_key: str, run: Run | None) -> DivergenceError:
    """The one-line message of a divergence in ``epoch`` (1-based): what was kept and how to go on."""
    folder = str(run.path) if run is not None else "RUN_DIR"
    kept = f"{LAST_CHECKPOINT} keeps epoch {epoch - 1}" if epoch > 1 else "no checkpoint was written"
    goes_on = f"from epoch {epoch - 1}" if epoch > 1 else "from the start"
    return DivergenceError(
        f"{what} diverged in epoch {epoch}: {problem}; nothing of epoch {epoch} was saved ({kept}). "
        f"Lower {lr_key}: --resume {folder} --set {lr_key}=SMALLER continues {goes_on}"
    )


def cosine_lr(base_lr: float, min_lr: float, epoch: int, epochs: int) -> float:
    """The closed form of ``CosineAnnealingLR`` at ``epoch`` of a period of ``epochs``."""
    return min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * epoch / max(1, epochs))) / 2


def reschedule(optimizer: torch.optim.Optimizer, scheduler, name: str, epochs: int, lr: float, min_lr: float) -> None:
    """On a resume that changes ``train.epochs`` or ``train.lr``: the schedule restarts its period
    from the new settings at the epoch reached (a longer cosine schedule is stretched, not left at
    its minimum)."""
    if name == "cosine":
        scheduler.T_max = max(1, epochs)
    scheduler.base_lrs = [lr for _ in optimizer.param_groups]
    for group in optimizer.param_groups:
        group["initial_lr"] = lr
        group["lr"] = cosine_lr(lr, min_lr, scheduler.last_epoch, epochs) if name == "cosine" else lr
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch: a resumed run replays exactly the epochs it had not done."""
    return seed * 100_003 + epoch


def seed_epoch(loaders: Iterable[DataLoader], seed: int, epoch: int, rank: int = 0) -> None:
    """Seed one epoch: each loader's generator (the shuffling, and its workers' base seed) alike on
    every process, so that all ranks draw the same global batches; torch's global generator (the
    random augmentation without workers) per process (``rank_seed``; unchanged on rank 0 and in
    a single process)."""
    torch.manual_seed(rank_seed(epoch_seed(seed, epoch), rank))
    for index, loader in enumerate(loaders):
        if loader.generator is not None:
            loader.generator.manual_seed(epoch_seed(seed, epoch) + 7919 * (index + 1))


# name -> optimiser(parameters, lr, momentum, betas, weight_decay); SGD uses momentum, the Adam family betas
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": lambda parameters, lr, momentum, betas, weight_decay: torch.optim.SGD(
        parameters, lr=lr, momentum=momentum, weight_decay=weight_decay),
    "adam": lambda parameters, lr, momentum, betas, weight_decay: torch.optim.Adam(
        parameters, lr=lr, betas=betas, weight_decay=weight_decay),
    "adamw": lambda parameters, lr, momentum, betas, weight_decay: torch.optim.AdamW(
        parameters, lr=lr, betas=betas, weight_decay=weight_decay),
}

# name -> scheduler(optimizer, epochs, min_lr), stepped once per epoch; cosine: from the initial lr to min_lr
SCHEDULERS: dict[str, Callable[[torch.optim.Optimizer, int, float], Any]] = {
    "cosine": lambda optimizer, epochs, min_lr: torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(1, epochs), eta_min=min_lr),
    "none": lambda optimizer, epochs, min_lr: torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0),
}


def build_optimizer(
    name: str, parameters: Iterable[nn.Parameter], lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
) -> torch.optim.Optimizer:
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {tuple(OPTIMIZERS)}")
    return OPTIMIZERS[name](parameters, lr, momentum, betas, weight_decay)


def build_scheduler(name: str, optimizer: torch.optim.Optimizer, epochs: int, min_lr: float = 0.0):
    """Stepped once per epoch. ``cosine``: cosine annealing from the initial lr to ``min_lr``."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; expected one of {tuple(SCHEDULERS)}")
    return SCHEDULERS[name](optimizer, epochs, min_lr)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    num_classes: int,
    ignore_index: int | None,
    device: torch.device,
    loss_fn: Callable | None = None,
    progress: bool = True,
    desc: str = "eval",
    distributed: Distributed | None = None,
) -> dict[str, Any]:
    """Loss (mean over images) and confusion-matrix metrics over the whole ``loader``.

    With ``distributed``, each process's ``loader`` holds its own block of the split
    (``shard_dataset``): the confusion matrices and the loss sums and image counts are summed over
    the processes, so the metrics are those of the whole split on every process. ``model`` must
    be the plain module (not the DistributedDataParallel wrapper, whose forward pass would
    communicate), and evaluation runs in eval mode, where a ``GlobalBatchNorm2d`` communicates
    nothing either.
    """
    was_training = model.training
    model.eval()
    confusion = ConfusionMatrix(num_classes, ignore_index)
    loss_sum, count = 0.0, 0
    for images, masks in tqdm(loader, desc=desc, leave=False, disable=not progress):
        images, masks = images.to(device), masks.to(device)
        logits = model(images)
        if loss_fn is not None:
            loss_sum += float(loss_fn(logits, masks)) * images.shape[0]
            count += images.shape[0]
        confusion.update(logits, masks)
    model.train(was_training)
    if distributed is not None:
        confusion.matrix = distributed.sum_(confusion.matrix.to(device)).cpu()
        loss_sum, count = distributed.sum_(torch.tensor([loss_sum, count], dtype=torch.float64, device=device)).tolist()
    metrics = confusion.compute()
    metrics["loss"] = loss_sum / count if count else math.nan
    metrics["chance_miou"] = chance_miou(confusion.matrix)
    return metrics


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: Callable,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    progress: bool = True,
    desc: str = "train",
) -> float:
    model.train()
    loss_sum, count = 0.0, 0
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress)
    for images, masks in bar:
        images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(images), masks)
        if not torch.isfinite(loss):
            raise DivergenceError(f"the training loss became {float(loss.detach())}")
        loss.backward()
        optimizer.step()
        loss_sum += float(loss.detach()) * images.shape[0]
        count += images.shape[0]
        bar.set_postfix(loss=f"{loss_sum / count:.4f}")
    return loss_sum / max(count, 1)


def fit(
    model: nn.Module,
    *,
    train_loader: DataLoader,
    val_loader: DataLoader,
    loss_fn: Callable,
    optimizer: torch.optim.Optimizer,
    scheduler,
    epochs: int,
    run: Run | None,
    device: torch.device,
    num_classes: int,
    ignore_index: int | None,
    seed: int,
    checkpoint_extra: dict[str, Any],
    start_epoch: int = 0,
    best_miou: float = -math.inf,
    progress: bool = True,
    distributed: Distributed | None = None,
    best_epoch: int | None = None,
) -> dict[str, Any]:
    """Train from ``start_epoch`` to ``epochs``; log, and checkpoint ``last.pt`` / ``best.pt`` every epoch.

    Under ``torchrun`` (``distributed``): ``model`` is the plain module (its state dict is what
    the checkpoints hold, without DDP's ``module.`` prefix) and is trained through a
    DistributedDataParallel wrapper; ``train_loader`` yields this process's slice of every
    global batch (``shard_loader``) and ``val_loader`` its block of the validation split
    (``shard_dataset``). The train loss logged is the mean over the processes. Only the process
    given a ``run`` (rank 0) logs and checkpoints; the others pass ``run=None``.
    """
    progress = progress and run is not None
    trained = distributed.data_parallel(model) if distributed is not None else model
    last_metrics: dict[str, Any] = {}
    epoch_bar = tqdm(range(start_epoch, epochs), desc="epochs", disable=not progress, initial=start_epoch, total=epochs)
    for epoch in epoch_bar:
        seed_epoch([train_loader], seed, epoch, rank=distributed.rank if distributed is not None else 0)
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        try:
            train_loss = train_one_epoch(trained, train_loader, loss_fn, optimizer, device, progress, f"epoch {epoch + 1}")
        except DivergenceError as error:
            raise divergence_error("training", epoch + 1, str(error), "train.lr", run) from None
        if distributed is not None:
            (train_loss,) = distributed.mean([train_loss])
            distributed.broadcast_module_(model, buffers_only=True)  # BatchNorm running statistics of rank 0
        scheduler.step()
        val = evaluate(model, val_loader, num_classes, ignore_index, device, loss_fn, progress, "val", distributed)
        record = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "val_loss": val["loss"],
            "val_miou": val["miou"],
            "val_pixel_accuracy": val["pixel_accuracy"],
            "val_iou_per_class": val["iou_per_class"],
            "lr": lr,
            "seconds": time.perf_counter() - started,
        }
        problem = divergence_problem(model, {"training loss": train_loss, "val loss": val["loss"]})
        if problem is not None:  # never log or save a diverged epoch (every process sees the same)
            raise divergence_error("training", epoch + 1, problem, "train.lr", run)
        is_best = val["miou"] > best_miou
        if is_best:
            best_miou, best_epoch = val["miou"], epoch + 1
        if run is not None:
            run.log(record, step=epoch + 1)
            state = {
                "kind": "train",
                "epoch": epoch + 1,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "best_miou": best_miou,
                "best_epoch": best_epoch,
                "val_miou": val["miou"],
                **checkpoint_extra,
            }
            run.save_epoch(state, is_best)
        epoch_bar.set_postfix(train_loss=f"{train_loss:.4f}", val_miou=f"{val['miou']:.4f}")
        last_metrics = record
    return {"best_miou": best_miou, "last": last_metrics}
