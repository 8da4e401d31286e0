"""``udarts compare`` and ``udarts report`` end to end on tiny inputs (16x16 synthetic, width 4)."""

import csv
import json
import shutil
import statistics

import pytest
import torch
from PIL import Image

from udarts.app.compare import config_differences
from udarts.cli import main
from udarts.complexity import count_flops, count_parameters
from udarts.engine.layout import GENOTYPE_FILE, LAST_CHECKPOINT, METRICS_LOG
from udarts.models import build_model
from udarts.viz.figures import is_png

TINY = ["--no-progress", "--image-size", "16x16", "--batch-size", "4", "--width", "4",
        "--set", "data.num_samples=24", "--set", "model.num_nodes=2"]
SMALL_BASELINES = ["--model-option", "setr:embed_dim=16", "--model-option", "setr:depth=1",
                   "--model-option", "setr:num_heads=2", "--model-option", "unet:width=4"]
LABELS = ["setr", "unet", "searchnet"]
SEEDS = [0, 1]


def compare_args(search_dir, out, epochs=2):
    return ["compare", *TINY, *SMALL_BASELINES, "--epochs", str(epochs), "--models", "setr,unet",
            "--genotypes", str(search_dir / GENOTYPE_FILE), "--seeds", "0,1", "--out", str(out),
            "--num-images", "2", "--latency-repeats", "2"]


@pytest.fixture(scope="module")
def search_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("search") / "run"
    assert main(["search", *TINY, "--epochs", "2", "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def comparison(search_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "cmp"
    assert main(compare_args(search_dir, out)) == 0
    return out


def read_records(run_dir):
    return [json.loads(line) for line in (run_dir / METRICS_LOG).read_text().splitlines()]


def table_rows(comparison):
    with open(comparison / "table.csv", newline="") as handle:
        return {row["model"]: row for row in csv.DictReader(handle)}


@pytest.mark.slow
def test_each_model_and_seed_is_an_ordinary_train_run_on_one_budget(comparison):
    configs = {}
    for label in LABELS:
        for seed in SEEDS:
            run_dir = comparison / "runs" / label / f"seed-{seed}"
            state = torch.load(run_dir / LAST_CHECKPOINT, weights_only=False)
            assert state["kind"] == "train" and state["epoch"] == 2
            assert state["model_spec"]["name"] == ("searchnet" if label == "searchnet" else label)
            assert [record["epoch"] for record in read_records(run_dir)] == [1, 2]
            configs[label, seed] = state["config"]
            assert configs[label, seed]["seed"] == seed
    # everything but the model itself and the seed is the same for every run
    per_model = ("seed", "train.model", "train.genotype", "train.model_options")
    reference = configs["setr", 0]
    for key, config in configs.items():
        assert config_differences(reference, config, ignore=per_model) == [], key
    assert configs["unet", 0]["train"]["model_options"] == {"width": 4}
    frozen = comparison / "genotypes" / "searchnet.json"
    assert frozen.is_file() and configs["searchnet", 1]["train"]["genotype"] == str(frozen.resolve())


@pytest.mark.slow
def test_the_table_numbers_equal_the_logged_values(comparison):
    rows = table_rows(comparison)
    assert list(rows) == LABELS
    markdown = (comparison / "table.md").read_text().splitlines()
    for label in LABELS:
        runs = [read_records(comparison / "runs" / label / f"seed-{seed}") for seed in SEEDS]
        final_miou = [records[-1]["val_miou"] for records in runs]
        final_loss = [records[-1]["val_loss"] for records in runs]
        best_miou = [max(record["val_miou"] for record in records) for records in runs]
        seconds = [sum(record["seconds"] for record in records) for records in runs]
        row = rows[label]
        assert float(row["val_miou_mean"]) == pytest.approx(statistics.fmean(final_miou), rel=1e-12, abs=1e-15)
        assert float(row["val_miou_std"]) == pytest.approx(statistics.stdev(final_miou), rel=1e-9, abs=1e-15)
        assert float(row["val_loss_mean"]) == pytest.approx(statistics.fmean(final_loss), rel=1e-12)
        assert float(row["val_loss_std"]) == pytest.approx(statistics.stdev(final_loss), rel=1e-9, abs=1e-15)
        assert float(row["best_val_miou_mean"]) == pytest.approx(statistics.fmean(best_miou), rel=1e-12, abs=1e-15)
        assert float(row["train_seconds_mean"]) == pytest.approx(statistics.fmean(seconds), rel=1e-12)
        assert row["seeds"] == "0 1" and row["epochs"] == "2"

        state = torch.load(comparison / "runs" / label / "seed-0" / LAST_CHECKPOINT, weights_only=False)
        model = build_model(state["model_spec"])
        assert int(row["parameters"]) == count_parameters(model)
        assert int(row["flops"]) == count_flops(model, (1, 3, 16, 16)) > 0
        assert (int(row["image_height"]), int(row["image_width"])) == (16, 16)
        assert float(row["latency_ms"]) > 0 and row["latency_device"].startswith("cpu")

        line = next(line for line in markdown if line.startswith(f"| {label} |"))
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        expected_miou = f"{100 * statistics.fmean(final_miou):.2f} ± {100 * statistics.stdev(final_miou):.2f}"
        expected_loss = f"{statistics.fmean(final_loss):.4f} ± {statistics.stdev(final_loss):.4f}"
        assert cells[1] == expected_loss and cells[2] == expected_miou

    with open(comparison / "runs.csv", newline="") as handle:
        per_run = list(csv.DictReader(handle))
    assert [(row["model"], int(row["seed"])) for row in per_run] == [(label, seed) for label in LABELS for seed in SEEDS]
    for row in per_run:
        records = read_records(comparison / row["folder"])
        assert float(row["val_miou"]) == records[-1]["val_miou"]


@pytest.mark.slow
def test_plots_are_written_as_png(comparison):
    for name in ("curves.png", "predictions.png"):
        assert is_png(comparison / name), name
        with Image.open(comparison / name) as image:
            image.verify()
    with Image.open(comparison / "predictions.png") as image:
        assert image.width > image.height  # 2 images x (image, truth, 3 models)
    summary = (comparison / "summary.md").read_text()
    assert "![side-by-side predictions](predictions.png)" in summary
    assert (comparison / "table.md").read_text().strip() in summary


@pytest.mark.slow
def test_a_second_run_reuses_finished_runs_and_resumes_an_interrupted_one(comparison, search_dir, tmp_path, capsys):
    copy = tmp_path / "cmp"
    shutil.copytree(comparison, copy)
    interrupted = copy / "runs" / "unet" / "seed-1"
    state = torch.load(interrupted / LAST_CHECKPOINT, weights_only=False)
    state["epoch"] = 1  # as if the process died after epoch 1
    torch.save(state, interrupted / LAST_CHECKPOINT)
    first_line = (interrupted / METRICS_LOG).read_text().splitlines()[0]
    (interrupted / METRICS_LOG).write_text(first_line + "\n")
    untouched = {path: path.stat().st_mtime_ns for path in copy.glob(f"runs/*/seed-*/{LAST_CHECKPOINT}") if path.parent != interrupted}

    capsys.readouterr()
    assert main(compare_args(search_dir, copy)) == 0
    out = capsys.readouterr().out
    assert out.count("finished run reused") == 5
    assert "[1/1] unet seed 1: resumed from epoch 1" in out  # a trial (udarts.app.trials) that had a checkpoint
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in untouched.items())
    assert [record["epoch"] for record in read_records(interrupted)] == [1, 2]
    assert torch.load(interrupted / LAST_CHECKPOINT, weights_only=False)["epoch"] == 2


@pytest.mark.slow
def test_another_budget_in_the_same_folder_is_refused(comparison, search_dir, tmp_path, capsys):
    copy = tmp_path / "cmp"
    shutil.copytree(comparison, copy)
    assert main(compare_args(search_dir, copy, epochs=3)) == 2
    assert "train.epochs: 2 -> 3" in capsys.readouterr().err


@pytest.mark.slow
def test_a_flops_budget_sizes_searchnet_once_and_a_re_run_reuses_its_runs(search_dir, tmp_path, capsys):
    from udarts.genotype import Genotype
    from udarts.random_genotypes import width_for_budget

    out = tmp_path / "budget"
    args = ["compare", *TINY, "--epochs", "1", "--genotypes", str(search_dir / GENOTYPE_FILE), "--seeds", "0,1",
            "--out", str(out), "--num-images", "0", "--latency-repeats", "1", "--set", "model.flops_budget=0.002"]
    assert main(args) == 0
    width, _ = width_for_budget(Genotype.load(search_dir / GENOTYPE_FILE), 0.002, (16, 16), 4)
    assert width != 4  # the budget, not --width, sized it
    for seed in (0, 1):
        recorded = torch.load(out / "runs" / "searchnet" / f"seed-{seed}" / LAST_CHECKPOINT, weights_only=False)
        assert recorded["model_spec"]["width"] == width
    capsys.readouterr()
    assert main(args) == 0  # the runs recorded the fitted width, which the re-run expects
    assert capsys.readouterr().out.count("finished run reused") == 2
    assert main([*args[:-2], "--set", "model.latency_budget=30"]) == 2
    assert "model.latency_budget: a comparison trains each SEARCH-Net at one width" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--models", "unet,resnet"], "unknown model 'resnet'"),
        (["--models", "unet,unet"], "given twice"),
        (["--models", "unet", "--model-option", "fpn:width=3"], "model options for ['fpn']"),
        (["--models", "unet", "--seeds", "0,zero"], "--seeds"),
        (["--models", "unet", "--model-option", "width=3"], "LABEL:KEY=VALUE"),
        (["--models", "unet", "--model-option", "unet:widht=3"], "model unet: "),
        ([], "nothing to compare"),
    ],
)
def test_bad_comparisons_are_reported(tmp_path, capsys, extra, message):
    assert main(["compare", *TINY, "--epochs", "1", "--out", str(tmp_path / "c"), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "c" / "runs").exists()


@pytest.mark.slow
def test_report_renders_each_kind_of_folder(comparison, search_dir, tmp_path, capsys):
    train_dir = tmp_path / "train"
    shutil.copytree(comparison / "runs" / "unet" / "seed-0", train_dir)
    assert main(["report", str(train_dir)]) == 0
    assert is_png(train_dir / "curves.png")
    summary = (train_dir / "summary.md").read_text()
    final = read_records(train_dir)[-1]
    assert f"| val mIoU % | {100 * final['val_miou']:.2f} |" in summary
    assert "| background |" in summary

    assert main(["report", str(search_dir)]) == 0
    for name in ("alphas_final.png", "alphas_history.png", "cells.png", "curves.png"):
        assert is_png(search_dir / name), name
    summary = (search_dir / "summary.md").read_text()
    assert "## Derived cells" in summary and "| C6 | n0 |" in summary

    copy = tmp_path / "cmp"
    shutil.copytree(comparison, copy)
    for name in ("table.md", "table.csv", "curves.png", "predictions.png", "summary.md", "costs.json"):
        (copy / name).unlink()
    assert main(["report", str(copy), "--num-images", "1"]) == 0
    assert is_png(copy / "curves.png") and is_png(copy / "predictions.png")
    assert table_rows(copy)["unet"]["val_miou_mean"] == table_rows(comparison)["unet"]["val_miou_mean"]
    assert "## Results" in (copy / "summary.md").read_text()

    capsys.readouterr()
    assert main(["report", str(tmp_path / "nothing-here")]) == 2
    assert "not a udarts run or comparison folder" in capsys.readouterr().err


@pytest.mark.slow
def test_report_of_an_unfinished_comparison_tables_the_finished_runs(comparison, tmp_path):
    copy = tmp_path / "cmp"
    shutil.copytree(comparison, copy)
    shutil.rmtree(copy / "runs" / "unet" / "seed-1")
    assert main(["report", str(copy), "--num-images", "0"]) == 0
    rows = table_rows(copy)
    assert rows["unet"]["seeds"] == "0" and rows["unet"]["val_miou_std"] == ""
    assert float(rows["unet"]["val_miou_mean"]) == read_records(copy / "runs" / "unet" / "seed-0")[-1]["val_miou"]
    assert rows["setr"]["seeds"] == "0 1"
    assert "- unet seed 1:" in (copy / "summary.md").read_text()
