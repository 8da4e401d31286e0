"""Build a trainable network from a model spec: SEARCH-Net from a genotype, or a baseline.

A spec is a plain dict stored in every checkpoint, so ``udarts eval`` and ``udarts predict``
rebuild exactly the trained network::

    {"name": "searchnet", "genotype": {...genotype JSON...}, "width": 16, "in_channels": 3, "num_classes": 11}
    {"name": "unet", "scale": "cpu", "options": {}, "in_channels": 3, "num_classes": 11}
"""

from __future__ import annotations

from typing import Any

from torch import nn

from udarts.genotype import Genotype
from udarts.nets.searchnet import SearchNet


def build_searchnet(genotype: Genotype, in_channels: int, num_classes: int, width: int) -> SearchNet:
    """SEARCH-Net of ``genotype``: its cells' edges and ops, with affine BatchNorm."""
    cells = [cell.nodes for cell in genotype.cells]
    return SearchNet(cells, in_channels, num_classes, width, genotype.op_settings(affine=True))


def build_model(spec: dict[str, Any]) -> nn.Module:
    name = spec["name"]
    if name == "searchnet":
        genotype = Genotype.from_dict(spec["genotype"], origin="model spec genotype")
        return build_searchnet(genotype, spec["in_channels"], spec["num_classes"], spec["width"])
    from udarts.baselines import create_model

    return create_model(
        name,
        in_channels=spec["in_channels"],
        num_classes=spec["num_classes"],
        scale=spec.get("scale", "cpu"),
        **spec.get("options", {}),
    )
