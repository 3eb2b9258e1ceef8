"""Hamiltonian VAE (Caterini, Doucet & Sejdinovic 2018, "Hamiltonian Variational Auto-Encoder").

The posterior is the Gaussian q_0(z_0|x) followed by K leapfrog steps of Hamiltonian dynamics on the model's own
log p(x, z), the momentum rho_0 = gamma_0 / sqrt(beta_0) tempered to beta_K = 1 along the way
(:mod:`aekit.nn.hamiltonian`). The bound is their ELBO on the space extended by the momentum:

    ELBO_H(x) = E[log p(x, z_K) - rho_K^T rho_K / 2 - log q_0(z_0|x) + gamma_0^T gamma_0 / 2],

the (d/2) log beta_0 of the initial momentum's density cancelling the tempering's Jacobian beta_0^{d/2}.

``hvae``: ``n_lf`` = K = 3 leapfrog steps of size ``eps_lf`` = 0.001 and ``beta_zero`` = 0.3, both fixed unless
``learn_eps_lf`` / ``learn_beta_zero`` (Pythae 0.1.2's HVAE defaults). The posterior is the bottleneck's
(``bottleneck=hamiltonian``), so any variational model takes it (``aekit train iwae bottleneck=hamiltonian``); these
fields are shorthands for ``bottleneck.n_lf``, ``bottleneck.eps_lf``, ``bottleneck.beta_zero``,
``bottleneck.learn_eps_lf`` and ``bottleneck.learn_beta_zero``. The importance-sampled log p(x) uses q_0(z|x) as
its proposal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from aekit.models.vae import VAE, VAEConfig
from aekit.nn.hamiltonian import check_hamiltonian
from aekit.registry import register_model


@dataclass(frozen=True)
class HVAEConfig(VAEConfig):
    """``n_lf`` = K >= 1 leapfrog steps of size ``eps_lf`` > 0; ``beta_zero`` = beta_0 in (0, 1], the initial
    inverse temperature of the momentum (1: no tempering); ``learn_eps_lf``, ``learn_beta_zero``: learn them."""

    bottleneck: str = "hamiltonian"
    n_lf: int = 3
    eps_lf: float = 1e-3
    beta_zero: float = 0.3
    learn_eps_lf: bool = False
    learn_beta_zero: bool = False
    shorthands: ClassVar[dict[str, tuple[str, str]]] = {
        name: ("bottleneck", name) for name in ("n_lf", "eps_lf", "beta_zero", "learn_eps_lf", "learn_beta_zero")}

    def __post_init__(self) -> None:
        super().__post_init__()
        check_hamiltonian(self.n_lf, self.eps_lf, self.beta_zero, self.learn_beta_zero, prefix="")


register_model("hvae", config=HVAEConfig,
               description="Hamiltonian VAE: a Gaussian q(z0|x) moved by tempered leapfrog steps on log p(x, z) "
                           "(Caterini et al. 2018)")(VAE)
