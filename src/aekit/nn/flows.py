"""Normalising-flow posteriors: a diagonal Gaussian q_0(z_0|x) pushed through K invertible steps z_k = f_k(z_{k-1}).

By the change of variables (Rezende & Mohamed 2015, "Variational Inference with Normalizing Flows", eq. 7),

    z_0 ~ q_0(z_0|x) = N(mu(x), diag sigma^2(x)),   z_K = f_K o ... o f_1(z_0),
    log q_K(z_K|x) = log q_0(z_0|x) - sum_{k=1..K} log |det df_k / dz_{k-1}|,

so each step gives its sample and its log-determinant, and the bottleneck (``flow``,
:class:`NormalisingFlowPosterior`) scores every sample exactly along the path that drew it. The steps
(``bottleneck.flow``):

- ``planar`` (Rezende & Mohamed 2015, eq. 10-12 and Appendix A): f(z) = z + u^ tanh(w^T z + b), with
  log |det| = log |1 + u^^T psi(z)|, psi(z) = tanh'(w^T z + b) w. The step is invertible where w^T u^ >= -1; u^ is
  u moved along w so that it holds, u^ = u + (m(w^T u) - w^T u) w / ||w||^2, m(a) = -1 + log(1 + e^a).
- ``radial`` (Rezende & Mohamed 2015, eq. 13-14): f(z) = z + beta h(alpha, r) (z - z_r), r = ||z - z_r||,
  h(alpha, r) = 1 / (alpha + r), with log |det| = (D - 1) log(1 + beta h) + log(1 + beta h + beta h'(alpha, r) r),
  invertible where beta >= -alpha: alpha = softplus(a') > 0 and beta = -alpha + softplus(b').
- ``iaf``, inverse autoregressive flow (Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling 2016, Fig. 2 and
  Algorithm 1): the encoder emits mu, sigma and a context vector h; each step is an autoregressive (MADE; Germain
  et al. 2015) network of [z, h] giving m and s, and the numerically stable update

      sigma = sigmoid(s),   z = sigma * z + (1 - sigma) * m,   log |det| = sum_i log sigma_i,

  the Jacobian triangular because m_i and s_i depend on z_{<i} only; the order of z is reversed between steps.

The planar and radial parameters (u, w, b; z_r, alpha, beta) are amortised by default, a linear map of the encoder's
features as in Rezende & Mohamed; ``amortised=false`` makes them free parameters shared by every input. The KL term
is the Monte Carlo estimate (1/S) sum_s log q_K(z_K^s|x) - log p(z_K^s) over the S samples (no closed form), and
``importance_samples`` draws through the same path, so that the IWAE bounds and the importance-sampled log p(x) run
through the flow. On a grid of latents ``(*L, D)`` every position has its own flow over the last axis. The point
embedding (``mean``) is the image of the base mean, f_K o ... o f_1(mu): E[z_K|x] has no closed form.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from aekit.config import require, require_choice
from aekit.nn.backbones import ACTIVATIONS
from aekit.nn.bottlenecks import Bottleneck, BottleneckOutput, DiagonalGaussian
from aekit.nn.priors import Prior, StandardNormal
from aekit.objectives import Term
from aekit.parts import PartContext, register_part

Step = tuple[torch.Tensor, torch.Tensor]  # (z_k [..., D], log |det df_k / dz_{k-1}| [..., 1])


def planar_u_hat(u: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """u^ = u + (m(w^T u) - w^T u) w / ||w||^2, m(a) = -1 + softplus(a) (Rezende & Mohamed 2015, Appendix A), and
    w^T u^ = m(w^T u) >= -1, which keeps the planar step invertible: ``u, w [..., D] -> [..., D], [..., 1]``. The
    latter is held at -1 or above against rounding (w^T u << 0); at w = 0, u^ = u and w^T u^ = 0."""
    wu = (w * u).sum(-1, keepdim=True)  # [..., 1]
    u_hat = u + (F.softplus(wu) - 1.0 - wu) * w / w.pow(2).sum(-1, keepdim=True).clamp_min(1e-12)
    return u_hat, (w * u_hat).sum(-1, keepdim=True).clamp_min(-1.0)


def planar_step(z: torch.Tensor, u: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> Step:
    """f(z) = z + u^ tanh(w^T z + b) and log |1 + u^^T psi(z)|, psi(z) = (1 - tanh^2(w^T z + b)) w (Rezende &
    Mohamed 2015, eq. 10-12): ``z [..., D]``, ``u, w [..., D]`` and ``b [..., 1]`` broadcast against it."""
    u_hat, wu_hat = planar_u_hat(u, w)
    t = torch.tanh((w * z).sum(-1, keepdim=True) + b)  # [..., 1]
    return z + u_hat * t, torch.log1p((1.0 - t.pow(2)) * wu_hat)  # w^T u^ >= -1: 1 + u^^T psi(z) >= 0


def radial_alpha_beta(alpha_raw: torch.Tensor, beta_raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """alpha = softplus(a') > 0 and beta = -alpha + softplus(b') > -alpha: the radial step's invertibility
    (Rezende & Mohamed 2015, Appendix A)."""
    alpha = F.softplus(alpha_raw)
    return alpha, F.softplus(beta_raw) - alpha


def radial_step(z: torch.Tensor, z_r: torch.Tensor, alpha_raw: torch.Tensor, beta_raw: torch.Tensor) -> Step:
    """f(z) = z + beta h(alpha, r) (z - z_r), h = 1 / (alpha + r), r = ||z - z_r||, and
    log |det| = (D - 1) log(1 + beta h) + log(1 + beta h + beta h' r), where 1 + beta h + beta h' r
    = 1 + alpha beta h^2 (Rezende & Mohamed 2015, eq. 14): ``z, z_r [..., D]``, ``alpha_raw, beta_raw [..., 1]``."""
    alpha, beta = radial_alpha_beta(alpha_raw, beta_raw)
    diff = z - z_r
    h = 1.0 / (alpha + diff.norm(dim=-1, keepdim=True))  # [..., 1]
    log_det = (z.shape[-1] - 1) * torch.log1p(beta * h) + torch.log1p(alpha * beta * h.pow(2))
    return z + beta * h * diff, log_det


def iaf_step(z: torch.Tensor, m: torch.Tensor, s: torch.Tensor) -> Step:
    """sigma = sigmoid(s), z' = sigma * z + (1 - sigma) * m, and log |det| = sum_i log sigma_i for m and s of the
    earlier coordinates only (Kingma et al. 2016, Algorithm 1): ``z, m, s [..., D]``."""
    sigma = torch.sigmoid(s)
    return sigma * z + (1.0 - sigma) * m, F.logsigmoid(s).sum(-1, keepdim=True)  # log sigma, stable for any s


class AmortisedFlow(nn.Module):
    """K steps whose parameters theta_k (``params_per_step`` numbers each) are a linear map of the encoder's
    features (amortised), or free parameters shared by every input; a subclass gives :meth:`step`."""

    def __init__(self, features: int, latent_dim: int, length: int, amortised: bool) -> None:
        super().__init__()
        self.latent_dim, self.length, self.amortised = latent_dim, length, amortised
        n = length * self.params_per_step
        if amortised:
            self.proj = nn.Linear(features, n)
        else:
            self.theta = nn.Parameter(torch.randn(n))  # w = 0 would leave u^ undefined: start away from it

    @property
    def params_per_step(self) -> int:
        raise NotImplementedError

    def parameters_from(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """The steps' parameters ``theta [B, *L, K, P]`` from the features ``h [B, *L, F]``."""
        if self.amortised:
            theta = self.proj(h)  # [B, *L, K P]
        else:
            theta = self.theta.expand(*h.shape[:-1], -1)  # [B, *L, K P], the same for every input
        return {"theta": theta.unflatten(-1, (self.length, self.params_per_step))}  # [B, *L, K, P]

    def step(self, z: torch.Tensor, theta: torch.Tensor) -> Step:
        raise NotImplementedError

    def forward(self, z: torch.Tensor, params: dict[str, torch.Tensor]) -> Step:
        """z_K ``[S, B, *L, D]`` from z_0 and the sum of the steps' log |det| ``[S, B, *L, 1]``."""
        log_det = torch.zeros_like(z[..., :1])
        for k in range(self.length):
            z, log_det_k = self.step(z, params["theta"][..., k, :])  # theta_k [B, *L, P] broadcast over S
            log_det = log_det + log_det_k
        return z, log_det


class PlanarFlow(AmortisedFlow):
    """Planar steps (module docstring); theta_k = (u [D], w [D], b [1])."""

    @property
    def params_per_step(self) -> int:
        return 2 * self.latent_dim + 1

    def step(self, z: torch.Tensor, theta: torch.Tensor) -> Step:
        u, w, b = theta.split([self.latent_dim, self.latent_dim, 1], dim=-1)
        return planar_step(z, u, w, b)


class RadialFlow(AmortisedFlow):
    """Radial steps (module docstring); theta_k = (z_r [D], a' [1], b' [1])."""

    @property
    def params_per_step(self) -> int:
        return self.latent_dim + 2

    def step(self, z: torch.Tensor, theta: torch.Tensor) -> Step:
        z_r, alpha_raw, beta_raw = theta.split([self.latent_dim, 1, 1], dim=-1)
        return radial_step(z, z_r, alpha_raw, beta_raw)


class MaskedLinear(nn.Linear):
    """A linear map whose weight is multiplied by a fixed 0/1 ``mask [n_out, n_in]`` (MADE; Germain et al. 2015)."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.float(), persistent=False)  # rebuilt from the config on load

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """An autoregressive network of ``z [..., D]`` and a context ``h [..., C]`` giving ``m, s [..., D]`` where
    m_i and s_i depend on h and on the z_j earlier than z_i in ``order`` (a permutation of 1..D) only (Germain et al.
    2015; the context enters the first layer unmasked, Kingma et al. 2016; ``context_dim=0``: none). A hidden unit of
    degree d in 0..D-1 sees the coordinates of order <= d; an output of order i the hidden units of degree < i.
    ``s_bias``: the starting bias of s."""

    FORGET_BIAS = 1.0  # s starts near +1, sigma = sigmoid(s) near 0.73: close to the identity (Kingma et al. 2016)

    def __init__(self, order: torch.Tensor, context_dim: int, hidden: tuple[int, ...], activation: str,
                 s_bias: float = FORGET_BIAS) -> None:
        super().__init__()
        d = len(order)
        degrees = [order, *(torch.arange(width) % d for width in hidden)]  # inputs', then each hidden layer's
        self.layers = nn.ModuleList(MaskedLinear(after[:, None] >= before[None, :])
                                    for before, after in zip(degrees[:-1], degrees[1:], strict=True))
        self.out = MaskedLinear(order.repeat(2)[:, None] > degrees[-1][None, :])  # (m, s), each [D]
        self.context = nn.Linear(context_dim, (hidden or (2 * d,))[0]) if context_dim else None
        self.act = ACTIVATIONS[activation]()
        with torch.no_grad():
            self.out.bias[d:] = s_bias

    def forward(self, z: torch.Tensor, h: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        c = 0 if self.context is None else self.context(h)  # [B, *L, H_0], broadcast over S
        a = z
        for i, layer in enumerate(self.layers):
            a = layer(a) + (c if i == 0 else 0)  # [S, B, *L, H_i]
            a = self.act(a)
        out = self.out(a) + (c if not self.layers else 0)  # [S, B, *L, 2 D]
        m, s = out.chunk(2, dim=-1)
        return m, s


class InverseAutoregressiveFlow(nn.Module):
    """K IAF steps (module docstring) with the context h a linear map of the encoder's features; step k reads z in
    the order 1..D, reversed on every other step."""

    def __init__(self, features: int, latent_dim: int, length: int, context_dim: int, hidden: tuple[int, ...],
                 activation: str) -> None:
        super().__init__()
        self.length = length
        self.context = nn.Linear(features, context_dim)  # h, beside mu and sigma (Kingma et al. 2016, Fig. 2)
        order = torch.arange(1, latent_dim + 1)
        self.steps = nn.ModuleList(MADE(order.flip(0) if k % 2 else order, context_dim, hidden, activation)
                                   for k in range(length))

    def parameters_from(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """The context vector ``h [B, *L, C]`` from the encoder's features ``[B, *L, F]``."""
        return {"h": self.context(h)}

    def forward(self, z: torch.Tensor, params: dict[str, torch.Tensor]) -> Step:
        """z_K ``[S, B, *L, D]`` from z_0 and the sum of log sigma over the steps and coordinates ``[S, B, *L, 1]``."""
        log_det = torch.zeros_like(z[..., :1])
        for made in self.steps:
            z, log_det_k = iaf_step(z, *made(z, params["h"]))
            log_det = log_det + log_det_k
        return z, log_det


FLOWS = ("planar", "radial", "iaf")


def check_flow(flow: str, length: int, flow_key: str = "bottleneck.flow",
               length_key: str = "bottleneck.length") -> None:
    """One-line ConfigErrors for an unknown flow or a length below 1."""
    require_choice(flow, FLOWS, flow_key)
    require(int(length) == length and length >= 1, f"{length_key}={length}: a flow needs at least one step; give a "
            "whole number >= 1 (a Gaussian posterior without steps is bottleneck=gaussian)")


@register_part("bottlenecks", "flow", "a Gaussian q0(z0|x) pushed through K planar, radial or IAF steps "
               "(Rezende & Mohamed 2015; Kingma et al. 2016); Monte Carlo KL")
class NormalisingFlowPosterior(Bottleneck):
    """q_K(z_K|x): the diagonal Gaussian bottleneck's q_0 (:class:`~aekit.nn.bottlenecks.DiagonalGaussian`,
    ``q0``) followed by ``length`` = K steps of ``flow`` (module docstring). ``amortised``: planar and radial
    parameters from the features (default) or free. IAF only: ``context_dim``, the width of h; ``hidden``, the
    MADE's hidden widths; ``activation``, its nonlinearity."""

    stochastic = True
    terms: ClassVar[dict[str, Term]] = {"kl": Term(label="beta")}

    def __init__(self, context: PartContext, prior: Prior | None = None, flow: str = "planar", length: int = 2,
                 amortised: bool = True, hidden: tuple[int, ...] = (320,), context_dim: int = 16,
                 activation: str = "elu") -> None:
        super().__init__(context)
        check_flow(flow, length)
        hidden = tuple(hidden)
        require(all(int(w) == w and w >= 1 for w in hidden), f"bottleneck.hidden={list(hidden)} must hold positive "
                "widths (the MADE's hidden layers)")
        require(int(context_dim) == context_dim and context_dim >= 1, f"bottleneck.context_dim={context_dim} must be "
                "a whole number >= 1 (the width of the IAF's context vector h)")
        require_choice(activation, tuple(ACTIVATIONS), "bottleneck.activation")
        self.flow_name, self.length = flow, int(length)
        self.q0 = DiagonalGaussian(context)  # mu, log sigma^2 from the features; its sampling and density
        d, f = self.latent_dim, self.in_features
        if flow == "iaf":
            self.flow = InverseAutoregressiveFlow(f, d, self.length, int(context_dim), hidden, activation)
        else:
            self.flow = (PlanarFlow if flow == "planar" else RadialFlow)(f, d, self.length, bool(amortised))
        self.prior = prior if prior is not None else StandardNormal(context)

    def posterior(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """q_0's ``mu0``, ``logvar0`` ``[B, *L, D]`` and the flow's parameters (``theta [B, *L, K, P]`` or the
        context ``h [B, *L, C]``) from the features ``h [B, *L, F]``."""
        base = self.q0.posterior(h)
        return {"mu0": base["mu"], "logvar0": base["logvar"], **self.flow.parameters_from(h)}

    def transform(self, params: dict[str, torch.Tensor], n_samples: int,
                  eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``n_samples`` draws z_K ``[S, B, *L, D]`` (``eps``: q_0's standard-normal noise), their
        log q_K(z_K|x) ``[S, B]`` by the change of variables, and the steps' log |det| ``[S, B]``."""
        base = {"mu": params["mu0"], "logvar": params["logvar0"]}
        z0 = self.q0.rsample(base, n_samples, eps)  # [S, B, *L, D]
        z, log_det = self.flow(z0, params)  # [S, B, *L, D], [S, B, *L, 1]
        log_det = log_det.flatten(2).sum(-1)  # [S, B, *L, 1] -> [S, B]
        return z, self.q0.log_q(z0, base) - log_det, log_det

    def log_p(self, z: torch.Tensor, batch=None) -> torch.Tensor:
        """log p(z_K) under the prior ``[S, B]``."""
        return self.prior.log_prob(z, batch) if self.prior.conditional else self.prior.log_prob(z)

    def forward(self, h: torch.Tensor, n_samples: int = 1, eps: torch.Tensor | None = None,
                batch=None) -> BottleneckOutput:
        params = self.posterior(h)
        z, log_q, log_det = self.transform(params, n_samples, eps)
        log_p = self.log_p(z, batch)
        mean = self.flow(params["mu0"].unsqueeze(0), params)[0][0]  # f_K o ... o f_1(mu), [B, *L, D]
        return BottleneckOutput(z=z, mean=mean, params=params, terms={"kl": (log_q - log_p).mean(0)},
                                stats={"flow_log_det": log_det.mean().detach()}, given_log_q=log_q,
                                given_log_p=log_p)

    def importance_samples(self, params: dict[str, torch.Tensor], n_samples: int, eps: torch.Tensor | None = None,
                           batch=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``n_samples`` draws z_K ``[S, B, *L, D]`` through the flow, with log q_K(z_K|x) and log p(z_K) ``[S, B]``."""
        z, log_q, _ = self.transform(params, n_samples, eps)
        return z, log_q, self.log_p(z, batch)
