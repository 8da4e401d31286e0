"""The two configurations every baseline comes in: ``paper`` (the published network) and
``cpu`` (small enough to train on a 2-core CPU)."""

from __future__ import annotations

from typing import Any, Mapping

SCALES = ("paper", "cpu")


def configuration_for(scale: str, paper: Mapping[str, Any], cpu: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``scale``'s configuration, updated with ``options``."""
    if scale not in SCALES:
        raise ValueError(f"scale must be 'paper' or 'cpu', got {scale!r}")
    configuration = dict(paper if scale == "paper" else cpu)
    configuration.update(options)
    return configuration
