"""One source for every name a user can give: each table of names of the config
(``udarts.config.names``) holds exactly the names of the registry it stands for, every registry
is named by some config key (or says why not), and a name outside its table is refused once, by
the config, naming the key."""

import importlib
import pkgutil

import pytest

import udarts
import udarts.config as config
import udarts.config.names as names


def registry_names():
    """Config table -> the names of its registry (imported here: the config package cannot)."""
    from udarts.baselines import BASELINES
    from udarts.baselines.scales import SCALES
    from udarts.data.factory import DATASETS
    from udarts.data.pairs import BAD_SAMPLE_POLICIES
    from udarts.data.pets import TARGETS
    from udarts.efficiency import AMP_MODES
    from udarts.engine.trainer import OPTIMIZERS, SCHEDULERS
    from udarts.losses import LOSSES
    from udarts.ops import PAPER_OPS
    from udarts.search.darts import ORDERS
    from udarts.search.sampling import TAU_SCHEDULES
    from udarts.search.supernet import SAMPLED_MODES, SEARCH_MODES

    return {
        "DATASETS": DATASETS, "PETS_TARGETS": TARGETS, "BAD_SAMPLE_POLICIES": BAD_SAMPLE_POLICIES, "LOSSES": LOSSES,
        "OPTIMIZERS": OPTIMIZERS, "SCHEDULERS": SCHEDULERS, "SEARCH_ORDERS": ORDERS, "SEARCH_MODES": SEARCH_MODES,
        "SAMPLED_MODES": SAMPLED_MODES, "AMP_MODES": AMP_MODES, "TAU_SCHEDULES": TAU_SCHEDULES,
        "MODELS": {"searchnet": None, **BASELINES}, "MODEL_SCALES": SCALES,
        "PAPER_OPS": PAPER_OPS,  # the default of model.ops; every name of OPS is a valid model.ops entry (below)
        "_registries": [DATASETS, LOSSES, OPTIMIZERS, SCHEDULERS, TAU_SCHEDULES, BASELINES],
    }


# Registries no table of names stands for, and why.
NOT_NAMED_BY_A_TABLE = {
    "udarts.ops.OPS": "model.ops: checked against OPS itself where the network is built (test below)",
    "udarts.baselines.light.LIGHT_BASELINES": "part of BASELINES",
    "udarts.search.parts.PARTS": "each part is switched on by its own keys (tests/engine/test_search_loop.py)",
    "udarts.config.schema.SECTIONS": "the config's own sections",
    "udarts.cli.HANDLERS": "the CLI's subcommands",
}


def tables():
    return {name: value for name, value in vars(names).items()
            if name.isupper() and isinstance(value, tuple) and all(isinstance(item, str) for item in value)}


def test_every_table_of_names_holds_exactly_its_registrys_names():
    registries = registry_names()
    for name, table in tables().items():
        assert name in registries, f"udarts.config.names.{name} stands for no registry: tie it in registry_names()"
        wanted = set(registries[name])
        if name == "PAPER_OPS":
            assert table == tuple(registries[name])
            continue
        assert set(table) == wanted, (f"{name}: names no registry builds {sorted(set(table) - wanted)}, registry "
                                      f"entries the config cannot name {sorted(wanted - set(table))}")
        assert len(table) == len(set(table)), f"{name} repeats a name"


def test_every_registry_is_named_by_the_config():
    tied = {id(registry) for registry in registry_names()["_registries"]}
    found = []
    for info in pkgutil.walk_packages(udarts.__path__, "udarts."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (name.isupper() and isinstance(value, dict) and value and all(callable(item) for item in value.values())
                    and id(value) not in tied):
                found.append(f"{info.name}.{name}")
    owners = {}
    for path in found:  # a registry re-exported by its package counts once, under its defining module
        module, _, name = path.rpartition(".")
        owners.setdefault(id(getattr(importlib.import_module(module), name)), []).append(path)
    untied = [paths for paths in owners.values() if not set(paths) & set(NOT_NAMED_BY_A_TABLE)]
    assert not untied, f"registries no table of udarts.config.names stands for: {untied}"


def test_every_named_key_is_a_config_key_with_a_default_from_its_table():
    used = set()
    for key, table in names.NAMED_KEYS.items():
        section, field = key.split(".")
        assert config.DEFAULTS[section][field] in table, key
        used.add(id(table))
    unused = [name for name, table in tables().items() if id(table) not in used]
    assert sorted(unused) == ["PAPER_OPS", "SAMPLED_MODES"]  # model.ops' default; a property of search.mode


@pytest.mark.parametrize("key", sorted(names.NAMED_KEYS))
def test_a_name_outside_its_table_is_refused_naming_the_key_and_the_choices(key):
    section, field = key.split(".")
    with pytest.raises(config.ConfigError, match=f"^{key}: expected one of .*'{names.NAMED_KEYS[key][-1]}'"):
        config.Config.from_dict({section: {field: "no_such_name"}})


def test_every_op_of_the_registry_is_a_valid_model_ops_entry_and_no_other():
    from udarts.builders import search_ops
    from udarts.ops import OPS

    base = config.Config()
    for name in OPS:
        ops = [name, "identity"] if name == "none" else [name]  # 'none' alone is refused
        assert name in search_ops(base.updated({"model": {"ops": ops}}, "test"))
    with pytest.raises(config.ConfigError, match="model.ops"):
        search_ops(base.updated({"model": {"ops": ["conv_3x3", "no_such_op"]}}, "test"))


def test_every_latency_runtime_is_offered_by_the_cli_and_another_is_refused():
    import argparse

    from udarts.cli import build_parser
    from udarts.latency import RUNTIMES, LatencyTableError
    from udarts.latency.measure import identity_of

    commands = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    table = commands.choices["latency-table"]
    runtime = next(action for action in table._actions if "--runtime" in action.option_strings)
    assert all(name in runtime.help for name in RUNTIMES), runtime.help
    with pytest.raises(LatencyTableError, match="onnxruntime"):
        identity_of("tensorrt", 1, 1)
