"""The genotype file format (``udarts.genotype``): its name and version, the checks a parsed
JSON document must pass, and the JSON layout ``Genotype.save`` writes (one line per node).

A document that fails a check raises ``GenotypeError``, whose message names the file (or other
origin) and the key, e.g. ``run/genotype.json: cells[5].nodes[1][0]: source 4 out of range``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from udarts.ops import NONE_OP, OPS, OpSettings
from udarts.space import NUM_CELLS, cell_slots

GENOTYPE_FORMAT = "udarts-genotype"
GENOTYPE_VERSION = 1
SOURCES_LEGEND = (
    "source 0..num_inputs-1 = cell inputs (decoder cells: 0 = encoder skip, 1 = upsampled decoder path); "
    "source num_inputs+j = intermediate node j"
)


class GenotypeError(ValueError):
    """A genotype (file) is wrong; the message names the file and the key."""


_TOP_LEVEL_KEYS = {"format", "version", "op_set", "num_nodes", "op_settings", "sources", "cells", "search", "udarts_version"}
_REQUIRED_KEYS = {"format", "version", "op_set", "num_nodes", "cells"}


def check_genotype_data(data: Any, origin: str) -> dict[str, Any]:
    """The fields of a ``Genotype`` from a parsed genotype JSON document, checked: ``cells`` holds
    each cell's nodes (C1..C8, as ``CellGenotype.nodes``). Raises ``GenotypeError`` naming
    ``origin`` and the key."""

    def fail(key: str, message: str) -> GenotypeError:
        return GenotypeError(f"{origin}: {key}: {message}")

    if not isinstance(data, dict):
        raise fail("(top level)", f"expected a JSON object, got {type(data).__name__}")
    if data.get("format") != GENOTYPE_FORMAT:
        raise fail("format", f"expected {GENOTYPE_FORMAT!r}, got {data.get('format')!r} (is this a udarts genotype?)")
    missing = sorted(_REQUIRED_KEYS - data.keys())
    if missing:
        raise fail(",".join(missing), "missing")
    unknown = sorted(data.keys() - _TOP_LEVEL_KEYS)
    if unknown:
        raise fail(",".join(unknown), f"unknown key(s); expected only {sorted(_TOP_LEVEL_KEYS)}")
    if data["version"] != GENOTYPE_VERSION:
        raise fail("version", f"version {data['version']!r} is not supported (this udarts reads {GENOTYPE_VERSION})")

    op_set = data["op_set"]
    if not (isinstance(op_set, list) and op_set and all(isinstance(name, str) for name in op_set)):
        raise fail("op_set", f"expected a non-empty list of op names, got {op_set!r}")
    unknown_ops = [name for name in op_set if name not in OPS]
    if unknown_ops:
        raise fail("op_set", f"unknown op(s) {unknown_ops}; known ops are {sorted(OPS)}")

    num_nodes = data["num_nodes"]
    if not (isinstance(num_nodes, int) and not isinstance(num_nodes, bool) and num_nodes >= 1):
        raise fail("num_nodes", f"expected an integer >= 1, got {num_nodes!r}")

    op_settings = data.get("op_settings", {})
    if not isinstance(op_settings, dict) or set(op_settings) - {"expand_ratio", "se_ratio"}:
        raise fail("op_settings", f"expected an object with 'expand_ratio' and 'se_ratio', got {op_settings!r}")
    expand_ratio = op_settings.get("expand_ratio", 4)
    se_ratio = op_settings.get("se_ratio", 0.25)
    if isinstance(expand_ratio, bool) or not isinstance(expand_ratio, int):
        raise fail("op_settings.expand_ratio", f"expected an integer >= 1, got {expand_ratio!r}")
    if isinstance(se_ratio, bool) or not isinstance(se_ratio, (int, float)):
        raise fail("op_settings.se_ratio", f"expected a number in (0, 1], got {se_ratio!r}")
    try:
        OpSettings(expand_ratio=expand_ratio, se_ratio=se_ratio)
    except (ValueError, TypeError) as error:
        raise fail("op_settings", str(error)) from error

    cells_data = data["cells"]
    slots = cell_slots(1)
    if not isinstance(cells_data, list) or len(cells_data) != NUM_CELLS:
        count = len(cells_data) if isinstance(cells_data, list) else type(cells_data).__name__
        raise fail("cells", f"expected a list of {NUM_CELLS} cells (C1..C8), got {count}")
    cells = []
    for position, (cell_data, slot) in enumerate(zip(cells_data, slots)):
        key = f"cells[{position}]"
        if not isinstance(cell_data, dict):
            raise fail(key, "expected an object with 'name', 'num_inputs' and 'nodes'")
        if cell_data.get("name") != slot.name:
            raise fail(f"{key}.name", f"expected {slot.name!r} (cells are listed C1..C8), got {cell_data.get('name')!r}")
        if cell_data.get("num_inputs") != slot.num_inputs:
            raise fail(
                f"{key}.num_inputs",
                f"cell {slot.name} has {slot.num_inputs} input(s) in the U wiring, got {cell_data.get('num_inputs')!r}",
            )
        nodes_data = cell_data.get("nodes")
        if not isinstance(nodes_data, list) or len(nodes_data) != num_nodes:
            raise fail(f"{key}.nodes", f"expected a list of {num_nodes} nodes (num_nodes), got {nodes_data!r:.80}")
        nodes = []
        for node, genes_data in enumerate(nodes_data):
            node_key = f"{key}.nodes[{node}]"
            if not isinstance(genes_data, list) or not genes_data:
                raise fail(node_key, "expected a non-empty list of [op_name, source] edges")
            genes = []
            for gene_index, gene in enumerate(genes_data):
                gene_key = f"{node_key}[{gene_index}]"
                if not (isinstance(gene, list) and len(gene) == 2 and isinstance(gene[0], str) and type(gene[1]) is int):
                    raise fail(gene_key, f"expected [op_name, source], got {gene!r}")
                op_name, source = gene
                if op_name not in op_set:
                    raise fail(gene_key, f"op {op_name!r} is not in op_set {op_set}")
                if op_name == NONE_OP:
                    raise fail(gene_key, "'none' cannot be a kept edge; remove the edge instead")
                if not 0 <= source < slot.num_inputs + node:
                    raise fail(gene_key, f"source {source} out of range: node {node} of {slot.name} reads states 0..{slot.num_inputs + node - 1}")
                genes.append((op_name, source))
            sources = [source for _, source in genes]
            if len(set(sources)) != len(sources):
                raise fail(node_key, f"repeated source in {sources}")
            nodes.append(tuple(genes))
        cells.append(tuple(nodes))

    search = data.get("search", {})
    if not isinstance(search, dict):
        raise fail("search", f"expected an object, got {type(search).__name__}")
    return {
        "cells": tuple(cells),
        "op_set": tuple(op_set),
        "num_nodes": num_nodes,
        "expand_ratio": expand_ratio,
        "se_ratio": se_ratio,
        "search": search,
        "udarts_version": str(data.get("udarts_version", "unknown")),
    }


def to_json(data: dict[str, Any]) -> str:
    """Indented JSON with each edge ``["op", source]`` and each node's edge list on one line."""
    text = json.dumps(data, indent=2)
    flat_list = re.compile(r"\[\s*([^\[\]{}]*?)\s*\]")  # a list of scalars
    text = flat_list.sub(lambda match: "[" + re.sub(r"\s*\n\s*", " ", match.group(1)) + "]", text)
    list_of_flat_lists = re.compile(r"\[\s*((?:\[[^\[\]\n]*\],?\s*)+)\]")
    return list_of_flat_lists.sub(lambda match: "[" + re.sub(r"\s*\n\s*", " ", match.group(1)).strip() + "]", text)
