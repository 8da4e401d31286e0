"""Every "by name" entry point reads a module-level dict name -> constructor, and an unknown name
raises an error that lists the choices."""

import pytest
import torch

from udarts.baselines import BASELINES, create_model
from udarts.data.base import DatasetError
from udarts.data.factory import DATASETS, build_split
from udarts.engine.trainer import OPTIMIZERS, SCHEDULERS, build_optimizer, build_scheduler
from udarts.losses import LOSSES, build_loss
from udarts.ops import OPS
from udarts.search.sampling import TAU_SCHEDULES, TemperatureSchedule


@pytest.mark.parametrize("registry", [OPS, LOSSES, OPTIMIZERS, SCHEDULERS, BASELINES, DATASETS, TAU_SCHEDULES])
def test_registries_are_dicts_of_constructors(registry):
    assert isinstance(registry, dict) and registry and all(callable(value) for value in registry.values())


def test_unknown_names_list_the_choices():
    parameter = [torch.nn.Parameter(torch.zeros(1))]
    optimizer = build_optimizer("sgd", parameter, lr=0.1)
    cases = [
        (lambda: build_loss("focal"), ValueError, "dice_ce"),
        (lambda: build_optimizer("lamb", parameter, lr=0.1), ValueError, "adamw"),
        (lambda: build_scheduler("step", optimizer, epochs=3), ValueError, "cosine"),
        (lambda: create_model("segformer", num_classes=2), ValueError, "deeplabv3"),
        (lambda: build_split("ade20k", "train"), DatasetError, "camvid"),
        (lambda: TemperatureSchedule(kind="cosine"), ValueError, "exponential"),
    ]
    for build, error, choice in cases:
        with pytest.raises(error, match=choice):
            build()


def test_each_name_builds_its_kind():
    parameter = [torch.nn.Parameter(torch.zeros(1))]
    assert type(build_optimizer("adamw", parameter, lr=0.1, betas=(0.8, 0.9))) is torch.optim.AdamW
    assert build_optimizer("sgd", parameter, lr=0.1, momentum=0.5).param_groups[0]["momentum"] == 0.5
    optimizer = build_optimizer("adam", parameter, lr=0.1)
    assert type(build_scheduler("cosine", optimizer, epochs=4)) is torch.optim.lr_scheduler.CosineAnnealingLR
    assert build_loss("ce", ignore_index=3).ignore_index == 3
    assert TemperatureSchedule(10.0, 0.1, "exponential").at(1, 3) == pytest.approx(1.0)
    assert TemperatureSchedule(10.0, 0.1, "linear").at(1, 3) == pytest.approx(5.05)
