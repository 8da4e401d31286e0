"""What a comparison compares and how its runs are brought to their last epoch.

The comparison folder (see :mod:`udarts.app.compare`): ``comparison.json`` (models, seeds, the
shared config, the budget), the frozen genotypes, the planned (model, seed) run folders, and the
check that an existing run folder belongs to this comparison (:func:`check_run_folders`; the runs
are trials of :mod:`udarts.app.trials`).

This module never turns a config into keyword arguments (``udarts.builders`` does): it handles each
run's config as an opaque dict.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from udarts.config import ConfigError
from udarts.engine.layout import CONFIG_FILE, GENOTYPE_FILE, LAST_CHECKPOINT, LOCK_FILE
from udarts.engine.runs import load_checkpoint
from udarts.io import atomic_write_text

COMPARISON_FILE = "comparison.json"
COMPARISON_FORMAT = "udarts-comparison"
COMPARISON_VERSION = 1
SEARCHNET = "searchnet"
# Config keys that may differ between a reused run folder and the comparison: where it ran, how
# it printed, the genotype's path (its content is pinned by genotypes/<label>.json), and the
# torchrun-only BatchNorm switch (a comparison trains in one process, where it does nothing;
# folders made before the key existed lack it).
IGNORED_CONFIG_KEYS = ("device", "progress", "out", "train.genotype", "train.sync_batchnorm")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class ComparisonError(ConfigError):
    """A comparison cannot go on as asked; the message names the folder, model or key."""


# ---- what is compared ----------------------------------------------------------------------


@dataclass(frozen=True)
class ModelEntry:
    """One model of the comparison: a table label, a baseline name or ``searchnet`` with a
    genotype file, and (baselines) keyword options of the network."""

    label: str
    model: str
    genotype: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "searched" if self.model == SEARCHNET else "baseline"


def _split_label(item: str) -> tuple[str | None, str]:
    """``"LABEL=VALUE"`` -> (LABEL, VALUE); ``"VALUE"`` -> (None, VALUE)."""
    if "=" in item:
        label, value = item.split("=", 1)
        return label.strip(), value.strip()
    return None, item.strip()


def parse_entries(
    models: Sequence[str],
    genotypes: Sequence[str] = (),
    options: Mapping[str, Mapping[str, Any]] | None = None,
    baselines: Sequence[str] | None = None,
) -> list[ModelEntry]:
    """The models of a comparison, in table order: the baselines, then the genotypes.

    ``models``: baseline names, each optionally ``LABEL=NAME`` (to compare one baseline at two
    settings). ``genotypes``: genotype paths, each optionally ``LABEL=PATH``; the default label
    is ``searchnet`` for a single genotype and ``searchnet-<name>`` otherwise, ``<name>`` being
    the search run folder's name (or the file's stem when it is not ``genotype.json``). A folder
    stands for its ``genotype.json`` (a search run folder) or else for every ``*.json`` in it
    (``udarts sample``'s random genotypes; with ``LABEL=FOLDER`` labelled ``LABEL-<stem>``).
    ``options``: label -> keyword options of that baseline.
    """
    if baselines is None:
        from udarts.baselines import BASELINES as baselines
    genotypes = _genotype_files(genotypes)
    entries: list[ModelEntry] = []
    options = {label: dict(values) for label, values in (options or {}).items()}
    for item in models:
        label, name = _split_label(item)
        if name == SEARCHNET:
            raise ComparisonError("searchnet is compared through --genotypes PATH (it needs a genotype)")
        if name not in baselines:
            raise ComparisonError(f"unknown model {name!r}; baselines are {', '.join(baselines)} (SEARCH-Net: --genotypes PATH)")
        entries.append(ModelEntry(label or name, name))
    for index, item in enumerate(genotypes):
        label, path = _split_label(item)
        if label is None:
            label = SEARCHNET if len(genotypes) == 1 else f"{SEARCHNET}-{_genotype_name(Path(path), index)}"
        entries.append(ModelEntry(label, SEARCHNET, genotype=path))
    if not entries:
        raise ComparisonError("nothing to compare: give --models and/or --genotypes")
    labels = [entry.label for entry in entries]
    for label in labels:
        if not _LABEL.match(label):
            raise ComparisonError(f"model label {label!r}: use letters, digits and _ . + - (it names a folder)")
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ComparisonError(f"model label(s) {repeated} given twice; name them apart with LABEL=NAME or LABEL=PATH")
    unknown = sorted(set(options) - set(labels))
    if unknown:
        raise ComparisonError(f"model options for {unknown}, which are not among the compared models {labels}")
    result = []
    for entry in entries:
        entry_options = options.get(entry.label, {})
        if entry_options and entry.model == SEARCHNET:
            raise ComparisonError(f"{entry.label}: SEARCH-Net takes no model options (its width is model.width)")
        result.append(ModelEntry(entry.label, entry.model, entry.genotype, entry_options))
    return result


def _genotype_files(items: Sequence[str]) -> list[str]:
    """``items`` with each folder replaced by its genotype file(s) (see :func:`parse_entries`)."""
    files: list[str] = []
    for item in items:
        label, path = _split_label(item)
        folder = Path(path)
        if not folder.is_dir():
            files.append(item)
        elif (folder / GENOTYPE_FILE).is_file():
            files.append(f"{label}={folder / GENOTYPE_FILE}" if label else str(folder / GENOTYPE_FILE))
        else:
            found = sorted(folder.glob("*.json"))
            if not found:
                raise ComparisonError(f"--genotypes {folder}: a folder without genotype files (*.json)")
            files += [f"{label}-{_genotype_name(file, index)}={file}" if label else str(file) for index, file in enumerate(found)]
    return files


def _genotype_name(path: Path, index: int) -> str:
    name = path.parent.name if path.name == GENOTYPE_FILE else path.stem
    name = re.sub(r"[^A-Za-z0-9_.+-]", "-", name).strip("-.") or str(index + 1)
    return name


def adopt_genotypes(root: Path, entries: Sequence[ModelEntry]) -> list[ModelEntry]:
    """Freeze each genotype into ``root/genotypes/<label>.json`` and point the entry there.

    A search keeps rewriting its ``genotype.json``; the copy makes every seed (and a later
    resumed comparison) train the same architecture. A label whose frozen copy holds another
    architecture than the file given now is an error.
    """
    from udarts.genotype import Genotype

    adopted = []
    for entry in entries:
        if entry.genotype is None:
            adopted.append(entry)
            continue
        source = Path(entry.genotype)
        genotype = Genotype.load(source)  # GenotypeError names the file
        frozen = root / "genotypes" / f"{entry.label}.json"
        if frozen.resolve() != source.resolve():
            if frozen.is_file():
                if Genotype.load(frozen) != genotype:
                    raise ComparisonError(
                        f"{frozen}: this comparison already trained {entry.label!r} from another architecture than "
                        f"{source}; give it another label (LABEL=PATH) or use another --out"
                    )
            else:
                frozen.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(frozen, source.read_text())
        adopted.append(ModelEntry(entry.label, entry.model, str(frozen.resolve()), dict(entry.options)))
    return adopted


def config_differences(stored: Any, expected: Any, ignore: Iterable[str] = IGNORED_CONFIG_KEYS, prefix: str = "") -> list[str]:
    """``"key: stored -> expected"`` for every leaf where two nested configs differ, skipping ``ignore``."""
    ignore = tuple(ignore)
    if prefix.rstrip(".") in ignore:
        return []
    if isinstance(stored, dict) and isinstance(expected, dict):
        differences = []
        for key in sorted(set(stored) | set(expected), key=str):
            differences += config_differences(stored.get(key), expected.get(key), ignore, f"{prefix}{key}.")
        return differences
    if stored != expected:
        return [f"{prefix.rstrip('.')}: {stored!r} -> {expected!r}"]
    return []


def prepare(
    root: Path, entries: Sequence[ModelEntry], seeds: Sequence[int], config: dict[str, Any], budget: dict[str, Any]
) -> list[ModelEntry]:
    """Make or reopen the comparison folder ``root``; returns the entries with frozen genotypes.

    A new folder must be missing or empty. An existing comparison must have been made with the
    same shared ``config`` (seeds and models may change: runs are added, finished ones reused).
    Writes ``comparison.json`` with the models, seeds, budget and shared config.
    """
    root = Path(root)
    path = root / COMPARISON_FILE
    if path.is_file():
        differences = config_differences(load_plan(root)["config"], config, IGNORED_CONFIG_KEYS + ("seed",))
        if differences:
            raise ComparisonError(
                f"{root} holds a comparison made with another config ({'; '.join(differences)}); "
                "use another --out to compare at another budget"
            )
    elif root.exists() and any(root.iterdir()):
        raise ComparisonError(f"{root}: folder exists, is not empty and is not a comparison (no {COMPARISON_FILE})")
    root.mkdir(parents=True, exist_ok=True)
    entries = adopt_genotypes(root, entries)
    plan = {
        "format": COMPARISON_FORMAT,
        "version": COMPARISON_VERSION,
        "models": [asdict(entry) for entry in entries],
        "seeds": list(seeds),
        "budget": budget,
        "config": config,
    }
    atomic_write_text(path, json.dumps(plan, indent=2) + "\n")
    return entries


def load_plan(root: Path) -> dict[str, Any]:
    path = Path(root) / COMPARISON_FILE
    if not path.is_file():
        raise ComparisonError(f"{root}: not a comparison folder (no {COMPARISON_FILE})")
    plan = json.loads(path.read_text())
    if plan.get("format") != COMPARISON_FORMAT or plan.get("version") != COMPARISON_VERSION:
        raise ComparisonError(f"{path}: not a udarts comparison of version {COMPARISON_VERSION}")
    return plan


def plan_entries(plan: Mapping[str, Any]) -> list[ModelEntry]:
    return [ModelEntry(**item) for item in plan["models"]]


# ---- running -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedRun:
    """One (model, seed) train run: its folder, its full config and its number of epochs."""

    entry: ModelEntry
    seed: int
    path: Path
    config: dict[str, Any]
    epochs: int


def run_folder(root: Path, label: str, seed: int) -> Path:
    return Path(root) / "runs" / label / f"seed-{seed}"


def checkpoint_epoch(run_path: Path) -> int | None:
    """The epoch ``run_path/last.pt`` was saved at, or None without a readable ``last.pt``."""
    path = run_path / LAST_CHECKPOINT
    if not path.is_file():
        return None
    try:
        return int(load_checkpoint(path)["epoch"])
    except (ValueError, KeyError):
        return None


def run_finished(run_path: Path, kind: str = "train") -> bool:
    """Whether the ``kind`` run (``train`` or ``search``) in ``run_path`` has checkpointed the last
    epoch its recorded ``config.yaml`` asks for."""
    epoch = checkpoint_epoch(run_path)
    return epoch is not None and epoch >= int(yaml.safe_load((run_path / CONFIG_FILE).read_text())[kind]["epochs"])


def check_run_folders(plans: Sequence[PlannedRun]) -> None:
    """Refuse, before any training, a planned run folder that another comparison made: one whose
    ``config.yaml`` differs from ``run.config`` (beyond :data:`IGNORED_CONFIG_KEYS`), or a
    non-empty folder that is no run folder. The others are reused when finished, resumed from their
    ``last.pt`` when interrupted, and trained anew when never checkpointed
    (:func:`udarts.app.trials.run_attempt`)."""
    for run in plans:
        config_path = run.path / CONFIG_FILE
        if config_path.is_file():
            differences = config_differences(yaml.safe_load(config_path.read_text()), run.config)
            if differences:
                raise ComparisonError(
                    f"{run.path}: trained with another config ({'; '.join(differences)}); "
                    "remove that folder or use another --out"
                )
        elif run.path.is_dir() and any(item.name != LOCK_FILE for item in run.path.iterdir()):
            raise ComparisonError(f"{run.path}: exists, is not empty and is not a run folder (no {CONFIG_FILE})")
