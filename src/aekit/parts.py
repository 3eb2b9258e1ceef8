"""One registry per kind of part, so that a config names its parts (``bottleneck=gaussian objective=iwae``).

Kinds: ``models`` (the model registry, :mod:`aekit.registry`), ``bottlenecks``, ``priors``, ``likelihoods``,
``backbones``, ``graph_encoders``, ``corruptions``, ``maskers``, ``targets``, ``regularisers``, ``objectives``,
``code_priors``, ``samplers`` (ex-post samplers fitted to a trained model's latents, :mod:`aekit.samplers`). A part
registers itself where it is defined::

    @register_part("priors", "standard-normal", "N(0, I)")
    class StandardNormal(Prior): ...

``aekit parts`` lists them all; a duplicate name within a kind is an error.

**Built with their context.** A factory that declares a ``context`` parameter receives a frozen
:class:`PartContext` by keyword: the data shape, the encoder's output shape, the latent shape, the condition size
and the number of distribution parameters per data dimension, so that a part sizes itself from the model it sits
in instead of positional integers. Its own settings (``bottleneck.decay=0.95``) come as further keywords.

**Bound to the built model.** A part that needs the built model (a VampPrior encodes its pseudo-inputs with the
model's encoder) defines ``bind(self, model)``; the model calls it on every part once it is built, and the part
keeps the model in a :class:`ModelRef`, which registers no weight a second time (the model's weights are not the
part's submodules, so ``state_dict``, DDP and FSDP see each weight once) and follows the model through
``copy.deepcopy`` (the copy's part points at the copied model).

**Started from the data.** A part whose starting point depends on the data (a sparse dictionary's bias at the
geometric median of a sample) defines ``init_from_data(self, batch)``; the training loop calls it on every part
once, before the first step of a fresh run, with a sample of up to :data:`DATA_INIT_ROWS` training examples
(:func:`init_from_data`; a loop of one's own calls it too).

**Fitted after training.** A part fitted to what the trained model makes of the data (a density over the codes of
the training examples, which samples are then drawn from: an RAE's ex-post mixture) defines
``fit_after_training(self, batch)``; the training loop calls it on every part once, after the last step, on the
weights the run keeps (the best, or the average) and before the model is saved, with a sample of up to
:data:`AFTER_TRAINING_ROWS` training examples, the model in evaluation mode (:func:`fit_after_training`; a loop of
one's own calls it too). What it fits lives in buffers, so the saved model carries it.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aekit.errors import ConfigError

KINDS = ("models", "bottlenecks", "priors", "likelihoods", "backbones", "graph_encoders", "corruptions", "maskers",
         "targets", "regularisers", "objectives", "code_priors", "samplers")


@dataclass(frozen=True)
class PartEntry:
    kind: str
    name: str
    factory: Callable[..., Any]
    description: str


_PARTS: dict[str, dict[str, PartEntry]] = {kind: {} for kind in KINDS if kind != "models"}
_ALIASES: dict[str, dict[str, str]] = {"objectives": {}}  # older names that configs may still hold


@dataclass(frozen=True)
class PartContext:
    """What a part is built for. ``data_shape``: one example, ``(C, H, W)``, ``(T, C)`` or ``(D,)``;
    ``feature_shape``: the encoder's output, ``(F,)`` or a feature map ``(F, H, W)`` (channels first, as the encoder
    gives it; the bottleneck receives it channels last, ``[B, H, W, F]``); ``latent_shape``: ``(D,)`` or
    ``(*L, D)``; ``condition_dim``: the size of the condition c (0: unconditional); ``n_params``: distribution
    parameters per data dimension (the likelihood's, 2 for a Gaussian with learned scale); ``model``: the model's
    registered name, for messages."""

    data_shape: tuple[int, ...] = ()
    feature_shape: tuple[int, ...] = ()
    latent_shape: tuple[int, ...] = ()
    condition_dim: int = 0
    n_params: int = 1
    model: str = ""

    @property
    def latent_dim(self) -> int:
        """D, the size of one latent vector (the last axis of ``latent_shape``)."""
        return self.latent_shape[-1]

    @property
    def features(self) -> int:
        """F, the width of one feature vector the bottleneck receives (the encoder's channels for a map), plus
        the condition's size, which a conditional model concatenates to it."""
        return self.feature_shape[0] + self.condition_dim

    def replace(self, **changes: Any) -> PartContext:
        return dataclasses.replace(self, **changes)


class ModelRef:
    """A part's reference to the model it is bound to, outside the module tree: not a submodule (no weight
    registered twice, nothing in the part's ``state_dict``), and remapped by ``copy.deepcopy`` to the copy of the
    model when the model is copied with its parts (a deep copy of the part alone keeps pointing at the original)."""

    def __init__(self, model: Any) -> None:
        self._model = model

    def __call__(self) -> Any:
        return self._model

    def __deepcopy__(self, memo: dict) -> ModelRef:
        return ModelRef(memo.get(id(self._model), self._model))

    def __getstate__(self) -> dict:  # a pickled part (DDP spawn) carries no second copy of the model
        return {"_model": None}


def bind_parts(model: Any) -> None:
    """Call ``bind(model)`` on every submodule of ``model`` that defines it, in module order: the documented phase
    for parts that need the built model."""
    for module in model.modules():
        if module is not model and callable(getattr(module, "bind", None)):
            module.bind(model)


DATA_INIT_ROWS = 4096  # the sample a fresh run's parts start from


AFTER_TRAINING_ROWS = 10_000  # the training examples a part fitted after training sees


def init_from_data(model: Any, batch: Any) -> None:
    """Call ``init_from_data(batch)`` on every submodule of ``model`` that defines it, in module order, without
    grad, with ``batch`` (a :class:`~aekit.data.batch.Batch`, or a function that returns one, called only where a
    part needs it) on the model's device."""
    _call_parts(model, "init_from_data", batch)


def fit_after_training(model: Any, batch: Any) -> None:
    """Call ``fit_after_training(batch)`` on every submodule of ``model`` that defines it, in module order, without
    grad and with the model in evaluation mode (its mode is restored after), with ``batch`` (a
    :class:`~aekit.data.batch.Batch` of training examples, or a function that returns one, called only where a part
    needs it) on the model's device."""
    training = model.training
    model.eval()
    try:
        _call_parts(model, "fit_after_training", batch)
    finally:
        model.train(training)


def _call_parts(model: Any, method: str, batch: Any) -> None:
    import torch

    parts = [m for m in model.modules() if m is not model and callable(getattr(m, method, None))]
    if not parts:
        return
    batch = batch() if callable(batch) else batch
    device = next(model.parameters()).device
    with torch.no_grad():
        for part in parts:
            getattr(part, method)(batch.to(device))


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
    import aekit.samplers  # noqa: F401


def get_part(kind: str, name: str) -> PartEntry:
    if kind == "models":
        from aekit.registry import model_entry

        entry = model_entry(name)
        return PartEntry("models", entry.name, entry.model_class, entry.description)
    if name not in _PARTS[kind]:
        _ensure_builtin_parts()
    name = _ALIASES.get(kind, {}).get(name, name)
    if name not in _PARTS[kind]:
        raise ConfigError(f"{kind[:-1]}={name!r} is unknown; choose one of {', '.join(_PARTS[kind])}")
    return _PARTS[kind][name]


def register_alias(kind: str, alias: str, name: str) -> None:
    """Let configs that name ``alias`` build part ``name`` (an older name; not listed by ``aekit parts``)."""
    _ALIASES.setdefault(kind, {})[alias] = name


def part_names(kind: str, aliases: bool = False) -> tuple[str, ...]:
    """The registered names of ``kind``, in registration order, and their older names with ``aliases``."""
    return tuple(_PARTS[kind]) + (tuple(_ALIASES.get(kind, {})) if aliases else ())


def part_settings(kind: str, name: str) -> tuple[str, ...]:
    """The keyword settings part ``name`` of ``kind`` takes (its factory's named parameters)."""
    try:
        params = inspect.signature(get_part(kind, name).factory).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature
        return ()
    return tuple(p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))


def build_part(kind: str, name: str, *args: Any, context: PartContext | None = None, **kwargs: Any) -> Any:
    """Part ``name`` of ``kind`` built with ``args`` and its settings ``kwargs``, and ``context`` by keyword when
    its factory declares a ``context`` parameter; a setting the part does not take is a ConfigError that lists
    the ones it does."""
    factory = get_part(kind, name).factory
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin without a signature: let the call speak
        return factory(*args, **kwargs)
    params = signature.parameters
    if context is not None and "context" in params:
        kwargs = {**kwargs, "context": context}
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        taken = [p.name for p in params.values() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
                 and p.name != "context"]
        unknown = sorted(set(kwargs) - set(taken) - {"context"})
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
