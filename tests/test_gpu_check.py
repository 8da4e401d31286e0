"""bench/gpu_check.py at CPU size: the same script as on the GPU, so that it cannot rot."""

import json
from pathlib import Path

import pytest
import torch

from udarts.engine.layout import GENOTYPE_FILE

BENCH = Path(__file__).resolve().parents[1] / "bench"
TINY = ["--device", "cpu", "--width", "4", "--size", "32x32", "--batch", "2", "--warmup", "0", "--steps", "1",
        "--search-data", "synthetic", "--search-set", "data.num_samples=8", "--num-workers", "0"]


@pytest.fixture(scope="module")
def gpu_check():
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCH))  # it imports bench_search_modes beside it
        import gpu_check

        yield gpu_check


def outputs(folder: Path) -> tuple[dict, str]:
    return json.loads((folder / "gpu_check.json").read_text()), (folder / "gpu_check.md").read_text()


def test_dry_run_prints_every_row_and_the_budget_without_touching_a_device(gpu_check, capsys, tmp_path):
    assert gpu_check.main(["--dry-run", "--device", "cuda", "--budget", "300", "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    for name in gpu_check.ROW_NAMES:
        assert f"{name}:" in printed
    assert "time budget: 300 s" in printed and "width 64, 256x256, batch 8" in printed
    assert "udarts.cli search --config" in printed and "--resume SEARCH_DIR/run --epochs 2" in printed
    assert "300 epochs x 184 steps" in printed
    assert not (tmp_path / "out").exists() and not torch.cuda.is_initialized()


@pytest.mark.slow
def test_cpu_smoke_run_writes_every_row(gpu_check, tmp_path):
    assert gpu_check.main([*TINY, "--out", str(tmp_path)]) == 0
    document, table = outputs(tmp_path)
    rows = {row["name"]: row for row in document["rows"]}
    assert list(rows) == gpu_check.ROW_NAMES and not document["time_guard"]["stopped_early"]
    assert all(row["status"] == "ok" for row in rows.values()), {name: row["status"] for name, row in rows.items()}
    for name in gpu_check.ROW_NAMES:
        if name != "search_cli":
            assert rows[name]["step_s"] > 0 and rows[name]["memory"] == "n/a (CPU)"
    assert rows["gdas_24gb"]["projected_hours"] > 0 and rows["gdas_24gb"]["settings"]["channels_last"] is True
    search = rows["search_cli"]
    assert [run["epochs_logged"] for run in search["runs"]] == [[1], [1, 2]]  # 1 epoch, then resumed to 2
    assert search["config"]["amp"] == "bf16" and search["steps_per_epoch"] == 2
    assert (tmp_path / "search-run" / GENOTYPE_FILE).is_file()
    for row in gpu_check.ROWS:
        assert f"| {row.label} | ok |" in table
    assert "| resume | 0 | [1, 2] |" in table


def test_time_guard_stops_early_and_still_writes_every_row(gpu_check, tmp_path):
    assert gpu_check.main([*TINY, "--budget", "0", "--out", str(tmp_path)]) == 0
    document, table = outputs(tmp_path)
    assert document["time_guard"]["stopped_early"] and document["time_guard"]["elapsed_s"] < 30
    statuses = [row["status"] for row in document["rows"]]
    assert statuses == ["stopped by the time budget"] + ["not run (time budget)"] * (len(gpu_check.ROWS) - 1)
    assert "stopped early by the time guard" in table
    assert all(f"| {row.label} |" in table for row in gpu_check.ROWS)


def test_an_out_of_memory_row_is_recorded_and_the_next_one_runs(gpu_check, tmp_path, monkeypatch):
    measure = gpu_check.measure_row

    def out_of_memory_in_gdas(row, *args):
        if row.name == "gdas_24gb":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return measure(row, *args)

    monkeypatch.setattr(gpu_check, "measure_row", out_of_memory_in_gdas)
    assert gpu_check.main([*TINY, "--rows", "gdas_24gb,pc_gdas_bf16", "--out", str(tmp_path)]) == 0
    document, table = outputs(tmp_path)
    assert [row["status"] for row in document["rows"]] == ["OOM", "ok"]
    assert "| OOM |" in table
