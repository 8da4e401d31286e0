"""``udarts latency-table``: time SEARCH-Net's parts on this device and write the table a
latency-targeted search (``search.latency_target_ms``) and the predictor read.

The table is for the network the config describes: ``data.image_size``, ``model.width``, the
dataset's class count, ``model.ops`` (without ``none``), ``model.num_nodes`` and the MBConv
settings. An existing ``--out`` file is reused when it was measured the same way (device, runtime,
threads, batch, library versions) for the same network, and refused otherwise with the differences
named; ``--force`` measures again. ``--calibrate N`` times N random genotypes (seed 1000, so they
are not the validation draws of seed 0) whole and fits ``measured = scale * sum + offset``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from udarts.builders import build_split, check_u_input_size, search_ops
from udarts.config import Config, ConfigError
from udarts.genotype import CellGenotype, Genotype
from udarts.latency import LatencyShape, LatencyTable, LatencyTableError, mismatches
from udarts.latency.measure import calibrate, identity_of, measure_table
from udarts.ops import NONE_OP
from udarts.random_genotypes import sample_genotype

CALIBRATION_SEED = 1000  # random genotypes a table is calibrated on (seed 0's draws validate it)


def shape_of(config: Config, num_classes: int | None = None) -> LatencyShape:
    """The network the config describes, as a latency table's shape."""
    check_u_input_size(config)
    if num_classes is None:
        num_classes = len(build_split(config, "train", augment=False).class_names)
    return LatencyShape.of_config(config, num_classes)


def _bar(description: str, progress: bool):
    bar = tqdm(total=1, desc=description, disable=not progress, leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
    return bar, update


def make_latency_table(config: Config, out: str | Path, *, runtime: str = "eager", threads: int = 1, batch_size: int = 1,
                       calibrate_genotypes: int = 10, rounds: int = 5, force: bool = False,
                       num_classes: int | None = None) -> tuple[LatencyTable, bool]:
    """``(table, reused)``: the table of ``config``'s network on ``runtime``, written to ``out``
    (or the matching table already there)."""
    out = Path(out)
    try:
        shape = shape_of(config, num_classes)
        ops = tuple(op for op in search_ops(config) if op != NONE_OP)
        identity = identity_of(runtime, threads, batch_size)
        if out.exists() and not force:
            existing = LatencyTable.load(out)
            differences = mismatches(existing, identity, shape, ops)
            if differences:
                raise LatencyTableError(f"{out} was measured otherwise ({'; '.join(differences)}); pass another --out, "
                                        "or --force to measure again and replace it")
            if calibrate_genotypes and existing.calibration is None:
                raise LatencyTableError(f"{out} is not calibrated; pass --calibrate 0 to use it as it is, or --force")
            return existing, True
        progress = config.progress
        bar, update = _bar(f"timing parts ({runtime})", progress)
        table = measure_table(shape, ops, runtime, threads, batch_size, rounds=rounds, progress=update)
        bar.close()
        if calibrate_genotypes:
            genotypes = [sample_genotype(CALIBRATION_SEED, index, ops, config.model.num_nodes, config.search.top_k,
                                         table_settings(shape)) for index in range(calibrate_genotypes)]
            genotypes += extreme_genotypes(table, genotypes[0])
            bar, update = _bar(f"timing {len(genotypes)} whole networks", progress)
            table = calibrate(table, genotypes, progress=update)
            bar.close()
    except LatencyTableError as error:
        raise ConfigError(str(error)) from None
    table.save(out)
    return table, False


def extreme_genotypes(table: LatencyTable, genotype: Genotype) -> list[Genotype]:
    """``genotype``'s edges with every op the cell's cheapest, then its dearest: the ends of the
    range a calibration line is fitted over (random draws alone span too little of it to fix a slope)."""
    extremes = []
    for pick in (min, max):
        cells = []
        for cell in genotype.cells:
            op = pick(table.ops, key=lambda name: table.op_ms(cell.name, name))
            cells.append(CellGenotype(cell.name, cell.num_inputs,
                                      tuple(tuple((op, source) for _, source in node) for node in cell.nodes)))
        extremes.append(replace(genotype, cells=tuple(cells)))
    return extremes


def table_settings(shape: LatencyShape):
    from udarts.ops import OpSettings

    return OpSettings(affine=True, expand_ratio=shape.expand_ratio, se_ratio=shape.se_ratio)


def describe_table(table: LatencyTable, top_k: int = 2) -> list[str]:
    """A few lines a person reads: where it was measured, what each op costs per scale, the cheapest genotype."""
    identity = table.identity
    threads = f", {identity['threads']} thread(s)" if identity.get("threads") else ""
    lines = [f"{table.shape.describe()}; {identity['runtime']} on {identity['device']}{threads}, batch {identity['batch_size']}"]
    header = "op".ljust(14) + "".join(f"{name:>9}" for name in ("C1", "C2", "C3", "C4"))
    lines += ["ms per edge, by cell (C8, C7, C6 and C5 as C1, C2, C3 and C4):", header]
    for op in table.ops:
        lines.append(op.ljust(14) + "".join(f"{table.op_ms(name, op):9.3f}" for name in ("C1", "C2", "C3", "C4")))
    lines.append(f"fixed parts {sum(table.fixed_ms.values()):.2f} ms; cheapest genotype {table.cheapest_ms(top_k):.2f} ms")
    if table.calibration is not None:
        calibration: dict[str, Any] = table.calibration
        lines.append(f"calibrated on {calibration.get('genotypes')} whole networks: measured = "
                     f"{calibration['scale']:.3f} x sum + {calibration['offset_ms']:.2f} ms")
    return lines
