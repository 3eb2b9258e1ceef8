"""Decoder likelihoods p(x | z).

Convention used throughout aekit: a likelihood returns the negative log-likelihood of each example,
summed over all data dimensions, in nats. ``params`` is the raw decoder output, ``[..., C * m, H, W]``
(or ``[..., D * m]`` for tables) where ``m = param_multiplier`` parameters per data dimension.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from aekit.errors import ConfigError
from aekit.parts import PartContext, build_part, register_part


class Likelihood(nn.Module):
    """p(x | z) with parameters predicted by the decoder."""

    param_multiplier: int = 1

    def __init__(self, data_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.data_shape = tuple(data_shape)

    def split(self, params: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Split ``params [..., C*m, ...]`` into ``m`` tensors of the data's shape along the channel axis."""
        if self.param_multiplier == 1:
            return (params,)
        channel_axis = params.dim() - len(self.data_shape)
        return params.chunk(self.param_multiplier, dim=channel_axis)

    def log_prob_elementwise(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x | z) per example, summed over data dims: ``params [..., B, *P], x [B, *S] -> [..., B]``."""
        log_px = self.log_prob_elementwise(params, x)
        return -log_px.flatten(start_dim=log_px.dim() - len(self.data_shape)).sum(-1)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """E[x | z], the reconstruction shown to a person."""
        raise NotImplementedError

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class _BernoulliNLL(torch.autograd.Function):
    """-log p(x|z) of a Bernoulli with logits l, summed over the last ``dims`` dims:

        sum_d softplus(l_d) - x_d l_d,   with gradients  d/dl = sigmoid(l) - x,  d/dx = -l.

    Written as one function so that the forward is two element-wise passes and a sum, and the backward two
    passes, where composing ``binary_cross_entropy_with_logits``, the negations and the sum takes about twice
    as many passes over the ``[S, B, *S]`` logits and as many autograd nodes. Computed in at least float32, as
    autocast computes ``binary_cross_entropy_with_logits``; ``x`` broadcasts against the logits."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, x: torch.Tensor, dims: int) -> torch.Tensor:
        ctx.dims, ctx.logits_dtype, ctx.x_dtype = dims, logits.dtype, x.dtype  # the gradients' dtypes
        dtype = torch.promote_types(torch.promote_types(logits.dtype, x.dtype), torch.float32)
        l, x = logits.to(dtype), x.to(dtype)
        ctx.save_for_backward(l, x)
        per_dim = F.softplus(l).addcmul_(l, x, value=-1.0)  # [..., B, *S]
        return per_dim.flatten(start_dim=per_dim.dim() - dims).sum(-1)  # [..., B]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        l, x = ctx.saved_tensors
        grad = grad.reshape(*grad.shape, *(1,) * ctx.dims)  # [..., B] -> [..., B, 1, ...]
        grad_logits = grad_x = None
        if ctx.needs_input_grad[0]:
            grad_logits = torch.sigmoid(l).sub_(x).mul_(grad).to(ctx.logits_dtype)
        if ctx.needs_input_grad[1]:
            grad_x = (-l * grad).sum_to_size(x.shape).to(ctx.x_dtype)
        return grad_logits, grad_x, None


class Bernoulli(Likelihood):
    """Bernoulli with logits: log p(x|z) = x log sigmoid(l) + (1-x) log sigmoid(-l), for x in [0, 1]."""

    def log_prob_elementwise(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return -F.binary_cross_entropy_with_logits(params, x.expand_as(params), reduction="none")

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The sum of :meth:`log_prob_elementwise`'s negation, fused (:class:`_BernoulliNLL`)."""
        return _BernoulliNLL.apply(params, x, len(self.data_shape))

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(params)

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        return torch.bernoulli(torch.sigmoid(params))


class Gaussian(Likelihood):
    """Gaussian N(x; mu, sigma^2) with sigma fixed, or learned per data dimension (``learn_sigma``).

    log p(x|z) = -(x - mu)^2 / (2 sigma^2) - log sigma - log(2 pi) / 2.
    """

    def __init__(self, data_shape: tuple[int, ...], sigma: float = 1.0, learn_sigma: bool = False) -> None:
        super().__init__(data_shape)
        if sigma <= 0:
            raise ConfigError(f"sigma={sigma} must be positive")
        log_sigma = torch.full(self.data_shape, math.log(sigma))
        if learn_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)

    def log_prob_elementwise(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        log_sigma = self.log_sigma
        return -0.5 * ((x - params) * torch.exp(-log_sigma)) ** 2 - log_sigma - 0.5 * math.log(2 * math.pi)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return params

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        return params + torch.exp(self.log_sigma) * torch.randn_like(params)


class DiscretizedLogistic(Likelihood):
    """Discretised logistic for 8-bit data (Salimans et al. 2017, PixelCNN++), one component.

    x in [0, 1] holds ``bins`` levels; P(x) = sigmoid((x + h - mu)/s) - sigmoid((x - h - mu)/s), h = 1/(2(bins-1)),
    with the edge bins taking the whole tail. The decoder predicts mu and log s (two params per dimension).
    """

    param_multiplier = 2

    def __init__(self, data_shape: tuple[int, ...], bins: int = 256, min_log_scale: float = -7.0) -> None:
        super().__init__(data_shape)
        self.bins = bins
        self.min_log_scale = min_log_scale

    def _loc_scale(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_s = self.split(params)
        return mu, log_s.clamp(min=self.min_log_scale)

    def log_prob_elementwise(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mu, log_s = self._loc_scale(params)
        half_bin = 0.5 / (self.bins - 1)
        inv_s = torch.exp(-log_s)
        centred = x - mu
        cdf_plus = torch.sigmoid(inv_s * (centred + half_bin))
        cdf_minus = torch.sigmoid(inv_s * (centred - half_bin))
        log_cdf_plus = F.logsigmoid(inv_s * (centred + half_bin))  # log P(X <= x + h), the lowest bin
        log_one_minus_cdf_minus = -F.softplus(inv_s * (centred - half_bin))  # log P(X > x - h), the top bin
        # In the middle bins use the difference of CDFs; where it underflows, the density times the bin width.
        mid = inv_s * centred
        log_pdf_mid = mid - log_s - 2.0 * F.softplus(mid)
        log_mid = torch.where(
            cdf_plus - cdf_minus > 1e-5,
            torch.log((cdf_plus - cdf_minus).clamp(min=1e-12)),
            log_pdf_mid + math.log(2 * half_bin),
        )
        low_edge, high_edge = x < half_bin, x > 1.0 - half_bin
        return torch.where(low_edge, log_cdf_plus, torch.where(high_edge, log_one_minus_cdf_minus, log_mid))

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return self._loc_scale(params)[0].clamp(0.0, 1.0)

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        mu, log_s = self._loc_scale(params)
        u = torch.rand_like(mu).clamp(1e-5, 1 - 1e-5)
        x = mu + torch.exp(log_s) * (torch.log(u) - torch.log1p(-u))
        return (x.clamp(0, 1) * (self.bins - 1)).round() / (self.bins - 1)


for _name, _make, _what in (
    ("bernoulli", lambda context, sigma=1.0: Bernoulli(context.data_shape),
     "Bernoulli with logits, for data in [0, 1]"),
    ("gaussian", lambda context, sigma=1.0: Gaussian(context.data_shape, sigma=sigma),
     "Gaussian with fixed sigma (`sigma`)"),
    ("gaussian-learned", lambda context, sigma=1.0: Gaussian(context.data_shape, sigma=sigma, learn_sigma=True),
     "Gaussian with a learned sigma per data dimension"),
    ("logistic", lambda context, sigma=1.0, bins=256: DiscretizedLogistic(context.data_shape, bins=bins),
     "discretised logistic for data of `bins` levels (8-bit: 256; likelihood.bins=32 for 5-bit)"),
):
    register_part("likelihoods", _name, _what)(_make)


def make_likelihood(name: str, data_shape: tuple[int, ...] | PartContext, sigma: float = 1.0, **options) -> Likelihood:
    """The registered likelihood ``name`` for examples of ``data_shape`` (or a part context), with its settings."""
    context = data_shape if isinstance(data_shape, PartContext) else PartContext(data_shape=tuple(data_shape))
    return build_part("likelihoods", name, context=context, sigma=sigma, **options)
