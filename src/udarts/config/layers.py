"""Config layers: defaults <- a YAML file <- flags <- ``--set KEY=VALUE``, merged as plain mappings
(every key must exist, every type must match the default's; numbers written as text such as
``1e-3`` are read as numbers), then built into a checked ``Config``."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

from udarts.config.schema import DEFAULTS, SECTIONS, Config, ConfigError, _build


def _nullable_keys() -> set[str]:
    """Dotted keys whose type admits null (``| None`` in the field's annotation)."""
    return {f"{name}.{item.name}" for name, section in SECTIONS.items() for item in dataclasses.fields(section)
            if "None" in str(item.type)}


_NULLABLE = _nullable_keys()
_FREE_MAPPINGS = {"train.model_options"}  # keyword options passed on as they are, not checked against defaults
# Common float spellings that YAML 1.1 (PyYAML) reads as strings: 1e-3, 5E+4, .5e-3 (no dot or no sign).
_FLOAT_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_NUMBER_TYPES = ("int", "float")


def _is_numeric_key(key: str) -> bool:
    section, _, name = key.partition(".")
    if section not in SECTIONS:
        return False
    types = {item.name: str(item.type) for item in dataclasses.fields(SECTIONS[section])}
    return any(kind in types.get(name, "") for kind in _NUMBER_TYPES) and "tuple" not in types.get(name, "")


# ---- merging mappings ----------------------------------------------------------------------------


def _check(value: Any, default: Any, key: str, origin: str) -> Any:
    """The type of ``value`` against the default's (numbers written as text are read as numbers)."""
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{origin}: {key}: expected a mapping, got {value!r}")
        return value
    if value is None:
        if key in _NULLABLE:
            return None
        raise ConfigError(f"{origin}: {key}: must not be null")
    if isinstance(value, str) and not isinstance(default, (bool, str)) and (
        isinstance(default, (int, float)) or (key in _NULLABLE and _is_numeric_key(key))
    ):
        value = _number_from_text(value, key, origin)
    if default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{origin}: {key}: expected true or false, got {value!r}")
    elif isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{origin}: {key}: expected a number, got {value!r}")
        if isinstance(default, int) and not isinstance(value, int):
            if float(value).is_integer():
                value = int(value)
            else:
                raise ConfigError(f"{origin}: {key}: expected an integer, got {value!r}")
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{origin}: {key}: expected a string, got {value!r}")
    elif isinstance(default, list):
        if not isinstance(value, list):
            raise ConfigError(f"{origin}: {key}: expected a list, got {value!r}")
    return value


def _number_from_text(text: str, key: str, origin: str) -> int | float:
    """``"1e-3"`` -> ``0.001``: YAML 1.1 reads exponent floats without a dot as strings."""
    if not _FLOAT_TEXT.match(text.strip()):
        raise ConfigError(f"{origin}: {key}: expected a number, got {text!r}")
    number = float(text)
    return int(number) if number.is_integer() and re.match(r"^[-+]?\d+$", text.strip()) else number


def merge(base: dict[str, Any], override: dict[str, Any], origin: str, prefix: str = "") -> dict[str, Any]:
    """``base`` updated with ``override``; every key of ``override`` must exist in ``base``."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        full_key = f"{prefix}{key}"
        if key not in result:
            raise ConfigError(f"{origin}: unknown key {full_key!r}; expected one of {sorted(result)}")
        value = _check(value, result[key], full_key, origin)
        if isinstance(result[key], dict) and full_key not in _FREE_MAPPINGS:
            result[key] = merge(result[key], value, origin, f"{full_key}.")
        else:
            result[key] = value
    return result


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def set_dotted(target: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """``set_dotted(d, "search.epochs", 5)`` sets ``d["search"]["epochs"] = 5``; returns ``d``."""
    cursor = target
    parts = key.strip().split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return target


def dotted(config: dict[str, Any], key: str) -> Any:
    """``dotted(d, "search.epochs")`` is ``d["search"]["epochs"]``."""
    for part in key.split("."):
        config = config[part]
    return config


def changed_keys(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two config mappings."""
    changed = []
    for key, value in after.items():
        old = before.get(key)
        if isinstance(value, dict) and isinstance(old, dict) and f"{prefix}{key}" not in _FREE_MAPPINGS:
            changed += changed_keys(old, value, f"{prefix}{key}.")
        elif value != old:
            changed.append(f"{prefix}{key}")
    return changed


def parse_assignment(text: str) -> dict[str, Any]:
    """``"search.epochs=5"`` -> ``{"search": {"epochs": 5}}`` (the value is read as YAML)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, for example search.epochs=5")
    key, raw = text.split("=", 1)
    if not key.strip() or any(not part for part in key.strip().split(".")):
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE with a dotted key, for example search.epochs=5")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise ConfigError(f"--set {text!r}: the value {raw!r} is not valid YAML ({problem}); quote strings, "
                          f"write lists as [a,b]") from error
    return set_dotted({}, key, value)


def resolve(config_path: str | Path | None = None, overrides: list[tuple[dict[str, Any], str]] = ()) -> Config:
    """Defaults <- the YAML file <- each ``(override, origin)`` in order, checked."""
    data = DEFAULTS
    if config_path:
        data = merge(data, load_yaml(config_path), str(config_path))
    for override, origin in overrides:
        data = merge(data, override, origin)
    return _build(data)
