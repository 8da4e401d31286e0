"""Multi-process search on CPU (gloo): two processes, each on half of every global batch, keep
identical alphas and weights and follow a single process on the whole batch."""

import json
import os

import pytest
import torch

from spawn_processes import free_port, run_processes
from udarts.engine.distributed import (
    GlobalBatchNorm2d,
    RankSliceBatchSampler,
    convert_batchnorm,
    init_from_environment,
    rank_seed,
    shutdown,
)
from udarts.engine.layout import ALPHAS_LOG, LAST_CHECKPOINT, METRICS_LOG
from udarts.engine.trainer import epoch_seed
from udarts.losses import cross_entropy
from udarts.search.darts import DartsStrategy
from udarts.search.supernet import SuperNet, search_op_names

WORLD_SIZE = 2
CLI_ARGS = ["--no-progress", "--image-size", "16x16", "--batch-size", "4", "--width", "4", "--epochs", "2",
            "--set", "data.num_samples=16", "--set", "model.num_nodes=2", "--set", "model.ops=[conv_3x3,identity]",
            "--set", "search.loss=ce", "--set", "search.warmup_epochs=1", "--set", "search.alpha_lr=0.01"]


def tiny_supernet() -> SuperNet:
    """float64: in float32 this tiny net's gradients carry ~0.3% rounding noise (BatchNorm over
    2x2 maps), which would hide what the comparison is about."""
    torch.manual_seed(0)
    return SuperNet(3, 3, 4, num_nodes=2, op_names=search_op_names(("conv_3x3", "mbconv_3x3", "identity"))).double()


def global_batches(steps: int = 2, size: int = 4):
    generator = torch.Generator().manual_seed(5)
    batches = []
    for _ in range(steps):
        pair = []
        for _ in range(2):  # (train, val)
            pair.append((torch.randn(size, 3, 16, 16, generator=generator, dtype=torch.float64),
                         torch.randint(0, 3, (size, 16, 16), generator=generator)))
        batches.append(pair)
    return batches


def run_steps(model, gradient_sync=None, rank: int = 0, world_size: int = 1) -> None:
    strategy = DartsStrategy(
        model, lambda logits, target: cross_entropy(logits, target),
        torch.optim.SGD(model.weight_parameters(), lr=0.1),
        torch.optim.SGD(model.arch_parameters(), lr=0.5),
        gradient_sync=gradient_sync,
    )
    for train, val in global_batches():
        per = train[0].shape[0] // world_size
        part = slice(rank * per, (rank + 1) * per)
        strategy.step((train[0][part], train[1][part]), (val[0][part], val[1][part]))


def _worker(rank: int, port: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(WORLD_SIZE), LOCAL_RANK=str(rank), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    context = init_from_environment("cpu")
    assert context is not None and context.rank == rank
    # library level: the strategy with gradient averaging and global-batch BatchNorm
    model = convert_batchnorm(tiny_supernet())
    context.broadcast_module_(model)
    run_steps(model, context.average_, rank, WORLD_SIZE)
    torch.save({"state": model.state_dict()}, os.path.join(folder, f"library_rank{rank}.pt"))
    # command level: the whole search command, launched as torchrun would
    from udarts import experiment
    from udarts.cli import build_parser, load_config

    config = load_config(build_parser().parse_args(["search", *CLI_ARGS]), "search")
    path = experiment.run_search(config, os.path.join(folder, "ddp")).run_dir
    with open(os.path.join(folder, f"path_rank{rank}.txt"), "w") as handle:
        handle.write(str(path))
    with open(os.path.join(folder, f"seed_rank{rank}.txt"), "w") as handle:
        handle.write(str(torch.initial_seed()))  # the last epoch's augmentation seed (seed_epoch)
    shutdown(None)


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    run_processes(_worker, (free_port(), str(folder)), WORLD_SIZE, "search")
    return folder


@pytest.mark.slow
def test_two_processes_keep_identical_weights_and_match_one_process(two_process_run):
    states = [torch.load(two_process_run / f"library_rank{rank}.pt")["state"] for rank in range(WORLD_SIZE)]
    reference = tiny_supernet()
    before = {key: value.clone() for key, value in reference.state_dict().items()}
    run_steps(reference)  # one process, the whole global batch, plain BatchNorm
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(states[0][key], states[1][key], rtol=0, atol=0, msg=f"ranks differ in {key}")
        torch.testing.assert_close(states[0][key], value, rtol=1e-6, atol=1e-7, msg=f"{key} differs from one process")
    moved = [key for key in before if key.endswith("alphas") and not torch.equal(before[key], reference.state_dict()[key])]
    assert len(moved) == 8  # the comparison is not between two unmoved models


def test_each_rank_draws_a_contiguous_slice_of_the_global_batch():
    batches = [list(range(0, 4)), list(range(4, 8))]
    assert list(RankSliceBatchSampler(batches, 0, 2)) == [[0, 1], [4, 5]]
    assert list(RankSliceBatchSampler(batches, 1, 2)) == [[2, 3], [6, 7]]


def test_global_batchnorm_is_plain_batchnorm_in_one_process():
    torch.manual_seed(0)
    plain = torch.nn.BatchNorm2d(3)
    converted = convert_batchnorm(torch.nn.Sequential(torch.nn.BatchNorm2d(3)))[0]
    assert isinstance(converted, GlobalBatchNorm2d)
    x = torch.randn(4, 3, 5, 5)
    torch.testing.assert_close(converted(x), plain(x))


@pytest.mark.slow
def test_search_command_under_two_processes_writes_once_and_matches_one_process(two_process_run, tmp_path):
    from udarts.cli import main

    paths = {(two_process_run / f"path_rank{rank}.txt").read_text() for rank in range(WORLD_SIZE)}
    assert paths == {str(two_process_run / "ddp")}
    ddp = two_process_run / "ddp"
    metrics = [json.loads(line) for line in (ddp / METRICS_LOG).read_text().splitlines()]
    assert [record["epoch"] for record in metrics] == [1, 2]  # one writer
    seeds = [int((two_process_run / f"seed_rank{rank}.txt").read_text()) for rank in range(WORLD_SIZE)]
    assert seeds[0] == epoch_seed(0, 1) and seeds[1] == rank_seed(seeds[0], 1)  # augmentation seeded per rank
    assert len((ddp / ALPHAS_LOG).read_text().splitlines()) == 2
    assert main(["search", *CLI_ARGS, "--out", str(tmp_path / "single")]) == 0
    single = torch.load(tmp_path / "single" / LAST_CHECKPOINT, weights_only=False)
    multi = torch.load(ddp / LAST_CHECKPOINT, weights_only=False)
    for index in range(8):
        key = f"cells.{index}.alphas"
        torch.testing.assert_close(multi["model"][key], single["model"][key], rtol=1e-3, atol=1e-4, msg=key)
    single_metrics = [json.loads(line) for line in (tmp_path / "single" / METRICS_LOG).read_text().splitlines()]
    assert metrics[-1]["train_loss"] == pytest.approx(single_metrics[-1]["train_loss"], rel=1e-4)
