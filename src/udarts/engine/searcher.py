"""The search loop: runs a ``DartsStrategy`` over the two halves of the training split, logs the
alphas every epoch, and keeps the derived genotype of the current alphas in the run folder.

Options for the cheaper search modes (``docs/search_modes.md``):

- ``temperature``: GDAS's Gumbel-softmax temperature schedule; the sampler is also reseeded every
  epoch from the run's seed, so a resumed run samples what an uninterrupted one would;
- ``pruning``: progressive op pruning (``udarts.search.pruning``), applied at the end of the
  epochs it names; what was dropped when is appended to ``pruning.jsonl`` and counted in
  ``metrics.jsonl`` (``active_ops``, ``dropped_ops``); the masks are in the checkpoint's model;
- ``flops_penalty``: logs the expected GFLOPs per image every epoch;
- ``distributed``: one process of a ``torchrun`` launch; the epoch's losses and confusion matrix
  are summed over the processes, and only the process whose ``run`` is not ``None`` (rank 0)
  writes anything;
- ``channels_last``: batches move to the device in channels-last memory format.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from udarts.efficiency import to_device
from udarts.engine.layout import ALPHAS_LOG, GENOTYPE_FILE, PRUNING_LOG
from udarts.engine.runs import Run
from udarts.engine.trainer import divergence_error, divergence_problem, epoch_seed, seed_epoch
from udarts.genotype import Genotype, derive
from udarts.io import append_line, writing
from udarts.metrics import ConfusionMatrix
from udarts.search.darts import DartsStrategy
from udarts.search.diagnostics import CellDiagnostics, diagnose, genotype_warnings, print_warnings
from udarts.search.pruning import PruningSchedule, count_active_ops, prune
from udarts.search.sampling import TemperatureSchedule
from udarts.search.supernet import SuperNet

# Offset of the sampler's seed from the epoch's seed (which seeds torch's global generator).
SAMPLER_SEED_OFFSET = 104_729


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


def log_pruning(run: Run, epoch: int, records: list[dict[str, Any]]) -> None:
    """Append one line per pruned edge to ``pruning.jsonl``."""
    for record in records:
        append_line(run.path / PRUNING_LOG, json.dumps({"epoch": epoch, **record}))


def search(
    model: SuperNet,
    strategy: DartsStrategy,
    *,
    weight_loader: DataLoader,
    alpha_loader: DataLoader,
    epochs: int,
    warmup_epochs: int,
    run: Run | None,
    device: torch.device,
    num_classes: int,
    ignore_index: int | None,
    seed: int,
    top_k: int,
    search_meta: dict[str, Any],
    checkpoint_extra: dict[str, Any],
    start_epoch: int = 0,
    best_miou: float = -math.inf,
    progress: bool = True,
    on_epoch_end: Callable[[int], None] | None = None,
    temperature: TemperatureSchedule | None = None,
    pruning: PruningSchedule | None = None,
    flops_penalty: Any = None,
    distributed: Any = None,
    channels_last: bool = False,
    max_identity: int | None = None,
    best_epoch: int | None = None,
) -> Genotype:
    """Run the search from ``start_epoch`` to ``epochs`` and return the final genotype; the
    process that writes the run (``run`` not ``None``) prints, on stderr, a warning for every
    weakly determined or degenerate cell of it (``udarts.search.diagnostics``)."""
    progress = progress and run is not None
    epoch_bar = tqdm(range(start_epoch, epochs), desc="search", disable=not progress, initial=start_epoch, total=epochs)
    for epoch in epoch_bar:
        seed_epoch([weight_loader, alpha_loader], seed, epoch, rank=distributed.rank if distributed is not None else 0)
        tau = None
        if temperature is not None and model.sampler is not None:
            tau = temperature.at(epoch, epochs)
            model.set_temperature(tau)
            model.reseed_sampler(epoch_seed(seed, epoch) + SAMPLER_SEED_OFFSET)
        update_alphas = epoch >= warmup_epochs
        started = time.perf_counter()
        model.train()
        confusion = ConfusionMatrix(num_classes, ignore_index)
        train_loss_sum, val_loss_sum, steps = 0.0, 0.0, 0
        bar = tqdm(
            zip(weight_loader, alpha_loader),
            total=min(len(weight_loader), len(alpha_loader)),
            desc=f"epoch {epoch + 1}" + ("" if update_alphas else " (warm-up)"),
            leave=False,
            disable=not progress,
        )
        for (train_images, train_masks), (val_images, val_masks) in bar:
            train_batch = (to_device(train_images, device, channels_last), train_masks.to(device))
            val_batch = (to_device(val_images, device, channels_last), val_masks.to(device))
            out = strategy.step(train_batch, val_batch, update_alphas=update_alphas)
            steps += 1
            train_loss_sum += float(out["train_loss"])
            if update_alphas:
                val_loss_sum += float(out["val_loss"])
                confusion.update(out["val_logits"], val_batch[1])
            else:
                confusion.update(out["train_logits"], train_batch[1])
            bar.set_postfix(train_loss=f"{train_loss_sum / steps:.4f}")
            step_losses = {"training loss": float(out["train_loss"])}
            if update_alphas:
                step_losses["val-half loss"] = float(out["val_loss"])
            problem = divergence_problem(None, step_losses)
            if problem is not None:
                raise divergence_error("the search", epoch + 1, problem + f" at step {steps}", _lr_key(problem), run)

        if distributed is not None:
            train_loss_sum, val_loss_sum = distributed.mean([train_loss_sum, val_loss_sum])
            confusion.matrix = distributed.sum_(confusion.matrix.to(device)).cpu()
            distributed.broadcast_module_(model, buffers_only=True)  # BN running statistics (and op masks) of rank 0

        pruned: list[dict[str, Any]] = []
        if pruning is not None and pruning.is_due(epoch + 1):
            pruned = prune(model, pruning)

        problem = divergence_problem(model, {})  # non-finite or exploded weights or alphas
        if problem is not None:
            raise divergence_error("the search", epoch + 1, problem, _lr_key(problem), run)
        genotype = current_genotype(model, top_k, {**search_meta, "epochs_done": epoch + 1}, max_identity)
        metrics = confusion.compute()
        record = {
            "epoch": epoch + 1,
            "train_loss": train_loss_sum / max(steps, 1),
            # loss and mIoU on the alpha half (the train half during warm-up), measured during the steps
            "val_loss": val_loss_sum / steps if update_alphas and steps else None,
            "val_miou": metrics["miou"] if update_alphas else None,
            "train_miou": None if update_alphas else metrics["miou"],
            "alphas_updated": update_alphas,
            "seconds": time.perf_counter() - started,
        }
        if tau is not None:
            record["tau"] = tau
        if pruning is not None:
            record["active_ops"] = count_active_ops(model)
            record["dropped_ops"] = sum(len(item["dropped"]) for item in pruned)
        if flops_penalty is not None:
            with torch.no_grad():
                record["expected_gflops"] = float(flops_penalty.expected_gflops())
        is_best = update_alphas and metrics["miou"] > best_miou
        if is_best:
            best_miou, best_epoch = metrics["miou"], epoch + 1
        if run is not None:
            with writing(run.path / GENOTYPE_FILE):  # a full disk names the file
                genotype.save(run.path / GENOTYPE_FILE)
            log_alphas(run, model, epoch + 1, genotype)
            if pruned:
                log_pruning(run, epoch + 1, pruned)
            run.log(record, step=epoch + 1)
            state = {
                "kind": "search",
                "epoch": epoch + 1,
                "model": model.state_dict(),
                "weight_optimizer": strategy.weight_optimizer.state_dict(),
                "alpha_optimizer": strategy.alpha_optimizer.state_dict(),
                "best_miou": best_miou,
                "best_epoch": best_epoch,
                "genotype": genotype.to_dict(),
                **checkpoint_extra,
            }
            if strategy.grad_scaler is not None:
                state["grad_scaler"] = strategy.grad_scaler.state_dict()
            if tau is not None:
                state["tau"] = tau
            run.save_epoch(state, is_best)
        epoch_bar.set_postfix(train_loss=f"{record['train_loss']:.4f}")
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1)
    genotype = current_genotype(model, top_k, {**search_meta, "epochs_done": epochs}, max_identity)
    if run is not None:
        print_warnings(genotype_warnings(genotype_diagnostics(model, genotype)))
    return genotype

