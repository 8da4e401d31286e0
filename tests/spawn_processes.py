"""Launch a function in N processes as torchrun would (spawn, gloo on CPU), for the multi-process
tests of the search and of retraining."""

import datetime
import socket

import pytest
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_processes(worker, args: tuple, nprocs: int, what: str, timeout_s: int = 180) -> None:
    """``worker(rank, *args)`` in ``nprocs`` spawned processes; fails the test after ``timeout_s``."""
    context = mp.start_processes(worker, args=args, nprocs=nprocs, join=False, start_method="spawn")
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=timeout_s)
    while not context.join(timeout=1):
        if datetime.datetime.now() > deadline:
            for process in context.processes:
                process.terminate()
            pytest.fail(f"the {nprocs} {what} processes did not finish in {timeout_s} s")
