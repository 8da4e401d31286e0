"""A latency table: what every part of SEARCH-Net costs on one device, and the predictor that sums it.

Hardware-aware NAS measures each candidate op once on the target device and sums a lookup table
over an architecture (FBNet, Wu et al., CVPR 2019, section 3.2; ProxylessNAS, Cai et al., ICLR
2019, eq. 5). SEARCH-Net's forward pass (``udarts.nets.ushape``, ``udarts.nets.cell``) is a sum of
independent parts, so its latency is modelled as::

    latency(genotype) = stem + sum_s down_s + sum_k up_k + head
                        + sum over cells c of [ project_c + (edges_c - nodes_c) * add_c
                                                + sum over the cell's edges e of op_ms[c][op(e)] ]

``add_c`` is one node-sum addition at the cell's shape (a node with two edges adds once).
Each part is timed alone (``udarts.latency.measure``), so the sum misses what only the whole
network pays (per-call dispatch, cache misses between parts, an inference runtime's fusions); a
straight line fitted on whole networks measured on the same device (``calibration``:
``measured = scale * sum + offset_ms``) corrects it (BENCHMARKS.md validates both).

A table records where and how it was measured (``identity``: device, runtime, threads, batch,
library versions) and for which network (``shape``: image size, width, classes, nodes, MBConv
settings); ``mismatches`` names what differs between two of them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from udarts.config import Config
from udarts.genotype import Genotype
from udarts.io import atomic_write_text
from udarts.ops import NONE_OP
from udarts.space import DOWNSAMPLING, NUM_SCALES, cell_slots

FORMAT = "udarts-latency-table/1"
RUNTIMES = ("eager", "onnxruntime", "cuda")
# The parts outside the cells, by name: the stem, the three downsamplings (feeding scales 1..3),
# the three upsamplings (feeding scales 2, 1, 0, in the order of UShapedNet.upsample) and the head.
FIXED_PARTS = ("stem", *(f"down{scale}" for scale in range(1, NUM_SCALES)),
               *(f"up{step}" for step in range(NUM_SCALES - 1)), "head")


class LatencyTableError(ValueError):
    """A latency table that cannot be read, or that does not fit the network or the device asked for."""


@dataclass(frozen=True)
class LatencyShape:
    """The network a table was measured for: one image of ``image_size`` through SEARCH-Net of ``width``."""

    image_size: tuple[int, int]
    width: int
    num_classes: int
    num_nodes: int = 4
    expand_ratio: int = 4
    se_ratio: float = 0.25

    def __post_init__(self) -> None:
        height, width = self.image_size
        if height % DOWNSAMPLING or width % DOWNSAMPLING:
            raise LatencyTableError(f"image size {height}x{width} is not divisible by {DOWNSAMPLING}")
        if self.width < 1 or self.num_classes < 1 or self.num_nodes < 1:
            raise LatencyTableError(f"width, classes and nodes must be >= 1, got {self.width}, {self.num_classes}, "
                                    f"{self.num_nodes}")

    @classmethod
    def of_config(cls, config: Config, num_classes: int) -> LatencyShape:
        """The SEARCH-Net a config describes (its image size, width, nodes and op settings)."""
        return cls(tuple(config.data.image_size), config.model.width, num_classes, config.model.num_nodes,
                   config.model.expand_ratio, config.model.se_ratio)

    def to_dict(self) -> dict[str, Any]:
        return {"image_size": list(self.image_size), "width": self.width, "num_classes": self.num_classes,
                "num_nodes": self.num_nodes, "expand_ratio": self.expand_ratio, "se_ratio": self.se_ratio}

    def describe(self) -> str:
        return f"{self.image_size[0]}x{self.image_size[1]}, width {self.width}, {self.num_classes} classes"


@dataclass(frozen=True)
class CellCosts:
    """One cell slot's measured parts, in milliseconds."""

    project_ms: float  # concatenation of the nodes and the 1x1 projection
    add_ms: float  # one node-sum addition
    op_ms: dict[str, float]  # candidate op -> one edge carrying it


@dataclass(frozen=True)
class LatencyTable:
    identity: dict[str, Any]  # device, runtime, threads, batch_size, versions
    shape: LatencyShape
    ops: tuple[str, ...]
    fixed_ms: dict[str, float]  # FIXED_PARTS -> ms
    cells: dict[str, CellCosts]  # "C1".."C8"
    calibration: dict[str, float] | None = None  # {"scale", "offset_ms", "genotypes"}
    measured_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # how it was timed (rounds, repeats, seconds)

    # ---- prediction -------------------------------------------------------------------------
    def op_ms(self, cell: str, op: str) -> float:
        if op == NONE_OP:
            return 0.0
        try:
            return self.cells[cell].op_ms[op]
        except KeyError:
            raise LatencyTableError(f"the latency table has no op {op!r} (it has {list(self.ops)})") from None

    def constant_ms(self, edges_per_cell: Sequence[int]) -> float:
        """The parts every genotype pays: the fixed parts, each cell's projection and its node sums
        (``edges_per_cell[c] - num_nodes`` additions)."""
        total = sum(self.fixed_ms.values())
        for slot, edges in zip(cell_slots(1), edges_per_cell):
            costs = self.cells[slot.name]
            total += costs.project_ms + max(edges - self.shape.num_nodes, 0) * costs.add_ms
        return total

    def additive_ms(self, genotype: Genotype) -> float:
        """The table's sum over ``genotype`` (the module docstring's formula), uncalibrated."""
        self.check_genotype(genotype)
        total = self.constant_ms([len(cell.edges()) for cell in genotype.cells])
        for cell in genotype.cells:
            total += sum(self.op_ms(cell.name, op) for op in cell.ops())
        return total

    def calibrate(self, additive_ms: float) -> float:
        if self.calibration is None:
            return additive_ms
        return self.calibration["scale"] * additive_ms + self.calibration["offset_ms"]

    def predict_ms(self, genotype: Genotype) -> float:
        """Predicted latency of ``genotype``'s SEARCH-Net at the table's shape (calibrated if the table is)."""
        return self.calibrate(self.additive_ms(genotype))

    def check_genotype(self, genotype: Genotype) -> None:
        if genotype.num_nodes != self.shape.num_nodes:
            raise LatencyTableError(f"the genotype has {genotype.num_nodes} nodes per cell, the latency table "
                                    f"{self.shape.num_nodes}")
        if (genotype.expand_ratio, genotype.se_ratio) != (self.shape.expand_ratio, self.shape.se_ratio):
            raise LatencyTableError(
                f"the genotype's MBConv settings (expand_ratio {genotype.expand_ratio}, se_ratio {genotype.se_ratio}) "
                f"differ from the latency table's ({self.shape.expand_ratio}, {self.shape.se_ratio})")

    def cheapest_ms(self, top_k: int) -> float:
        """The lowest latency any genotype of the space can have: every node keeps ``top_k`` edges
        (fewer where it has fewer sources), each with the cell's cheapest op."""
        edges_per_cell = [sum(min(top_k, slot.num_inputs + node) for node in range(self.shape.num_nodes))
                          for slot in cell_slots(1)]
        total = self.constant_ms(edges_per_cell)
        for slot, edges in zip(cell_slots(1), edges_per_cell):
            total += edges * min(self.cells[slot.name].op_ms.values())
        return self.calibrate(total)

    # ---- files ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "measured_at": self.measured_at, "identity": self.identity, "shape": self.shape.to_dict(),
            "ops": list(self.ops), "unit": "ms", "fixed_ms": dict(self.fixed_ms),
            "cells": {name: {"project_ms": costs.project_ms, "add_ms": costs.add_ms, "op_ms": dict(costs.op_ms)}
                      for name, costs in self.cells.items()},
            "calibration": self.calibration, "extra": self.extra,
        }

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n", make_parent=True)
        return path

    @classmethod
    def from_dict(cls, data: Any, origin: str = "latency table") -> "LatencyTable":
        def need(mapping: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
            if not isinstance(mapping, dict) or key not in mapping:
                raise LatencyTableError(f"{origin}: missing key {where}{key!r}")
            value = mapping[key]
            if not isinstance(value, kind):
                raise LatencyTableError(f"{origin}: {where}{key!r} should be {getattr(kind, '__name__', kind)}, "
                                        f"got {type(value).__name__}")
            return value

        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise LatencyTableError(f"{origin}: not a udarts latency table (format {found!r}, expected {FORMAT!r}); "
                                    "make one with `udarts latency-table --out FILE`")
        number = (int, float)
        shape_data = need(data, "shape", dict, "")
        try:
            shape = LatencyShape(
                tuple(int(v) for v in need(shape_data, "image_size", list, "shape.")),  # type: ignore[arg-type]
                int(need(shape_data, "width", int, "shape.")), int(need(shape_data, "num_classes", int, "shape.")),
                int(need(shape_data, "num_nodes", int, "shape.")), int(need(shape_data, "expand_ratio", int, "shape.")),
                float(need(shape_data, "se_ratio", number, "shape.")))
        except (TypeError, ValueError) as error:
            raise LatencyTableError(f"{origin}: bad shape: {error}") from None
        ops = tuple(need(data, "ops", list, ""))
        fixed = need(data, "fixed_ms", dict, "")
        missing = [part for part in FIXED_PARTS if part not in fixed]
        if missing:
            raise LatencyTableError(f"{origin}: fixed_ms lacks {missing}")
        cells_data = need(data, "cells", dict, "")
        cells = {}
        for slot in cell_slots(1):
            entry = need(cells_data, slot.name, dict, "cells.")
            op_ms = need(entry, "op_ms", dict, f"cells.{slot.name}.")
            if set(op_ms) != set(ops):
                raise LatencyTableError(f"{origin}: cells.{slot.name}.op_ms has {sorted(op_ms)}, expected {sorted(ops)}")
            values = [need(entry, key, number, f"cells.{slot.name}.") for key in ("project_ms", "add_ms")]
            values += [need(op_ms, op, number, f"cells.{slot.name}.op_ms.") for op in ops]
            values += [need(fixed, part, number, "fixed_ms.") for part in FIXED_PARTS]
            if any(value < 0 for value in values):
                raise LatencyTableError(f"{origin}: negative milliseconds in cells.{slot.name} or fixed_ms")
            cells[slot.name] = CellCosts(float(entry["project_ms"]), float(entry["add_ms"]),
                                         {op: float(op_ms[op]) for op in ops})
        calibration = data.get("calibration")
        if calibration is not None:
            for key in ("scale", "offset_ms"):
                need(calibration, key, number, "calibration.")
        return cls(dict(need(data, "identity", dict, "")), shape, ops, {part: float(fixed[part]) for part in FIXED_PARTS},
                   cells, calibration, str(data.get("measured_at", "")), dict(data.get("extra") or {}))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LatencyTable":
        path = Path(path)
        if not path.is_file():
            raise LatencyTableError(f"latency table {path} does not exist; make one with `udarts latency-table --out {path}`")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise LatencyTableError(f"latency table {path} cannot be read as JSON: {error}") from None
        return cls.from_dict(data, origin=f"latency table {path}")


# Identity keys whose difference makes a table another measurement (versions are compared too).
IDENTITY_KEYS = ("device", "runtime", "threads", "batch_size")


def mismatches(table: LatencyTable, identity: dict[str, Any], shape: LatencyShape, ops: Sequence[str]) -> list[str]:
    """What differs between ``table`` and a wanted measurement, each as ``key: table's != wanted``."""
    found = []
    for key in IDENTITY_KEYS:
        if table.identity.get(key) != identity.get(key):
            found.append(f"{key}: {table.identity.get(key)!r} != {identity.get(key)!r}")
    mine, theirs = table.identity.get("versions", {}), identity.get("versions", {})
    for library in sorted(set(mine) | set(theirs)):
        if mine.get(library) != theirs.get(library):
            found.append(f"{library} version: {mine.get(library)!r} != {theirs.get(library)!r}")
    for key, value in shape.to_dict().items():
        if table.shape.to_dict()[key] != value:
            found.append(f"shape.{key}: {table.shape.to_dict()[key]!r} != {value!r}")
    if sorted(table.ops) != sorted(ops):
        found.append(f"ops: {sorted(table.ops)} != {sorted(ops)}")
    return found
