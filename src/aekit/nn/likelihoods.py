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

from aekit.errors import ConfigError, DataError
from aekit.parts import PartContext, build_part, register_part


class Likelihood(nn.Module):
    """p(x | z) with parameters predicted by the decoder."""

    param_multiplier: int = 1
    discrete: bool = False  # a distribution over a finite set of data values: -log p(x) is a code length

    def codes(self, x: torch.Tensor) -> bool:
        """Whether -log p(x|z) of the data ``x`` is a code length: a discrete likelihood on values it is a
        distribution over (the 8-bit likelihoods refuse other data before training)."""
        return self.discrete

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
    """Bernoulli with logits: log p(x|z) = x log sigmoid(l) + (1-x) log sigmoid(-l), for x in [0, 1]; a
    distribution over {0, 1} (``discrete``) on binary data, a cross-entropy only on grey levels."""

    discrete = True

    def codes(self, x: torch.Tensor) -> bool:
        """A distribution over {0, 1}: a code length on binary data only."""
        return bool(((x == 0) | (x == 1)).all())

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


def discretized_logistic_log_prob(x: torch.Tensor, mu: torch.Tensor, log_s: torch.Tensor,
                                   half_bin: float) -> torch.Tensor:
    """log P(x) of a logistic(mu, s) discretised into bins of width 2h on [0, 1] (Salimans et al. 2017, eq. 2):

        P(x) = sigma((x + h - mu)/s) - sigma((x - h - mu)/s),  the lowest bin sigma((h - mu)/s), the top one
        1 - sigma((1 - h - mu)/s),

    in log space: log sigma(t) = -softplus(-t) at the bottom, log(1 - sigma(t)) = -softplus(t) at the top, and in
    the middle the log of the difference, or, where it underflows, the density at the bin's centre times its
    width, log s^-1 + t - 2 softplus(t) + log 2h with t = (x - mu)/s. Broadcasts ``x``, ``mu``, ``log_s``."""
    inv_s = torch.exp(-log_s)
    centred = x - mu
    plus, minus = inv_s * (centred + half_bin), inv_s * (centred - half_bin)
    cdf_delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    log_cdf_plus = F.logsigmoid(plus)  # log P(X <= x + h), the lowest bin
    log_one_minus_cdf_minus = -F.softplus(minus)  # log P(X > x - h), the top bin
    mid = inv_s * centred
    log_pdf_mid = mid - log_s - 2.0 * F.softplus(mid)
    log_mid = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid + math.log(2 * half_bin))
    low_edge, high_edge = x < half_bin, x > 1.0 - half_bin
    return torch.where(low_edge, log_cdf_plus, torch.where(high_edge, log_one_minus_cdf_minus, log_mid))


def quantise(x: torch.Tensor, bins: int) -> torch.Tensor:
    """``x`` clipped to [0, 1] and rounded to the nearest of ``bins`` levels k / (bins - 1)."""
    return (x.clamp(0, 1) * (bins - 1)).round() / (bins - 1)


def logistic_noise(like: torch.Tensor) -> torch.Tensor:
    """Standard logistic draws log u - log(1 - u), u ~ U(0, 1) kept off 0 and 1, of the shape of ``like``."""
    u = torch.rand_like(like).clamp(1e-5, 1 - 1e-5)
    return torch.log(u) - torch.log1p(-u)


class DiscretizedLogistic(Likelihood):
    """Discretised logistic for 8-bit data (Salimans et al. 2017, PixelCNN++), one component.

    x in [0, 1] holds ``bins`` levels; P(x) = sigmoid((x + h - mu)/s) - sigmoid((x - h - mu)/s), h = 1/(2(bins-1)),
    with the edge bins taking the whole tail. The decoder predicts mu and log s (two params per dimension).
    """

    param_multiplier = 2
    discrete = True

    def __init__(self, data_shape: tuple[int, ...], bins: int = 256, min_log_scale: float = -7.0) -> None:
        super().__init__(data_shape)
        self.bins = bins
        self.min_log_scale = min_log_scale

    def _loc_scale(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_s = self.split(params)
        return mu, log_s.clamp(min=self.min_log_scale)

    def log_prob_elementwise(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mu, log_s = self._loc_scale(params)
        return discretized_logistic_log_prob(x, mu, log_s, 0.5 / (self.bins - 1))

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return self._loc_scale(params)[0].clamp(0.0, 1.0)

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        mu, log_s = self._loc_scale(params)
        return quantise(mu + torch.exp(log_s) * logistic_noise(mu), self.bins)


class EightBit(Likelihood):
    """A likelihood over the 256 levels k / 255 of 8-bit data scaled to [0, 1]: it checks, before a run's first
    step (:func:`aekit.parts.init_from_data`), that the training sample lies on those levels."""

    discrete = True
    levels = 256

    def init_from_data(self, batch) -> None:
        x = batch.inputs
        low, high = x.min().item(), x.max().item()
        if low < 0 or high > 1:
            raise DataError(f"likelihood={self.name} models 8-bit data scaled to [0, 1], but the data lie in "
                            f"[{low:.4g}, {high:.4g}]; scale uint8 images by 1/255 or choose likelihood=gaussian")
        k = x.float() * (self.levels - 1)  # float32 puts k/255 * 255 within 1e-4 of k
        off = (k - k.round()).abs()  # [B, *S]: how far each value is from its nearest level
        if off.max().item() > 1e-3:
            value = x.flatten()[off.flatten().argmax()].item()
            raise DataError(f"likelihood={self.name} models 8-bit data (the levels k/255), but the data hold "
                            f"{value:.6g}, which is not one of them; pass uint8 images scaled by 1/255 (not "
                            "normalised or resized) or choose likelihood=gaussian")


class Categorical(EightBit):
    """A 256-way categorical per data dimension (van den Oord et al. 2016, PixelRNN, sec. 3.4):

        p(x = k / 255 | z) = softmax(l)_k,   k = 0 .. 255,

    with the decoder predicting the 256 logits l of each dimension (``param_multiplier = 256``)."""

    name = "categorical"
    param_multiplier = 256

    def logits(self, params: torch.Tensor) -> torch.Tensor:
        """``params [..., 256 C, *s] -> [..., 256, C, *s]``: parameter j of channel c sits at j C + c."""
        channel_axis = params.dim() - len(self.data_shape)
        return params.unflatten(channel_axis, (self.levels, self.data_shape[0]))

    def log_prob_elementwise(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logits = self.logits(params)  # [..., B, 256, C, *s]
        level_axis = logits.dim() - len(self.data_shape) - 1
        log_p = logits.log_softmax(level_axis)  # [..., B, 256, C, *s]
        k = (x * (self.levels - 1)).round().long().clamp(0, self.levels - 1)  # the level's index  [B, C, *s]
        index = k.unsqueeze(-len(self.data_shape) - 1).expand(*log_p.shape[:level_axis], 1, *k.shape[1:])
        return log_p.gather(level_axis, index).squeeze(level_axis)  # [..., B, C, *s]

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        logits = self.logits(params)
        level_axis = logits.dim() - len(self.data_shape) - 1
        values = torch.linspace(0, 1, self.levels, dtype=logits.dtype, device=logits.device)
        values = values.view(self.levels, *(1,) * len(self.data_shape))  # [256, 1, 1..]
        return (logits.softmax(level_axis) * values).sum(level_axis)

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        logits = self.logits(params).movedim(params.dim() - len(self.data_shape), -1)  # [..., C, *s, 256]
        k = torch.distributions.Categorical(logits=logits).sample()  # [..., C, *s]
        return k.to(params.dtype) / (self.levels - 1)


class LogisticMixture(EightBit):
    """The discretised logistic mixture of PixelCNN++ (Salimans et al. 2017, eq. 2), for 8-bit data in [0, 1]:

        nu ~ sum_k pi_k logistic(mu_k, s_k),   P(x | pi, mu, s) = sum_k pi_k [sigma((x + h - mu_k)/s_k)
                                                                         - sigma((x - h - mu_k)/s_k)],

    h = 1/510, the edge bins taking the tails (:func:`discretized_logistic_log_prob`). On RGB images (3 channels)
    one mixture covers the whole pixel and, within a component, the channels depend on each other linearly as in
    PixelCNN++ (sec. 2.2):

        mu_R = mu_R,   mu_G = mu_G + alpha R,   mu_B = mu_B + beta R + gamma G,   alpha, beta, gamma = tanh(.),

    so p(R, G, B) = sum_k pi_k P_k(R) P_k(G | R) P_k(B | R, G); on other data each channel is a mixture of its own.
    Per channel the decoder predicts K logits, K means and K log scales, and on RGB K coefficients more
    (``param_multiplier`` = 3K or 4K): the pixel's mixture logits are the sum of its three channels' logits, and
    the R, G and B channels' coefficients are alpha, beta and gamma."""

    name = "logistic-mixture"

    def __init__(self, data_shape: tuple[int, ...], components: int = 10, min_log_scale: float = -7.0) -> None:
        super().__init__(data_shape)
        if isinstance(components, bool) or not isinstance(components, int) or components < 1:
            raise ConfigError(f"likelihood.components={components!r} must be a whole number >= 1, e.g. 10")
        self.components = components
        self.min_log_scale = min_log_scale
        self.rgb = len(self.data_shape) >= 2 and self.data_shape[0] == 3
        self.param_multiplier = (4 if self.rgb else 3) * components

    def parameters_of(self, params: torch.Tensor) -> dict[str, torch.Tensor]:
        """``params [..., m C, *s]`` as ``logit``, ``mu``, ``log_s`` (and ``coeff`` on RGB), each
        ``[..., K, C, *s]``: parameter j of channel c sits at j C + c, slot j = kind * K + k."""
        channel_axis = params.dim() - len(self.data_shape)
        kinds = ("logit", "mu", "log_s", "coeff")[: self.param_multiplier // self.components]
        slots = params.unflatten(channel_axis, (len(kinds), self.components, self.data_shape[0]))
        theta = dict(zip(kinds, slots.unbind(channel_axis), strict=True))  # each [..., K, C, *s]
        theta["log_s"] = theta["log_s"].clamp(min=self.min_log_scale)
        return theta

    def log_weights(self, theta: dict[str, torch.Tensor]) -> torch.Tensor:
        """log pi: ``[..., K, 1, *s]`` over the pixel on RGB, ``[..., K, C, *s]`` per channel otherwise."""
        logit = theta["logit"]
        channel_axis = logit.dim() - len(self.data_shape)
        if self.rgb:
            logit = logit.sum(channel_axis, keepdim=True)
        return logit.log_softmax(channel_axis - 1)

    def coupled_means(self, theta: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """mu of each channel given the channels before it, ``x [..., 1 or K, 3, *s]`` (PixelCNN++ sec. 2.2)."""
        channel_axis = -len(self.data_shape)  # from the end: x and theta may have different leading axes
        mu_r, mu_g, mu_b = theta["mu"].unbind(channel_axis)
        alpha, beta, gamma = torch.tanh(theta["coeff"]).unbind(channel_axis)
        r, g, _ = x.unbind(channel_axis)
        return torch.stack([mu_r, mu_g + alpha * r, mu_b + beta * r + gamma * g], channel_axis)

    def log_prob_elementwise(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p per independent unit: ``[..., B, *s]`` per pixel on RGB, ``[..., B, C, *s]`` per channel."""
        theta = self.parameters_of(params)
        x = x.unsqueeze(-len(self.data_shape) - 1)  # [B, 1, C, *s], against the components [..., B, K, C, *s]
        mu = self.coupled_means(theta, x) if self.rgb else theta["mu"]
        log_p = discretized_logistic_log_prob(x, mu, theta["log_s"], 0.5 / (self.levels - 1))  # [..., B, K, C, *s]
        channel_axis = log_p.dim() - len(self.data_shape)
        if self.rgb:  # log P_k(R) + log P_k(G | R) + log P_k(B | R, G)
            log_p = log_p.sum(channel_axis, keepdim=True)  # [..., B, K, 1, *s]
        log_mix = torch.logsumexp(self.log_weights(theta) + log_p, dim=channel_axis - 1)  # [..., B, 1 or C, *s]
        return log_mix.squeeze(channel_axis - 1) if self.rgb else log_mix

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        log_p = self.log_prob_elementwise(params, x)
        units = len(self.data_shape) - (1 if self.rgb else 0)
        return -log_p.flatten(start_dim=log_p.dim() - units).sum(-1)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """sum_k pi_k E_k[x], clipped to [0, 1]; on RGB E_k[G] = mu_G + alpha mu_R and E_k[B] = mu_B + beta mu_R +
        gamma E_k[G] (the component means, the bins' rounding and clipping aside)."""
        theta = self.parameters_of(params)
        mu = theta["mu"]
        if self.rgb:
            mu = self.coupled_means(theta, mu)  # G given mu_R
            mu = self.coupled_means(theta, mu)  # B given mu_R and E_k[G]
        pi = self.log_weights(theta).exp()
        return (pi * mu).sum(mu.dim() - len(self.data_shape) - 1).clamp(0.0, 1.0)

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        """A component k ~ pi, then each channel (on RGB in the order R, G, B, given the quantised draws before
        it) by the logistic's inverse CDF mu_k + s_k (log u - log(1 - u)), quantised to the 256 levels."""
        theta = self.parameters_of(params)
        log_pi = self.log_weights(theta)  # [..., K, 1 or C, *s]
        k_axis = log_pi.dim() - len(self.data_shape) - 1
        k = torch.distributions.Categorical(logits=log_pi.movedim(k_axis, -1)).sample().unsqueeze(k_axis)
        one = [*theta["mu"].shape[:k_axis], 1, *theta["mu"].shape[k_axis + 1 :]]  # [..., 1, C, *s]
        pick = {name: value.gather(k_axis, k.expand(one)) for name, value in theta.items()}  # component k's
        noise = torch.exp(pick["log_s"]) * logistic_noise(pick["mu"])
        if not self.rgb:
            return quantise(pick["mu"] + noise, self.levels).squeeze(k_axis)
        channel = torch.arange(3, device=params.device).view(3, *(1,) * (len(self.data_shape) - 1))  # [3, 1..]
        x = torch.zeros_like(pick["mu"])
        for c in range(3):  # R, then G given R, then B given R and G
            x = torch.where(channel == c, quantise(self.coupled_means(pick, x) + noise, self.levels), x)
        return x.squeeze(k_axis)


for _name, _make, _what in (
    ("bernoulli", lambda context, sigma=1.0: Bernoulli(context.data_shape),
     "Bernoulli with logits, for data in [0, 1]"),
    ("gaussian", lambda context, sigma=1.0: Gaussian(context.data_shape, sigma=sigma),
     "Gaussian with fixed sigma (`sigma`)"),
    ("gaussian-learned", lambda context, sigma=1.0: Gaussian(context.data_shape, sigma=sigma, learn_sigma=True),
     "Gaussian with a learned sigma per data dimension"),
    ("logistic", lambda context, sigma=1.0, bins=256: DiscretizedLogistic(context.data_shape, bins=bins),
     "discretised logistic for data of `bins` levels (8-bit: 256; likelihood.bins=32 for 5-bit)"),
    ("logistic-mixture", lambda context, sigma=1.0, components=10: LogisticMixture(context.data_shape, components),
     "PixelCNN++'s discretised logistic mixture of `components` (10), RGB channels coupled; 8-bit data in [0, 1]"),
    ("categorical", lambda context, sigma=1.0: Categorical(context.data_shape),
     "a 256-way categorical per data dimension (256 logits each); 8-bit data in [0, 1]"),
):
    register_part("likelihoods", _name, _what)(_make)


def make_likelihood(name: str, data_shape: tuple[int, ...] | PartContext, sigma: float = 1.0, **options) -> Likelihood:
    """The registered likelihood ``name`` for examples of ``data_shape`` (or a part context), with its settings."""
    context = data_shape if isinstance(data_shape, PartContext) else PartContext(data_shape=tuple(data_shape))
    return build_part("likelihoods", name, context=context, sigma=sigma, **options)
