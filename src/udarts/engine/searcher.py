"""The search loop: one epoch is, for each pair of batches (one from each half of the training
split), an alpha step then a weight step (``udarts.search.darts.DartsStrategy``), then the epoch's
end. Everything else is a part of the loop (``udarts.search.loop``), called in the order of its
list (``udarts.builders.search_loop_parts``):

- ``EpochMetrics``: the epoch's losses and mIoU (on the alpha half; the weight half during the
  warm-up), measured during the steps, and the best epoch so far;
- ``DistributedSync``: one process of a ``torchrun`` launch; the epoch's losses and confusion
  matrix are summed over the processes and rank 0's BatchNorm statistics (and op masks) broadcast;
- the config's parts (``udarts.search.parts.PARTS``): the temperature of the sampled modes,
  progressive pruning, the alpha-loss penalties (expected FLOPs, beta-decay, a latency target);
- ``DivergenceGuard``: a non-finite or exploded loss, weight or alpha stops the search before
  anything of that epoch is written, naming the learning rate to lower;
- ``ProgressBars`` (``progress``), and on the process that writes the run (rank 0), ``CellWarnings``
  (weakly determined or degenerate cells of the final genotype, on stderr) and ``RunLog``: the
  derived genotype, ``alphas.jsonl``, the parts' other logs, ``metrics.jsonl`` and the checkpoint,
  which commits the epoch.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from udarts.efficiency import to_device
from udarts.engine.layout import ALPHAS_LOG, GENOTYPE_FILE
from udarts.engine.runs import Run
from udarts.engine.trainer import divergence_error, divergence_problem, epoch_seed, seed_epoch
from udarts.genotype import Genotype, derive
from udarts.io import append_line, writing
from udarts.metrics import ConfusionMatrix
from udarts.search.darts import DartsStrategy
from udarts.search.diagnostics import CellDiagnostics, diagnose, genotype_warnings, print_warnings
from udarts.search.loop import Batch, Epoch, SearchPart, collect_state
from udarts.search.supernet import SuperNet


def current_genotype(
    model: SuperNet, top_k: int, search_meta: dict[str, Any], max_identity: int | None = None,
) -> Genotype:
    """The genotype of the current alphas (with the PC-DARTS betas and pruning masks); ``top_k``
    and ``max_identity`` (see ``udarts.genotype.derive_cell``) are recorded in its metadata."""
    masks = model.op_masks() if not all(bool(mask.all()) for mask in model.op_masks()) else None
    return derive(
        model.alpha_parameters(), model.op_names, model.num_nodes, top_k, model.settings,
        {**search_meta, "top_k": top_k, "max_identity": max_identity},
        edge_scales=model.edge_normalization_weights(), op_masks=masks, max_identity=max_identity,
    )


def genotype_diagnostics(model: SuperNet, genotype: Genotype) -> list[CellDiagnostics]:
    """Per cell, the diagnostics (``udarts.search.diagnostics``) of the current alphas and ``genotype``."""
    return diagnose(model.alphas_softmax(), model.op_names, genotype, model.edge_normalization_weights())


def log_alphas(run: Run, model: SuperNet, epoch: int, genotype: Genotype | None = None) -> None:
    """Append the softmax of every cell's alphas (one row per edge) to ``alphas.jsonl``; with the
    ``genotype`` derived from them, also each cell's diagnostics (``diagnostics``: normalised
    entropy, top-1 margins, identity share, ...), which go to TensorBoard as well."""
    record: dict[str, Any] = {
        "epoch": epoch,
        "op_names": list(model.op_names),
        "cells": {slot.name: weights.tolist() for slot, weights in zip(model.slots, model.alphas_softmax())},
    }
    edge_weights = model.edge_normalization_weights()
    if edge_weights is not None:
        record["edge_weights"] = {slot.name: weights.tolist() for slot, weights in zip(model.slots, edge_weights)}
    diagnostics = genotype_diagnostics(model, genotype) if genotype is not None else []
    if diagnostics:
        record["diagnostics"] = {item.name: item.to_dict() for item in diagnostics}
    append_line(run.path / ALPHAS_LOG, json.dumps(record))
    writer = run.tensorboard()
    for slot, weights in zip(model.slots, model.alphas_softmax()):
        for op_index, op_name in enumerate(model.op_names):
            writer.add_scalar(f"alphas/{slot.name}/{op_name}", float(weights[:, op_index].mean()), epoch)
    for item in diagnostics:
        for key in ("entropy", "min_margin", "mean_margin", "identity_share"):
            writer.add_scalar(f"diagnostics/{item.name}/{key}", getattr(item, key), epoch)


def _lr_key(problem: str) -> str:
    """The learning rate to lower for a divergence: the alphas' when they exploded, else the weights'."""
    return "search.alpha_lr" if "alpha" in problem else "search.weight_lr"


class SearchBatches:
    """The pairs ``(weight batch, alpha batch)`` of an epoch, from the two halves of the training
    split: the loaders seeded for the epoch (``seed_epoch``), the batches moved to ``device``."""

    def __init__(self, weight_loader: DataLoader, alpha_loader: DataLoader, device: torch.device, *, seed: int,
                 rank: int = 0, channels_last: bool = False) -> None:
        self.loaders = [weight_loader, alpha_loader]
        self.device, self.seed, self.rank, self.channels_last = device, seed, rank, channels_last

    def __len__(self) -> int:
        return min(len(loader) for loader in self.loaders)

    def __call__(self, epoch: Epoch) -> Iterator[tuple[Batch, ...]]:
        seed_epoch(self.loaders, self.seed, epoch.index, rank=self.rank)
        for pair in zip(*self.loaders):
            yield tuple((to_device(images, self.device, self.channels_last), masks.to(self.device))
                        for images, masks in pair)


def search(model: SuperNet, strategy: DartsStrategy, batches: SearchBatches, parts: Sequence[SearchPart], *,
           epochs: int, warmup_epochs: int, start_epoch: int = 0) -> None:
    """Train the supernet from ``start_epoch`` to ``epochs``; the alphas move after ``warmup_epochs``."""
    for index in range(start_epoch, epochs):
        epoch = Epoch(index, epochs, update_alphas=index >= warmup_epochs, seed=epoch_seed(batches.seed, index))
        for part in parts:
            part.on_epoch_start(epoch)
        model.train()
        for train_batch, val_batch in batches(epoch):
            # alpha step on the val batch (after the warm-up), then weight step on the train batch
            out = strategy.step(train_batch, val_batch, update_alphas=epoch.update_alphas)
            epoch.steps += 1
            for part in parts:
                part.on_step(epoch, (train_batch, val_batch), out)
        for part in parts:
            part.on_epoch_end(epoch)


# ---- the loop's own parts ------------------------------------------------------------------------


class EpochMetrics(SearchPart):
    """Losses and mIoU of every epoch, measured during its steps: on the alpha half (``val_*``), or
    the weight half during the warm-up (``train_miou``); the best epoch is the best ``val_miou``."""

    def __init__(self, num_classes: int, ignore_index: int | None) -> None:
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.best_miou, self.best_epoch = -math.inf, None

    def on_epoch_start(self, epoch: Epoch) -> None:
        self.started = time.perf_counter()
        self.confusion = ConfusionMatrix(self.num_classes, self.ignore_index)
        self.train_loss_sum, self.val_loss_sum = 0.0, 0.0

    def on_step(self, epoch: Epoch, batch: tuple[Batch, Batch], out: dict[str, torch.Tensor]) -> None:
        (_, train_masks), (_, val_masks) = batch
        self.train_loss_sum += float(out["train_loss"])
        if epoch.update_alphas:
            self.val_loss_sum += float(out["val_loss"])
            self.confusion.update(out["val_logits"], val_masks)
        else:
            self.confusion.update(out["train_logits"], train_masks)

    def on_epoch_end(self, epoch: Epoch) -> None:
        miou, alphas = self.confusion.compute()["miou"], epoch.update_alphas
        epoch.record.update({
            "epoch": epoch.number,
            "train_loss": self.train_loss_sum / max(epoch.steps, 1),
            "val_loss": self.val_loss_sum / epoch.steps if alphas and epoch.steps else None,
            "val_miou": miou if alphas else None,
            "train_miou": None if alphas else miou,
            "alphas_updated": alphas,
            "seconds": time.perf_counter() - self.started,
        })
        epoch.is_best = alphas and miou > self.best_miou
        if epoch.is_best:
            self.best_miou, self.best_epoch = miou, epoch.number

    def state_dict(self) -> dict[str, Any]:
        return {"best_miou": self.best_miou, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_miou, self.best_epoch = state["best_miou"], state.get("best_epoch")


class DistributedSync(SearchPart):
    """Under ``torchrun``: the epoch's losses averaged and its confusion matrix summed over the
    processes (before ``EpochMetrics`` ends the epoch), rank 0's BatchNorm statistics broadcast."""

    def __init__(self, distributed: Any, model: SuperNet, metrics: EpochMetrics, device: torch.device) -> None:
        self.distributed, self.model, self.metrics, self.device = distributed, model, metrics, device

    def on_epoch_end(self, epoch: Epoch) -> None:
        metrics, distributed = self.metrics, self.distributed
        metrics.train_loss_sum, metrics.val_loss_sum = distributed.mean([metrics.train_loss_sum, metrics.val_loss_sum])
        metrics.confusion.matrix = distributed.sum_(metrics.confusion.matrix.to(self.device)).cpu()
        distributed.broadcast_module_(self.model, buffers_only=True)  # BN running statistics (and op masks) of rank 0


class DivergenceGuard(SearchPart):
    """A non-finite loss (every step) or a non-finite or exploded weight or alpha (every epoch's
    end) stops the search before anything of the epoch is written (``DivergenceError``)."""

    def __init__(self, model: SuperNet, run: Run | None) -> None:
        self.model, self.run = model, run

    def on_step(self, epoch: Epoch, batch: tuple[Batch, Batch], out: dict[str, torch.Tensor]) -> None:
        losses = {"training loss": float(out["train_loss"])}
        if epoch.update_alphas:
            losses["val-half loss"] = float(out["val_loss"])
        self._check(epoch, divergence_problem(None, losses), f" at step {epoch.steps}")

    def on_epoch_end(self, epoch: Epoch) -> None:
        self._check(epoch, divergence_problem(self.model, {}), "")

    def _check(self, epoch: Epoch, problem: str | None, where: str) -> None:
        if problem is not None:
            raise divergence_error("the search", epoch.number, problem + where, _lr_key(problem), self.run)


class ProgressBars(SearchPart):
    """A bar over the epochs and one over each epoch's steps, with the mean training loss."""

    def __init__(self, steps_per_epoch: int) -> None:
        self.steps_per_epoch = steps_per_epoch
        self.epochs_bar: Any = None

    def on_epoch_start(self, epoch: Epoch) -> None:
        if self.epochs_bar is None:
            self.epochs_bar = tqdm(desc="search", initial=epoch.index, total=epoch.epochs)
        desc = f"epoch {epoch.number}" + ("" if epoch.update_alphas else " (warm-up)")
        self.bar = tqdm(total=self.steps_per_epoch, desc=desc, leave=False)
        self.loss_sum = 0.0

    def on_step(self, epoch: Epoch, batch: tuple[Batch, Batch], out: dict[str, torch.Tensor]) -> None:
        self.loss_sum += float(out["train_loss"])
        self.bar.set_postfix(train_loss=f"{self.loss_sum / epoch.steps:.4f}", refresh=False)
        self.bar.update()

    def on_epoch_end(self, epoch: Epoch) -> None:
        self.bar.close()
        self.epochs_bar.set_postfix(train_loss=f"{epoch.record['train_loss']:.4f}", refresh=False)
        self.epochs_bar.update()
        if epoch.number == epoch.epochs:
            self.epochs_bar.close()


class CellWarnings(SearchPart):
    """At the end, a warning on stderr for every weakly determined or degenerate cell of the final
    genotype (``udarts.search.diagnostics``)."""

    def __init__(self, model: SuperNet) -> None:
        self.model = model

    def on_search_end(self, genotype: Genotype) -> None:
        print_warnings(genotype_warnings(genotype_diagnostics(self.model, genotype)))


class RunLog(SearchPart):
    """The run folder, at the end of every epoch: the genotype of the current alphas, the alphas
    (``alphas.jsonl``), the parts' other logs (``epoch.lines``), the epoch's metrics and the
    checkpoint (the model, ``states``' ``state_dict()``s, ``extra``), which commits the epoch."""

    def __init__(self, run: Run, model: SuperNet, genotype_of: Callable[[int], Genotype], states: Sequence[Any],
                 extra: dict[str, Any]) -> None:
        self.run, self.model, self.genotype_of, self.states, self.extra = run, model, genotype_of, states, extra

    def on_epoch_end(self, epoch: Epoch) -> None:
        run, genotype = self.run, self.genotype_of(epoch.number)
        with writing(run.path / GENOTYPE_FILE):  # a full disk names the file
            genotype.save(run.path / GENOTYPE_FILE)
        log_alphas(run, self.model, epoch.number, genotype)
        for name, records in epoch.lines.items():
            for record in records:
                append_line(run.path / name, json.dumps(record))
        run.log(epoch.record, step=epoch.number)
        state = {"kind": "search", "epoch": epoch.number, "model": self.model.state_dict(),
                 **collect_state(self.states), "genotype": genotype.to_dict(), **self.extra}
        run.save_epoch(state, epoch.is_best)
