"""Run folders: one folder per run, readable by a person and safe against crashes.

    RUN_DIR/
      config.yaml       the resolved config (defaults <- config file <- flags)
      metrics.jsonl     one JSON object per epoch
      tb/               TensorBoard events
      last.pt, best.pt  checkpoints, written atomically (temp file + rename)
      genotype.json     (search runs) the current derived architecture

Everything is written by replacing whole files or appending whole lines, so a crash leaves the
previous version of every file intact.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
import yaml


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """``torch.save`` to a temp file, then rename over ``path`` (atomic on POSIX)."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # torch raises several types for a truncated or foreign file
        raise ValueError(f"{path}: not a readable udarts checkpoint ({error})") from error


def new_run_dir(root: str | os.PathLike, kind: str) -> Path:
    """``root/<kind>-YYYYmmdd-HHMMSS`` (with a suffix if that exists)."""
    root = Path(root)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = root / f"{kind}-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = root / f"{kind}-{stamp}-{suffix}"
    return path


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become null, tensors become numbers or lists."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    return value


class Run:
    """A run folder: config, metrics log, TensorBoard writer and checkpoint paths."""

    def __init__(self, path: str | os.PathLike, config: dict[str, Any] | None = None, resume: bool = False) -> None:
        self.path = Path(path)
        if resume:
            if not (self.path / "config.yaml").is_file():
                raise FileNotFoundError(f"{self.path}: not a udarts run folder (no config.yaml)")
        else:
            if self.path.exists() and any(self.path.iterdir()):
                raise FileExistsError(f"{self.path}: run folder exists and is not empty; use --resume or another --out")
            self.path.mkdir(parents=True, exist_ok=True)
        if config is not None:
            atomic_write_text(self.path / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        self._writer = None

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    def config(self) -> dict[str, Any]:
        return yaml.safe_load((self.path / "config.yaml").read_text())

    def log(self, record: dict[str, Any], step: int) -> None:
        """Append one JSON line (flushed and synced) and the record's scalars to TensorBoard."""
        record = _clean(record)
        with open(self.metrics_path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        writer = self.tensorboard()
        for key, value in record.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "epoch":
                writer.add_scalar(key, value, step)
        writer.flush()

    def read_metrics(self, name: str = "metrics.jsonl") -> list[dict[str, Any]]:
        path = self.path / name
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def truncate_logs(
        self, last_epoch: int, names: tuple[str, ...] = ("metrics.jsonl", "alphas.jsonl", "pruning.jsonl")
    ) -> None:
        """Drop records after ``last_epoch``: logged before a crash but never checkpointed."""
        for name in names:
            if (self.path / name).is_file():
                kept = [record for record in self.read_metrics(name) if record.get("epoch", -1) <= last_epoch]
                atomic_write_text(self.path / name, "".join(json.dumps(record) + "\n" for record in kept))

    def tensorboard(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.path / "tb"))
        return self._writer

    def save(self, state: dict[str, Any], name: str) -> Path:
        path = self.path / name
        save_checkpoint(state, path)
        return path

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
