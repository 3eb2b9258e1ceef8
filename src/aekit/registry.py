"""The one model registry: it feeds the Python API, ``aekit models`` and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aekit.errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class ModelEntry:
    name: str
    model_class: type
    config_class: type
    description: str


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, config: type, description: str) -> Callable[[type], type]:
    """Class decorator: ``@register_model("vae", config=VAEConfig, description=...)``.

    One class may serve several names with different configs (``vae`` and ``beta-vae``)."""

    def add(model_class: type) -> type:
        if name in _MODELS:
            raise ValueError(f"model name {name!r} is registered twice ({_MODELS[name].model_class.__name__})")
        _MODELS[name] = ModelEntry(name, model_class, config, description)
        return model_class

    return add


def _ensure_builtin_models() -> None:
    import aekit.models  # noqa: F401  (registers the built-in models)


def model_entry(name: str) -> ModelEntry:
    _ensure_builtin_models()
    if name not in _MODELS:
        suggestion = did_you_mean(name, _MODELS)  # with one, the list (which grows with the registry) is left out
        listed = "`aekit models` lists them all" if suggestion else f"choose one of {', '.join(sorted(_MODELS))}"
        raise ConfigError(f"model {name!r} is not registered{suggestion}; {listed}")
    return _MODELS[name]


def list_models() -> list[ModelEntry]:
    _ensure_builtin_models()
    return sorted(_MODELS.values(), key=lambda e: e.name)


def make_config(name: str, **values: Any):
    """The config of model ``name`` with ``values`` overriding its defaults (lists become tuples)."""
    from aekit.config import from_dict

    return from_dict(model_entry(name).config_class, values, where=f"{name} config")


def build_model(name: str, config: Any = None, **kwargs: Any):
    """Build model ``name``: ``build_model("vae", data_shape=(1, 28, 28), latent_dim=32)``.

    Keyword arguments that are config fields set the config; ``encoder=``, ``decoder=``, ``bottleneck=`` and
    ``likelihood=`` (and ``feature_network=``, ``teacher=``) as modules pass user parts in their place."""
    entry = model_entry(name)
    parts = {
        k: kwargs.pop(k)
        for k in ("encoder", "decoder", "bottleneck", "likelihood", "teacher", "feature_network")
        if k in kwargs and not isinstance(kwargs[k], str)  # likelihood="bernoulli" is a config value
    }
    if config is None:
        config = make_config(name, **kwargs)
    elif kwargs:
        raise ConfigError("pass either a config or config keywords, not both")
    return entry.model_class(config, name=name, **parts)
