"""Merging config mappings: every key of an override must exist in the base and its value must
have the type of the base's (numbers written as text such as ``1e-3`` are read as numbers). The
schema says which keys may be null, which hold numbers and which hold free mappings (``KeyKinds``)."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from udarts.config.errors import ConfigError

# Common float spellings that YAML 1.1 (PyYAML) reads as strings: 1e-3, 5E+4, .5e-3 (no dot or no sign).
_FLOAT_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


@dataclass(frozen=True)
class KeyKinds:
    """Dotted keys by kind: ``nullable`` (may be null), ``numeric`` (hold a number, also when null
    by default) and ``free`` (mappings passed on as they are, not checked against the defaults)."""

    nullable: frozenset[str]
    numeric: frozenset[str]
    free: frozenset[str]


def _check(value: Any, default: Any, key: str, origin: str, kinds: KeyKinds) -> Any:
    """The type of ``value`` against the default's (numbers written as text are read as numbers)."""
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{origin}: {key}: expected a mapping, got {value!r}")
        return value
    if value is None:
        if key in kinds.nullable:
            return None
        raise ConfigError(f"{origin}: {key}: must not be null")
    if isinstance(value, str) and not isinstance(default, (bool, str)) and (
        isinstance(default, (int, float)) or (key in kinds.nullable and key in kinds.numeric)
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


def merge(base: dict[str, Any], override: dict[str, Any], origin: str, kinds: KeyKinds,
          prefix: str = "") -> dict[str, Any]:
    """``base`` updated with ``override``; every key of ``override`` must exist in ``base``."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        full_key = f"{prefix}{key}"
        if key not in result:
            raise ConfigError(f"{origin}: unknown key {full_key!r}; expected one of {sorted(result)}")
        value = _check(value, result[key], full_key, origin, kinds)
        if isinstance(result[key], dict) and full_key not in kinds.free:
            result[key] = merge(result[key], value, origin, kinds, f"{full_key}.")
        else:
            result[key] = value
    return result
