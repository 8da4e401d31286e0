"""A resumed search continues with the learning rates that were running, unless the resume
changes one: then with that one, as given, and config.yaml records it. With
``search.alpha_travel`` the rate comes from the travel once, when the search starts, and
config.yaml records it as ``search.alpha_lr``."""

import pytest
import torch
import yaml

from udarts.cli import main
from udarts.engine.layout import CONFIG_FILE, LAST_CHECKPOINT

from .test_resume import TINY  # 16 images: 2 steps per epoch


def rates(run_dir):
    state = torch.load(run_dir / LAST_CHECKPOINT, weights_only=False)
    recorded = yaml.safe_load((run_dir / CONFIG_FILE).read_text())["search"]
    return (state["epoch"], state["alpha_optimizer"]["param_groups"][0]["lr"],
            state["weight_optimizer"]["param_groups"][0]["lr"], recorded["alpha_lr"], recorded["weight_lr"])


@pytest.mark.slow
def test_resume_keeps_the_travels_rate_and_continues_with_a_changed_one_as_given(tmp_path):
    run = tmp_path / "run"
    assert main(["search", *TINY, "--epochs", "2", "--set", "search.alpha_travel=6", "--out", str(run)]) == 0
    assert rates(run) == (2, 1.5, 1e-3, 1.5, 1e-3)  # travel 6 over 2 x 2 alpha steps
    assert main(["search", "--resume", str(run), "--epochs", "3", "--no-progress"]) == 0
    assert rates(run) == (3, 1.5, 1e-3, 1.5, 1e-3)  # a longer run keeps the rate (the travel would give 1.0)
    assert main(["search", "--resume", str(run), "--epochs", "4", "--set", "search.alpha_lr=0.01", "--no-progress"]) == 0
    assert rates(run) == (4, 0.01, 1e-3, 0.01, 1e-3)
    assert main(["search", "--resume", str(run), "--epochs", "5", "--set", "search.weight_lr=5e-4", "--no-progress"]) == 0
    assert rates(run) == (5, 0.01, 5e-4, 0.01, 5e-4)


@pytest.mark.slow
def test_a_resume_to_the_recorded_default_rate_is_a_change_with_the_travel(tmp_path):
    """The rate a travel gives is what config.yaml records, so giving DARTS's 3e-4 is a change."""
    run = tmp_path / "run"
    assert main(["search", *TINY, "--epochs", "1", "--set", "search.alpha_travel=6", "--out", str(run)]) == 0
    assert rates(run)[1] == 3.0
    assert main(["search", "--resume", str(run), "--epochs", "2", "--set", "search.alpha_lr=3e-4", "--no-progress"]) == 0
    assert rates(run) == (2, 3e-4, 1e-3, 3e-4, 1e-3)


@pytest.mark.slow
def test_a_run_stopped_before_its_first_checkpoint_starts_again_with_the_travels_rate(tmp_path, crash_after_logging_epoch):
    run = tmp_path / "run"
    disarm = crash_after_logging_epoch(1)
    assert main(["search", *TINY, "--epochs", "1", "--set", "search.alpha_travel=6", "--out", str(run)]) == 130
    disarm()
    assert not (run / LAST_CHECKPOINT).exists()
    assert main(["search", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    assert rates(run) == (2, 1.5, 1e-3, 1.5, 1e-3)  # the travel over the 2 epochs it now has
