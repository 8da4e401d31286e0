"""Files that survive a crash: whole-file writes by temp file + rename, whole-line appends, and
one crash-tolerant JSON-lines reader.

Every file udarts writes (configs, checkpoints, genotypes, figures, tables, exported models) goes
through ``atomic_write``, so a kill at any instant leaves the previous version of the file intact
and at most a ``*.tmp`` beside it. This module imports nothing from udarts.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, NamedTuple


@contextmanager
def writing(path: str | os.PathLike):
    """Re-raise an ``OSError`` of the block (a full disk, a permission) with ``path`` as its file:
    a failed ``write`` or ``fsync`` on an open file names none."""
    try:
        yield
    except OSError as error:
        if error.filename is None and error.errno is not None:
            raise OSError(error.errno, error.strerror or os.strerror(error.errno), str(path)) from error
        raise


def temporary_path(path: str | os.PathLike) -> Path:
    """``path`` with ``.tmp`` appended to its name: where ``atomic_write`` writes first."""
    path = Path(path)
    return path.with_name(path.name + ".tmp")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any], *, make_parent: bool = False) -> Path:
    """Call ``write(temporary)`` and rename the temporary file over ``path`` (atomic on POSIX).

    If ``write`` raises, the temporary file is removed and ``path`` keeps its previous content; an
    ``OSError`` names ``path``. Returns ``path``.
    """
    path = Path(path)
    if make_parent:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    with writing(path):
        try:
            write(tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, path)
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, make_parent: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically (``atomic_write``)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text), make_parent=make_parent)


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line, flushed and synced; an ``OSError`` (a full disk) names ``path``."""
    with writing(path), open(path, "a") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


class JsonLines(NamedTuple):
    """The records of a JSON-lines file and the ``(line number, text)`` of its torn lines."""

    records: list[dict[str, Any]]
    torn: list[tuple[int, str]]


def read_json_lines(path: str | os.PathLike) -> JsonLines:
    """Every line of a JSON-lines log that is a JSON object, in order, and the lines that are not
    (cut short by a crash or a full disk: appends are whole lines, so nothing else makes one).
    A missing file has no records."""
    path = Path(path)
    if not path.is_file():
        return JsonLines([], [])
    records, torn = [], []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        else:
            torn.append((number, line))
    return JsonLines(records, torn)


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a JSON-lines log (``read_json_lines`` without its torn lines)."""
    return read_json_lines(path).records


def series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """``(epochs, values)`` of ``key`` over ``records``, leaving out records where it is missing or null."""
    epochs, values = [], []
    for record in records:
        value = record.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            epochs.append(int(record["epoch"]))
            values.append(float(value))
    return epochs, values
