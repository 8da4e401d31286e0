"""Configs: typed sections with their defaults, a YAML file on top, command-line flags on top of that.

``resolve(FILE, overrides)`` returns a frozen ``Config``: ``config.search.epochs``. Every default
is written once, as a field default below; every value is checked once, in its section's
``__post_init__``, and an unknown key, a wrong type or a bad value is a ``ConfigError`` naming the
dotted key (and the file or flag it came from). A run folder records ``config.to_dict()`` as
``config.yaml``; ``Config.from_dict`` reads it back (keys missing from an older file take their
defaults). The package imports nothing else from udarts: the tables of names (``udarts.config.names``)
are plain data, and ``tests/test_names.py`` ties each to the registry whose names it holds.

Modules, lowest first (none imports a module above it): ``errors`` (``ConfigError``), ``names``
(the tables of names), ``merging`` (mappings merged and type-checked), ``schema`` (the sections
and their checks), ``layers`` (YAML file <- flags <- ``--set``).
"""

from udarts.config.errors import ConfigError
from udarts.config.layers import changed_keys, dotted, load_yaml, merge, parse_assignment, resolve, set_dotted
from udarts.config.names import (
    AMP_MODES,
    BAD_SAMPLE_POLICIES,
    DATASETS,
    LOSSES,
    MODEL_SCALES,
    MODELS,
    NAMED_KEYS,
    OPTIMIZERS,
    PAPER_OPS,
    PETS_TARGETS,
    SCHEDULERS,
    SEARCH_MODES,
    TAU_SCHEDULES,
)
from udarts.config.schema import DEFAULTS, Config, DataConfig, ModelConfig, SearchConfig, TrainConfig

__all__ = [
    "AMP_MODES", "BAD_SAMPLE_POLICIES", "DATASETS", "DEFAULTS", "LOSSES", "MODEL_SCALES", "MODELS", "NAMED_KEYS",
    "OPTIMIZERS", "PAPER_OPS", "PETS_TARGETS", "SCHEDULERS", "SEARCH_MODES", "TAU_SCHEDULES", "Config", "ConfigError",
    "DataConfig", "ModelConfig", "SearchConfig", "TrainConfig", "changed_keys", "dotted", "load_yaml", "merge",
    "parse_assignment", "resolve", "set_dotted",
]
