"""udarts.io: the one atomic write and the one JSON-lines reading policy."""

import json

import pytest

from udarts.engine.layout import METRICS_LOG
from udarts.io import append_line, atomic_write, atomic_write_text, read_json_lines, read_jsonl, series


def test_lines_that_are_not_json_objects_are_torn_lines_wherever_they_are(tmp_path):
    path = tmp_path / METRICS_LOG
    path.write_text('{"epoch": 1, "val_miou": 0.5}\n{"epoch": 2, "val_mi\n\n[1, 2]\n{"epoch": 3, "val_miou": null}\n{"epo')
    records, torn = read_json_lines(path)
    assert [record["epoch"] for record in records] == [1, 3]
    assert [number for number, _ in torn] == [2, 4, 6]
    assert read_jsonl(path) == records
    assert series(records, "val_miou") == ([1], [0.5])
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "table.csv"
    atomic_write_text(path, "old\n")

    def dies_midway(tmp):
        tmp.write_text("partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, dies_midway)
    assert path.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]
    assert atomic_write_text(tmp_path / "new" / "x.json", "{}", make_parent=True).read_text() == "{}"
    append_line(tmp_path / "log.jsonl", json.dumps({"epoch": 1}))
    assert read_jsonl(tmp_path / "log.jsonl") == [{"epoch": 1}]
