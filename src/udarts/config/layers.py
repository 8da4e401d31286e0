"""Config layers: defaults <- a YAML file <- flags <- ``--set KEY=VALUE``, merged as plain mappings
(every key must exist, every type must match the default's; numbers written as text such as
``1e-3`` are read as numbers), then built into a checked ``Config``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from udarts.config.errors import ConfigError
from udarts.config.merging import merge as merge_with
from udarts.config.schema import DEFAULTS, KEY_KINDS, Config, _build


def merge(base: dict[str, Any], override: dict[str, Any], origin: str, prefix: str = "") -> dict[str, Any]:
    """``base`` updated with ``override``; every key of ``override`` must exist in ``base``
    (``udarts.config.merging.merge`` with the schema's kinds of keys)."""
    return merge_with(base, override, origin, KEY_KINDS, prefix)


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
        if isinstance(value, dict) and isinstance(old, dict) and f"{prefix}{key}" not in KEY_KINDS.free:
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
