"""The Hamiltonian posterior (Caterini, Doucet & Sejdinovic 2018, "Hamiltonian Variational Auto-Encoder").

A draw from the Gaussian q_0(z_0|x) is moved by K steps of tempered Hamiltonian dynamics that target the model's
own joint density, so the posterior learns from the decoder's gradient. With d = prod(L) D latent coordinates
(their Algorithm 1 and Sec. 4):

    z_0 ~ q_0(z_0|x) = N(mu(x), diag sigma^2(x)),   gamma_0 ~ N(0, I_d),   rho_0 = gamma_0 / sqrt(beta_0),

and for k = 1..K a leapfrog step of size eps on U(z) = -log p(x, z) = -log p(x|z) - log p(z), then tempering,

    rho'  = rho_{k-1} + (eps/2) grad_z log p(x, z_{k-1}),
    z_k   = z_{k-1} + eps rho',
    rho'' = rho' + (eps/2) grad_z log p(x, z_k),
    rho_k = sqrt(beta_{k-1} / beta_k) rho'',

with the quadratic tempering schedule (their Sec. 4, "tempering"), beta_K = 1,

    1 / sqrt(beta_k) = (1 - 1 / sqrt(beta_0)) k^2 / K^2 + 1 / sqrt(beta_0).

**The bound.** Each leapfrog step has Jacobian determinant 1 and each tempering step (beta_{k-1}/beta_k)^{d/2}, so
the flow (z_0, rho_0) -> (z_K, rho_K) has |det| = beta_0^{d/2}, and with log N(rho_0; 0, beta_0^{-1} I) =
log N(gamma_0; 0, I) + (d/2) log beta_0 the density of (z_K, rho_K) is

    log q_K(z_K, rho_K|x) = log q_0(z_0|x) + log N(rho_0; 0, beta_0^{-1} I) - (d/2) log beta_0
                          = log q_0(z_0|x) + log N(gamma_0; 0, I):

the two (d/2) log beta_0 cancel. Against the extended target p(x, z, rho) = p(x, z) N(rho; 0, I),

    ELBO_H(x) = E[log p(x|z_K) + log p(z_K) + log N(rho_K; 0, I) - log q_0(z_0|x) - log N(gamma_0; 0, I)]
              = E[log p(x, z_K) - rho_K^T rho_K / 2 - log q_0(z_0|x) + gamma_0^T gamma_0 / 2],

a lower bound on log p(x) for any eps > 0, 0 < beta_0 <= 1 and K >= 1. Here the ``recon`` term is
-log p(x|z_K) and the ``kl`` term log q_K(z_K, rho_K|x) - log p(z_K) - log N(rho_K; 0, I), the extended space's
log ratio, averaged over the samples; the output's ``log_q`` and ``log_p`` are the two extended densities, so an
importance-weighted bound over these samples is a bound on log p(x) too.

**The target.** log p(x, z) needs the decoder and the likelihood: the bottleneck, bound to its model
(:func:`aekit.parts.bind_parts`), builds the callable z -> log p(x|z) + log p(z) for the batch it is given (the
input x, and the condition c of a conditional model); :meth:`HamiltonianPosterior.flow` takes any such callable.
The gradient in z is taken with ``create_graph`` while gradients are on, so the bound's gradient reaches the
decoder and the encoder through every leapfrog step (second derivatives of the decoder).

**log p(x).** ``importance_samples`` draws from q_0(z_0|x) and scores with its Gaussian density, the usual
estimator for this model: log p(x) ~ log (1/S) sum_s p(x|z_s) p(z_s) / q_0(z_s|x), z_s ~ q_0(z|x), exact in the
limit of many samples whatever the dynamics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import nn

from aekit.config import require
from aekit.nn.bottlenecks import BottleneckOutput, DiagonalGaussian
from aekit.nn.likelihoods import Likelihood
from aekit.nn.priors import LOG_2PI, Prior
from aekit.objectives import Term
from aekit.parts import ModelRef, PartContext, register_part

LogTarget = Callable[[torch.Tensor], torch.Tensor]  # z [S, B, *L, D] -> log p(x, z) [S, B]


def check_hamiltonian(n_lf: int, eps_lf: float, beta_zero: float, learn_beta_zero: bool = False,
                      prefix: str = "bottleneck.") -> None:
    """One-line ConfigErrors for a leapfrog count below 1, a step size <= 0 and a beta_0 outside (0, 1] (or at
    1 when it is learnt, through a sigmoid)."""
    require(int(n_lf) == n_lf and n_lf >= 1, f"{prefix}n_lf={n_lf}: the number of leapfrog steps K must be a whole "
            "number >= 1")
    require(math.isfinite(eps_lf) and eps_lf > 0, f"{prefix}eps_lf={eps_lf}: the leapfrog step size must be > 0, "
            "e.g. 0.001")
    require(0 < beta_zero <= 1, f"{prefix}beta_zero={beta_zero}: the initial inverse temperature beta_0 must lie in "
            "(0, 1] (1: no tempering)")
    require(not learn_beta_zero or beta_zero < 1, f"{prefix}beta_zero={beta_zero}: a learnt beta_0 is a sigmoid and "
            "starts below 1; give beta_zero < 1 or learn_beta_zero=false")


def tempering_schedule(beta_zero: torch.Tensor, n_steps: int) -> list[torch.Tensor]:
    """sqrt(beta_k) for k = 0..K from 1 / sqrt(beta_k) = (1 - 1/sqrt(beta_0)) k^2 / K^2 + 1/sqrt(beta_0)
    (Caterini et al. 2018, quadratic tempering): sqrt(beta_0) first, sqrt(beta_K) = 1 last."""
    inv_root = 1.0 / beta_zero.sqrt()
    return [1.0 / ((1.0 - inv_root) * (k / n_steps) ** 2 + inv_root) for k in range(n_steps + 1)]


def target_gradient(log_target: LogTarget, z: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """grad_z log p(x, z) ``[S, B, *L, D]``, the graph kept with ``create_graph`` (for the bound's gradient)."""
    with torch.enable_grad():
        z = z if z.requires_grad else z.detach().requires_grad_(True)
        (gradient,) = torch.autograd.grad(log_target(z).sum(), z, create_graph=create_graph)
    return gradient


def leapfrog(z: torch.Tensor, rho: torch.Tensor, eps: torch.Tensor | float, gradient: Callable[[torch.Tensor],
             torch.Tensor], grad_z: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One leapfrog step of H(z, rho) = -log p(x, z) + rho^T rho / 2: rho' = rho + (eps/2) g(z), z' = z + eps rho',
    rho'' = rho' + (eps/2) g(z'), with g = ``gradient`` = grad_z log p(x, z) (``grad_z``: g(z) when known).
    Returns z', rho'' and g(z'), for the next step. Volume-preserving and reversible (negate rho'' and step again)."""
    grad_z = gradient(z) if grad_z is None else grad_z
    rho_half = rho + 0.5 * eps * grad_z
    z_next = z + eps * rho_half
    grad_next = gradient(z_next)
    return z_next, rho_half + 0.5 * eps * grad_next, grad_next


def standard_normal_log_prob(v: torch.Tensor) -> torch.Tensor:
    """log N(v; 0, I) summed over the latent dims: ``[S, B, *L, D] -> [S, B]``."""
    return -0.5 * (v.pow(2) + LOG_2PI).flatten(2).sum(-1)


@register_part("bottlenecks", "hamiltonian", "q_0(z_0|x) Gaussian moved by K tempered leapfrog steps on log p(x, z) "
               "(Caterini et al. 2018); K = n_lf, step eps_lf, beta_zero")
class HamiltonianPosterior(DiagonalGaussian):
    """The Hamiltonian VAE's posterior (module docstring): ``n_lf`` = K leapfrog steps of size ``eps_lf`` from
    q_0's draw, momentum tempered from ``beta_zero`` = beta_0 to 1; ``learn_eps_lf`` learns eps (as log eps),
    ``learn_beta_zero`` learns beta_0 (as a logit). q_0 is the Gaussian bottleneck's (``mu``, ``logvar``)."""

    terms: ClassVar[dict[str, Term]] = {"kl": Term(label="beta")}

    def __init__(self, context: PartContext, prior: Prior | None = None, n_lf: int = 3, eps_lf: float = 1e-3,
                 beta_zero: float = 0.3, learn_eps_lf: bool = False, learn_beta_zero: bool = False) -> None:
        super().__init__(context, prior)
        check_hamiltonian(n_lf, eps_lf, beta_zero, learn_beta_zero)
        self.n_lf = int(n_lf)
        log_eps = torch.tensor(math.log(eps_lf))
        logit_beta = torch.tensor(math.log(beta_zero) - math.log1p(-beta_zero) if beta_zero < 1 else math.inf)
        self.log_eps = nn.Parameter(log_eps) if learn_eps_lf else nn.Buffer(log_eps)
        self.logit_beta_zero = nn.Parameter(logit_beta) if learn_beta_zero else nn.Buffer(logit_beta)
        self.model: ModelRef | None = None

    def bind(self, model: nn.Module) -> None:
        """Keep the model whose decoder and likelihood give log p(x|z)."""
        self.model = ModelRef(model)

    @property
    def eps_lf(self) -> torch.Tensor:
        return self.log_eps.exp()

    @property
    def beta_zero(self) -> torch.Tensor:
        return torch.sigmoid(self.logit_beta_zero)

    def log_joint(self, batch) -> LogTarget:
        """z -> log p(x|z) + log p(z) ``[S, B]`` for the batch's input x (and condition), through the bound model's
        decoder and likelihood."""
        require(self.model is not None and batch is not None, "bottleneck=hamiltonian needs the model's decoder "
                "and the input for log p(x, z); build it inside a model (aekit.build_model('hvae', ...)) or call "
                "flow() with a log_target")
        model = self.model()

        def log_target(z: torch.Tensor) -> torch.Tensor:
            # the sum of the elementwise log-densities: a fused nll (the Bernoulli's) has a first-order backward only
            log_px_z = -Likelihood.nll(model.likelihood, model.decode(z, batch.condition), batch.inputs)  # [S, B]
            return log_px_z + self.log_p(z, batch)

        return log_target

    @torch.compiler.disable  # the bound's gradient differentiates the leapfrog's gradients: a double backward,
    # which a compiled graph (aot_autograd) does not support; the rest of the model still compiles
    def flow(self, z0: torch.Tensor, gamma0: torch.Tensor, log_target: LogTarget) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_K, rho_K) ``[S, B, *L, D]`` each from z_0 and gamma_0: rho_0 = gamma_0 / sqrt(beta_0), then K leapfrog
        steps on ``log_target``, each followed by rho_k = sqrt(beta_{k-1} / beta_k) rho''."""
        create_graph = torch.is_grad_enabled()
        root_beta = tempering_schedule(self.beta_zero, self.n_lf)
        eps = self.eps_lf

        def gradient(z: torch.Tensor) -> torch.Tensor:
            return target_gradient(log_target, z, create_graph)

        z, rho, grad_z = z0, gamma0 / root_beta[0], None
        for k in range(1, self.n_lf + 1):
            z, rho, grad_z = leapfrog(z, rho, eps, gradient, grad_z)
            rho = (root_beta[k - 1] / root_beta[k]) * rho  # tempering
        return z, rho

    def forward(self, h: torch.Tensor, n_samples: int = 1, eps: torch.Tensor | None = None,
                batch=None) -> BottleneckOutput:
        params = self.posterior(h)
        z0 = self.rsample(params, n_samples, eps)  # [S, B, *L, D]
        gamma0 = torch.randn_like(z0)
        z, rho = self.flow(z0, gamma0, self.log_joint(batch))
        log_q = self.log_q(z0, params) + standard_normal_log_prob(gamma0)  # log q_K(z_K, rho_K|x), [S, B]
        log_p = self.log_p(z, batch) + standard_normal_log_prob(rho)  # log p(z_K) + log N(rho_K; 0, I), [S, B]
        return BottleneckOutput(z=z, mean=params["mu"], params=params, terms={"kl": (log_q - log_p).mean(0)},
                                stats={"eps_lf": self.eps_lf.detach(), "beta_zero": self.beta_zero.detach()},
                                given_log_q=log_q, given_log_p=log_p)
