"""One registry per kind of part, so that a config names its parts (``bottleneck=gaussian objective=iwae``).

Kinds: ``models`` (the model registry, :mod:`aekit.registry`), ``bottlenecks``, ``priors``, ``likelihoods``,
``backbones``, ``graph_encoders``, ``corruptions``, ``maskers``, ``targets``, ``objectives``. A part registers
itself where it is defined::

    @register_part("priors", "standard-normal", "N(0, I)")
    class StandardNormal(Prior): ...

``aekit parts`` lists them all; a duplicate name within a kind is an error.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aekit.errors import ConfigError

KINDS = ("models", "bottlenecks", "priors", "likelihoods", "backbones", "graph_encoders", "corruptions", "maskers",
         "targets", "objectives")


@dataclass(frozen=True)
class PartEntry:
    kind: str
    name: str
    factory: Callable[..., Any]
    description: str


_PARTS: dict[str, dict[str, PartEntry]] = {kind: {} for kind in KINDS if kind != "models"}


def register_part(kind: str, name: str, description: str) -> Callable[[Any], Any]:
    """Decorator adding a class or factory function as part ``name`` of ``kind``."""
    if kind not in _PARTS:
        raise ValueError(f"part kind {kind!r} is unknown; kinds: {', '.join(_PARTS)}")

    def add(factory: Any) -> Any:
        if name in _PARTS[kind]:
            raise ValueError(f"{kind[:-1]} name {name!r} is registered twice")
        _PARTS[kind][name] = PartEntry(kind, name, factory, description)
        return factory

    return add


def _ensure_builtin_parts() -> None:
    import aekit.models  # noqa: F401  (imports every built-in part module, then the models)
    import aekit.objectives  # noqa: F401


def part_names(kind: str) -> tuple[str, ...]:
    """The registered names of ``kind``, in registration order (no import: what is registered so far)."""
    return tuple(_PARTS[kind])


def get_part(kind: str, name: str) -> PartEntry:
    if kind == "models":
        from aekit.registry import model_entry

        entry = model_entry(name)
        return PartEntry("models", entry.name, entry.model_class, entry.description)
    if name not in _PARTS[kind]:
        _ensure_builtin_parts()
    if name not in _PARTS[kind]:
        raise ConfigError(f"{kind[:-1]}={name!r} is unknown; choose one of {', '.join(_PARTS[kind])}")
    return _PARTS[kind][name]


def build_part(kind: str, name: str, *args: Any, **kwargs: Any) -> Any:
    """Part ``name`` of ``kind`` built with ``args`` and ``kwargs``; a keyword the part does not take is a
    ConfigError that lists the ones it does."""
    factory = get_part(kind, name).factory
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin without a signature: let the call speak
        return factory(*args, **kwargs)
    params = signature.parameters.values()
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        taken = [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
        unknown = sorted(set(kwargs) - set(taken))
        if unknown:
            raise ConfigError(f"{kind[:-1]}.{unknown[0]}: {name} has no such setting; it takes "
                              f"{', '.join(taken[len(args):]) or 'none'}")
    return factory(*args, **kwargs)


def list_parts(kind: str | None = None) -> list[PartEntry]:
    """Every registered part (of ``kind`` when given), kinds in :data:`KINDS` order."""
    from aekit.registry import list_models

    _ensure_builtin_parts()
    kinds = KINDS if kind is None else (kind,)
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"part kind {kind!r} is unknown; choose one of {', '.join(KINDS)}")
    out: list[PartEntry] = []
    for k in kinds:
        if k == "models":
            out += [PartEntry("models", e.name, e.model_class, e.description) for e in list_models()]
        else:
            out += list(_PARTS[k].values())
    return out
