"""Priors p(z): their own part, so that a learned prior (a mixture, VampPrior, a flow) can replace N(0, I).

A prior gives ``log_prob(z)`` summed over the latent dimensions, ``sample(n)``, and, where it is known in closed
form, the KL from a diagonal Gaussian posterior per latent dimension (``kl_from_gaussian``). A bottleneck uses
the closed form when the prior has one and a Monte Carlo estimate, ``E_q[log q(z|x) - log p(z)]``, otherwise.

A prior is built with its :class:`~aekit.parts.PartContext` (its ``latent_shape``); one that needs the built model
(a VampPrior encodes pseudo-inputs with the model's encoder) defines ``bind(model)``; one that depends on the
input or the condition sets ``conditional = True`` and takes the batch, ``log_prob(z, batch)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from aekit.config import require
from aekit.errors import DataError
from aekit.parts import ModelRef, PartContext, register_part

LOG_2PI = math.log(2 * math.pi)


class Prior(nn.Module):
    """p(z) over latents of shape ``latent_shape`` (``(D,)``, or ``(*L, D)`` for spatial latents), built from its
    context (or, by hand, from the latent shape itself). ``conditional``: ``log_prob`` takes the batch too."""

    conditional = False

    def __init__(self, context: PartContext | tuple[int, ...] | int) -> None:
        super().__init__()
        shape = context.latent_shape if isinstance(context, PartContext) else context
        self.latent_shape = (shape,) if isinstance(shape, int) else tuple(shape)

    @property
    def latent_dim(self) -> int:
        return self.latent_shape[-1]

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) summed over the latent dimensions: ``[..., *latent_shape] -> [...]``."""
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """``[n, *latent_shape]``."""
        raise NotImplementedError

    def kl_from_gaussian(self, mu: torch.Tensor, logvar: torch.Tensor, batch=None) -> torch.Tensor | None:
        """KL(N(mu, diag exp(logvar)) || p) per latent dimension ``[B, *latent_shape]``, or None where it has no
        closed form (a conditional prior reads its variable from ``batch``)."""
        return None

    def _sum_latent(self, t: torch.Tensor) -> torch.Tensor:
        return t.flatten(start_dim=t.dim() - len(self.latent_shape)).sum(-1)


@register_part("priors", "standard-normal", "p(z) = N(0, I), with the closed-form KL from a Gaussian posterior")
class StandardNormal(Prior):
    """p(z) = N(0, I); KL(N(mu, sigma^2) || N(0, 1)) = 1/2 (mu^2 + sigma^2 - 1 - log sigma^2) per dimension."""

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * self._sum_latent(z.pow(2) + LOG_2PI)

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        return torch.randn(n, *self.latent_shape, generator=generator, device=device)

    def kl_from_gaussian(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def draw_from_mixture(weights: torch.Tensor, means: torch.Tensor, scale: torch.Tensor, n: int,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` draws ``[n, d]`` from sum_k pi_k N(mu_k, S_k S_k^T): k ~ pi, then z = mu_k + S_k eps, eps ~ N(0, I),
    for ``weights [K]``, ``means [K, d]`` and ``scale`` either ``[K, d]`` (diagonal: the standard deviations) or
    ``[K, d, d]`` (lower-triangular: the covariances' Cholesky factors). With a ``generator`` the draws are made on
    the CPU, so that a seed gives the same samples on any device."""
    if generator is not None:
        weights, means, scale = weights.cpu(), means.cpu(), scale.cpu()
    k = torch.multinomial(weights, n, replacement=True, generator=generator)  # [n]
    eps = torch.randn(n, means.shape[1], generator=generator, device=means.device, dtype=means.dtype)  # [n, d]
    if scale.dim() == 3:
        return means[k] + (scale[k] @ eps.unsqueeze(-1)).squeeze(-1)
    return means[k] + scale[k] * eps


MIXTURE_CHUNK = 1 << 22  # elements of [rows, K, d] evaluated at a time, so that memory stays bounded for large K


def diagonal_mixture_log_prob(z: torch.Tensor, log_weights: torch.Tensor, mu: torch.Tensor,
                              logvar: torch.Tensor) -> torch.Tensor:
    """log sum_k pi_k N(z; mu_k, diag exp(logvar_k)) for ``z [..., d]``, ``log_weights [K]`` (log pi_k) and
    ``mu, logvar [K, d]``: ``[...]``, evaluated in chunks of rows (:data:`MIXTURE_CHUNK`)."""
    lead, (k, d) = z.shape[:-1], mu.shape
    flat = z.reshape(-1, 1, d)  # [N, 1, d]
    rows = max(1, MIXTURE_CHUNK // (k * d))
    inv_var = torch.exp(-logvar)
    log_norm = log_weights - 0.5 * (logvar.sum(-1) + d * LOG_2PI)  # [K]
    out = [(log_norm - 0.5 * ((chunk - mu).pow(2) * inv_var).sum(-1)).logsumexp(-1)  # [rows, K] -> [rows]
           for chunk in flat.split(rows)]
    return torch.cat(out).view(lead)


def gaussian_kl(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor,
                logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_q, sigma_q^2) || N(mu_p, sigma_p^2)) per coordinate, in closed form:
    1/2 (log sigma_p^2 - log sigma_q^2 + (sigma_q^2 + (mu_q - mu_p)^2) / sigma_p^2 - 1)."""
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) * torch.exp(-logvar_p) - 1.0)


@register_part("priors", "gaussian-mixture", "a learned mixture of K diagonal Gaussians: means, log-variances and "
               "softmax weights trained with the model")
class GaussianMixture(Prior):
    """p(z) = sum_k pi_k N(z; mu_k, diag sigma_k^2), pi = softmax(a), over the code flattened to
    d = prod(latent_shape) coordinates, every parameter learned with the model (the mixture-of-Gaussians prior of
    Tomczak & Welling 2018, Sec. 2.2; Dilokthanakul et al. 2016). KL(q || p) to a mixture has no closed form, so a
    Gaussian posterior's KL is the Monte Carlo estimate E_q[log q(z|x) - log p(z)]; with one component the mixture
    is N(mu_1, diag sigma_1^2) and the KL is the closed form (:func:`gaussian_kl`).

    ``components``: K; the means start at K draws from N(0, I) (apart, so that the components do not stay alike),
    the log-variances at 0 and the weights uniform."""

    def __init__(self, context: PartContext, components: int = 10) -> None:
        super().__init__(context)
        require(int(components) == components and components >= 1, f"prior.components={components}: a mixture "
                "needs at least one component; give a whole number >= 1")
        d = math.prod(self.latent_shape)
        self.means = nn.Parameter(torch.randn(int(components), d))  # mu_k [K, d]
        self.logvars = nn.Parameter(torch.zeros(int(components), d))  # log sigma_k^2 [K, d]
        self.logits = nn.Parameter(torch.zeros(int(components)))  # a [K], pi = softmax(a)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        flat = z.flatten(start_dim=z.dim() - len(self.latent_shape))  # [..., d]
        return diagonal_mixture_log_prob(flat, self.logits.log_softmax(0), self.means, self.logvars)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        z = draw_from_mixture(self.logits.softmax(0), self.means, torch.exp(0.5 * self.logvars), n, generator)
        return z.view(n, *self.latent_shape).to(device if device is not None else z.device)

    def kl_from_gaussian(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor | None:
        if len(self.logits) > 1:
            return None
        shape = self.latent_shape
        return gaussian_kl(mu, logvar, self.means[0].view(shape), self.logvars[0].view(shape))  # [B, *latent_shape]


FIT_CHUNK = 1024  # examples embedded at a time when a prior is fitted to the training codes


@register_part("priors", "ex-post-gmm", "a Gaussian mixture fitted to the training codes after training (ex-post "
               "density estimation); N(0, I) until then")
class ExPostGaussianMixture(Prior):
    """p(z) = sum_k pi_k N(z; mu_k, Sigma_k), full covariances, over the code flattened to d = prod(latent_shape)
    coordinates, fitted by EM to the codes of the training examples once training is over: Ghosh et al.'s
    (2020) ex-post density estimation, which makes a deterministic autoencoder (RAE) a generative model.

    Until it is fitted every component is N(0, I), so the mixture is N(0, I). The loop calls
    :meth:`fit_after_training` (:func:`aekit.parts.fit_after_training`) on the trained model, which embeds the
    training examples it is given and runs EM (:func:`fit_gaussian_mixture`). The mixture lives in buffers
    (``weights [K]``, ``means [K, d]``, ``scale_tril [K, d, d]``, the covariances' Cholesky factors, ``fitted``),
    so the saved model (safetensors) carries it and ``model.sample(n)`` draws from it."""

    def __init__(self, context: PartContext, components: int = 10, iterations: int = 100) -> None:
        super().__init__(context)
        require(components >= 1, f"prior.components={components} must be >= 1")
        require(iterations >= 1, f"prior.iterations={iterations} must be >= 1")
        d = math.prod(self.latent_shape)
        self.iterations = iterations
        self.register_buffer("weights", torch.full((components,), 1.0 / components))
        self.register_buffer("means", torch.zeros(components, d))
        self.register_buffer("scale_tril", torch.eye(d).expand(components, d, d).clone())
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self.model = None

    def bind(self, model) -> None:
        self.model = ModelRef(model)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        flat = z.flatten(start_dim=z.dim() - len(self.latent_shape))  # [..., d]
        components = torch.distributions.MultivariateNormal(self.means, scale_tril=self.scale_tril)
        return (components.log_prob(flat.unsqueeze(-2)) + self.weights.log()).logsumexp(-1)  # [..., K] -> [...]

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """``[n, *latent_shape]``: a component k ~ pi, then mu_k + L_k eps (:func:`draw_from_mixture`)."""
        z = draw_from_mixture(self.weights, self.means, self.scale_tril, n, generator)  # [n, d]
        return z.view(n, *self.latent_shape).to(device if device is not None else z.device)

    def fit_after_training(self, batch) -> None:
        """Fit the mixture to the codes of ``batch`` (the model's ``embed``, in chunks), by EM."""
        model = self.model()
        codes = torch.cat([model.embed(batch.select(slice(i, i + FIT_CHUNK))).flatten(1)
                           for i in range(0, len(batch), FIT_CHUNK)])  # [N, d]
        weights, means, scale_tril = fit_gaussian_mixture(codes, len(self.weights), self.iterations)
        for buffer, value in ((self.weights, weights), (self.means, means), (self.scale_tril, scale_tril)):
            buffer.copy_(value.to(buffer))
        self.fitted.fill_(True)


def fit_gaussian_mixture(x: torch.Tensor, components: int, iterations: int = 100, tolerance: float = 1e-5,
                         floor: float = 1e-6, seed: int = 0,
                         history: list[float] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A K-component Gaussian mixture with full covariances fitted to ``x [N, d]`` by EM (Dempster, Laird & Rubin
    1977), in float64: ``(weights [K], means [K, d], scale_tril [K, d, d])``. Started from K distinct examples
    drawn under ``seed``, each example assigned to the nearest; stops after ``iterations`` or when the mean
    log-likelihood gains less than ``tolerance``; ``floor`` is added to every covariance's diagonal. ``history``, where
    given, receives the mean log-likelihood of ``x`` after each iteration."""
    x = x.detach().double().cpu()
    n, d = x.shape
    if n < components:
        raise DataError(f"a mixture of {components} components needs at least {components} codes, got {n}; fit "
                        "fewer components (prior.components) or give more examples")
    start = x[torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:components]]  # [K, d]
    nearest = torch.cdist(x, start).argmin(1)  # [N]
    resp = torch.nn.functional.one_hot(nearest, components).double()  # [N, K]
    previous = -math.inf
    for _ in range(iterations):
        weights, means, scale_tril = _maximisation(x, resp, floor)
        log_joint = (torch.distributions.MultivariateNormal(means, scale_tril=scale_tril).log_prob(x.unsqueeze(1))
                     + weights.log())  # [N, K]
        log_likelihood = log_joint.logsumexp(1, keepdim=True)  # [N, 1]
        resp = (log_joint - log_likelihood).exp()
        mean_ll = log_likelihood.mean().item()
        if history is not None:
            history.append(mean_ll)
        if mean_ll - previous < tolerance:
            break
        previous = mean_ll
    return _maximisation(x, resp, floor)


def _maximisation(x: torch.Tensor, resp: torch.Tensor, floor: float):
    """EM's M step: the weights, means and covariances' Cholesky factors given the responsibilities ``[N, K]``."""
    counts = resp.sum(0) + 10 * torch.finfo(x.dtype).eps  # [K]
    means = resp.T @ x / counts.unsqueeze(1)  # [K, d]
    eye = torch.eye(x.shape[1], dtype=x.dtype)
    covariances = torch.stack([((x - means[k]) * resp[:, k:k + 1]).T @ (x - means[k]) / counts[k] + floor * eye
                               for k in range(len(counts))])  # [K, d, d]
    return counts / counts.sum(), means, torch.linalg.cholesky(covariances)
