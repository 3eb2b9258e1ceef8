"""Frozen dataclass configs and their JSON form."""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, TypeVar

from aekit.errors import ConfigError

C = TypeVar("C")


def config_fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _scalar(value: Any, kind: type, key: str) -> Any:
    if kind is bool and isinstance(value, str):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}={value!r} must be true or false")
    try:
        number = float(value) if kind is int and isinstance(value, (str, float)) else value
        if kind is int and isinstance(number, float) and not number.is_integer():
            raise ValueError
        return kind(number)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}={value!r} must be of type {kind.__name__}") from None


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Turn a JSON/YAML/command-line value into the field's type (lists -> tuples, '3' -> 3)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and type(None) in
                         typing.get_args(annotation)):
        return None
    if typing.get_origin(annotation) is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}={value!r} must be a mapping; set its entries with dots ({key}.NAME.KEY=VALUE)")
        return {str(k): _plain_dict(v) if isinstance(v, dict) else v for k, v in value.items()}
    if typing.get_origin(annotation) is tuple:
        if isinstance(value, str):
            value = [v for v in value.strip("()[] ").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(_scalar(v, args[0], key) for v in value)
    kind = args[0] if args else annotation
    if kind in (bool, int, float, str):
        return _scalar(value, kind, key)
    return value


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``extra``, nested dicts merged key by key."""
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return merged


def _plain_dict(value: dict) -> dict:
    return {str(k): _plain_dict(v) if isinstance(v, dict) else v for k, v in value.items()}


def from_dict(cls: type[C], values: dict[str, Any], where: str = "config") -> C:
    """Build dataclass ``cls`` from a plain dict, rejecting unknown keys with the list of known ones.

    A mapping field (a model's part settings ``options``, its ``terms``) is merged key by key over the field's
    default, so that a model can default one part setting (``{"bottleneck": {"code_dim": 4}}``) and a user set
    another (``bottleneck.decay=0.95``) without losing it; a key the user gives wins."""
    fields = config_fields(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown {where} key(s) {', '.join(unknown)}; known keys: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    values = dict(values)
    for key, value in values.items():
        default = fields[key].default_factory
        if isinstance(value, dict) and default is not dataclasses.MISSING:
            values[key] = merge(default(), value)
    return cls(**{k: _coerce(v, hints[k], k) for k, v in values.items()})


def to_dict(config: Any) -> dict[str, Any]:
    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return {k: plain(x) for k, x in v.items()} if isinstance(v, dict) else v

    return {k: plain(v) for k, v in dataclasses.asdict(config).items()}


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def require_choice(value: str, choices, key: str) -> None:
    """A one-line ConfigError for a name that is not one of ``choices``, listing them."""
    require(value in choices, f"{key}={value!r} is unknown; choose one of {', '.join(choices)}")


def require_weight(value: float, key: str) -> None:
    """A one-line ConfigError for a weight that is negative or not a finite number."""
    require(math.isfinite(value) and value >= 0, f"{key}={value} must be a finite number >= 0")
