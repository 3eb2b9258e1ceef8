"""The composed autoencoder: ``[corruption ->] encoder -> bottleneck -> decoder``, scored by a likelihood.

The class holds only the glue; variants change a part (bottleneck, prior, corruption, a discriminator) or the
objective, each chosen by name from its registry (:mod:`aekit.parts`). A conditional model concatenates its
condition c to the encoder's features and to the decoder's input: q(z | x, c), p(x | z, c).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

import aekit.nn.regularisers  # noqa: F401  (registers the regularisers a config may name)
import aekit.objectives  # noqa: F401  (registers the objectives a config may name)
from aekit.config import require, require_weight
from aekit.data.batch import Batch
from aekit.data.sample import sample_batch
from aekit.errors import ConfigError, DataError
from aekit.nn.backbones import ACTIVATIONS, make_backbone
from aekit.nn.bottlenecks import Bottleneck, BottleneckOutput, make_bottleneck
from aekit.nn.likelihoods import Likelihood, make_likelihood
from aekit.objectives import Term, configured_terms
from aekit.parts import PartContext, bind_parts, build_part, part_names, part_settings

PART_OPTIONS = ("likelihood", "bottleneck", "prior", "backbone", "regulariser")  # the parts dotted keys set


def _check_part(kind: str, value: str, key: str) -> None:
    require(value in part_names(kind, aliases=True), f"{key}={value!r} is unknown; choose one of "
            f"{', '.join(part_names(kind))}")


@dataclass(frozen=True)
class AutoencoderConfig:
    """Architecture shared by the whole family. ``data_shape`` is one example's shape: ``(C, H, W)`` or ``(D,)``.

    ``bottleneck``, ``prior``, ``regulariser`` and ``objective`` name registered parts (empty: the model's own
    choice; a regulariser's settings come from the config's fields of the same name where it has them);
    ``condition_dim`` > 0 makes the model conditional on a vector of that size; ``options`` holds each part's
    own settings by kind (``likelihood.bins=32`` on the command line: ``{"likelihood": {"bins": 32}}``), merged key
    by key over a model's own defaults; ``terms`` sets the objective's weight of each term by name (``terms.kl=4``,
    ``terms.kl.schedule=linear``; :func:`aekit.objectives.configured_terms`)."""

    data_shape: tuple[int, ...] = (1, 28, 28)
    latent_dim: int = 16
    backbone: str = "mlp"
    hidden: tuple[int, ...] = (512, 256)
    channels: tuple[int, ...] = (32, 64, 128)
    activation: str = "relu"
    likelihood: str = "bernoulli"
    sigma: float = 1.0
    bottleneck: str = ""
    prior: str = "standard-normal"
    regulariser: str = ""
    objective: str = ""
    condition_dim: int = 0
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    terms: dict[str, Any] = field(default_factory=dict)
    part_options: ClassVar[tuple[str, ...]] = PART_OPTIONS  # the kinds ``options`` (dotted keys) may set
    shorthands: ClassVar[dict[str, tuple[str, str]]] = {}  # a field that sets a part's option: name -> (kind, key)

    def __post_init__(self) -> None:
        if self.shorthands:  # each field's value becomes its part's option, unless ``options`` sets that already
            options: dict[str, dict[str, Any]] = {kind: dict(values) for kind, values in self.options.items()}
            for name, (kind, key) in self.shorthands.items():
                value = getattr(self, name)
                options.setdefault(kind, {}).setdefault(key, list(value) if isinstance(value, tuple) else value)
            object.__setattr__(self, "options", options)  # in its JSON form (lists), as a loaded config holds it
        require(len(self.data_shape) >= 1 and all(s > 0 for s in self.data_shape),
                f"data_shape={self.data_shape} must hold positive sizes, e.g. (1, 28, 28)")
        require(self.latent_dim > 0, f"latent_dim={self.latent_dim} must be a positive integer")
        _check_part("backbones", self.backbone, "backbone")
        _check_part("likelihoods", self.likelihood, "likelihood")
        _check_part("priors", self.prior, "prior")
        if self.bottleneck:
            _check_part("bottlenecks", self.bottleneck, "bottleneck")
        if self.regulariser:
            _check_part("regularisers", self.regulariser, "regulariser")
        if self.objective:
            _check_part("objectives", self.objective, "objective")
        require(self.activation in ACTIVATIONS,
                f"activation={self.activation!r} is unknown; choose one of {', '.join(ACTIVATIONS)}")
        require(all(h > 0 for h in self.hidden) and all(c > 0 for c in self.channels),
                "hidden and channels must hold positive widths")
        require(self.sigma > 0, f"sigma={self.sigma} must be positive")
        require(self.condition_dim >= 0, f"condition_dim={self.condition_dim} must be >= 0 (0: unconditional)")
        unknown = sorted(set(self.options) - set(PART_OPTIONS))
        require(not unknown, f"options for {', '.join(unknown)}: parts with settings are {', '.join(PART_OPTIONS)}")


@dataclass(frozen=True)
class RegularisedConfig(AutoencoderConfig):
    """An autoencoder's config with ``lambda_``, its paper's weight on its regulariser's term (shorthand for that
    term's ``terms.NAME``; :mod:`aekit.nn.regularisers`), a finite number >= 0."""

    lambda_: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        require_weight(self.lambda_, "lambda_")


@dataclass(frozen=True)
class ProjectedConfig(RegularisedConfig):
    """A regularised config whose penalty is estimated from ``projections`` random directions or probe vectors
    per step (a whole number >= 1)."""

    projections: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        aekit.nn.regularisers.check_projections(self.projections)


@dataclass
class AutoencoderOutput:
    """x_params: decoder output ``[S, B, *P]`` for S latent samples; latent: the bottleneck's output;
    terms: per-example loss terms ``[B]`` in nats (``recon`` = -log p(x|z) averaged over the S samples, by the
    bottleneck's sample weights where it gives them (sigma points), plus the bottleneck's and the model's terms
    such as ``kl`` or ``adv``); log_px_z: ``[S, B]`` for bounds that need each sample."""

    x_params: torch.Tensor
    latent: BottleneckOutput
    terms: dict[str, torch.Tensor]
    log_px_z: torch.Tensor

    @property
    def stats(self) -> dict[str, torch.Tensor]:
        """The bottleneck's statistics (codebook perplexity, sparsity, KL per dimension)."""
        return self.latent.stats


def _numpy_in_numpy_out(method):
    """Let a user method take numpy arrays (and Batches): arrays go to the model's device as float32 (integer
    arrays as int64), and the result comes back as a numpy array."""

    @functools.wraps(method)
    def wrapper(self, x, *args, **kwargs):
        if isinstance(x, Batch):
            kwargs.setdefault("condition", self.condition_of(x))
            x = x.inputs
        if not isinstance(x, np.ndarray):
            return method(self, x, *args, **kwargs)
        dtype = torch.int64 if np.issubdtype(x.dtype, np.integer) else torch.float32
        result = method(self, torch.as_tensor(x, dtype=dtype, device=self.device), *args, **kwargs)
        return result.cpu().numpy()

    return wrapper


def feature_shape(encoder: nn.Module) -> tuple[int, ...] | None:
    """What an encoder gives per example: its ``out_shape``, ``(F,)`` or a feature map ``(F, H, W)``, or
    ``(out_features,)``; None when it declares neither."""
    shape = getattr(encoder, "out_shape", None)
    if shape is not None:
        return tuple(int(s) for s in shape)
    features = getattr(encoder, "out_features", None)
    return None if features is None else (int(features),)


class Model(nn.Module):
    """What every family shares: a frozen config and a registered name, the objective part, named optimiser
    groups, frozen parts (a teacher network: out of the optimisers and the saved weights), conditioning checks
    and numpy-in/numpy-out user methods. :class:`Autoencoder` composes encoder -> bottleneck -> decoder on it;
    a masked model (:mod:`aekit.models.mae`) composes masker -> encoder -> decoder."""

    default_objective = "terms"
    suites: tuple[str, ...] = ("reconstruction", "representation")
    data_kind = "array"  # what it trains on: arrays of examples, or one ``graph`` (:mod:`aekit.data.graphs`)
    data_defaults: ClassVar[dict[str, Any]] = {}  # data settings of the model's recipe (under the user's)
    train_defaults: ClassVar[dict[str, Any]] = {}  # training settings of the model's recipe (under the user's)
    # Recipes by known data set (``aekit.data.known_dataset``): name -> {"model": {...}, "train": {...}}, taken over
    # the defaults above and under the user's settings; ``default_recipe`` names the set the defaults are for.
    data_recipes: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {}
    default_recipe: ClassVar[str] = ""

    def __init__(self, config, name: str) -> None:
        super().__init__()
        self.config, self.name = config, name
        self.frozen: set[str] = set()
        from aekit.training.hooks import watch_step_hooks  # on first use: the models import without it

        watch_step_hooks(self)  # a loop that never runs the parts' step hooks is warned

    def objective(self):
        """The training objective: the config's ``objective`` part, or the model's own, over the model's terms
        (:meth:`objective_terms`). A setting the objective takes comes from the config's field of the same name
        where the config has one (an importance-weighted bound's ``n_bounds``, ``gradient_estimator``); the
        objective knows the model's :meth:`networks`, for terms that reach one of them only."""
        name = self.config.objective or self.default_objective
        settings = {key: getattr(self.config, key) for key in part_settings("objectives", name)
                    if key not in ("terms", "model") and hasattr(self.config, key)}
        objective = build_part("objectives", name, self.objective_terms(), model=self.name, **settings)
        objective.networks = self.networks
        return objective

    def networks(self) -> dict[str, list[nn.Parameter]]:
        """The trainable parameters by network, for a term whose gradient reaches one network only
        (:class:`aekit.objectives.Routed`); none by default."""
        return {}

    def own_terms(self) -> dict[str, Term]:
        """The terms the model itself adds (beside its parts'), and the default weights its config gives to any
        term (a VAE's ``beta`` and its schedule on the KL)."""
        return {}

    def objective_terms(self) -> dict[str, Term]:
        """Every term the model's forward can give, with its weight: what its parts declare (a part's ``terms``),
        then the model's own (:meth:`own_terms`), then the config's ``terms``."""
        parts: dict[str, Term] = {}
        for module in self.modules():
            terms = getattr(module, "terms", None) if module is not self else None
            if isinstance(terms, dict) and all(isinstance(t, Term) for t in terms.values()):
                parts.update(terms)
        own = self.own_terms()  # first, in the model's order (recon leads)
        declared = {**own, **{name: term for name, term in parts.items() if name not in own}}
        return configured_terms(declared, self.config.terms, self.name)

    def own_optimizers(self) -> tuple[str, ...]:
        """Parts trained by an optimiser of their own, named after the part (an adversary: ``discriminator``)."""
        return ()

    @property
    def training_share(self) -> float:
        """What the forward of one training example costs against an evaluation forward of it (an MAE's encoder
        sees only the visible patches in training): how a run's training is counted against the budget of its
        evaluation (:mod:`aekit.evaluation.budget`)."""
        return 1.0

    def parameter_groups(self) -> dict[str, list[tuple[str, nn.Parameter]]]:
        """Trainable parameters by optimiser name: each part of :meth:`own_optimizers` in its own, the rest in
        ``model``."""
        own = self.own_optimizers()
        groups: dict[str, list[tuple[str, nn.Parameter]]] = {"model": [], **{part: [] for part in own}}
        for name, p in self.named_parameters():
            if p.requires_grad:
                groups[next((part for part in own if name.startswith(f"{part}.")), "model")].append((name, p))
        return groups

    @classmethod
    def fit_to_data(cls, values: dict[str, Any], splits) -> tuple[dict[str, Any], list[str]]:
        """Config values completed from the data (its shape); returns ``(values, notes)``."""
        return {**values, "data_shape": list(splits.shape)}, []

    def initial_weights(self) -> None:
        """Weights to start a fresh run from (a pre-trained part); the loop calls it once, before the first step."""

    # Frozen parts (a teacher network): out of the optimisers, the weight average and the saved weights.
    def freeze(self, part: str) -> None:
        module = self.get_submodule(part)
        module.requires_grad_(False)
        self.frozen.add(part)

    def state_dict(self, *args, **kwargs):
        state = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", "")
        for part in self.frozen:
            for key in [k for k in state if k.startswith(f"{prefix}{part}.")]:
                del state[key]
        return state

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        missing = [k for k in result.missing_keys if not any(k.startswith(f"{p}.") for p in self.frozen)]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(f"Error(s) in loading state_dict: missing keys {missing}, unexpected keys "
                               f"{result.unexpected_keys}")
        return result

    # Hugging Face's conventions: a folder of config.json + model.safetensors + README.md, or a Hub id.
    def save_pretrained(self, directory: str | os.PathLike, metrics: dict[str, Any] | None = None) -> Path:
        """Write ``directory``: ``config.json``, ``model.safetensors`` and a model card (``README.md``, with
        ``metrics`` where given), ready for ``huggingface_hub.upload_folder`` (:func:`aekit.io.save_model`)."""
        from aekit.io import save_model

        return save_model(self, directory, metrics)

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike, map_location: str | torch.device = "cpu", *,
                        revision: str | None = None, cache_dir: str | os.PathLike | None = None,
                        local_files_only: bool = False, **parts: Any):
        """The model saved in ``source``: a folder (model or run) or a Hugging Face Hub id ``owner/name`` (at
        ``revision``, through ``huggingface_hub``); called on a family (``VAE.from_pretrained``), the saved model
        must be one (:func:`aekit.load`)."""
        from aekit.errors import AekitError
        from aekit.io import load

        model = load(source, map_location, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only,
                     **parts)
        if not isinstance(model, cls):
            raise AekitError(f"{source}: holds a {model.name} ({type(model).__name__}), not a {cls.__name__}; load it "
                             f"with aekit.load or {type(model).__name__}.from_pretrained")
        return model

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def check_input(self, x: torch.Tensor) -> None:
        expected = tuple(self.config.data_shape)
        if tuple(x.shape[1:]) != expected:
            raise DataError(
                f"input of shape {tuple(x.shape[1:])} per example does not fit {self.name}'s data_shape {expected}; "
                "train a model for this data or reshape the inputs"
            )
        if not x.is_floating_point():
            raise DataError(f"input dtype {x.dtype} is not floating point; scale the data to float32 in [0, 1]")

    def condition_of(self, batch: Batch) -> torch.Tensor | None:
        """The conditioning vector of a batch: ``batch.condition`` (conditional models may derive one from the
        labels)."""
        return batch.condition

    def check_condition(self, condition: torch.Tensor | None, n: int) -> torch.Tensor | None:
        c_dim = getattr(self.config, "condition_dim", 0)
        if c_dim == 0:
            if condition is not None:
                raise DataError(f"{self.name} is not conditional; build it with condition_dim > 0 to pass a condition")
            return None
        if condition is None or tuple(condition.shape) != (n, c_dim):
            got = None if condition is None else tuple(condition.shape)
            raise DataError(f"{self.name} needs a condition of shape ({n}, {c_dim}), got {got}; pass condition= or "
                            "data with labels")
        return condition.to(self.device, torch.get_default_dtype())

    def make_condition(self, condition: Any, n: int) -> torch.Tensor | None:
        """``condition`` repeated for ``n`` samples: a vector ``[C]`` or a batch ``[n, C]`` as given."""
        if condition is None:
            return None
        c = torch.as_tensor(condition, dtype=torch.get_default_dtype())
        return c.expand(n, -1) if c.dim() == 1 else c

    has_prior = False  # a prior to sample from (Autoencoder: its bottleneck's)

    @property
    def samplers(self) -> dict[str, Any]:
        """The ex-post samplers fitted to this model, by name (:meth:`fit_sampler`; :func:`aekit.load` attaches the
        saved ones): plain attributes, outside the model's weights."""
        return self.__dict__.setdefault("_samplers", {})

    def fit_sampler(self, name: str, data: Any, *, steps: int | None = None, seed: int = 0, **options: Any):
        """Fit ex-post sampler ``name`` (``gaussian-mixture``, ``two-stage``, ``maf``, ``iaf``, ``prior``) to the
        latents of ``data``'s training examples and attach it as ``self.samplers[name]``; ``model.sample(n,
        sampler=name)`` then decodes its draws (:func:`aekit.sampling.fit_sampler`)."""
        from aekit.sampling import fit_sampler

        return fit_sampler(self, name, data, steps=steps, seed=seed, **options)

    def sample(self, n: int, generator: torch.Generator | None = None, condition: Any = None) -> torch.Tensor:
        raise DataError(f"{self.name} has no prior to sample from; use a variational model such as vae")


class Autoencoder(Model):
    """encoder -> bottleneck -> decoder with likelihood p(x|z), and a regulariser on the code where the model has
    one (:mod:`aekit.nn.regularisers`); subclasses choose parts and the objective."""

    config_class = AutoencoderConfig
    default_bottleneck = "deterministic"
    default_regulariser = ""  # none
    needs_prior = False  # a prior p(z) to regularise towards and sample from

    def __init__(
        self,
        config: AutoencoderConfig,
        name: str = "ae",
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
        bottleneck: Bottleneck | None = None,
        likelihood: Likelihood | None = None,
    ) -> None:
        super().__init__(config, name)
        options = config.options
        context = PartContext(data_shape=tuple(config.data_shape), latent_shape=(config.latent_dim,),
                              condition_dim=config.condition_dim, model=name)
        self.likelihood = likelihood or make_likelihood(config.likelihood, context, config.sigma,
                                                        **options.get("likelihood", {}))
        context = context.replace(n_params=self.likelihood.param_multiplier)
        default_encoder, default_decoder = (None, None)
        if encoder is None or decoder is None:
            default_encoder, default_decoder = make_backbone(config.backbone, context, config.hidden, config.channels,
                                                             config.activation, **options.get("backbone", {}))
        self.encoder = encoder or default_encoder
        self.decoder = decoder or default_decoder
        features = feature_shape(self.encoder)
        if bottleneck is None and features is None:
            raise DataError("a user encoder must set `out_features` (its output width) or `out_shape` (F,) / (F, H, W),"
                            " or come with a bottleneck")
        if features is not None:  # a feature map (F, *L) gives a grid of latents (*L, D)
            context = context.replace(feature_shape=features, latent_shape=(*features[1:], config.latent_dim))
        self.context = context
        self.regulariser = self.make_regulariser(context)
        self.bottleneck = bottleneck or self.make_bottleneck(context)
        self.corruption = self.make_corruption()
        bind_parts(self)

    def networks(self) -> dict[str, list[nn.Parameter]]:
        """The trainable parameters of the inference network q(z|x) (``inference``: the corruption, encoder and
        bottleneck) and of the generative network p(x, z) (``generative``: the decoder, the likelihood and the
        prior, which sits in the bottleneck); parameters of other parts (a discriminator) are in neither."""
        generative = ("decoder.", "likelihood.", "bottleneck.prior.")
        inference = ("corruption.", "encoder.", "bottleneck.")
        groups: dict[str, list[nn.Parameter]] = {"inference": [], "generative": []}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            if name.startswith(generative):
                groups["generative"].append(p)
            elif name.startswith(inference):
                groups["inference"].append(p)
        return groups

    # The parts a variant chooses.
    def make_bottleneck(self, context: PartContext) -> Bottleneck:
        """The config's bottleneck, with the config's prior where the model or its regulariser needs one."""
        options = self.config.options
        wants_prior = self.needs_prior or getattr(self.regulariser, "needs_prior", False)
        return make_bottleneck(self.config.bottleneck or self.default_bottleneck, context,
                               self.config.prior if wants_prior else None, options.get("bottleneck", {}),
                               options.get("prior", {}))

    def make_regulariser(self, context: PartContext) -> nn.Module | None:
        """The config's regulariser (or the model's own), its settings from the config's fields of the same name,
        then ``options["regulariser"]``; None where there is none."""
        name = self.config.regulariser or self.default_regulariser
        if not name:
            return None
        settings = {key: getattr(self.config, key) for key in part_settings("regularisers", name)
                    if key != "context" and hasattr(self.config, key)}
        return build_part("regularisers", name, context=context,
                          **{**settings, **self.config.options.get("regulariser", {})})

    def regulariser_terms(self, **weights: float) -> dict[str, Term]:
        """The regulariser's terms with the weights given by name (a paper's lambda from the config); a name the
        regulariser does not give is left out, so that another regulariser chosen by name keeps its own."""
        terms = getattr(self.regulariser, "terms", {})
        return {name: dataclasses.replace(term, weight=weights[name]) if name in weights else term
                for name, term in terms.items()}

    def own_terms(self) -> dict[str, Term]:
        return {"recon": Term()}

    def make_corruption(self) -> nn.Module | None:
        return None

    @classmethod
    def fit_to_data(cls, values: dict[str, Any], splits) -> tuple[dict[str, Any], list[str]]:
        """Config values completed from the data: the shape, and a likelihood when none was chosen (said in a
        note, one line); returns ``(values, notes)``."""
        values, notes = super().fit_to_data(values, splits)
        if "likelihood" not in values:
            x = sample_batch(splits.train, 2048).inputs
            unit = bool(x.min() >= 0) and bool(x.max() <= 1)
            values["likelihood"] = "bernoulli" if unit else "gaussian"
            notes.append(f"likelihood={values['likelihood']} (the data lie {'in' if unit else 'outside'} [0, 1]; "
                         "set likelihood= to choose another)")
        return values, notes

    # The forward pass.
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's features of ``x [B, *S]``, channels last: a vector ``[B, F]``, or a feature map
        ``[B, F, *L]`` moved to ``[B, *L, F]`` (what the bottleneck reads, before any condition is joined)."""
        h = self.encoder(x)  # [B, F] or [B, F, *L]
        return h.movedim(1, -1) if h.dim() > 2 else h

    def encode(self, x: torch.Tensor, n_samples: int = 1, eps: torch.Tensor | None = None,
               condition: torch.Tensor | None = None, gradient: torch.Tensor | None = None) -> BottleneckOutput:
        """q(z | x, c) from the encoder's features: a vector ``[B, F]``, or a feature map ``[B, F, *L]`` moved
        channels last, ``[B, *L, F]``, for a grid of latents ``[S, B, *L, D]``. ``gradient``: a downstream loss's
        gradient with respect to x, for a bottleneck that chooses its latents with it."""
        self.check_input(x)
        h = self.features(x)  # [B, F] or [B, *L, F]
        condition = self.check_condition(condition, x.shape[0])
        if condition is not None:
            c = condition.to(h.dtype).view(h.shape[0], *([1] * (h.dim() - 2)), -1)  # [B, 1.., C]
            h = torch.cat([h, c.expand(*h.shape[:-1], c.shape[-1])], dim=-1)  # [B, *L, F + C]
        return self.bottleneck(h, n_samples=n_samples, eps=eps, batch=Batch(x, condition=condition, gradient=gradient))

    def decode(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Likelihood parameters for latents ``z [..., *L, D] -> [..., *P]``; ``condition [B, C]`` for
        ``z [S, B, *L, D]`` or ``[B, *L, D]``."""
        latent_dims = len(self.bottleneck.latent_shape)
        if condition is not None:
            c = condition.to(z.dtype).view(condition.shape[0], *([1] * (latent_dims - 1)), -1)  # [B, 1.., C]
            z = torch.cat([z, c.expand(*z.shape[:-1], c.shape[-1])], dim=-1)  # [..., B, *L, D + C]
        lead = z.shape[: z.dim() - latent_dims]
        params = self.decoder(z.reshape(-1, *z.shape[z.dim() - latent_dims :]))  # [N, *P]
        return params.view(*lead, *params.shape[1:])

    def forward(
        self,
        x: torch.Tensor | Batch,
        n_samples: int = 1,
        eps: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        target: torch.Tensor | None = None,
        condition: torch.Tensor | None = None,
    ) -> AutoencoderOutput:
        """Score ``x [B, *S]`` (or a :class:`Batch`): the target is x itself unless given (or the batch has one); a
        corruption (if any) applies in training mode or whenever ``noise`` is passed."""
        gradient = None
        if isinstance(x, Batch):
            gradient, target = x.gradient, x.target if target is None else target
            x, condition = x.inputs, self.condition_of(x)
        self.check_input(x)
        condition = self.check_condition(condition, x.shape[0])
        target = x if target is None else target
        if self.corruption is not None and (self.training or noise is not None):
            x = self.corruption(x, noise)
        latent = self.encode(x, n_samples=n_samples, eps=eps, condition=condition, gradient=gradient)
        x_params = self.decode(latent.z, condition)  # [S, B, *P]
        log_px_z = -self.likelihood.nll(x_params, target)  # [S, B]
        terms = {"recon": -latent.expectation(log_px_z), **latent.terms}  # weighted where the samples are
        if hasattr(self.bottleneck, "reconstruction_terms"):  # a user's bottleneck may be a plain module
            terms.update(self.bottleneck.reconstruction_terms(latent, x_params, target))
        if self.regulariser is not None:
            terms.update(self.regulariser(latent, x, condition))
        return AutoencoderOutput(x_params=x_params, latent=latent, terms=terms, log_px_z=log_px_z)

    # What a user calls.
    @_numpy_in_numpy_out
    @torch.no_grad()
    def embed(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Point embedding ``[B, D]``: the posterior mean, or the code of a deterministic bottleneck."""
        return self.encode(x, condition=condition).mean

    @_numpy_in_numpy_out
    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z = embed(x)], in the data's shape."""
        condition = self.check_condition(condition, x.shape[0])
        return self.likelihood.mean(self.decode(self.embed(x, condition=condition), condition))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, condition: Any = None,
               sampler: str | None = None) -> torch.Tensor:
        """Means of p(x|z) for z drawn from the prior (given ``condition`` for a conditional model), or from the
        fitted ex-post sampler named ``sampler`` (:meth:`fit_sampler`)."""
        if n < 1:
            raise ConfigError(f"n={n}: the number of samples must be >= 1")
        if sampler is not None:
            if sampler not in self.samplers:
                raise ConfigError(f"{self.name} has no fitted sampler {sampler!r} (fitted: "
                                  f"{', '.join(self.samplers) or 'none'}); fit it first: model.fit_sampler(name, data)")
            from aekit.sampling import decode_latents

            return decode_latents(self, self.samplers[sampler].sample(n, generator))
        prior = self.bottleneck.prior
        if prior is None:
            raise DataError(f"{self.name} has no prior to sample from; use a variational model such as vae")
        z = prior.sample(n, generator=generator).to(self.device)
        condition = self.check_condition(self.make_condition(condition, n), n)
        return self.likelihood.mean(self.decode(z, condition))

    @property
    def has_prior(self) -> bool:
        return self.bottleneck.prior is not None


class RegularisedAutoencoder(Autoencoder):
    """An autoencoder trained on its reconstruction plus its regulariser's term ``lambda_term``, weighted by the
    config's ``lambda_`` (a :class:`RegularisedConfig`): WAE-MMD, SWAE, the contractive and the low-rank autoencoder."""

    lambda_term: ClassVar[str] = ""

    def own_terms(self) -> dict[str, Term]:
        return {**super().own_terms(), **self.regulariser_terms(**{self.lambda_term: self.config.lambda_})}
