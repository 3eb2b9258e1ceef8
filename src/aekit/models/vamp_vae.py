"""VAE with a VampPrior (Tomczak & Welling 2018, "VAE with a VampPrior").

The VAE's bound with p(z) = (1/K) sum_k q(z|u_k), a mixture of the posteriors of K learned pseudo-inputs u_k
(:mod:`aekit.nn.vamp`), and the KL estimated over the S posterior samples:

    ELBO(x) = E_q(z|x)[log p(x|z) + log (1/K) sum_k q(z|u_k) - log q(z|x)].

``components`` = K (500, the paper's) is shorthand for ``prior.components``; ``prior.init=data`` starts the
pseudo-inputs from training examples and ``prior.squash=false`` frees them from [0, 1]. The prior is a part
(``prior=vamp``), so any variational model takes it (``aekit train iwae prior=vamp``); this entry names the recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import aekit.nn.vamp  # noqa: F401  (registers prior=vamp)
from aekit.config import require
from aekit.models.vae import VAE, VAEConfig
from aekit.registry import register_model


@dataclass(frozen=True)
class VampVAEConfig(VAEConfig):
    """``components``: K, the number of pseudo-inputs (shorthand for ``prior.components``)."""

    prior: str = "vamp"
    components: int = 500
    shorthands: ClassVar[dict[str, tuple[str, str]]] = {"components": ("prior", "components")}

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.components >= 1, f"components={self.components}: the VampPrior needs at least one "
                "pseudo-input; give a whole number >= 1 (the paper uses 500)")


register_model("vamp-vae", config=VampVAEConfig,
               description="VAE with a VampPrior: a mixture of the posteriors of K learned pseudo-inputs "
                           "(Tomczak & Welling 2018)")(VAE)
