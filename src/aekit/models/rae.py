"""Regularised autoencoder, RAE (Ghosh, Sajjadi, Vergari, Black & Schoelkopf 2020, "From Variational to
Deterministic Autoencoders").

A deterministic autoencoder regularised instead of made stochastic: an L2 penalty on the code keeps the latent
space bounded, and a penalty on the decoder keeps it smooth,

    L_RAE = L_REC + beta * L_Z + lambda * L_REG,   L_Z = 1/2 ||z||_2^2,

with L_REC = -log p(x | dec(z)) and L_REG, by ``decoder_penalty``:

- ``l2`` (RAE-L2): ||theta_dec||_2^2, weight decay on every decoder parameter, one value per batch;
- ``gradient`` (RAE-GP): ||grad_z dec(z)||_2^2, the squared Frobenius norm of the decoder's Jacobian at the code,
  estimated with one backward pass by Hutchinson's estimator, ||J^T v||^2 for a Rademacher vector v in the
  decoder's output space (E[v v^T] = I, so its mean is ||J||_F^2; ``projections`` averages more), the code held
  fixed so that the penalty's gradient reaches the decoder.

Terms: ``recon``, ``code`` weighted beta and ``decoder`` weighted lambda (``beta`` and ``lambda_`` are shorthand
for ``terms.code`` and ``terms.decoder``). The defaults, beta = lambda = 1e-3, are starting points for aekit's
loss, summed over the data's dimensions; the paper tunes both per data set.

Ex-post density estimation: sampling needs a density over the codes, so once training is over a Gaussian
mixture with full covariances (10 components; ``prior.components``) is fitted by EM to the codes of up to 10,000
training examples (the prior ``ex-post-gmm``, :class:`aekit.nn.priors.ExPostGaussianMixture`, fitted by the loop's
after-training call, :func:`aekit.parts.fit_after_training`). It is saved with the model's weights, so
``model.sample(n)`` and ``aekit sample RUN`` draw z from it and decode.
"""

from __future__ import annotations

from dataclasses import dataclass

from aekit.config import require_choice, require_weight
from aekit.models.base import Autoencoder, ProjectedConfig
from aekit.nn.regularisers import DECODER_PENALTIES
from aekit.objectives import Term
from aekit.registry import register_model


@dataclass(frozen=True)
class RAEConfig(ProjectedConfig):
    """``beta``: the code penalty's weight; ``lambda_``: the decoder penalty's; ``decoder_penalty``: l2 or
    gradient; ``projections``: the gradient penalty's probe vectors; ``prior``: the ex-post mixture."""

    prior: str = "ex-post-gmm"
    beta: float = 1e-3
    lambda_: float = 1e-3
    decoder_penalty: str = "l2"
    projections: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        require_weight(self.beta, "beta")
        require_choice(self.decoder_penalty, DECODER_PENALTIES, "decoder_penalty")


@register_model("rae", config=RAEConfig,
                description="Regularised autoencoder: 1/2 ||z||^2, decoder L2 or gradient penalty, an ex-post "
                            "Gaussian mixture to sample from (Ghosh et al. 2020)")
class RAE(Autoencoder):
    default_regulariser = "rae"
    needs_prior = True  # the ex-post mixture, which only sampling reads

    def own_terms(self) -> dict[str, Term]:
        return {**super().own_terms(), **self.regulariser_terms(code=self.config.beta, decoder=self.config.lambda_)}
