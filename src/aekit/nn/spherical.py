"""Hyperspherical posteriors: latents on the unit sphere S^{d-1} in R^d, with a uniform prior on it.

The encoder gives a mean direction and a concentration (Davidson et al. 2018, Sec. 3):

    mu = W_mu h / ||W_mu h||,   kappa = softplus(w_kappa^T h + b) + 1,

and the posterior is one of (``bottleneck.distribution``):

- ``vmf``, the von Mises-Fisher distribution (Davidson, Falorsi, De Cao, Kipf & Tomczak 2018, "Hyperspherical
  Variational Auto-Encoders", eq. 2-3):

      q(z|mu, kappa) = C_d(kappa) exp(kappa mu^T z),
      log C_d(kappa) = (d/2 - 1) log kappa - (d/2) log 2 pi - log I_{d/2-1}(kappa),

  sampled by Wood's (1994) rejection sampler for the component w = mu^T z (Davidson et al., Algorithm 1), then a
  uniform tangent direction v and a Householder reflection of (w, sqrt(1 - w^2) v) from e_1 to mu. The KL to the
  uniform prior is analytic (their eq. 5-6),

      KL(vMF(mu, kappa) || U(S^{d-1})) = kappa I_{d/2}(kappa) / I_{d/2-1}(kappa) + log C_d(kappa) + log |S^{d-1}|.

- ``power-spherical``, the Power Spherical distribution (De Cao & Aziz 2020, "The Power Spherical distribution",
  eq. 2-4 and Algorithm 1):

      q(z|mu, kappa) = N_d(kappa)^{-1} (1 + mu^T z)^kappa,   alpha = (d - 1)/2 + kappa,   beta = (d - 1)/2,
      N_d(kappa) = 2^{alpha + beta} pi^beta Gamma(alpha) / Gamma(alpha + beta),

  sampled without rejection: B ~ Beta(alpha, beta), w = 2B - 1, then the same tangent direction and reflection,
  reparameterised through ``torch.distributions.Beta.rsample``; E[z] = mu kappa / (d - 1 + kappa) and

      KL(PS(mu, kappa) || U(S^{d-1})) = -log N_d(kappa) + kappa (log 2 + psi(alpha) - psi(alpha + beta))
                                        + log |S^{d-1}|.

**The vMF gradient.** Davidson et al. (Sec. 3.2 and Appendix, after Naesseth et al. 2017) split the gradient of
E_q[f(z)] in kappa into g_rep, the path derivative through w = h(eps, kappa) with the accepted proposal eps held as
fixed noise (w = 1 - 2 b eps / (1 - (1 - b) eps) carries kappa through b), and the correction

    g_cor = E[f(z) d/dkappa log (q(h(eps, kappa); kappa) / r(h(eps, kappa); kappa))],
    log q / r = log C_d(kappa) + kappa w + ((d - 3)/2) log(1 - w^2) + log |dh/deps| + const,
    |dh/deps| = 2 b / (1 - (1 - b) eps)^2,

q(w; kappa) the marginal density of w and r that of the proposal mapped through h (the Beta density of eps does
not depend on kappa). The bottleneck gives log q / r of each draw (:func:`vmf_rejection_log_ratio`) and, once the
decoder has scored the draws, the term ``vmf_correction`` = f (log q / r - its detached value) with
f = -log p(x|z) detached (:meth:`SphericalPosterior.reconstruction_terms`): its value is 0 and its gradient g_cor,
so the ELBO's gradient in kappa is g_rep + g_cor, unbiased (tested against d/dkappa of the closed-form E[w]). The
correction is for the ELBO, whose per-sample objective in z is the reconstruction (the KL is analytic); set
``terms.vmf_correction=0`` for g_rep alone. The Power Spherical gradient is exact (no rejection).

**Numerics.** log I_v(kappa) is computed in float64 and in log space for every order v and kappa > 0
(:func:`log_bessel_iv`): Debye's uniform asymptotic expansion at order >= 30 and the downward recurrence
I_v = (2 (v + 1) / kappa) I_{v+1} + I_{v+2}, a sum of positive terms, below it; its derivative is the Bessel ratio,
d/dkappa log I_v = I_{v+1}/I_v + v/kappa. Wood's b is taken in the form (d - 1) / (2 kappa + sqrt(4 kappa^2 +
(d - 1)^2)), free of the cancellation of -2 kappa + sqrt(...) at large kappa, and 1 - w = 2 b eps / (1 - (1 - b) eps)
directly, so sqrt(1 - w^2) stays accurate as w -> 1.

On a grid of latents ``(*L, D)`` each position is its own sphere S^{D-1}. The point embedding is mu.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from aekit.config import require, require_choice
from aekit.nn.bottlenecks import Bottleneck, BottleneckOutput
from aekit.nn.priors import Prior
from aekit.objectives import Term
from aekit.parts import ModelRef, PartContext, register_part

DISTRIBUTIONS = ("vmf", "power-spherical")
DEBYE_ORDER = 30.0  # log I_v by Debye's expansion from this order up; lower orders by the downward recurrence
MAX_REJECTION_ROUNDS = 1000  # Wood's sampler accepts over half of its proposals at any kappa and d


def log_sphere_area(d: int) -> float:
    """log |S^{d-1}| = log 2 + (d/2) log pi - lgamma(d/2), the surface area of the unit sphere in R^d."""
    return math.log(2.0) + 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d)


def check_spherical(distribution: str, d: int, distribution_key: str = "bottleneck.distribution",
                    dim_key: str = "latent_dim") -> None:
    """One-line ConfigErrors for an unknown distribution or a sphere of dimension below 2."""
    require_choice(distribution, DISTRIBUTIONS, distribution_key)
    require(d >= 2, f"{dim_key}={d}: a {distribution} latent lives on the sphere S^(d-1) in R^d and needs d >= 2; "
            "give latent_dim >= 2")


# Debye's polynomials u_k(t), k = 1..4, as coefficients of t^j (Abramowitz & Stegun 9.3.9-9.3.10).
DEBYE_POLYNOMIALS = (
    {1: 3 / 24, 3: -5 / 24},
    {2: 81 / 1152, 4: -462 / 1152, 6: 385 / 1152},
    {3: 30375 / 414720, 5: -369603 / 414720, 7: 765765 / 414720, 9: -425425 / 414720},
    {4: 4465125 / 39813120, 6: -94121676 / 39813120, 8: 349922430 / 39813120, 10: -446185740 / 39813120,
     12: 185910725 / 39813120},
)


def debye_log_iv(v: float, x: torch.Tensor) -> torch.Tensor:
    """log I_v(x) by the uniform asymptotic expansion for large v (Abramowitz & Stegun 9.7.7), with r = sqrt(v^2 +
    x^2) and t = v / r:

        log I_v(x) ~ r + v log(x / (v + r)) - 1/2 log(2 pi r) + log(1 + sum_{k=1..4} u_k(t) / v^k),

    the error of order v^-5 uniformly in x > 0."""
    r = torch.sqrt(v * v + x * x)
    t = v / r
    series = 1.0 + sum(sum(c * t.pow(j) for j, c in poly.items()) / v ** k
                       for k, poly in enumerate(DEBYE_POLYNOMIALS, start=1))
    return r + v * torch.log(x / (v + r)) - 0.5 * torch.log(2 * math.pi * r) + torch.log(series)


def log_bessel_iv_pair(v: float, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log I_v(x) and log I_{v+1}(x) in float64 for v >= 0 and ``x > 0``: Debye's expansion at the orders
    v + n, v + n + 1 >= :data:`DEBYE_ORDER`, then n steps down by I_u = (2 (u + 1) / x) I_{u+1} + I_{u+2}, each
    a sum of positive terms (no cancellation) taken in log space."""
    x = x.double()
    n = max(0, math.ceil(DEBYE_ORDER - v))
    lower, upper = debye_log_iv(v + n, x), debye_log_iv(v + n + 1, x)  # log I_{v+n}, log I_{v+n+1}
    log_x = torch.log(x)
    for k in range(n - 1, -1, -1):  # lower: log I_{v+k+1} -> log I_{v+k}
        lower, upper = torch.logaddexp(math.log(2 * (v + k + 1)) - log_x + lower, upper), lower
    return lower, upper


class LogBesselI(torch.autograd.Function):
    """log I_v(x), with the gradient d/dx log I_v(x) = I_{v+1}(x) / I_v(x) + v / x from the same recurrence."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, v: float) -> torch.Tensor:
        log_iv, log_iv1 = log_bessel_iv_pair(v, x)
        ctx.save_for_backward(x, log_iv, log_iv1)
        ctx.v = v
        return log_iv.to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        x, log_iv, log_iv1 = ctx.saved_tensors
        d_log_iv = torch.exp(log_iv1 - log_iv) + ctx.v / x.double()
        return grad * d_log_iv.to(grad.dtype), None


def log_bessel_iv(v: float, x: torch.Tensor) -> torch.Tensor:
    """log I_v(x), the modified Bessel function of the first kind, for an order v >= 0 and ``x > 0`` of any
    shape, stable from x = 1e-3 to 1e4 and beyond at any order; differentiable in x."""
    return LogBesselI.apply(x, float(v))


def in_float64(fn: Callable[[int, torch.Tensor], torch.Tensor]) -> Callable[[int, torch.Tensor], torch.Tensor]:
    """fn(d, kappa) evaluated in float64 and returned in kappa's dtype: its terms nearly cancel at large kappa."""

    @functools.wraps(fn)
    def wrapped(d: int, kappa: torch.Tensor) -> torch.Tensor:
        return fn(d, kappa.double()).to(kappa.dtype)

    return wrapped


@in_float64
def bessel_ratio(d: int, kappa: torch.Tensor) -> torch.Tensor:
    """A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa), the vMF's mean resultant length E[mu^T z]."""
    return torch.exp(log_bessel_iv(d / 2, kappa) - log_bessel_iv(d / 2 - 1, kappa))


@in_float64
def vmf_log_normaliser(d: int, kappa: torch.Tensor) -> torch.Tensor:
    """log C_d(kappa) = (d/2 - 1) log kappa - (d/2) log 2 pi - log I_{d/2-1}(kappa) (Davidson et al. 2018, eq. 2)."""
    return (d / 2 - 1) * torch.log(kappa) - (d / 2) * math.log(2 * math.pi) - log_bessel_iv(d / 2 - 1, kappa)


@in_float64
def vmf_kl_to_uniform(d: int, kappa: torch.Tensor) -> torch.Tensor:
    """KL(vMF(mu, kappa) || U(S^{d-1})) = kappa A_d(kappa) + log C_d(kappa) + log |S^{d-1}| (Davidson et al. 2018,
    eq. 5-6)."""
    return kappa * bessel_ratio(d, kappa) + vmf_log_normaliser(d, kappa) + log_sphere_area(d)


@in_float64
def power_spherical_log_normaliser(d: int, kappa: torch.Tensor) -> torch.Tensor:
    """-log N_d(kappa) = -[(alpha + beta) log 2 + beta log pi + lgamma(alpha) - lgamma(alpha + beta)], alpha =
    (d - 1)/2 + kappa, beta = (d - 1)/2 (De Cao & Aziz 2020, eq. 2)."""
    alpha, beta = (d - 1) / 2 + kappa, (d - 1) / 2
    return -((alpha + beta) * math.log(2.0) + beta * math.log(math.pi) + torch.lgamma(alpha)
             - torch.lgamma(alpha + beta))


@in_float64
def power_spherical_kl_to_uniform(d: int, kappa: torch.Tensor) -> torch.Tensor:
    """KL(PS(mu, kappa) || U(S^{d-1})) = -log N_d + kappa (log 2 + psi(alpha) - psi(alpha + beta)) + log |S^{d-1}|:
    the negative entropy (De Cao & Aziz 2020, eq. 4) plus the log area, E[log(1 + mu^T z)] = E[log 2B]."""
    alpha, beta = (d - 1) / 2 + kappa, (d - 1) / 2
    e_log = math.log(2.0) + torch.digamma(alpha) - torch.digamma(alpha + beta)
    return power_spherical_log_normaliser(d, kappa) + kappa * e_log + log_sphere_area(d)


def wood_one_minus_w(d: int, kappa: torch.Tensor) -> torch.Tensor:
    """1 - w for w = mu^T z ~ the vMF's marginal, by Wood's (1994) rejection sampler (Davidson et al. 2018,
    Algorithm 1), ``kappa [..., 1] -> [..., 1]`` in float64:

        b = (d - 1) / (2 kappa + sqrt(4 kappa^2 + (d - 1)^2)),  a = ((d - 1) + 2 kappa + sqrt(...)) / 4,
        eps ~ Beta((d-1)/2, (d-1)/2),  t = 2 a b / (1 - (1 - b) eps),  u ~ U(0, 1),
        accept eps where (d - 1) log t - t + 4 a b / (1 + b) - (d - 1) log(d - 1) >= log u,
        1 - w = 2 b eps / (1 - (1 - b) eps).

    The accepted eps is fixed noise; the gradient reaches kappa through b only (g_rep, module docstring). The
    accepted eps comes back too, for :func:`vmf_rejection_log_ratio`: ``(1 - w, eps)``."""
    k, m = kappa.double(), d - 1
    root = torch.sqrt(4 * k * k + m * m)
    b = m / (2 * k + root)
    with torch.no_grad():
        a = (m + 2 * k + root) / 4
        shift = 4 * a * b / (1 + b) - m * math.log(m)
        proposal = torch.distributions.Beta(torch.tensor(m / 2, dtype=k.dtype), torch.tensor(m / 2, dtype=k.dtype))
        eps, done = torch.zeros_like(k), torch.zeros(k.shape, dtype=torch.bool, device=k.device)
        for _ in range(MAX_REJECTION_ROUNDS):
            e = proposal.sample(k.shape).to(k.device)
            t = 2 * a * b / (1 - (1 - b) * e)
            accept = ~done & (m * torch.log(t) - t + shift >= torch.log(torch.rand_like(k)))
            eps, done = torch.where(accept, e, eps), done | accept
            if done.all():
                break
    return 2 * b * eps / (1 - (1 - b) * eps), eps


def vmf_rejection_log_ratio(d: int, kappa: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """log q(w; kappa) - log r(w; kappa) at w = h(eps, kappa), up to a constant in kappa, for fixed accepted proposals
    ``eps`` (module docstring: its gradient in kappa times f is g_cor): ``kappa [..., 1], eps [..., 1] -> [..., 1]``
    in float64."""
    k, m = kappa.double(), d - 1
    b = m / (2 * k + torch.sqrt(4 * k * k + m * m))
    denominator = 1 - (1 - b) * eps
    one_minus_w = 2 * b * eps / denominator
    log_one_minus_w2 = torch.log(one_minus_w) + torch.log(2 - one_minus_w)  # log (1 - w^2) = log (1 - w)(1 + w)
    return (vmf_log_normaliser(d, k) + k * (1 - one_minus_w) + (d - 3) / 2 * log_one_minus_w2
            + torch.log(2 * b) - 2 * torch.log(denominator))


def power_spherical_one_minus_w(d: int, kappa: torch.Tensor) -> torch.Tensor:
    """1 - w = 2 (1 - B), B ~ Beta(alpha, beta), reparameterised (De Cao & Aziz 2020, Algorithm 1):
    ``kappa [..., 1] -> [..., 1]``."""
    beta = torch.full_like(kappa, (d - 1) / 2)
    return 2 * torch.distributions.Beta(beta, (d - 1) / 2 + kappa).rsample()  # 1 - B ~ Beta(beta, alpha)


def householder_to(mu: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """U y with U = I - 2 u u^T, u = (e_1 - mu) / ||e_1 - mu||, the reflection that maps e_1 to mu (Davidson et al.
    2018, Algorithm 2): ``mu [..., D]``, ``y [S, ..., D]``; at mu = e_1, u = 0 and U = I."""
    e1 = torch.zeros_like(mu)
    e1[..., 0] = 1.0
    u = F.normalize(e1 - mu, dim=-1, eps=1e-12)
    return y - 2 * (y * u).sum(-1, keepdim=True) * u


def sphere_sample(mu: torch.Tensor, one_minus_w: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
    """z = U (w, sqrt(1 - w^2) v) from ``mu [B, *L, D]`` and ``1 - w [S, B, *L, 1]``, v uniform on S^{D-2} in the
    tangent space of e_1: v = eps / ||eps||, ``eps [S, B, *L, D-1]`` standard-normal noise (drawn when None)."""
    s1w = one_minus_w.to(mu.dtype)
    if eps is None:
        eps = torch.randn(*s1w.shape[:-1], mu.shape[-1] - 1, dtype=mu.dtype, device=mu.device)
    v = F.normalize(eps, dim=-1)  # [S, B, *L, D-1]
    radius = torch.sqrt((s1w * (2 - s1w)).clamp_min(0))  # sqrt(1 - w^2) = sqrt((1 - w)(1 + w))
    return householder_to(mu, torch.cat([1 - s1w, radius * v], dim=-1))  # [S, B, *L, D]


@register_part("priors", "uniform-sphere", "p(z) = U(S^{d-1}), the uniform distribution on the unit sphere: "
               "-log |S^{d-1}| at every point")
class UniformSphere(Prior):
    """p(z) = 1 / |S^{d-1}|, log p(z) = -(log 2 + (d/2) log pi - lgamma(d/2)) on the unit sphere in R^d, d = D;
    on a grid ``(*L, D)`` a sphere per position. Samples: eps / ||eps||, eps ~ N(0, I_d)."""

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        positions = math.prod(self.latent_shape[:-1])
        lead = z.shape[: z.dim() - len(self.latent_shape)]
        return torch.full(lead, -positions * log_sphere_area(self.latent_dim), dtype=z.dtype, device=z.device)

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        return F.normalize(torch.randn(n, *self.latent_shape, generator=generator, device=device), dim=-1)


@register_part("bottlenecks", "spherical", "z on the unit sphere: a von Mises-Fisher (Davidson et al. 2018) or "
               "Power Spherical (De Cao & Aziz 2020) posterior; analytic KL to the uniform prior")
class SphericalPosterior(Bottleneck):
    """q(z|x) = vMF(mu, kappa) or PS(mu, kappa) on S^{D-1} (module docstring), mu = normalise(W h),
    kappa = softplus(w^T h + b) + 1; ``distribution``: ``vmf`` or ``power-spherical``. The prior is the uniform
    one on the sphere (``prior=uniform-sphere``), and the KL to it is analytic."""

    stochastic = True
    traversable = False  # on the sphere only
    terms: ClassVar[dict[str, Term]] = {"kl": Term(label="beta"), "vmf_correction": Term()}

    def __init__(self, context: PartContext, prior: Prior | None = None, distribution: str = "vmf") -> None:
        super().__init__(context)
        check_spherical(distribution, self.latent_dim)
        require(prior is None or isinstance(prior, UniformSphere), f"prior={type(prior).__name__}: a spherical "
                "posterior lives on the sphere; use prior=uniform-sphere")
        self.distribution, self.d = distribution, self.latent_dim
        self.proj = nn.Linear(self.in_features, self.latent_dim + 1)
        self.prior = prior if prior is not None else UniformSphere(context)

    def posterior(self, h: torch.Tensor, batch=None) -> dict[str, torch.Tensor]:
        """``mu [B, *L, D]`` (unit norm) and ``kappa [B, *L, 1]`` (>= 1) from the features ``h [B, *L, F]``."""
        direction, concentration = self.proj(h).split([self.latent_dim, 1], dim=-1)
        return {"mu": F.normalize(direction, dim=-1), "kappa": F.softplus(concentration) + 1.0}

    def bind(self, model: nn.Module) -> None:
        """Keep the model whose likelihood scores the draws, for the vMF gradient's correction term."""
        self.model = ModelRef(model)

    def draw(self, params: dict[str, torch.Tensor], n_samples: int,
             eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n_samples`` draws ``[S, B, *L, D]`` (``eps [S, B, *L, D-1]``: the tangent direction's normal noise) and,
        for the vMF while gradients are on, log q/r of each draw summed over the grid's positions ``[S, B]``
        (:func:`vmf_rejection_log_ratio`), else None."""
        kappa = params["kappa"].expand(n_samples, *params["kappa"].shape)  # [S, B, *L, 1]
        if self.distribution != "vmf":
            return sphere_sample(params["mu"], power_spherical_one_minus_w(self.d, kappa), eps), None
        one_minus_w, accepted = wood_one_minus_w(self.d, kappa)
        log_ratio = (vmf_rejection_log_ratio(self.d, kappa, accepted).to(kappa.dtype).flatten(2).sum(-1)
                     if torch.is_grad_enabled() else None)  # [S, B]
        return sphere_sample(params["mu"], one_minus_w, eps), log_ratio

    def rsample(self, params: dict[str, torch.Tensor], n_samples: int, eps: torch.Tensor | None = None) -> torch.Tensor:
        """``n_samples`` draws ``[S, B, *L, D]``; ``eps [S, B, *L, D-1]``: the tangent direction's normal noise."""
        return self.draw(params, n_samples, eps)[0]

    def reconstruction_terms(self, latent: BottleneckOutput, x_params: torch.Tensor,
                             target: torch.Tensor) -> dict[str, torch.Tensor]:
        """``vmf_correction`` ``[B]``: E_q[f (log q/r - its detached value)], f = -log p(x|z) of each draw
        detached; 0 in value, g_cor in gradient (module docstring). None without a vMF draw made with gradients."""
        log_ratio = latent.params.get("rejection_log_ratio")
        model = getattr(self, "model", None)
        if log_ratio is None or model is None:
            return {}
        f = model().likelihood.nll(x_params, target).detach()  # [S, B]
        return {"vmf_correction": latent.expectation(f * (log_ratio - log_ratio.detach()))}

    def log_q(self, z: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """log q(z|x) summed over the grid's positions: ``z [S, B, *L, D] -> [S, B]``; vMF: log C_d(kappa) +
        kappa mu^T z; PS: -log N_d(kappa) + kappa log(1 + mu^T z)."""
        mu, kappa = params["mu"], params["kappa"]
        cos = (mu * z).sum(-1, keepdim=True)  # [S, B, *L, 1]
        if self.distribution == "vmf":
            log_q = vmf_log_normaliser(self.d, kappa) + kappa * cos
        else:
            log_q = power_spherical_log_normaliser(self.d, kappa) + kappa * torch.log1p(cos)
        return log_q.flatten(2).sum(-1)

    def kl(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """KL(q(z|x) || U(S^{D-1})) summed over the grid's positions, analytic: ``[B]``."""
        kl_to_uniform = vmf_kl_to_uniform if self.distribution == "vmf" else power_spherical_kl_to_uniform
        return kl_to_uniform(self.d, params["kappa"]).flatten(1).sum(-1)

    def log_q_fixed(self, z: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """log q(z|x) ``[S, B]`` with the parameters held fixed (detached): its gradient flows through z only."""
        return self.log_q(z, {name: value.detach() for name, value in params.items()})

    def log_p(self, z: torch.Tensor, batch=None) -> torch.Tensor:
        """log p(z) = -log |S^{D-1}| per position, summed: ``[S, B]``."""
        return self.prior.log_prob(z)

    def forward(self, h: torch.Tensor, n_samples: int = 1, eps: torch.Tensor | None = None,
                batch=None) -> BottleneckOutput:
        params = self.posterior(h)
        z, log_ratio = self.draw(params, n_samples, eps)  # [S, B, *L, D], [S, B] or None
        if log_ratio is not None:
            params = {**params, "rejection_log_ratio": log_ratio}
        return BottleneckOutput(z=z, mean=params["mu"], params=params, terms={"kl": self.kl(params)},
                                stats={"kappa": params["kappa"].mean().detach()},
                                fixed_log_q=functools.partial(self.log_q_fixed, z, params),
                                densities=lambda: (self.log_q(z, params), self.log_p(z, batch)))

    def importance_samples(self, params: dict[str, torch.Tensor], n_samples: int, eps: torch.Tensor | None = None,
                           batch=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``n_samples`` draws ``z [S, B, *L, D]`` from q(z|x) with their log q(z|x) and log p(z) ``[S, B]``."""
        z = self.rsample(params, n_samples, eps)
        return z, self.log_q(z, params), self.log_p(z, batch)
