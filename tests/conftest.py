import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real datasets (``../shared/data`` beside the repo, or $UDARTS_SHARED_DATA)."""
    path = Path(os.environ.get("UDARTS_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"real datasets not found at {path} (set UDARTS_SHARED_DATA to run these tests)")
    return path
