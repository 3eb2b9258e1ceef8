"""Ex-post samplers: a density fitted to a trained model's latents, to draw new latents from for the decoder.

A VAE's prior p(z) and its aggregate posterior q(z) = E_{p_data(x)} q(z|x) seldom agree after training, so decoding
prior draws visits holes in latent space that no training example fills. An ex-post sampler fits a density
p_hat(z) to the posterior means of the training examples once training is over and samples z ~ p_hat instead
(Ghosh et al. 2020, Sec. 4; Dai & Wipf 2019; Pythae's ``pythae.samplers``):

- ``prior``: the model's own p(z), for comparison (a VampPrior's mixture of posteriors where the model has one);
- ``gaussian-mixture``: sum_k pi_k N(mu_k, Sigma_k) with full covariances, fitted by EM (Ghosh et al. 2020);
- ``two-stage``: a second VAE on the latents, z = E[p(z|u)], u ~ N(0, I) (Dai & Wipf 2019, "Diagnosing and
  Enhancing VAE Models": the second stage closes the gap between q(z) and N(0, I));
- ``maf``: a masked autoregressive flow fitted by maximum likelihood (Papamakarios et al. 2017), exact log p_hat
  in one pass, D passes to sample;
- ``iaf``: the inverse-autoregressive direction of the same flow (Kingma et al. 2016): one pass to sample, D passes
  for log p_hat, so it fits slower and samples faster.

Every sampler is a registered part (``aekit.parts`` kind ``samplers``) with ``fit(z_train, z_val, steps,
generator)`` and ``sample(n, generator)`` over flat latents ``[N, d]``, d = prod(latent_shape). The fitted ones work
in standardised coordinates (each latent coordinate shifted and scaled to zero mean, unit variance over the
training latents). Fitting, saving and the sample-quality score live in :mod:`aekit.sampling`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from aekit.config import require
from aekit.nn.maf import MAFPrior
from aekit.nn.priors import LOG_2PI, ExPostGaussianMixture, fit_gaussian_mixture
from aekit.parts import ModelRef, PartContext, register_part


class Sampler(nn.Module):
    """A density over flat latents ``[N, d]`` to draw from. ``default_steps``: the fit's optimiser steps when the
    caller gives none (0: the fit is not iterative by gradient)."""

    default_steps = 0

    def __init__(self, context: PartContext) -> None:
        super().__init__()
        self.latent_dim = math.prod(context.latent_shape)  # d

    def fit(self, z_train: torch.Tensor, z_val: torch.Tensor, steps: int,
            generator: torch.Generator) -> dict[str, float]:
        """Fit to ``z_train [N, d]`` (``z_val [M, d]`` for held-out statistics); returns the fit's statistics."""
        return {}

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``[n, d]`` latents."""
        raise NotImplementedError

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p_hat(z) ``[N]`` of ``z [N, d]``."""
        raise NotImplementedError


@register_part("samplers", "prior", "the model's own prior p(z) (a VampPrior's mixture of posteriors where it has one)")
class PriorSampler(Sampler):
    """z ~ p(z), the prior the model was trained with; nothing to fit. Bound to the model (:meth:`bind`)."""

    def __init__(self, context: PartContext) -> None:
        super().__init__(context)
        self.model: ModelRef | None = None

    def bind(self, model: nn.Module) -> None:
        self.model = ModelRef(model)

    def prior(self) -> nn.Module:
        require(self.model is not None, "the prior sampler is not bound to a model; build it through "
                "aekit.sampling.build_sampler")
        return self.model().bottleneck.prior

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.prior().sample(n, generator=generator).flatten(1)  # [n, *L, D] -> [n, d]

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        prior = self.prior()
        return prior.log_prob(z.view(len(z), *prior.latent_shape))


class StandardisedSampler(Sampler):
    """A density p_u over standardised latents u = (z - m) / s, m and s the training latents' mean and standard
    deviation per coordinate: log p_hat(z) = log p_u(u) - sum_i log s_i. Subclasses give :meth:`fit_u`,
    :meth:`sample_u` and :meth:`log_prob_u`."""

    exact_density = True  # log_prob is log p_hat itself (else a lower bound on it)

    def __init__(self, context: PartContext) -> None:
        super().__init__(context)
        self.register_buffer("shift", torch.zeros(self.latent_dim))  # m [d]
        self.register_buffer("scale", torch.ones(self.latent_dim))  # s [d]

    def fit(self, z_train: torch.Tensor, z_val: torch.Tensor, steps: int,
            generator: torch.Generator) -> dict[str, float]:
        self.shift.copy_(z_train.mean(0))
        self.scale.copy_(z_train.std(0).clamp_min(1e-6))
        stats = self.fit_u(self.standardise(z_train), self.standardise(z_val), steps, generator)
        with torch.no_grad():
            for split, z in (("train", z_train), ("val", z_val)):
                if len(z):
                    key = f"{split}_nll" if self.exact_density else f"{split}_nll_bound"
                    stats[key] = -self.log_prob(z).mean().item()
        return stats

    def standardise(self, z: torch.Tensor) -> torch.Tensor:
        return (z.to(self.shift) - self.shift) / self.scale

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.sample_u(n, generator).to(self.shift) * self.scale + self.shift

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return self.log_prob_u(self.standardise(z)) - self.scale.log().sum()

    def fit_u(self, u_train: torch.Tensor, u_val: torch.Tensor, steps: int,
              generator: torch.Generator) -> dict[str, float]:
        raise NotImplementedError

    def sample_u(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def log_prob_u(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@register_part("samplers", "gaussian-mixture", "a K-component Gaussian mixture (full covariances) fitted by EM to "
               "the training latents (Ghosh et al. 2020)")
class GaussianMixtureSampler(StandardisedSampler):
    """p_u(u) = sum_k pi_k N(u; mu_k, Sigma_k), fitted by EM (:func:`aekit.nn.priors.fit_gaussian_mixture`: started
    from K training latents, at most ``iterations`` E and M steps). ``components``: K."""

    def __init__(self, context: PartContext, components: int = 10, iterations: int = 100) -> None:
        super().__init__(context)
        require(int(components) == components and components >= 1, f"sampler.components={components}: a mixture "
                "needs at least one component; give a whole number >= 1")
        require(int(iterations) == iterations and iterations >= 1, f"sampler.iterations={iterations}: EM needs at "
                "least one iteration; give a whole number >= 1")
        self.mixture = ExPostGaussianMixture(PartContext(latent_shape=(self.latent_dim,)), int(components),
                                             int(iterations))

    def fit_u(self, u_train: torch.Tensor, u_val: torch.Tensor, steps: int,
              generator: torch.Generator) -> dict[str, float]:
        history: list[float] = []
        seed = int(torch.randint(2**31 - 1, (), generator=generator))
        fitted = fit_gaussian_mixture(u_train, len(self.mixture.weights), self.mixture.iterations, seed=seed,
                                      history=history)
        buffers = (self.mixture.weights, self.mixture.means, self.mixture.scale_tril)
        for buffer, value in zip(buffers, fitted, strict=True):
            buffer.copy_(value.to(buffer))
        self.mixture.fitted.fill_(True)
        return {"em_iterations": len(history), "em_log_likelihood": history[-1]}

    def sample_u(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return self.mixture.sample(n, generator)

    def log_prob_u(self, u: torch.Tensor) -> torch.Tensor:
        return self.mixture.log_prob(u)


def maximise_likelihood(log_prob, parameters, u_train: torch.Tensor, steps: int, generator: torch.Generator,
                        lr: float = 1e-3, batch_size: int = 256) -> dict[str, float]:
    """Adam on -mean log_prob(u) over ``steps`` minibatches of ``u_train [N, d]``, drawn with ``generator``: the
    maximum-likelihood fit of a density's ``parameters``. Returns the last minibatch's NLL."""
    optimizer = torch.optim.Adam(parameters, lr=lr)
    loss = torch.zeros(())
    for _ in range(steps):
        rows = torch.randint(len(u_train), (min(batch_size, len(u_train)),), generator=generator)
        loss = -log_prob(u_train[rows]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {"steps": steps, "last_batch_nll_u": loss.item()}


class FlowSampler(StandardisedSampler):
    """A flow of ``length`` MADE steps (``hidden`` widths, ``activation``) over the standardised latents, fitted by
    maximum likelihood at learning rate ``lr`` (:func:`maximise_likelihood`)."""

    default_steps = 2000

    def __init__(self, context: PartContext, length: int = 4, hidden: tuple[int, ...] = (64, 64),
                 activation: str = "elu", lr: float = 1e-3) -> None:
        super().__init__(context)
        require(lr > 0, f"sampler.lr={lr} must be > 0")
        self.lr = lr
        self.flow = MAFPrior(PartContext(latent_shape=(self.latent_dim,)), length, hidden, activation)

    def fit_u(self, u_train: torch.Tensor, u_val: torch.Tensor, steps: int,
              generator: torch.Generator) -> dict[str, float]:
        with torch.enable_grad():
            return maximise_likelihood(self.log_prob_u, self.flow.parameters(), u_train, steps, generator, self.lr)


@register_part("samplers", "maf", "a masked autoregressive flow fitted by maximum likelihood to the training latents "
               "(Papamakarios et al. 2017): one pass for log p, D to sample")
class MAFSampler(FlowSampler):
    """u = f(e), e ~ N(0, I), f the MAF of :class:`aekit.nn.maf.MAFPrior`: log p_u(u) = log N(f^{-1}(u)) +
    log |det df^{-1}/du|, one pass; a sample runs f, D passes per step."""

    def sample_u(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return self.flow.sample(n, generator)

    def log_prob_u(self, u: torch.Tensor) -> torch.Tensor:
        return self.flow.log_prob(u)


@register_part("samplers", "iaf", "an inverse autoregressive flow fitted by maximum likelihood to the training "
               "latents (Kingma et al. 2016): one pass to sample, D for log p")
class IAFSampler(FlowSampler):
    """u = g(e), e ~ N(0, I), with g the MAF's one-pass map run as the generative direction: each step sets
    u_i = (e_i - mu_i(e_{<i})) exp(-alpha_i(e_{<i})) from the noise, so a sample is one pass per step, and

        log p_u(u) = log N(e; 0, I) - log |det dg/de|,   e = g^{-1}(u),   log |det dg/de| = -sum_k sum_i alpha_i^(k),

    where e = g^{-1}(u) takes D passes per step (:meth:`aekit.nn.maf.MAFPrior.forward_flow`)."""

    def sample_u(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        e = torch.randn(n, self.latent_dim, generator=generator).to(self.shift)  # [n, d]
        return self.flow.inverse(e)[0]

    def log_prob_u(self, u: torch.Tensor) -> torch.Tensor:
        e = self.flow.forward_flow(u)  # g^{-1}(u), [N, d]
        log_det = self.flow.inverse(e)[1]  # log |det dg/de| per coordinate, [N, d]
        return (-0.5 * (e.pow(2) + LOG_2PI) - log_det).sum(-1)


BOUND_SAMPLES = 16  # importance samples of the second stage's bound on log p_u(u)


@register_part("samplers", "two-stage", "a second VAE fitted to the training latents, sampled through its decoder "
               "(Dai & Wipf 2019)")
class TwoStageSampler(StandardisedSampler):
    """Dai & Wipf's (2019) second stage: a VAE q(u|z), p(z|u) = N(z; mu(u), diag gamma^2) with gamma learned
    (``likelihood=gaussian-learned``, one scale per coordinate where the paper learns one scalar), trained on the
    standardised latents by aekit's own training loop; z = mu(u), u ~ N(0, I). ``latent_dim``: u's size (the
    paper's: d, the first stage's); ``hidden``: the encoder's and decoder's widths; ``lr``: the training's;
    ``sigma``: gamma's starting value (below the paper's 1, where p(z|u) can match the standardised marginal
    without reading u at all, which a short fit seldom leaves). Its log-density is an importance-weighted bound, a
    lower bound in expectation, so its statistics are ``*_nll_bound``."""

    exact_density = False

    default_steps = 2000

    def __init__(self, context: PartContext, latent_dim: int = 0, hidden: tuple[int, ...] = (256, 256),
                 lr: float = 1e-3, sigma: float = 0.1) -> None:
        super().__init__(context)
        from aekit.registry import build_model

        require(int(latent_dim) == latent_dim and latent_dim >= 0, f"sampler.latent_dim={latent_dim} must be a "
                "whole number >= 1 (0: the first stage's latent size)")
        require(lr > 0, f"sampler.lr={lr} must be > 0")
        self.lr = lr
        self.stage2 = build_model("vae", data_shape=(self.latent_dim,), latent_dim=int(latent_dim) or self.latent_dim,
                                  hidden=tuple(int(w) for w in hidden), likelihood="gaussian-learned",
                                  sigma=sigma)

    def fit_u(self, u_train: torch.Tensor, u_val: torch.Tensor, steps: int,
              generator: torch.Generator) -> dict[str, float]:
        from aekit.data.base import Dataset, Splits
        from aekit.training.api import train

        splits = Splits(*(Dataset(u.float().cpu(), None, f"latents-{split}")
                          for split, u in (("train", u_train), ("val", u_val), ("test", u_val[:0]))))
        seed = int(torch.randint(2**31 - 1, (), generator=generator))
        self.stage2.train()
        result = train(self.stage2, splits, None, evaluate=False, steps=steps, lr=self.lr, seed=seed,
                       progress=False, eval_every=max(1, steps // 10))
        self.stage2.eval()
        return {"steps": steps, "stage2_best_val_loss": float(result.metrics.get("train/best_val_loss", math.nan))}

    def sample_u(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return self.stage2.sample(n, generator=generator)

    def log_prob_u(self, u: torch.Tensor) -> torch.Tensor:
        """The second stage's importance-weighted bound on log p_u(u) with :data:`BOUND_SAMPLES` samples of q(u|z)
        (Burda et al. 2016; :func:`aekit.metrics.likelihood.importance_sampled_log_likelihood`), a lower bound in
        expectation; its noise is drawn under a fixed seed, so that the same u gets the same value."""
        from aekit.metrics.likelihood import importance_sampled_log_likelihood

        d_u = self.stage2.bottleneck.latent_shape[-1]
        eps = torch.randn(BOUND_SAMPLES, len(u), d_u, generator=torch.Generator().manual_seed(0))  # [K, N, D_u]
        return importance_sampled_log_likelihood(self.stage2, u.float(), BOUND_SAMPLES, eps=eps.to(u.device))
