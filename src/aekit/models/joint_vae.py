"""JointVAE (Dupont 2018, "Learning Disentangled Joint Continuous and Discrete Representations").

The code is z = [z_cont, c_1, ..., c_n]: Gaussian units q(z|x) = N(mu(x), diag sigma^2(x)) and categorical units
q(c_i|x) = Cat(alpha_i(x)), relaxed to concrete samples at temperature tau in training, one-hot at evaluation
(the ``gaussian-concrete`` bottleneck, :mod:`aekit.nn.concrete`). With p(z) = N(0, I) and p(c_i) = U(K_i), each
channel's KL is held near a capacity of its own (Dupont 2018, Sec. 3),

    L(t) = E_q[-log p(x|z, c)] + gamma |KL(q(z|x) || p(z)) - C_z(t)| + gamma |KL(q(c|x) || p(c)) - C_c(t)|,

C_z(t) = C_z min(1, t / T_z) and C_c(t) = min(C_c min(1, t / T_c), sum_i log K_i): the discrete capacity stops
at the most the categorical units can carry. Both are the beta-VAE's capacity terms (``terms.kl`` and
``terms.kl_disc``); the cap is written as a shorter ramp to sum_i log K_i (``capacity_steps`` scaled by
sum_i log K_i / C_c, rounded to a whole step), the same line up to the cap.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from aekit.config import require, require_weight
from aekit.models.vae import BetaVAE, BetaVAEConfig
from aekit.nn.concrete import check_discrete, discrete_capacity
from aekit.objectives import Schedule, Term
from aekit.registry import register_model


@dataclass(frozen=True)
class JointVAEConfig(BetaVAEConfig):
    """``latent_dim``: the whole code, the Gaussian units then the categories of ``discrete`` (the sizes K_i of
    the categorical units, e.g. ``discrete=10`` or ``discrete=10,3``); ``temperature``: tau of the concrete
    relaxation; ``capacity``/``capacity_steps`` (C_z, T_z) and ``capacity_disc``/``capacity_disc_steps``
    (C_c, T_c) and ``gamma``: the two capacity terms (shorthand for ``terms.kl.*`` and ``terms.kl_disc.*``).
    Defaults: the authors' MNIST settings (10 Gaussian units, one 10-way unit, C_z = C_c = 5 over 25,000 steps,
    gamma = 30, tau = 0.67)."""

    latent_dim: int = 20
    discrete: tuple[int, ...] = (10,)
    temperature: float = 0.67
    capacity: float = 5.0
    capacity_steps: int = 25000
    capacity_disc: float = 5.0
    capacity_disc_steps: int = 25000
    gamma: float = 30.0
    shorthands: ClassVar[dict[str, tuple[str, str]]] = {"discrete": ("bottleneck", "discrete"),
                                                        "temperature": ("bottleneck", "temperature")}

    def __post_init__(self) -> None:
        super().__post_init__()
        check_discrete(self.discrete, self.latent_dim)
        require(self.temperature > 0, f"temperature={self.temperature}: the concrete relaxation needs a "
                "temperature > 0 (the paper: 0.67)")
        require_weight(self.capacity_disc, "capacity_disc")
        require(self.capacity_disc_steps >= 0, f"capacity_disc_steps={self.capacity_disc_steps} must be >= 0 "
                "(0: C_c from the start)")
        require(self.prior == "standard-normal", f"prior={self.prior!r}: JointVAE's Gaussian units have the "
                "N(0, I) prior; use prior=standard-normal")

    def discrete_schedule(self) -> tuple[float, int]:
        """(capacity, steps) of the discrete term: C_c min(1, t / T_c) capped at sum_i log K_i, as one ramp."""
        cap = discrete_capacity(check_discrete(self.discrete, self.latent_dim))
        if self.capacity_disc <= cap:
            return self.capacity_disc, self.capacity_disc_steps
        return cap, round(self.capacity_disc_steps * cap / self.capacity_disc)


@register_model("joint-vae", config=JointVAEConfig,
                description="JointVAE: Gaussian and Gumbel-softmax categorical latents, each KL held near a "
                            "rising capacity (Dupont 2018)")
class JointVAE(BetaVAE):
    default_bottleneck = "gaussian-concrete"
    suites = ("reconstruction", "representation")  # no log p(x) bound: the concrete codes have no density here

    def own_terms(self) -> dict[str, Term]:
        """``kl`` as beta-VAE's (gamma |KL - C_z(t)| with a capacity, beta KL without) and ``kl_disc`` the same
        with the discrete capacity C_c(t)."""
        terms, c = super().own_terms(), self.config
        capacity, steps = c.discrete_schedule()
        if c.capacity > 0 or capacity > 0:
            disc = Term(weight=Schedule(c.gamma), capacity=capacity, capacity_steps=steps)
        else:
            disc = dataclasses.replace(terms["kl"], label="", free_bits=0.0)  # free bits floor the Gaussian units only
        return {**terms, "kl_disc": disc}
