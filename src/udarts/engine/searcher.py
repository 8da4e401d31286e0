"""The search loop: runs a ``DartsStrategy`` over the two halves of the training split, logs the
alphas every epoch, and keeps the derived genotype of the current alphas in the run folder."""

from __future__ import annotations

import json
import math
import time
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from udarts.engine.runs import Run
from udarts.engine.trainer import seed_epoch
from udarts.genotype import Genotype, derive
from udarts.metrics import ConfusionMatrix
from udarts.search.darts import DartsStrategy
from udarts.search.supernet import SuperNet


def current_genotype(model: SuperNet, top_k: int, search_meta: dict[str, Any]) -> Genotype:
    return derive(model.arch_parameters(), model.op_names, model.num_nodes, top_k, model.settings, search_meta)


def log_alphas(run: Run, model: SuperNet, epoch: int) -> None:
    """Append the softmax of every cell's alphas (one row per edge) to ``alphas.jsonl``."""
    record = {
        "epoch": epoch,
        "op_names": list(model.op_names),
        "cells": {slot.name: weights.tolist() for slot, weights in zip(model.slots, model.alphas_softmax())},
    }
    with open(run.path / "alphas.jsonl", "a") as handle:
        handle.write(json.dumps(record) + "\n")
    writer = run.tensorboard()
    for slot, weights in zip(model.slots, model.alphas_softmax()):
        for op_index, op_name in enumerate(model.op_names):
            writer.add_scalar(f"alphas/{slot.name}/{op_name}", float(weights[:, op_index].mean()), epoch)


def search(
    model: SuperNet,
    strategy: DartsStrategy,
    *,
    weight_loader: DataLoader,
    alpha_loader: DataLoader,
    epochs: int,
    warmup_epochs: int,
    run: Run,
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
) -> Genotype:
    epoch_bar = tqdm(range(start_epoch, epochs), desc="search", disable=not progress, initial=start_epoch, total=epochs)
    for epoch in epoch_bar:
        seed_epoch([weight_loader, alpha_loader], seed, epoch)
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
            train_batch = (train_images.to(device), train_masks.to(device))
            val_batch = (val_images.to(device), val_masks.to(device))
            out = strategy.step(train_batch, val_batch, update_alphas=update_alphas)
            steps += 1
            train_loss_sum += float(out["train_loss"])
            if update_alphas:
                val_loss_sum += float(out["val_loss"])
                confusion.update(out["val_logits"], val_batch[1])
            else:
                confusion.update(out["train_logits"], train_batch[1])
            bar.set_postfix(train_loss=f"{train_loss_sum / steps:.4f}")
            if not math.isfinite(float(out["train_loss"])):
                raise FloatingPointError("search loss became non-finite; lower search.weight_lr")

        genotype = current_genotype(model, top_k, {**search_meta, "epochs_done": epoch + 1})
        genotype.save(run.path / "genotype.json")
        log_alphas(run, model, epoch + 1)
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
        run.log(record, step=epoch + 1)
        is_best = update_alphas and metrics["miou"] > best_miou
        if is_best:
            best_miou = metrics["miou"]
        state = {
            "kind": "search",
            "epoch": epoch + 1,
            "model": model.state_dict(),
            "weight_optimizer": strategy.weight_optimizer.state_dict(),
            "alpha_optimizer": strategy.alpha_optimizer.state_dict(),
            "best_miou": best_miou,
            "genotype": genotype.to_dict(),
            **checkpoint_extra,
        }
        run.save(state, "last.pt")
        if is_best:
            run.save(state, "best.pt")
        epoch_bar.set_postfix(train_loss=f"{record['train_loss']:.4f}")
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1)
    return current_genotype(model, top_k, {**search_meta, "epochs_done": epochs})
