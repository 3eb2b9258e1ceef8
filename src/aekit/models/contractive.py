"""Contractive autoencoder (Rifai, Vincent, Muller, Glorot & Bengio 2011, "Contractive Auto-Encoders: Explicit
Invariance During Feature Extraction").

An autoencoder whose code h = f(x) is made locally invariant to the input by the squared Frobenius norm of the
encoder's Jacobian,

    L = E_x[-log p(x | g(f(x)))] + lambda * ||J_f(x)||_F^2,   ||J_f(x)||_F^2 = sum_{j, i} (d h_j / d x_i)^2.

For the paper's encoder, one sigmoid layer h = sigmoid(W x + b), J = diag(h (1 - h)) W and the penalty has the
closed form

    ||J_f(x)||_F^2 = sum_j (h_j (1 - h_j))^2 ||W_j||^2,

computed from the forward's own code. The defaults build that model: ``hidden=()`` (the MLP encoder only
flattens, the bottleneck's linear map is the layer) and ``bottleneck.activation=sigmoid``; the decoder mirrors it,
one linear layer. Any other encoder (``hidden=512``, ``backbone=conv``, a Gaussian posterior's mean) is
penalised through its Jacobian by vector-Jacobian products (:class:`aekit.nn.regularisers.ContractivePenalty`):
``jacobian=exact`` takes one backward pass per code coordinate; ``jacobian=hutchinson`` estimates the norm without
bias as the mean of ||J^T v||^2 over ``projections`` Rademacher vectors v (E[v v^T] = I), one backward pass each;
``jacobian=auto`` (default) takes the closed form where it holds, else the exact norm where the code has no more
coordinates than ``projections``, else the estimate. The term ``contractive`` is per example, weighted lambda
(``lambda_``, shorthand for ``terms.contractive``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aekit.config import require_choice
from aekit.models.base import ProjectedConfig, RegularisedAutoencoder
from aekit.nn.regularisers import JACOBIAN_ESTIMATORS
from aekit.registry import register_model


@dataclass(frozen=True)
class ContractiveAEConfig(ProjectedConfig):
    """``lambda_``: the contractive term's weight; ``jacobian`` (auto, closed-form, exact, hutchinson) and
    ``projections``: how the Jacobian's norm is computed. The architecture defaults to the paper's one sigmoid
    layer."""

    hidden: tuple[int, ...] = ()
    options: dict[str, dict[str, Any]] = field(default_factory=lambda: {"bottleneck": {"activation": "sigmoid"}})
    lambda_: float = 0.1
    jacobian: str = "auto"
    projections: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        require_choice(self.jacobian, JACOBIAN_ESTIMATORS, "jacobian")


@register_model("contractive-ae", config=ContractiveAEConfig,
                description="Contractive autoencoder: reconstruction + lambda ||J_f(x)||_F^2 (Rifai et al. 2011)")
class ContractiveAE(RegularisedAutoencoder):
    default_regulariser = "contractive"
    lambda_term = "contractive"
