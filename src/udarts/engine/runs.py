"""Run folders: one folder per run, readable by a person and safe against crashes and against a
second writer. ``engine.layout`` names every file in it; ``Run`` reads and writes them.

Everything is written by replacing whole files or appending whole lines, so a crash leaves the
previous version of every file intact. An epoch is committed by ``last.pt``: a new best is first
written to ``best.pt.next``, then ``last.pt`` (recording ``best_epoch``), then renamed to
``best.pt``; ``Run.recover`` (on ``--resume``) finishes or drops a half-done commit, so after a
kill at any instant ``best.pt`` is the checkpoint of the best epoch ``last.pt`` records. Log lines
after ``last.pt``'s epoch, and a last line torn by a crash or a full disk, are dropped on resume.

A ``Run`` holds the folder's lock (``engine.lock``: ``run.lock``) from the moment it opens the
folder until ``close()``, so a second writer (a second ``--out`` or ``--resume`` of the same folder)
is refused with a line naming the holder; a killed holder leaves no lock behind.

Checkpoints hold tensors and plain data only (dicts, lists, numbers, strings), and are read with
``torch.load(weights_only=True)``: a file that asks to build any other object (and so could run
code) is refused, naming the file and the object, before anything in it runs.
"""

from __future__ import annotations

import errno
import functools
import json
import math
import os
import pickle
import re
import sys
import time
import warnings
import weakref
from pathlib import Path
from typing import Any

import torch
import yaml

from udarts.engine.layout import (
    BEST_CHECKPOINT,
    BEST_PENDING,
    CONFIG_FILE,
    LAST_CHECKPOINT,
    LOCK_FILE,
    LOGS,
    METRICS_LOG,
    TENSORBOARD_DIR,
)
from udarts.engine.lock import FolderLock, holder_of, is_locked
from udarts.io import append_line, atomic_write, atomic_write_text, read_json_lines, read_jsonl, writing


class CheckpointError(ValueError):
    """A checkpoint file that is truncated, empty, foreign or of the wrong kind."""


class RunFolderError(ValueError):
    """A run folder (``--out``) that cannot be made or written."""


def disk_of(path: str | os.PathLike) -> str:
    """The mount point of the file system holding ``path`` (for "disk full" messages)."""
    current = Path(os.path.abspath(path))
    while not current.exists() and current != current.parent:
        current = current.parent
    while not os.path.ismount(current) and current != current.parent:
        current = current.parent
    return str(current)


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """``torch.save`` atomically (``udarts.io.atomic_write``: temp file, then rename over ``path``).
    A failed write (a full disk included) removes the temp file and raises ``OSError`` naming ``path``."""

    def write(tmp: Path) -> None:
        try:
            torch.save(state, tmp)
        except RuntimeError as error:  # torch's C++ writer reports a short write as RuntimeError ("unexpected pos")
            import shutil

            full = shutil.disk_usage(path.parent).free < 64 << 20  # measured while the partial file still takes space
            if full:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from error
            if "inline_container" in str(error) or "write" in str(error).lower():
                raise OSError(errno.EIO, f"writing the checkpoint failed ({_first_line(error)})", str(path)) from error
            raise

    atomic_write(Path(path), write)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".strip().rstrip(":")


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", kind: str | None = None
) -> dict[str, Any]:
    """The checkpoint at ``path`` (a run folder means its ``last.pt``); ``CheckpointError`` naming the
    file when it is truncated, empty, not a udarts checkpoint, or not of ``kind`` ("train"/"search"),
    and when it holds anything but tensors and plain data (``read_weights_only``)."""
    path = Path(path)
    if path.is_dir():
        path = path / LAST_CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file, not a udarts checkpoint")
    state = read_weights_only(path, map_location)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a udarts checkpoint (it holds a {type(state).__name__}, not a checkpoint's mapping)")
    if kind is not None:
        if state.get("kind") in ("train", "search") and state["kind"] != kind:
            hint = " (a search checkpoint needs 'udarts derive' then 'udarts train')" if state["kind"] == "search" else ""
            raise CheckpointError(f"{path}: a {state['kind']} checkpoint, expected a {kind} checkpoint{hint}")
        needed = {"kind", "epoch", "model", "config"} | ({"model_spec", "class_names"} if kind == "train" else set())
        missing = sorted(needed - set(state))
        if missing:
            raise CheckpointError(f"{path}: not a udarts {kind} checkpoint (no {', '.join(missing)})")
    return state


def read_weights_only(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain data (dicts, lists, tuples,
    numbers, strings, None), which is all a udarts checkpoint holds. A file whose pickle names any
    other function or class (code that loading would run) is refused with ``CheckpointError``
    naming the file and them, before any of it is called; any other unreadable file too."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)  # a foreign file: refused below
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        refused = _unsafe_globals(path, error)
        if refused:
            raise CheckpointError(f"{path}: refused, it holds {', '.join(refused)}, which a udarts checkpoint never "
                                  "holds (loading it could run code; nothing in it was run)") from error
        reason = re.search(r"WeightsUnpickler error:\s*(.+)", str(error))
        detail = reason.group(1).strip() if reason else _first_line(error)
        raise CheckpointError(f"{path}: not a readable udarts checkpoint ({detail}; nothing in it was run)") from error
    except Exception as error:  # torch raises several types for a truncated or foreign file
        raise CheckpointError(f"{path}: not a readable udarts checkpoint ({_first_line(error)})") from error


def _unsafe_globals(path: Path, error: BaseException) -> list[str]:
    """The functions and classes the pickle of ``path`` names beyond torch's weights-only allow-list
    (listed from its opcodes, nothing called), else the one ``error`` names."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # torch < 2.5, or not torch's zip format
        names = []
    return list(names) or re.findall(r"Unsupported global: GLOBAL ([\w.]+)", str(error))[:1]


def check_out_folder(path: str | os.PathLike, flag: str = "--out") -> None:
    """Refuse, before any work, a run folder that cannot be created or written: a path through a
    file, an existing file, or a folder without write permission."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"{flag} {path}: is a file, expected a folder to create")
    current = path
    while not current.exists():
        if current == current.parent:
            break
        current = current.parent
    if not current.is_dir():
        raise RunFolderError(f"{flag} {path}: {current} is a file, so no folder can be made under it")
    if not os.access(current, os.W_OK | os.X_OK):
        raise RunFolderError(f"{flag} {path}: {current} is not writable (permission denied)")


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


_OPEN_RUNS: weakref.WeakSet = weakref.WeakSet()  # the runs of this process that hold their folder's lock


def in_use_error(path: Path) -> RunFolderError:
    return RunFolderError(f"{path}: in use by another udarts run ({holder_of(path / LOCK_FILE)}); one process writes "
                          f"a run folder at a time: wait for it to end (or stop it), then --resume {path}")


def check_unused(path: str | os.PathLike) -> None:
    """``RunFolderError`` naming the holder when a process holds the lock of the run folder ``path``."""
    path = Path(path)
    if is_locked(path / LOCK_FILE):
        raise in_use_error(path)


def check_empty_folder(path: Path, name_writer: bool = True) -> None:
    """Refuse a folder a new run cannot start in: one that holds anything but a lock file (all that a
    run killed at its start may leave), naming the run that writes there now if one does."""
    if path.is_dir() and any(item.name != LOCK_FILE for item in path.iterdir()):
        if name_writer:
            check_unused(path)
        raise FileExistsError(f"{path}: run folder exists and is not empty; use --resume {path} or another --out")


class Run:
    """A run folder: config, metrics log, TensorBoard writer and checkpoint paths.

    A new run (``config``) needs an empty or missing folder; a resumed one (``resume``) a run
    folder. With ``lock`` (the default) the run holds the folder's lock until ``close()``
    (``RunFolderError`` naming the holder if another process has it); without, it only reads."""

    def __init__(self, path: str | os.PathLike, config: dict[str, Any] | None = None, resume: bool = False,
                 lock: bool = True) -> None:
        self.path = Path(path)
        self._writer = None
        self._lock: FolderLock | None = None
        if resume:
            if not (self.path / CONFIG_FILE).is_file():
                raise FileNotFoundError(f"{self.path}: not a udarts run folder (no {CONFIG_FILE})")
        else:
            check_out_folder(self.path, "run folder")
            check_empty_folder(self.path)
            with writing(self.path):
                self.path.mkdir(parents=True, exist_ok=True)
        if lock:
            self._lock = FolderLock.take(self.path / LOCK_FILE)
            if self._lock is None:
                raise in_use_error(self.path)
            _OPEN_RUNS.add(self)
            if not resume:  # another run may have written here between the check and the lock
                try:
                    check_empty_folder(self.path, name_writer=False)
                except FileExistsError:
                    self.close()
                    raise
        if config is not None:
            atomic_write_text(self.path / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_LOG

    def config(self) -> dict[str, Any]:
        return yaml.safe_load((self.path / CONFIG_FILE).read_text())

    def log(self, record: dict[str, Any], step: int) -> None:
        """Append one JSON line (flushed and synced) and the record's scalars to TensorBoard."""
        record = _clean(record)
        append_line(self.metrics_path, json.dumps(record))
        writer = self.tensorboard()
        for key, value in record.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "epoch":
                writer.add_scalar(key, value, step)
        writer.flush()

    def read_metrics(self, name: str = METRICS_LOG) -> list[dict[str, Any]]:
        """The records of a log; lines that are not JSON records (torn by a crash) are left out."""
        return read_jsonl(self.path / name)

    def truncate_logs(self, last_epoch: int, names: tuple[str, ...] = LOGS) -> list[str]:
        """Drop records after ``last_epoch`` (logged before a crash but never checkpointed) and lines
        torn by a crash or a full disk; returns (and prints on stderr) a note per torn line dropped."""
        notes = []
        for name in names:
            path = self.path / name
            if path.is_file():
                records, torn = read_json_lines(path)
                notes += [f"note: {path}: dropped line {number}, cut short by an interrupted write ({text[:40]!r})"
                          for number, text in torn]
                kept = [record for record in records if record.get("epoch", -1) <= last_epoch]
                atomic_write_text(path, "".join(json.dumps(record) + "\n" for record in kept))
        for note in notes:
            print(note, file=sys.stderr)
        return notes

    def save_epoch(self, state: dict[str, Any], is_best: bool) -> None:
        """Commit an epoch: a new best goes to ``best.pt.next``, then ``last.pt`` (the commit point,
        which records ``best_epoch``), then ``best.pt.next`` becomes ``best.pt``."""
        if is_best:
            self.save(state, BEST_PENDING)
        self.save(state, LAST_CHECKPOINT)
        if is_best:
            os.replace(self.path / BEST_PENDING, self.path / BEST_CHECKPOINT)

    def recover(self, last_state: dict[str, Any]) -> list[str]:
        """On resume: finish or drop a commit that a kill cut short (see ``save_epoch``) and remove
        temp files, so that ``best.pt`` is the best epoch ``last.pt`` records; returns notes."""
        notes = []
        for tmp in self.path.glob("*.tmp"):
            tmp.unlink()
            notes.append(f"note: removed {tmp.name}, a write cut short")
        pending = self.path / BEST_PENDING
        best_epoch = last_state.get("best_epoch")
        if pending.is_file():
            try:
                pending_epoch = load_checkpoint(pending).get("epoch")
            except CheckpointError:
                pending_epoch = None
            if pending_epoch is not None and pending_epoch == best_epoch:
                os.replace(pending, self.path / BEST_CHECKPOINT)
                notes.append(f"note: {BEST_CHECKPOINT} of epoch {best_epoch} completed from {BEST_PENDING}")
            else:
                pending.unlink()
                notes.append(f"note: dropped {BEST_PENDING} of an epoch {LAST_CHECKPOINT} never committed")
        best_path = self.path / BEST_CHECKPOINT
        if best_epoch is not None and best_path.is_file():
            best = load_checkpoint(best_path)
            if best.get("epoch") != best_epoch:
                raise CheckpointError(f"{best_path}: holds epoch {best.get('epoch')}, but {LAST_CHECKPOINT} records the "
                                      f"best as epoch {best_epoch}; the run folder was changed by hand")
        for note in notes:
            print(note, file=sys.stderr)
        return notes

    def tensorboard(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.path / TENSORBOARD_DIR))
        return self._writer

    def save(self, state: dict[str, Any], name: str) -> Path:
        path = self.path / name
        save_checkpoint(state, path)
        return path

    def close(self) -> None:
        """Close the TensorBoard writer and release the folder's lock."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        _OPEN_RUNS.discard(self)


def closing_runs(function):
    """Decorate a function that opens runs: however it ends, the runs it opened are closed (their
    folders' locks released) then, not whenever the garbage collector frees them (an error's
    traceback can keep a run alive, and its lock would refuse the ``--resume`` that follows)."""

    @functools.wraps(function)
    def call(*args, **kwargs):
        before = set(_OPEN_RUNS)
        try:
            return function(*args, **kwargs)
        finally:
            for run in set(_OPEN_RUNS) - before:
                run.close()

    return call
