import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# One torch thread for the suite and the processes it starts: its inputs are tiny, so a second
# thread gains nothing, and on a 2-core machine with another job running two threads wait for each
# other at every small op (the quick suite took 12 minutes instead of 3 there). Tests that are
# about threads set them themselves.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real datasets (``../shared/data`` beside the repo, or $UDARTS_SHARED_DATA)."""
    path = Path(os.environ.get("UDARTS_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"real datasets not found at {path} (set UDARTS_SHARED_DATA to run these tests)")
    return path


TINY_SEARCH = ["--no-progress", "--image-size", "16x16", "--batch-size", "4", "--width", "4",
               "--set", "data.num_samples=24", "--set", "model.num_nodes=2"]


@pytest.fixture
def tiny_search_flags() -> list[str]:
    """``udarts search`` flags for a seconds-long search on synthetic 16x16 images (2 nodes per cell)."""
    return list(TINY_SEARCH)


@pytest.fixture
def tiny_pc_darts_search(tmp_path, capsys) -> Path:
    """The run folder of a one-epoch PC-DARTS search on synthetic 16x16 images (2 nodes per cell)."""
    from udarts.cli import main

    search_dir = tmp_path / "search"
    assert main(["search", *TINY_SEARCH, "--epochs", "1", "--set", "search.mode=pc_darts",
                 "--set", "search.partial_channel_k=2", "--out", str(search_dir)]) == 0
    capsys.readouterr()
    return search_dir
