"""A trained network rebuilt from its checkpoint: the one place the application does it.

``udarts eval``, ``predict``, ``export``, ``compare`` (costs, predictions) and ``report`` all
rebuild a ``udarts train`` checkpoint the same way: read it (``engine.runs.load_checkpoint``),
build the network of its ``model_spec`` (``udarts.models.build_model``), load its weights and put
it in eval mode on the device.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from udarts.config import ConfigError


def load_trained(
    path: str | os.PathLike, device: torch.device | str = "cpu", kind: str | None = "train"
) -> tuple[nn.Module, dict[str, Any]]:
    """``(model, state)``: the network of the checkpoint at ``path`` (a run folder means its
    ``last.pt``) with its weights, in eval mode on ``device``, and the checkpoint itself.

    A file that is not a readable checkpoint of ``kind`` raises ``CheckpointError``; a network that
    cannot be rebuilt (an unknown model, a spec or weights that do not fit) raises ``ConfigError``
    naming the file; a wrong genotype raises ``GenotypeError``.
    """
    from udarts.engine.runs import load_checkpoint
    from udarts.genotype import GenotypeError
    from udarts.models import build_model

    state = load_checkpoint(path, map_location="cpu", kind=kind)
    try:
        model = build_model(state["model_spec"])
        model.load_state_dict(state["model"])
    except GenotypeError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        first = (str(error).strip().splitlines() or [""])[0]
        raise ConfigError(f"{path}: its network cannot be rebuilt from the checkpoint ({type(error).__name__}: {first})") from error
    return model.to(device).eval(), state
