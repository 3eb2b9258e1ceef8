"""identifiable VAE (Khemakhem, Kingma, Monti & Hyvarinen 2020, "Variational Autoencoders and Nonlinear ICA: A
Unifying Framework").

The sources z are conditionally independent given an observed auxiliary variable u (a class, a time segment, the
factors of a factor dataset), and x = f(z) + noise:

    p(x, z | u) = p(x|z) p(z|u),   p(z|u) = prod_d N(z_d; mu_d(u), sigma_d^2(u))   (a Gaussian lambda(u)),
    log p(x|u) >= E_q(z|x,u)[log p(x|z)] - KL(q(z|x,u) || p(z|u))

with the posterior q(z|x,u) = N(mu(x, u), diag sigma^2(x, u)) (u joined to the encoder's features), the
conditional prior the ``conditional-gaussian`` part (:mod:`aekit.nn.conditional_prior`, closed-form KL) and a
decoder that sees z only. Under the paper's conditions (enough distinct values of u, the variances varying with
u) z is identified up to a permutation and a coordinate-wise map, which the mean correlation
coefficient measures (:func:`aekit.metrics.identifiability.mcc`). u is read from the batch (``auxiliary``):
one-hot labels, or a factor dataset's factors scaled to [0, 1]; ``model.sample(n, condition=u)`` draws z ~ p(z|u).

``auxiliary_encoder=true``: the Identifiable Double VAE (Mita, Filippone & Michiardi 2021). The conditional prior
is learnt as the encoder r(z|u) of a second VAE over u (decoder p(u|z), prior N(0, I)), and the loss adds that VAE's
negative ELBO, ``u_recon`` + ``u_kl`` (:meth:`~aekit.nn.conditional_prior.ConditionalGaussian.auxiliary_terms`):

    L = E_q(z|x,u)[-log p(x|z)] + KL(q(z|x,u) || r(z|u)) + E_r(z|u)[-log p(u|z)] + KL(r(z|u) || N(0, I)).

Simplified here: p(u|z) is a Gaussian of unit variance (one-hot labels included), both ELBOs weigh 1, and the
posterior still reads u, as iVAE's does; the paper's semi-supervised variant, which infers a missing u, is not built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

import aekit.nn.conditional_prior  # noqa: F401  (registers the conditional-gaussian prior)
from aekit.config import require, require_choice
from aekit.data.batch import Batch
from aekit.errors import ConfigError
from aekit.models.auxiliary import AUXILIARY, auxiliary_of, fit_auxiliary_values, one_hot
from aekit.models.vae import VAE, VAEConfig
from aekit.nn.backbones import make_backbone
from aekit.objectives import Term
from aekit.registry import register_model


@dataclass(frozen=True)
class IVAEConfig(VAEConfig):
    """``auxiliary``: ``labels`` or ``factors``, what u is; ``condition_dim``: u's width and ``factor_levels``
    each factor's levels (both set from the data); ``prior``: ``conditional-gaussian`` (its MLP's width:
    ``prior.hidden``, 50; a zero mean: ``prior.learn_mean=false``); ``auxiliary_encoder``: the prior learnt as the
    encoder of a second VAE over u (IDVAE, module docstring)."""

    auxiliary: str = "labels"
    factor_levels: tuple[int, ...] = ()
    prior: str = "conditional-gaussian"
    auxiliary_encoder: bool = False
    shorthands: ClassVar[dict[str, tuple[str, str]]] = {"auxiliary_encoder": ("prior", "auxiliary_vae")}

    def __post_init__(self) -> None:
        super().__post_init__()
        require_choice(self.auxiliary, AUXILIARY, "auxiliary")
        require(self.prior == "conditional-gaussian", f"prior={self.prior!r}: ivae's prior depends on u; use "
                "prior=conditional-gaussian")

    @property
    def condition(self) -> str:
        """What the condition is, as a conditional model names it: class ``labels`` or a ``vector``."""
        return "labels" if self.auxiliary == "labels" else "vector"


@register_model("ivae", config=IVAEConfig,
                description="identifiable VAE: q(z|x,u), a conditionally factorial prior p(z|u) and a decoder of z "
                            "alone (Khemakhem et al. 2020)")
class IVAE(VAE):
    def __init__(self, config: IVAEConfig, *args: Any, decoder: torch.nn.Module | None = None, **kwargs: Any) -> None:
        if config.condition_dim < 1:
            raise ConfigError("ivae needs condition_dim >= 1: the width of u (set from labelled or factor data when "
                              "trained)")
        super().__init__(config, *args, decoder=decoder, **kwargs)
        if decoder is None:  # p(x|z): the decoder reads z alone, not [z, u]
            context = self.context.replace(condition_dim=0, feature_shape=(), latent_shape=(config.latent_dim,))
            _, self.decoder = make_backbone(config.backbone, context, config.hidden, config.channels,
                                            config.activation, **config.options.get("backbone", {}))

    @classmethod
    def fit_to_data(cls, values: dict[str, Any], splits) -> tuple[dict[str, Any], list[str]]:
        values, notes = super().fit_to_data(values, splits)
        return fit_auxiliary_values(values, splits, "condition_dim", "ivae"), notes

    def own_terms(self) -> dict[str, Term]:
        """The VAE's terms, and the second VAE's ``u_recon`` and ``u_kl`` (weight 1) with ``auxiliary_encoder``."""
        extra = {"u_recon": Term(), "u_kl": Term()} if self.config.auxiliary_encoder else {}
        return {**super().own_terms(), **extra}

    def forward(self, x: torch.Tensor | Batch, *args: Any, condition: torch.Tensor | None = None, **kwargs: Any):
        """The VAE's output given u, with the second VAE's terms over u where ``auxiliary_encoder`` is set."""
        out = super().forward(x, *args, condition=condition, **kwargs)
        if self.config.auxiliary_encoder:
            u = self.condition_of(x) if isinstance(x, Batch) else self.check_condition(condition, x.shape[0])
            out.terms.update(self.bottleneck.prior.auxiliary_terms(u))
        return out

    def condition_of(self, batch: Batch) -> torch.Tensor:
        """u ``[B, U]``: the batch's labels one-hot, or its factors in [0, 1]."""
        c = self.config
        return auxiliary_of(batch, c.auxiliary, c.condition_dim, tuple(c.factor_levels), "ivae")

    def make_condition(self, condition: Any, n: int) -> torch.Tensor | None:
        """A class id (``3``) or ids ``[n]`` become one-hot u for ``auxiliary=labels``; a vector is taken as u."""
        if self.config.auxiliary == "labels" and condition is not None:
            ids = torch.as_tensor(condition)
            if not ids.is_floating_point() and ids.dim() <= 1:
                return one_hot(ids.expand(n) if ids.dim() == 0 else ids, self.config.condition_dim)
        return super().make_condition(condition, n)

    def decode(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """p(x|z) parameters: u does not reach the decoder."""
        return super().decode(z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, condition: Any = None) -> torch.Tensor:
        """Means of p(x|z) for z ~ p(z|u), u = ``condition`` (a class id for labels, or u ``[U]`` / ``[n, U]``)."""
        if n < 1:
            raise ConfigError(f"n={n}: the number of samples must be >= 1")
        u = self.check_condition(self.make_condition(condition, n), n)
        z = self.bottleneck.prior.sample(n, generator=generator, condition=u)  # [n, *L, D]
        return self.likelihood.mean(self.decode(z))
