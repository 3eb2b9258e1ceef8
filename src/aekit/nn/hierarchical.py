"""Hierarchical Gaussian bottlenecks: L stochastic layers, z_1 next to the data and z_L at the top.

The generative model, shared by both inference schemes, is a top-down chain (the bottleneck's prior,
:class:`HierarchicalPrior`):

    p(z_L) = N(0, I),   p(z_l | z_{l+1}) = N(mu_p,l(z_{l+1}), diag sigma_p,l^2(z_{l+1})),   p(x | z_1) the decoder.

Inference (the bottleneck):

- ``hierarchical`` (:class:`BottomUpGaussian`; Rezende et al. 2014, the two-stochastic-layer VAE and IWAE of
  Burda, Grosse & Salakhutdinov 2016): bottom-up, q(z_1 | x) = N(mu_1(h), sigma_1^2(h)) from the encoder's
  features h, and q(z_l | z_{l-1}) = N(mu_q,l(z_{l-1}), sigma_q,l^2(z_{l-1})) from the sample below.
- ``ladder`` (:class:`LadderGaussian`; Sonderby, Raiko, Maaloe, Sonderby & Winther 2016): a deterministic
  bottom-up pass d_1 = h, d_l = MLP_l(d_{l-1}) gives each layer a data-dependent estimate (mu^_l, sigma^_l^2); the
  top posterior is that estimate, q(z_L | x) = N(mu^_L, sigma^_L^2), and going down, each layer's posterior is the
  precision-weighted merge of the estimate with the generative conditional p(z_l | z_{l+1}):

      sigma_q,l^2 = 1 / (sigma^_l^-2 + sigma_p,l^-2),   mu_q,l = (mu^_l sigma^_l^-2 + mu_p,l sigma_p,l^-2) sigma_q,l^2.

The decoder reads z_1. The densities are joint over the layers,

    log q(z_1..L | x) = sum_l log q(z_l | .),   log p(z_1..L) = log p(z_L) + sum_{l<L} log p(z_l | z_{l+1}),

so that the importance weights, every IWAE-family bound and the importance-sampled log p(x) run through all the
layers. The KL term is the sum of the layers' KL(q(z_l | .) || p(z_l | z_{l+1})), each logged (``kl_layer1``, ...)
and reported per unit (``kl_per_dim``: every layer's units, bottom first). Where a layer's conditional prior depends
only on what was drawn before it (top-down inference; the top layer of bottom-up inference), its KL is the closed
form given that draw; where it depends on a layer drawn after it (bottom-up inference below the top), it is
estimated as the closed-form negative entropy of q minus log p at the sample, unbiased either way.

On a grid of latents ``(*L, D)`` every position carries its own chain over the last axis. Every log-variance of
the chain (q's and p's) is softly kept in (-10, 10) (:func:`bounded`): unbounded, a conditional can shrink to a point
mass and overflow float32, which the ladder's merge otherwise reaches within a few hundred steps at lr 1e-2.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from aekit.config import require
from aekit.errors import ConfigError, DataError
from aekit.nn.backbones import ACTIVATIONS, mlp
from aekit.nn.bottlenecks import Bottleneck, BottleneckOutput
from aekit.nn.priors import LOG_2PI, Prior, StandardNormal
from aekit.objectives import Term
from aekit.parts import PartContext, register_part

Gaussian = tuple[torch.Tensor, torch.Tensor]  # (mu, logvar), each [..., D]


def log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)) per coordinate, broadcast."""
    return -0.5 * (((z - mu) * torch.exp(-0.5 * logvar)).pow(2) + logvar + LOG_2PI)


def gaussian_kl(q: Gaussian, p: Gaussian) -> torch.Tensor:
    """KL(N(mu_q, sigma_q^2) || N(mu_p, sigma_p^2)) per coordinate:
    1/2 (log sigma_p^2 - log sigma_q^2 + (sigma_q^2 + (mu_q - mu_p)^2) / sigma_p^2 - 1)."""
    (mu_q, logvar_q), (mu_p, logvar_p) = q, p
    ratio = torch.exp(logvar_q - logvar_p)  # sigma_q^2 / sigma_p^2, finite where the two are both tiny
    return 0.5 * (logvar_p - logvar_q + ratio + ((mu_q - mu_p) * torch.exp(-0.5 * logvar_p)).pow(2) - 1.0)


def precision_weighted(estimate: Gaussian, prior: Gaussian) -> Gaussian:
    """The ladder's merge of a bottom-up estimate with the top-down conditional (module docstring): the normalised
    product of the two Gaussians."""
    (mu_hat, logvar_hat), (mu_p, logvar_p) = estimate, prior
    w_hat = torch.sigmoid(logvar_p - logvar_hat)  # sigma^^-2 / (sigma^^-2 + sigma_p^-2), in (0, 1) whatever the scales
    return w_hat * mu_hat + (1 - w_hat) * mu_p, logvar_hat + logvar_p - torch.logaddexp(logvar_hat, logvar_p)


LOGVAR_BOUND = 10.0  # the chain's log-variances are kept in (-10, 10): sigma from 0.007 to 150 (docstring)


def bounded(logvar: torch.Tensor) -> torch.Tensor:
    """A log-variance softly kept in (-LOGVAR_BOUND, LOGVAR_BOUND), b tanh(s / b): the identity near 0. Without it a
    conditional of the chain can shrink its variance without end (p(z_1 | z_2) a point mass, q merged onto it), and
    its densities overflow float32."""
    return LOGVAR_BOUND * torch.tanh(logvar / LOGVAR_BOUND)


def joint_log_density(zs: list[torch.Tensor], layers: list[Gaussian]) -> torch.Tensor:
    """sum_l log N(z_l; mu_l, sigma_l^2) ``[S, B]``, each layer's ``[S, B, *L, D_l]`` summed over an example's
    latent coordinates (a layer's parameters may lack the sample axis, ``[B, *L, D_l]``)."""
    return sum(log_density(z, *layer).expand(z.shape).flatten(2).sum(-1) for z, layer in zip(zs, layers, strict=True))


def held(q: Gaussian, frozen: bool) -> Gaussian:
    """q's parameters, detached when ``frozen`` (they are functions of x only: the path derivative drops them)."""
    return (q[0].detach(), q[1].detach()) if frozen else q


class GaussianConditional(nn.Module):
    """N(mu(u), diag exp(logvar(u))) from an MLP on ``u [..., n_in]``: hidden layers of the widths ``hidden``, then
    a linear map to ``(mu, logvar)``, each ``[..., n_out]``. ``frozen=True`` evaluates it with its weights held
    fixed (detached): a gradient reaches the input only, as the path-derivative estimators need."""

    def __init__(self, n_in: int, n_out: int, hidden: tuple[int, ...], act: str) -> None:
        super().__init__()
        self.net = mlp([n_in, *hidden, 2 * n_out], act, last_activation=False)

    def forward(self, u: torch.Tensor, frozen: bool = False) -> Gaussian:
        if frozen:
            weights = {name: p.detach() for name, p in self.net.named_parameters()}
            out = torch.func.functional_call(self.net, weights, (u,))
        else:
            out = self.net(u)
        mu, logvar = out.chunk(2, dim=-1)
        return mu, bounded(logvar)


def check_layers(layers: tuple[int, ...], hidden: tuple[int, ...], activation: str, name: str) -> None:
    require(len(layers) >= 1, f"bottleneck.layers=[]: a {name} needs at least 2 stochastic layers; give the sizes "
            "of the layers above the first, e.g. layers=[16]")
    require(all(int(d) == d and d >= 1 for d in layers), f"bottleneck.layers={list(layers)} must hold positive sizes")
    require(all(int(w) == w and w >= 1 for w in hidden), f"bottleneck.hidden={list(hidden)} must hold positive widths")
    require(activation in ACTIVATIONS, f"bottleneck.activation={activation!r} is unknown; choose one of "
            f"{', '.join(ACTIVATIONS)}")


class HierarchicalPrior(Prior):
    """p(z_1..L) as a top-down chain: p(z_L) = N(0, I), p(z_l | z_{l+1}) Gaussian from an MLP (``conditionals[l]``
    gives layer l + 1 from layer l + 2, counting from 1 at the bottom). Its ``latent_shape`` is z_1's, what the
    decoder reads; ``sample`` draws the whole chain. The marginal p(z_1) has no closed form: the bottleneck scores
    the joint (:meth:`layer_params`)."""

    def __init__(self, context: PartContext, sizes: list[int], hidden: tuple[int, ...], act: str) -> None:
        super().__init__(context)
        self.sizes = list(sizes)  # [D_1, ..., D_L], bottom first
        self.conditionals = nn.ModuleList(GaussianConditional(sizes[i + 1], sizes[i], hidden, act)
                                          for i in range(len(sizes) - 1))

    def layer_params(self, zs: list[torch.Tensor], frozen: bool = False) -> list[Gaussian]:
        """Each layer's conditional p(z_l | z_{l+1}) given the samples ``zs`` (bottom first); the top's N(0, I)."""
        top = zs[-1]
        return [*(cond(z_above, frozen) for cond, z_above in zip(self.conditionals, zs[1:], strict=True)),
                (torch.zeros_like(top), torch.zeros_like(top))]

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        raise DataError("the marginal p(z_1) of a hierarchical prior has no closed form; score the whole chain "
                        "(the bottleneck's log_p), or sample from it")

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """z_1 ``[n, *latent_shape]`` by ancestral sampling down the chain; the noise is drawn where the generator
        lives (the CPU for a seeded one), so that a seed gives the same samples on any device."""
        weights = next(self.parameters())
        grid = self.latent_shape[:-1]

        def noise(d: int) -> torch.Tensor:
            return torch.randn(n, *grid, d, generator=generator).to(weights)

        z = noise(self.sizes[-1])
        for i in reversed(range(len(self.conditionals))):
            mu, logvar = self.conditionals[i](z)
            z = mu + torch.exp(0.5 * logvar) * noise(self.sizes[i])
        return z if device is None else z.to(device)


class HierarchicalGaussian(Bottleneck):
    """What both inference schemes share: the prior chain, the layers' noise, the KL per layer and the joint
    densities (module docstring). A subclass gives :meth:`posterior` (what q reads off the features),
    :meth:`draw_layers` (the samples and each layer's q), :meth:`q_params` (q of given samples) and
    :meth:`mean_code`."""

    stochastic = True
    traversable = False  # layers the decoder reads through the prior chain
    terms: ClassVar[dict[str, Term]] = {"kl": Term(label="beta")}
    name = "hierarchy"
    closed_form_below_top = False  # whether a layer's prior is fixed before it is drawn (top-down inference)

    def __init__(self, context: PartContext, prior: Prior | None = None, layers: tuple[int, ...] = (16,),
                 hidden: tuple[int, ...] = (64, 64), activation: str = "tanh") -> None:
        super().__init__(context)
        layers, hidden = tuple(layers), tuple(hidden)
        check_layers(layers, hidden, activation, self.name)
        if prior is not None and not isinstance(prior, StandardNormal):
            raise ConfigError(f"prior={type(prior).__name__}: the top layer of a {self.name} is N(0, I) and the "
                              "layers below it are the chain's conditionals; leave prior=standard-normal")
        self.sizes = [self.latent_dim, *(int(d) for d in layers)]  # [D_1, ..., D_L], bottom first
        self.prior = HierarchicalPrior(context, self.sizes, hidden, activation)

    @property
    def noise_dim(self) -> int:
        """The standard-normal noise one position needs: every layer's, concatenated bottom first."""
        return sum(self.sizes)

    def layer_noise(self, eps: torch.Tensor | None, n_samples: int, like: torch.Tensor) -> list[torch.Tensor]:
        """``eps [S, B, *L, sum_l D_l]`` (drawn here when None) split into the layers' ``[S, B, *L, D_l]``."""
        if eps is None:
            eps = torch.randn(n_samples, *like.shape[:-1], self.noise_dim, device=like.device, dtype=like.dtype)
        elif eps.shape[-1] != self.noise_dim:
            raise DataError(f"eps has {eps.shape[-1]} values per position; a {self.name} of layers {self.sizes} "
                            f"draws {self.noise_dim} (every layer's noise, bottom first)")
        return list(eps.split(self.sizes, dim=-1))

    def posterior(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def draw_layers(self, params: dict[str, torch.Tensor], n_samples: int,
                    eps: torch.Tensor | None = None) -> tuple[list[torch.Tensor], list[Gaussian]]:
        raise NotImplementedError

    def q_params(self, zs: list[torch.Tensor], params: dict[str, torch.Tensor], frozen: bool = False) -> list[Gaussian]:
        raise NotImplementedError

    def mean_code(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def layer_kl(self, i: int, z: torch.Tensor, q: Gaussian, p: Gaussian) -> torch.Tensor:
        """Layer i's KL per coordinate ``[B, *L, D_i]``, averaged over the samples (module docstring)."""
        if self.closed_form_below_top or i == len(self.sizes) - 1:
            kl = gaussian_kl(q, p)
        else:
            kl = -0.5 * (1.0 + LOG_2PI + q[1]) - log_density(z, *p)  # -H(q) - log p(z_i | z_{i+1})
        return kl.expand(z.shape).mean(0)

    def joint_densities(self, zs: list[torch.Tensor], qs: list[Gaussian],
                        ps: list[Gaussian]) -> tuple[torch.Tensor, torch.Tensor]:
        """log q(z_1..L | x) and log p(z_1..L), each ``[S, B]``: the layers' densities at their samples, summed."""
        return joint_log_density(zs, qs), joint_log_density(zs, ps)

    def forward(self, h: torch.Tensor, n_samples: int = 1, eps: torch.Tensor | None = None,
                batch=None) -> BottleneckOutput:
        params = self.posterior(h)
        zs, qs = self.draw_layers(params, n_samples, eps)  # each [S, B, *L, D_l], bottom first
        ps = self.prior.layer_params(zs)
        kls = [self.layer_kl(i, z, q, p) for i, (z, q, p) in enumerate(zip(zs, qs, ps, strict=True))]
        kl_per_dim = torch.cat(kls, dim=-1)  # [B, *L, sum_l D_l]
        stats = {"kl_per_dim": kl_per_dim, **{f"kl_layer{i + 1}": kl.flatten(1).sum(-1).mean().detach()
                                              for i, kl in enumerate(kls)}}

        return BottleneckOutput(z=zs[0], mean=self.mean_code(params), params=params,
                                terms={"kl": kl_per_dim.flatten(1).sum(-1)}, stats=stats,
                                densities=lambda: self.joint_densities(zs, qs, ps),
                                fixed_log_q=lambda: joint_log_density(zs, self.q_params(zs, params, frozen=True)))

    def importance_samples(self, params: dict[str, torch.Tensor], n_samples: int, eps: torch.Tensor | None = None,
                           batch=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``n_samples`` draws of the whole chain from q: z_1 ``[S, B, *L, D_1]`` for the decoder, with the joint
        log q and log p ``[S, B]``."""
        zs, qs = self.draw_layers(params, n_samples, eps)
        log_q, log_p = self.joint_densities(zs, qs, self.prior.layer_params(zs))
        return zs[0], log_q, log_p


def _first_layer(params: dict[str, torch.Tensor], frozen: bool) -> Gaussian:
    return held((params["mu"], params["logvar"]), frozen)


@register_part("bottlenecks", "hierarchical", "stacked Gaussian layers, bottom-up inference q(z_1|x) q(z_2|z_1).. "
               "(Burda et al. 2016's two-layer VAE/IWAE); `layers` above the first")
class BottomUpGaussian(HierarchicalGaussian):
    """Bottom-up inference (module docstring): q(z_1 | x) from the features, each layer above from the sample
    below it through an MLP of the widths ``hidden``. ``layers``: the sizes of the layers above z_1 (whose size is
    the model's latent_dim). Burda et al.'s two-layer MNIST model: latent_dim=100, layers=[50], hidden=[100, 100],
    tanh, with a 784-200-200 encoder and a 200-200-784 decoder."""

    name = "hierarchical bottleneck"

    def __init__(self, context: PartContext, prior: Prior | None = None, layers: tuple[int, ...] = (16,),
                 hidden: tuple[int, ...] = (64, 64), activation: str = "tanh") -> None:
        super().__init__(context, prior, layers, hidden, activation)
        self.proj = nn.Linear(self.in_features, 2 * self.latent_dim)  # q(z_1 | x)
        self.upward = nn.ModuleList(GaussianConditional(self.sizes[i], self.sizes[i + 1], tuple(hidden), activation)
                                    for i in range(len(self.sizes) - 1))  # q(z_{l+1} | z_l)

    def posterior(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """``mu`` and ``logvar`` ``[B, *L, D_1]`` of q(z_1 | x)."""
        mu, logvar = self.proj(h).chunk(2, dim=-1)
        return {"mu": mu, "logvar": bounded(logvar)}

    def draw_layers(self, params, n_samples, eps=None):
        noise = self.layer_noise(eps, n_samples, params["mu"])
        q = _first_layer(params, frozen=False)
        zs, qs = [], []
        for i, eps_i in enumerate(noise):
            if i > 0:
                q = self.upward[i - 1](zs[-1])  # q(z_{i+1} | z_i), [S, B, *L, D_{i+1}]
            zs.append(q[0] + torch.exp(0.5 * q[1]) * eps_i)
            qs.append(q)
        return zs, qs

    def q_params(self, zs, params, frozen=False):
        return [_first_layer(params, frozen), *(up(z, frozen) for up, z in zip(self.upward, zs[:-1], strict=True))]

    def mean_code(self, params):
        return params["mu"]  # E_q[z_1 | x]


@register_part("bottlenecks", "ladder", "ladder inference: bottom-up estimates merged with the top-down prior by "
               "precision (Sonderby et al. 2016); `layers` above the first")
class LadderGaussian(HierarchicalGaussian):
    """Ladder inference (module docstring): the deterministic path d_l = MLP_l(d_{l-1}) of the widths ``hidden``
    (d_1: the encoder's features), each layer's estimate (mu^_l, log sigma^_l^2) a linear map of d_l, merged top
    down with p(z_l | z_{l+1}). Sonderby et al.'s MNIST model has five layers of 64, 32, 16, 8 and 4 units."""

    name = "ladder"
    closed_form_below_top = True

    def __init__(self, context: PartContext, prior: Prior | None = None, layers: tuple[int, ...] = (16,),
                 hidden: tuple[int, ...] = (64, 64), activation: str = "tanh") -> None:
        super().__init__(context, prior, layers, hidden, activation)
        hidden = tuple(hidden)
        width = hidden[-1] if hidden else self.in_features
        self.deterministic = nn.ModuleList(mlp([self.in_features if i == 0 else width, *hidden], activation, True)
                                           for i in range(len(self.sizes) - 1))  # d_{l+1} = MLP(d_l)
        self.estimates = nn.ModuleList(nn.Linear(self.in_features if i == 0 else width, 2 * d)
                                       for i, d in enumerate(self.sizes))  # (mu^_l, log sigma^_l^2) from d_l

    def posterior(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each layer's bottom-up estimate, ``mu{l}`` and ``logvar{l}`` ``[B, *L, D_l]`` (l = 1..L)."""
        params, d = {}, h
        for i, estimate in enumerate(self.estimates):
            if i > 0:
                d = self.deterministic[i - 1](d)  # [B, *L, width]
            mu, logvar = estimate(d).chunk(2, dim=-1)
            params[f"mu{i + 1}"], params[f"logvar{i + 1}"] = mu, bounded(logvar)
        return params

    def estimate(self, params: dict[str, torch.Tensor], i: int, frozen: bool) -> Gaussian:
        return held((params[f"mu{i + 1}"], params[f"logvar{i + 1}"]), frozen)

    def draw_layers(self, params, n_samples, eps=None):
        top = len(self.sizes) - 1
        noise = self.layer_noise(eps, n_samples, params["mu1"])
        zs: list[torch.Tensor] = [torch.empty(0)] * len(self.sizes)
        qs: list[Gaussian] = [(torch.empty(0), torch.empty(0))] * len(self.sizes)
        for i in reversed(range(len(self.sizes))):
            q = self.estimate(params, i, False)
            if i < top:
                q = precision_weighted(q, self.prior.conditionals[i](zs[i + 1]))  # [S, B, *L, D_i]
            zs[i] = q[0] + torch.exp(0.5 * q[1]) * noise[i]
            qs[i] = q
        return zs, qs

    def q_params(self, zs, params, frozen=False):
        top = len(self.sizes) - 1
        return [self.estimate(params, i, frozen) if i == top else
                precision_weighted(self.estimate(params, i, frozen), self.prior.conditionals[i](zs[i + 1], frozen))
                for i in range(len(self.sizes))]

    def mean_code(self, params):
        """z_1 along the path of the posterior means (every layer at its mean given the one above)."""
        mu = params["mu1"]
        zs, _ = self.draw_layers(params, 1, torch.zeros(1, *mu.shape[:-1], self.noise_dim, dtype=mu.dtype,
                                                        device=mu.device))
        return zs[0][0]

