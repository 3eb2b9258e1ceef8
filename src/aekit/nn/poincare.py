"""Latents on the Poincaré ball, with wrapped normal posterior and prior (Mathieu, Le Lan, Maddison, Tomioka &
Teh 2019, "Continuous Hierarchical Representations with Poincaré Variational Auto-Encoders").

The ball of curvature -c, B_c^d = {z in R^d : c ||z||^2 < 1}, carries the metric lambda_z^2 I with the conformal
factor lambda_z = 2 / (1 - c ||z||^2). Its operations (their Sec. 2 and Appendix B):

    Möbius addition   x (+) y = ((1 + 2c <x, y> + c ||y||^2) x + (1 - c ||x||^2) y)
                                / (1 + 2c <x, y> + c^2 ||x||^2 ||y||^2),
    exponential map   exp_x(u) = x (+) tanh(sqrt(c) lambda_x ||u|| / 2) u / (sqrt(c) ||u||),
    logarithmic map   log_x(y) = 2 / (sqrt(c) lambda_x) artanh(sqrt(c) ||-x (+) y||) (-x (+) y) / ||-x (+) y||,
    distance          d_c(x, y) = 2 / sqrt(c) artanh(sqrt(c) ||-x (+) y||),
    transport         P_{0->x}(v) = (lambda_0 / lambda_x) v = (1 - c ||x||^2) v,  P_{x->0} its inverse,

and at the origin exp_0(u) = tanh(sqrt(c) ||u||) u / (sqrt(c) ||u||).

**The wrapped normal** N^W_c(mu, sigma^2) (their Sec. 3, eq. 4-5): v ~ N(0, diag sigma^2) in the tangent space at
the origin, moved to mu and pushed onto the ball,

    z = exp_mu(P_{0->mu}(v / lambda_0)) = exp_mu(v / lambda_mu),   so that d_c(mu, z) = ||v||,

and its density with respect to the ball's Riemannian volume (dVol = lambda_z^d dz), with u = lambda_mu log_mu(z),
the tangent vector v the point came from, and r = ||u|| = d_c(mu, z),

    log N^W_c(z | mu, sigma^2) = log N(u; 0, diag sigma^2) - (d - 1) log(sinh(sqrt(c) r) / (sqrt(c) r)).

As c -> 0 the ball becomes R^d with the metric 4 I (lambda -> 2): z -> mu + v / 2, and the density times
lambda_z^d tends to the Euclidean N(mu, sigma^2 / 4).

**The posterior** is q(z|x) = N^W_c(exp_0(W_mu h), diag softplus(W_s h)^2), the prior p(z) = N^W_c(0, s^2 I)
(``prior=wrapped-normal``), and their KL is estimated over the samples, (1/S) sum_s log q(z_s|x) - log p(z_s) (the
two densities share the volume measure, so the ratio is that of the densities in the coordinates). The decoder
reads the point z in the ball's coordinates. On a grid of latents ``(*L, D)`` each position is its own ball.

**Numerics.** Points are kept at a Euclidean distance of at least 4e-3 / sqrt(c) (float32; 1e-5 in float64) from
the boundary after the exponential map; artanh's argument is clamped below 1, norms above 1e-15; and
log(sinh(t) / t) is taken as t + log1p(-e^{-2t}) - log 2t, or its series t^2/6 - t^4/180 near 0.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from aekit.config import require
from aekit.nn.backbones import MLPDecoder, MLPEncoder, activation
from aekit.nn.bottlenecks import BottleneckOutput, DiagonalGaussian
from aekit.nn.priors import LOG_2PI, Prior
from aekit.parts import PartContext, register_part

MIN_NORM = 1e-15
BALL_EPS = {torch.float32: 4e-3, torch.float64: 1e-5}  # the margin to the boundary, as geoopt keeps it


def check_curvature(c: float, key: str = "bottleneck.curvature") -> None:
    """A one-line ConfigError unless the ball's curvature parameter c is finite and > 0."""
    require(math.isfinite(c) and c > 0, f"{key}={c}: the Poincaré ball's curvature -c needs c > 0 (1: the unit "
            "ball); give a positive number")


def _dot(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x * y).sum(-1, keepdim=True)


def _norm(x: torch.Tensor) -> torch.Tensor:
    return x.norm(dim=-1, keepdim=True).clamp_min(MIN_NORM)


def _artanh(x: torch.Tensor) -> torch.Tensor:
    bound = 1 - torch.finfo(x.dtype).eps
    return torch.atanh(x.clamp(-bound, bound))


def conformal_factor(x: torch.Tensor, c: float) -> torch.Tensor:
    """lambda_x = 2 / (1 - c ||x||^2): ``[..., d] -> [..., 1]``."""
    return 2 / (1 - c * _dot(x, x)).clamp_min(MIN_NORM)


def mobius_add(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """x (+) y on the ball (module docstring), broadcast over the leading axes of ``x, y [..., d]``."""
    xy, x2, y2 = _dot(x, y), _dot(x, x), _dot(y, y)
    numerator = (1 + 2 * c * xy + c * y2) * x + (1 - c * x2) * y
    return numerator / (1 + 2 * c * xy + c * c * x2 * y2).clamp_min(MIN_NORM)


def project(x: torch.Tensor, c: float) -> torch.Tensor:
    """``x`` pulled radially inside the ball, to at most (1 - eps) / sqrt(c) from the origin."""
    max_norm = (1 - BALL_EPS.get(x.dtype, 4e-3)) / math.sqrt(c)
    norm = _norm(x)
    return torch.where(norm > max_norm, x / norm * max_norm, x)


def expmap0(u: torch.Tensor, c: float) -> torch.Tensor:
    """exp_0(u) = tanh(sqrt(c) ||u||) u / (sqrt(c) ||u||), a tangent vector at the origin onto the ball."""
    root_c, norm = math.sqrt(c), _norm(u)
    return project(torch.tanh(root_c * norm) * u / (root_c * norm), c)


def logmap0(y: torch.Tensor, c: float) -> torch.Tensor:
    """log_0(y) = artanh(sqrt(c) ||y||) y / (sqrt(c) ||y||), the inverse of :func:`expmap0`."""
    root_c, norm = math.sqrt(c), _norm(y)
    return _artanh(root_c * norm) * y / (root_c * norm)


def expmap(x: torch.Tensor, u: torch.Tensor, c: float) -> torch.Tensor:
    """exp_x(u) = x (+) tanh(sqrt(c) lambda_x ||u|| / 2) u / (sqrt(c) ||u||), for ``u`` in the tangent space at x."""
    root_c, norm = math.sqrt(c), _norm(u)
    step = torch.tanh(root_c * conformal_factor(x, c) * norm / 2) * u / (root_c * norm)
    return project(mobius_add(x, step, c), c)


def logmap(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """log_x(y) = 2 / (sqrt(c) lambda_x) artanh(sqrt(c) ||-x (+) y||) (-x (+) y) / ||-x (+) y||, the inverse of
    :func:`expmap` at x."""
    root_c, w = math.sqrt(c), mobius_add(-x, y, c)
    norm = _norm(w)
    return 2 / (root_c * conformal_factor(x, c)) * _artanh(root_c * norm) * w / norm


def distance(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """d_c(x, y) = 2 / sqrt(c) artanh(sqrt(c) ||-x (+) y||): ``[..., d] -> [..., 1]``."""
    root_c = math.sqrt(c)
    return 2 / root_c * _artanh(root_c * _norm(mobius_add(-x, y, c)))


def log_sinhc(t: torch.Tensor) -> torch.Tensor:
    """log(sinh(t) / t) for t >= 0, by its series t^2/6 - t^4/180 below 1e-2."""
    small = t < 1e-2
    safe = torch.where(small, torch.ones_like(t), t)
    large = safe + torch.log1p(-torch.exp(-2 * safe)) - torch.log(2 * safe)
    return torch.where(small, t * t / 6 - t.pow(4) / 180, large)


def wrapped_normal_sample(mu: torch.Tensor, sigma: torch.Tensor, c: float, eps: torch.Tensor) -> torch.Tensor:
    """z = exp_mu(v / lambda_mu), v = sigma * eps: ``mu, sigma [..., d]`` and the standard-normal ``eps [S, ..., d]``
    to ``[S, ..., d]``."""
    return expmap(mu, sigma * eps / conformal_factor(mu, c), c)


def wrapped_normal_log_prob(z: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, c: float) -> torch.Tensor:
    """log N^W_c(z | mu, diag sigma^2) with respect to the Riemannian volume, per point: ``z [..., d] -> [...]``
    (module docstring): u = lambda_mu log_mu(z), r = ||u||,
    log N(u; 0, sigma^2) - (d - 1) log(sinh(sqrt(c) r) / (sqrt(c) r))."""
    d = z.shape[-1]
    u = conformal_factor(mu, c) * logmap(mu, z, c)  # [..., d]
    r = u.norm(dim=-1)  # d_c(mu, z), [...]
    log_normal = -0.5 * ((u / sigma).pow(2) + 2 * torch.log(sigma) + LOG_2PI).sum(-1)
    return log_normal - (d - 1) * log_sinhc(math.sqrt(c) * r)


class Gyroplane(nn.Module):
    """The gyroplane layer (Mathieu et al. 2019, eq. 7; module docstring): ``z [N, d]`` on the ball of curvature -c
    to ``[N, units]`` signed, scaled geodesic distances to ``units`` learnt hyperplanes."""

    def __init__(self, d: int, units: int, c: float) -> None:
        super().__init__()
        self.c = float(c)
        self.offset = nn.Parameter(torch.randn(units, d) * 1e-2)  # p'_k: p_k = exp_0(p'_k)
        self.normal = nn.Parameter(torch.randn(units, d) / math.sqrt(d))  # n_k: a_k = P_{0->p_k}(n_k)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        c, root_c = self.c, math.sqrt(self.c)
        p = expmap0(self.offset, c)  # [K, d]
        a = self.normal * (1 - c * _dot(p, p))  # P_{0->p}(n) = (lambda_0 / lambda_p) n, [K, d]
        w = mobius_add(-p, z.unsqueeze(-2), c)  # -p_k (+) z, [N, K, d]
        a_norm = _norm(a).squeeze(-1)  # [K]
        ratio = 2 * root_c * (w * a).sum(-1) / ((1 - c * (w * w).sum(-1)).clamp_min(MIN_NORM) * a_norm)
        return 2 * _norm(self.normal).squeeze(-1) * torch.asinh(ratio) / root_c  # lambda_p ||a|| = 2 ||n||, [N, K]


@register_part("backbones", "gyroplane-mlp", "the mlp backbone with a first decoder layer of gyroplanes on the "
               "Poincaré ball of `curvature` (Mathieu et al. 2019)")
def gyroplane_mlp_backbone(hidden, channels, act, *, context: PartContext,
                           curvature: float = 1.0) -> tuple[nn.Module, nn.Module]:
    """The mlp backbone whose decoder's first layer, z -> hidden[-1] units, is a :class:`Gyroplane` layer on the ball
    of ``curvature`` (the latent's: ``poincare-vae`` sets it), then the activation and the mlp decoder's rest."""
    check_curvature(curvature, "backbone.curvature")
    require(len(hidden) >= 1, "backbone=gyroplane-mlp: the gyroplane layer is the decoder's first hidden layer; give "
            "hidden widths, e.g. hidden=400")
    require(context.condition_dim == 0 and len(context.latent_shape) == 1, "backbone=gyroplane-mlp reads one point "
            "of the ball per example: it takes no condition and no grid of latents")
    widths = tuple(reversed(hidden))  # the decoder's widths
    decoder = nn.Sequential(Gyroplane(context.latent_dim, widths[0], curvature), activation(act),
                            MLPDecoder(widths[0], context.data_shape, widths[1:], act, context.n_params))
    return MLPEncoder(context.data_shape, hidden, act), decoder


@register_part("priors", "wrapped-normal", "p(z) = the wrapped normal N^W_c(0, scale^2 I) on the Poincaré ball of "
               "curvature -c (Mathieu et al. 2019)")
class WrappedNormalPrior(Prior):
    """p(z) = N^W_c(0, s^2 I) at the ball's origin, ``curvature`` = c, ``scale`` = s (1); its density is with
    respect to the ball's volume, as the posterior's. Samples: exp_0(s eps / 2), eps ~ N(0, I)."""

    def __init__(self, context: PartContext | tuple[int, ...] | int, curvature: float = 1.0,
                 scale: float = 1.0) -> None:
        super().__init__(context)
        check_curvature(curvature, "prior.curvature")
        require(math.isfinite(scale) and scale > 0, f"prior.scale={scale}: the wrapped normal's scale must be > 0")
        self.c, self.scale = float(curvature), float(scale)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        log_p = wrapped_normal_log_prob(z, torch.zeros_like(z), torch.full_like(z, self.scale), self.c)
        positions = tuple(range(-len(self.latent_shape) + 1, 0))  # the grid's axes L, none for a vector
        return log_p.sum(positions) if positions else log_p  # [..., *L] -> [...]

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        eps = torch.randn(n, *self.latent_shape, generator=generator, device=device)
        return expmap0(self.scale * eps / 2, self.c)  # exp_0(v / lambda_0), lambda_0 = 2


@register_part("bottlenecks", "poincare", "z on the Poincaré ball: a wrapped normal posterior (Mathieu et al. 2019), "
               "the KL to the wrapped-normal prior by Monte Carlo")
class PoincarePosterior(DiagonalGaussian):
    """q(z|x) = N^W_c(mu, diag sigma^2), mu = exp_0(W_mu h), sigma = softplus(W_s h) + 1e-5, on the ball of
    ``curvature`` -c (module docstring): the Gaussian bottleneck's projection, read as a point and a scale, and its
    fixed-parameter density and importance samples, through the wrapped normal's sampling and density. The prior is
    a wrapped normal on the same ball (``prior=wrapped-normal``)."""

    traversable = False  # points of the ball only

    def __init__(self, context: PartContext, prior: Prior | None = None, curvature: float = 1.0) -> None:
        check_curvature(curvature)
        require(prior is None or (isinstance(prior, WrappedNormalPrior) and prior.c == curvature),
                f"prior={type(prior).__name__}: a Poincaré posterior of curvature {curvature} needs "
                f"prior=wrapped-normal with prior.curvature={curvature}")
        super().__init__(context, prior if prior is not None else WrappedNormalPrior(context, curvature))
        self.c = float(curvature)

    def posterior(self, h: torch.Tensor, batch=None) -> dict[str, torch.Tensor]:
        """``mu`` on the ball and ``sigma`` > 0, ``[B, *L, D]`` each, from the features ``h [B, *L, F]``."""
        loc, scale = self.proj(h).chunk(2, dim=-1)
        return {"mu": expmap0(loc, self.c), "sigma": F.softplus(scale) + 1e-5}

    def rsample(self, params: dict[str, torch.Tensor], n_samples: int, eps: torch.Tensor | None = None) -> torch.Tensor:
        """``n_samples`` reparameterised draws ``[S, B, *L, D]``; ``eps``: their standard-normal noise."""
        mu = params["mu"]
        if eps is None:
            eps = torch.randn(n_samples, *mu.shape, device=mu.device, dtype=mu.dtype)  # [S, B, *L, D]
        return wrapped_normal_sample(mu, params["sigma"], self.c, eps)

    def log_q(self, z: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """log q(z|x) summed over the grid's positions: ``z [S, B, *L, D] -> [S, B]``."""
        log_q = wrapped_normal_log_prob(z, params["mu"], params["sigma"], self.c)  # [S, B, *L]
        return log_q.flatten(2).sum(-1) if log_q.dim() > 2 else log_q

    def forward(self, h: torch.Tensor, n_samples: int = 1, eps: torch.Tensor | None = None,
                batch=None) -> BottleneckOutput:
        params = self.posterior(h)
        z = self.rsample(params, n_samples, eps)  # [S, B, *L, D]
        log_q, log_p = self.log_q(z, params), self.log_p(z, batch)  # [S, B] each
        return BottleneckOutput(z=z, mean=params["mu"], params=params, terms={"kl": (log_q - log_p).mean(0)},
                                given_log_q=log_q, given_log_p=log_p,
                                fixed_log_q=functools.partial(self.log_q_fixed, z, params))
