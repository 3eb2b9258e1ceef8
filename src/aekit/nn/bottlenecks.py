"""Bottlenecks: the part between encoder features and decoder input.

A bottleneck maps encoder features ``h [B, *L, F]`` (channels last; ``L`` empty for a vector of features, the
positions of a feature map otherwise) to latent samples ``z [S, B, *L, D]`` (S posterior samples per input) and
returns, in a :class:`BottleneckOutput`, its terms per example (KL, later commitment or sparsity), declared in its
``terms`` with their default weights (:class:`aekit.objectives.Term`), and, for a stochastic one, ``log q(z|x)``
and ``log p(z)`` of each sample, computed when first read. Variational, quantised and sparse models differ only
here. A bottleneck is built with its :class:`~aekit.parts.PartContext` (feature and latent shapes) and its prior.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from aekit.config import require
from aekit.nn.backbones import ACTIVATIONS
from aekit.nn.priors import LOG_2PI, Prior, StandardNormal
from aekit.objectives import Term
from aekit.parts import PartContext, build_part, register_part


@dataclass
class BottleneckOutput:
    """z: ``[S, B, *L, D]`` samples; mean: ``[B, *L, D]`` the point embedding (posterior mean or the code);
    params: distribution parameters (e.g. ``mu``, ``logvar``); terms: loss terms, per example ``[B]`` (or per
    batch ``[]`` where the part declares so); stats: diagnostics (``kl_per_dim [B, *L, D]``; 0-dim tensors are
    logged); log_q, log_p: ``[S, B]`` the log densities of each sample under the posterior and the prior
    (stochastic bottlenecks only), computed on first use by ``densities`` when the bottleneck did not need them
    itself: an objective without a bound over the samples never pays for them; log_q_path: log q with the
    posterior's parameters held fixed (by ``fixed_log_q``), for the path-derivative gradient estimators;
    sample_weights: ``[S]`` the weights of the samples in an expectation under q (the unscented transform's sigma
    points), None for draws from q, each weighing 1/S (:meth:`expectation`)."""

    z: torch.Tensor
    mean: torch.Tensor
    params: dict[str, torch.Tensor] = field(default_factory=dict)
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    stats: dict[str, torch.Tensor] = field(default_factory=dict)
    given_log_q: torch.Tensor | None = None
    given_log_p: torch.Tensor | None = None
    densities: Callable[[], tuple[torch.Tensor, torch.Tensor]] | None = field(default=None, repr=False)
    fixed_log_q: Callable[[], torch.Tensor] | None = field(default=None, repr=False)
    sample_weights: torch.Tensor | None = None

    def expectation(self, values: torch.Tensor) -> torch.Tensor:
        """E_q[f(z)] per example ``[B]`` from f at each sample ``values [S, B]``: the mean over draws from q, or the
        weighted sum over sigma points."""
        if self.sample_weights is None:
            return values.mean(0)
        return torch.tensordot(self.sample_weights.to(values.dtype), values, dims=1)

    def _compute(self) -> None:
        if self.given_log_q is None and self.densities is not None:
            self.given_log_q, self.given_log_p = self.densities()

    @property
    def log_q(self) -> torch.Tensor | None:
        self._compute()
        return self.given_log_q

    @property
    def log_p(self) -> torch.Tensor | None:
        self._compute()
        return self.given_log_p

    @property
    def log_q_path(self) -> torch.Tensor | None:
        """log q(z_s|x) ``[S, B]`` with the posterior's parameters held fixed: the same values as ``log_q``, whose
        gradient reaches the encoder through the samples z_s only, the path derivative (Roeder et al. 2017);
        None for a bottleneck that cannot hold them fixed."""
        return None if self.fixed_log_q is None else self.fixed_log_q()


class Bottleneck(nn.Module):
    """Built from its context: ``context.features`` inputs (the encoder's width plus a condition's) to latents of
    ``context.latent_shape``. ``terms``: the terms its output may carry, with their default weights."""

    stochastic: bool = False
    terms: ClassVar[dict[str, Term]] = {}
    traversable: ClassVar[bool] = True  # a code the decoder reads at any point of R^D (latent traversals)

    def __init__(self, context: PartContext) -> None:
        super().__init__()
        self.context = context
        self.in_features, self.latent_dim = context.features, context.latent_dim
        self.prior: Prior | None = None  # what samples are drawn from, where the model has one

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return tuple(self.context.latent_shape)

    def reconstruction_terms(self, latent: BottleneckOutput, x_params: torch.Tensor,
                             target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Terms that need the decoder's output ``x_params [S, B, *P]`` and the ``target [B, *S]`` (an auxiliary
        loss on a sparse code's residual), per example ``[B]``; none by default."""
        return {}


@register_part("bottlenecks", "deterministic", "z = s(W h + b): the plain autoencoder code (s: `activation`, none "
               "by default)")
class Deterministic(Bottleneck):
    """z = W h + b: the plain autoencoder code (at every position of a grid); with ``activation`` (a name of
    :data:`~aekit.nn.backbones.ACTIVATIONS`) z = s(W h + b), e.g. the sigmoid code of a contractive autoencoder."""

    def __init__(self, context: PartContext, prior: Prior | None = None, activation: str = "") -> None:
        super().__init__(context)
        require(not activation or activation in ACTIVATIONS, f"bottleneck.activation={activation!r} is unknown; "
                f"choose one of {', '.join(ACTIVATIONS)} (or leave it empty for a linear code)")
        self.proj = nn.Linear(self.in_features, self.latent_dim)
        self.activation = activation
        self.squash = ACTIVATIONS[activation]() if activation else None
        if prior is not None:  # a prior to match in latent space (adversarial autoencoders) and to sample from
            self.prior = prior

    def forward(self, h: torch.Tensor, n_samples: int = 1, eps: torch.Tensor | None = None,
                batch=None) -> BottleneckOutput:
        z = self.proj(h)  # [B, *L, D]
        if self.squash is not None:
            z = self.squash(z)
        return BottleneckOutput(z=z.unsqueeze(0).expand(n_samples, *z.shape), mean=z)


SAMPLINGS = ("random", "sigma_points")


def check_kappa(kappa: float, d: int, key: str = "kappa") -> None:
    """A one-line ConfigError unless the sigma points of d coordinates can be spread: d + kappa > 0, finite."""
    require(math.isfinite(kappa) and d + kappa > 0, f"{key}={kappa}: the sigma points need d + kappa > 0 "
            f"(d = {d} latent coordinates); give a finite kappa > {-d}")


def unscented_sigma_points(mu: torch.Tensor, std: torch.Tensor, kappa: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The 2d + 1 sigma points of N(mu, diag std^2) and their weights (Julier & Uhlmann 1997), from ``mu, std
    [B, d]``: ``[2d + 1, B, d]`` and ``[2d + 1]``,

        chi_0 = mu,   chi_i = mu + sqrt(d + kappa) std_i e_i,   chi_{d+i} = mu - sqrt(d + kappa) std_i e_i,
        w_0 = kappa / (d + kappa),   w_i = w_{d+i} = 1 / (2 (d + kappa)),   i = 1..d,

    whose weighted mean and covariance are mu and diag std^2 exactly (for any d + kappa > 0; w_0 < 0 for
    kappa < 0)."""
    d = mu.shape[-1]
    check_kappa(kappa, d)
    offsets = math.sqrt(d + kappa) * torch.eye(d, dtype=mu.dtype, device=mu.device)[:, None, :] * std  # [d, B, d]
    points = torch.cat([mu.unsqueeze(0), mu + offsets, mu - offsets])  # [2d + 1, B, d]
    weights = torch.full((2 * d + 1,), 0.5 / (d + kappa), dtype=mu.dtype, device=mu.device)
    weights[0] = kappa / (d + kappa)
    return points, weights


@register_part("bottlenecks", "gaussian", "q(z|x) = N(mu, diag sigma^2), reparameterised (or its sigma points); KL "
               "to the prior")
class DiagonalGaussian(Bottleneck):
    """q(z|x) = N(mu(x), diag sigma^2(x)), sampled by reparameterisation z = mu + sigma * eps
    (Kingma & Welling 2014). The KL to the prior is the closed form where the prior has one, for N(0, I)

        KL(q || N(0, I)) = 1/2 sum_d (mu_d^2 + sigma_d^2 - 1 - log sigma_d^2),

    and otherwise the Monte Carlo estimate (1/S) sum_s log q(z_s|x) - log p(z_s) over the S samples.

    ``sampling``: ``random``, the S reparameterised draws; ``sigma_points``, the 2d + 1 sigma points of the
    unscented transform over the d = prod(L) D coordinates of an example's code, with weights
    (:func:`unscented_sigma_points`; ``kappa`` spreads them), in place of draws (Janjos et al. 2023, the Unscented
    Autoencoder): expectations under q become the weighted sums over the points (``sample_weights``), and
    ``n_samples`` and ``eps`` do not apply. ``rsample`` always draws at random (importance sampling needs draws).
    """

    stochastic = True
    terms: ClassVar[dict[str, Term]] = {"kl": Term(label="beta")}

    def __init__(self, context: PartContext, prior: Prior | None = None, sampling: str = "random",
                 kappa: float = 1e-3) -> None:
        super().__init__(context)
        require(sampling in SAMPLINGS, f"bottleneck.sampling={sampling!r} is unknown; choose one of "
                f"{', '.join(SAMPLINGS)}")
        check_kappa(kappa, math.prod(self.latent_shape), "bottleneck.kappa")
        self.sampling, self.kappa = sampling, float(kappa)
        self.proj = nn.Linear(self.in_features, 2 * self.latent_dim)
        self.prior = prior if prior is not None else StandardNormal(context)

    def posterior(self, h: torch.Tensor, batch=None) -> dict[str, torch.Tensor]:
        """``mu`` and ``logvar`` ``[B, *L, D]`` of q(z|x) from the features ``h [B, *L, F]``."""
        mu, logvar = self.proj(h).chunk(2, dim=-1)
        return {"mu": mu, "logvar": logvar}

    def rsample(self, params: dict[str, torch.Tensor], n_samples: int, eps: torch.Tensor | None = None) -> torch.Tensor:
        """``n_samples`` reparameterised draws ``[S, B, *L, D]`` (``eps`` passes the standard-normal noise in)."""
        mu, logvar = params["mu"], params["logvar"]
        if eps is None:
            eps = torch.randn(n_samples, *mu.shape, device=mu.device, dtype=mu.dtype)  # [S, B, *L, D]
        return mu + torch.exp(0.5 * logvar) * eps

    def sigma_points(self, params: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The 2d + 1 sigma points ``[2d + 1, B, *L, D]`` of q(z|x) and their weights ``[2d + 1]``."""
        mu, logvar = params["mu"], params["logvar"]
        points, weights = unscented_sigma_points(mu.flatten(1), torch.exp(0.5 * logvar).flatten(1), self.kappa)
        return points.view(-1, *mu.shape), weights  # [2d + 1, B, d] -> [2d + 1, B, *L, D]

    def draw(self, params: dict[str, torch.Tensor], n_samples: int,
             eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The samples ``[S, B, *L, D]`` that ``sampling`` asks for, and their weights (None: draws from q)."""
        if self.sampling == "sigma_points":
            return self.sigma_points(params)
        return self.rsample(params, n_samples, eps), None

    def forward(self, h: torch.Tensor, n_samples: int = 1, eps: torch.Tensor | None = None,
                batch=None) -> BottleneckOutput:
        params = self.posterior(h)
        mu, logvar = params["mu"], params["logvar"]
        z, weights = self.draw(params, n_samples, eps)  # [S, B, *L, D], [S] or None
        kl_per_dim = (self.prior.kl_from_gaussian(mu, logvar, batch) if self.prior.conditional  # p(z|u): u in batch
                      else self.prior.kl_from_gaussian(mu, logvar))  # [B, *L, D], or None without a closed form
        fixed_log_q = functools.partial(self.log_q_fixed, z, params)
        if kl_per_dim is None:  # the Monte Carlo KL needs the densities now
            log_q, log_p = self.log_q(z, params), self.log_p(z, batch)  # [S, B] each
            out = BottleneckOutput(z=z, mean=mu, params=params, given_log_q=log_q, given_log_p=log_p,
                                   fixed_log_q=fixed_log_q, sample_weights=weights)
            out.terms["kl"] = out.expectation(log_q - log_p)
            return out
        return BottleneckOutput(z=z, mean=mu, params=params, terms={"kl": kl_per_dim.flatten(1).sum(-1)},
                                stats={"kl_per_dim": kl_per_dim}, fixed_log_q=fixed_log_q, sample_weights=weights,
                                densities=lambda: (self.log_q(z, params), self.log_p(z, batch)))

    def importance_samples(self, params: dict[str, torch.Tensor], n_samples: int, eps: torch.Tensor | None = None,
                           batch=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``n_samples`` draws from q(z|x) for importance sampling, ``z [S, B, *L, D]``, with their log q(z|x) and
        log p(z) ``[S, B]`` (always random draws, whatever ``sampling`` is)."""
        z = self.rsample(params, n_samples, eps)
        return z, self.log_q(z, params), self.log_p(z, batch)

    def log_q(self, z: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """log q(z|x) summed over latent dims: ``z [S, B, *L, D] -> [S, B]``."""
        mu, logvar = params["mu"], params["logvar"]
        return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI).flatten(2).sum(-1)

    def log_q_fixed(self, z: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """log q(z|x) ``[S, B]`` with the parameters held fixed (detached): its gradient flows through z only."""
        return self.log_q(z, {name: value.detach() for name, value in params.items()})

    def log_p(self, z: torch.Tensor, batch=None) -> torch.Tensor:
        """log p(z) under the prior, which may depend on the batch (its input or condition): ``[S, B]``."""
        return self.prior.log_prob(z, batch) if self.prior.conditional else self.prior.log_prob(z)


def make_prior(name: str, context: PartContext, options: dict | None = None) -> Prior:
    """The registered prior ``name`` over latents of ``context.latent_shape``, with its settings."""
    return build_part("priors", name, context=context, **(options or {}))


def make_bottleneck(name: str, context: PartContext, prior: str | None = None, options: dict | None = None,
                    prior_options: dict | None = None) -> Bottleneck:
    """Bottleneck ``name`` for ``context`` with prior ``prior`` (a registered prior name; the bottleneck's default
    when None), each with its own settings."""
    p = None if prior is None else make_prior(prior, context, prior_options)
    return build_part("bottlenecks", name, context=context, prior=p, **(options or {}))
