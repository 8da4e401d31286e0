"""Reading a run folder's JSON-lines logs (``metrics.jsonl``, ``alphas.jsonl``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a JSON-lines file, in order; ``[]`` when the file does not exist.

    A last line cut short by a crash (not valid JSON) is ignored; a bad line elsewhere raises
    ``ValueError`` naming the file and the line number.
    """
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines):
                break
            raise ValueError(f"{path}:{number}: not a JSON record ({error})") from error
    return records


def series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """``(epochs, values)`` of ``key`` over ``records``, leaving out records where it is missing or null."""
    epochs, values = [], []
    for record in records:
        value = record.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            epochs.append(int(record["epoch"]))
            values.append(float(value))
    return epochs, values
