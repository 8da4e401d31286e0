"""The README's recipes run as written, at a tiny size, so that a renamed command or flag fails here.

A block the README (or a page under docs/) marks with ``<!-- test: NAME -->`` is a recipe
(``tests/markdown_recipes.py``); every marked block needs an entry in ``RECIPES`` naming the test
that runs it. The recipe tests run each command in-process (``udarts.cli.main``) with the flags
of ``SHRINK`` appended, which make it tiny: later flags win, so everything else is as written.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from markdown_recipes import REPO, documents, marked_blocks, recipe, write_camvid_like, write_folder_dataset
from udarts.cli import main
from udarts.engine.layout import ALPHAS_LOG, CONFIG_FILE, GENOTYPE_FILE, METRICS_LOG
from udarts.io import read_jsonl
from udarts.search.diagnostics import ENTROPY_WARNING, MARGIN_WARNING

# marked block -> the test that runs it (a block marked in a document without an entry here fails
# test_every_marked_recipe_has_a_test: add its test, then its name here)
RECIPES = {
    "demo": "tests/test_demo.py::test_demo_runs_as_the_readme_shows_and_settles",
    "own-data": "tests/test_readme.py::test_own_data_recipe_runs_and_its_search_settles",
    "paper": "tests/test_readme.py::test_paper_recipe_runs_on_the_real_datasets",
    "latency": "tests/test_readme.py::test_latency_recipe_runs",
    "scale-out": "tests/test_readme.py::test_scale_out_recipe_runs_on_two_processes_and_a_local_ray",
    "latency-page": "tests/test_readme.py::test_the_latency_page_recipe_is_the_readmes",
    "compare-page": "tests/test_readme.py::test_compare_page_recipe_runs",
}


def run(argv: list[str], shrink: dict[str, list[str]], capsys) -> str:
    """One recipe command, shrunk; its printed output (a failure shows the command and its error)."""
    command = [*argv, *shrink.get(argv[0], [])]
    code = main(command)
    printed = capsys.readouterr()
    assert code == 0, f"udarts {' '.join(command)} -> exit {code}\n{printed.err[-3000:]}"
    return printed.out + printed.err


def test_every_marked_recipe_has_a_test():
    marked = {name: path.name for path in documents() for name in marked_blocks(path)}
    assert {"demo", "own-data", "paper"} <= set(marked), marked  # the README's three recipes
    missing = sorted(set(marked) - set(RECIPES))
    assert not missing, f"marked recipes without a test: {missing} ({marked}); add one and list it in RECIPES"
    for test in RECIPES.values():
        file, name = test.split("::")
        assert f"def {name}(" in (REPO / file).read_text(), test


def test_recipe_commands_are_parsed_as_a_shell_would():
    from markdown_recipes import commands

    block = "udarts compare --root data --out runs/x \\\n  --models unet,fpn   # a comment\n\n# a comment line\nudarts eval 'a b.pt'\n"
    assert commands(block) == [["compare", "--root", "data", "--out", "runs/x", "--models", "unet,fpn"], ["eval", "a b.pt"]]
    assert commands("torchrun --nproc_per_node 2 -m udarts.cli search --root data\n") == \
        [["torchrun", "--nproc_per_node", "2", "-m", "udarts.cli", "search", "--root", "data"]]
    for line in ("pip install -e .\n", "torchrun --nproc_per_node 2 train.py\n"):
        with pytest.raises(ValueError, match="neither a udarts command nor a torchrun launch"):
            commands(line)


# The own-data recipe at this test's tiny size, with the search seed whose margins other kernels
# keep (the test's docstring says what was measured).
OWN_DATA_SHRINK = {
    "search": ["--width", "4", "--image-size", "16x16", "--seed", "4", "--no-progress"],
    "train": ["--width", "4", "--image-size", "16x16", "--epochs", "3", "--no-progress"],
    "eval": ["--no-progress"],
    "predict": ["--no-progress"],
}


@pytest.mark.slow
def test_own_data_recipe_runs_and_its_search_settles(tmp_path, monkeypatch, capsys):
    """The README's own-data recipe on a small generated folder dataset (3 classes, 16 train and 8
    val images), at width 4 and 16x16 but with the config's search epochs and alpha steps as shipped.
    Its search must end settled: no "weakly determined" warning, every cell below the warning's
    entropy and above its top-1 margin.

    Measured at this size with ``bench/bench_demo_settling.py --task own-data-test`` (BENCHMARKS.md,
    "Do short searches end settled on other CPUs?"; 2-core Intel Xeon, 2026-12-05), seeds 0-7 with
    AVX-512 kernels, AVX2-only kernels, oneDNN off and two threads: without settling epochs 30 of 32
    searches ended settled, the largest entropy 0.456 against the warning's 0.95, but a near-tie on
    one edge was a matter of chance (margins down to 0.0019; seed 0 kept 0.0110 with oneDNN off, too
    close to 0.01 to hold on every CPU); with the config's ``search.settle_epochs: 3`` all 32 did.
    This test searches with seed 4, whose smallest margin was 0.068-0.407 across the four variants
    without a settling epoch, 7 times the warning's at least. On a 2-core AMD EPYC (2026-12-05) the
    same seed ended its 12 epochs with C5 at margin 0.0064 and settled after one more (0.0222), so
    the test accepts a warning that a settling epoch answered and checks the final alphas."""
    monkeypatch.chdir(tmp_path)
    os.symlink(REPO / "configs", "configs")  # the README's commands run from the repository's root
    write_folder_dataset(Path("mydata"), train=16, val=8, size=16)
    steps = recipe("own-data")
    assert [argv[0] for argv in steps] == ["search", "train", "eval", "predict", "export"]
    printed = [run(argv, OWN_DATA_SHRINK, capsys) for argv in steps]
    # a weakly determined end may be searched on (search.settle_epochs), never left: every warning
    # (on stderr, so printed after the run's other lines) is followed by a settling epoch
    warned = printed[0].count("warning: weakly determined")
    assert warned <= printed[0].count("search.settle_epochs: weakly determined"), printed[0]
    last = read_jsonl(Path("runs/mydata/search") / ALPHAS_LOG)[-1]["diagnostics"]
    assert max(cell["entropy"] for cell in last.values()) < ENTROPY_WARNING, last
    assert min(cell["min_margin"] for cell in last.values()) >= MARGIN_WARNING, last
    shipped = yaml.safe_load((REPO / "configs/folder-cpu.yaml").read_text())
    searched = yaml.safe_load((Path("runs/mydata/search") / CONFIG_FILE).read_text())["search"]
    # as shipped: a settling epoch raises search.epochs by one and lowers search.settle_epochs by one
    assert searched["epochs"] + searched["settle_epochs"] == shipped["search"]["epochs"] + shipped["search"]["settle_epochs"]
    assert shipped["search"]["epochs"] <= searched["epochs"]
    assert searched["alpha_travel"] == shipped["search"]["alpha_travel"]
    assert isinstance(shipped["train"]["epochs"], int)  # the recipe trains for a stated number of epochs, not the paper's 200
    assert len(read_jsonl(Path("runs/mydata/train") / METRICS_LOG)) == 3  # the shrunk training ran its epochs
    assert "mIoU" in printed[2]
    assert len(list(Path("runs/mydata/predictions").glob("*"))) >= 8  # a mask and an overlay per val image
    assert Path("runs/mydata/searchnet.onnx").stat().st_size > 0 and Path("runs/mydata/searchnet.onnx.json").is_file()


PAPER_SHRINK = {
    "search": ["--width", "2", "--image-size", "16x16", "--batch-size", "32", "--epochs", "2",
               "--set", "search.warmup_epochs=1", "--no-progress"],
    "compare": ["--width", "2", "--image-size", "32x32", "--batch-size", "32", "--epochs", "1", "--set", "model.flops_budget=null",
                "--latency-repeats", "1", "--num-images", "1", "--no-progress"],
}


@pytest.mark.slow
def test_paper_recipe_runs_on_the_real_datasets(tmp_path, shared_data, monkeypatch, capsys):
    """The README's paper recipe (search on the Pets, compare there, transfer to CamVid) with the
    real datasets as ``data/``, at width 2, 16x16 (search) and 32x32 (comparisons), one epoch."""
    if not ((shared_data / "oxford-iiit-pet").is_dir() and (shared_data / "camvid").is_dir()):
        pytest.skip(f"Oxford-IIIT Pet and CamVid not both found in {shared_data}")
    monkeypatch.chdir(tmp_path)
    os.symlink(REPO / "configs", "configs")  # the README's commands run from the repository's root
    os.symlink(shared_data, "data")
    steps = recipe("paper")
    assert [argv[0] for argv in steps] == ["search", "compare", "compare"]
    for argv in steps:
        run(argv, PAPER_SHRINK, capsys)
    assert (Path("runs/paper/search") / GENOTYPE_FILE).is_file()
    for folder, rows in (("runs/paper/pets", 6), ("runs/paper/camvid", 2)):
        table = Path(folder, "table.md").read_text()
        assert "SEARCH-Net" in table and table.count("\n|") >= rows + 1, table


LATENCY_SHRINK = {
    "latency-table": ["--width", "4", "--image-size", "32x32", "--calibrate", "2", "--no-progress"],
    "search": ["--width", "4", "--image-size", "16x16", "--batch-size", "4", "--epochs", "2",
               "--set", "search.warmup_epochs=1", "--no-progress"],
    # the budget as written (22 ms) would fit a wide network; a tiny FLOPs budget keeps it tiny
    "train": ["--image-size", "32x32", "--batch-size", "4", "--epochs", "1", "--flops-budget", "0.01",
              "--latency-budget", "1000", "--no-progress"],
    "predict": ["--no-progress"],
}


@pytest.mark.slow
def test_latency_recipe_runs(tmp_path, monkeypatch, capsys):
    """The README's latency-budget recipe (table -> search with a target -> retrain at the budget ->
    ONNX export -> predict with onnxruntime) on a generated CamVid-like dataset as ``data/camvid``,
    at width 4 (PC-DARTS's k = 4 must divide it) and 16x16 / 32x32, one or two epochs."""
    monkeypatch.chdir(tmp_path)
    os.symlink(REPO / "configs", "configs")
    write_camvid_like(Path("data/camvid"), train=24, val=4)
    steps = recipe("latency")
    assert [argv[0] for argv in steps] == ["latency-table", "search", "train", "export", "predict"]
    printed = [run(argv, LATENCY_SHRINK, capsys) for argv in steps]
    search_dir = Path(steps[1][steps[1].index("--out") + 1])
    assert "latency" in (search_dir / METRICS_LOG).read_text()  # the expected latency logged every epoch
    assert "predicted" in printed[1] and "ms" in printed[1], printed[1][-2000:]  # the derived genotype beside the target
    onnx = Path(steps[3][steps[3].index("--out") + 1])
    assert onnx.stat().st_size > 0
    predictions = Path(steps[4][steps[4].index("--out") + 1])
    assert len(list(predictions.glob("*.png"))) >= 4  # a mask per val image at least


@pytest.mark.slow
def test_scale_out_recipe_runs_on_two_processes_and_a_local_ray(tmp_path, monkeypatch, capsys):
    """The README's scale-out block: the ``torchrun`` search launched on two CPU processes (gloo)
    on synthetic data, then the Ray ``compare`` against a local Ray started here (what ``--address
    auto`` joins), each at a tiny size."""
    ray = pytest.importorskip("ray", reason='Ray is not installed (pip install -e ".[ray]")')
    monkeypatch.chdir(tmp_path)
    os.symlink(REPO / "configs", "configs")
    write_camvid_like(Path("data/camvid"), train=8, val=2)
    launch, compare = recipe("scale-out")
    assert launch[0] == "torchrun" and compare[0] == "compare"
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", *launch[1:]]
    launch[launch.index("--nproc_per_node") + 1] = "2"
    launch += ["--data", "synthetic", "--width", "2", "--image-size", "16x16", "--batch-size", "4", "--epochs", "1",
               "--set", "search.warmup_epochs=0", "--set", "data.num_samples=16", "--set", "data.num_workers=0",
               "--set", "model.num_nodes=2", "--device", "cpu", "--out", "runs/search", "--no-progress"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    finished = subprocess.run(launch, capture_output=True, text=True, timeout=600, env=environment)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert (Path("runs/search") / GENOTYPE_FILE).is_file()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        run(compare, {"compare": ["--width", "2", "--image-size", "16x16", "--batch-size", "4", "--epochs", "1",
                                  "--set", "model.flops_budget=null", "--latency-repeats", "1", "--num-images", "0", "--cpus-per-trial", "1",
                                  "--no-progress"]}, capsys)
    finally:
        ray.shutdown()
    assert (Path(compare[compare.index("--out") + 1]) / "table.md").is_file()


def test_the_latency_page_recipe_is_the_readmes():
    """docs/latency.md explains the README's latency recipe step by step: the same commands, so the
    README's test (``test_latency_recipe_runs``) runs both."""
    assert recipe("latency-page", REPO / "docs" / "latency.md") == recipe("latency")


@pytest.mark.slow
def test_compare_page_recipe_runs(tmp_path, monkeypatch, capsys):
    """docs/compare.md's ``udarts compare`` on a generated CamVid-like dataset as ``data/camvid``,
    with a genotype at the recipe's path: every model as written, one seed, at 32x32, width 2 and
    one epoch."""
    monkeypatch.chdir(tmp_path)
    write_camvid_like(Path("data/camvid"), train=8, val=2)
    [argv] = recipe("compare-page", REPO / "docs" / "compare.md")
    genotype = Path(argv[argv.index("--genotypes") + 1])
    genotype.parent.mkdir(parents=True)
    genotype.write_text((REPO / "configs" / "genotypes" / "camvid-cpu.json").read_text())
    run(argv, {"compare": ["--image-size", "32x32", "--batch-size", "4", "--epochs", "1", "--width", "2", "--seeds", "0",
                           "--set", "model.flops_budget=null", "--latency-repeats", "1", "--num-images", "0",
                           "--no-progress"]}, capsys)
    out = Path(argv[argv.index("--out") + 1])
    table = (out / "table.md").read_text()
    models = argv[argv.index("--models") + 1].split(",")
    for model in [*models, "searchnet"]:
        assert model in table, (model, table)
