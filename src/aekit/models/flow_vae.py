"""VAEs with normalising-flow posteriors: planar or radial flows (Rezende & Mohamed 2015) and the inverse
autoregressive flow (Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling 2016).

The posterior is q_K(z_K|x), a diagonal Gaussian q_0(z_0|x) pushed through K invertible steps, scored by the change
of variables, log q_K(z_K|x) = log q_0(z_0|x) - sum_k log |det df_k / dz_{k-1}| (:mod:`aekit.nn.flows`), and the
bound is the VAE's with the KL estimated over the samples (Rezende & Mohamed 2015, eq. 15):

    ELBO(x) = E_q0[log p(x|z_K) + log p(z_K) - log q_0(z_0|x) + sum_k log |det df_k / dz_{k-1}|].

- ``vae-nf``: planar steps (``flow=radial`` for radial ones), ``flow_length`` = K (10), their parameters amortised
  from the encoder's features (``amortised=false``: free parameters shared by every input).
- ``vae-iaf``: ``flow_length`` = K IAF steps (2), each a MADE of [z, h] with hidden widths ``made_hidden`` ((320,))
  and the context h of width ``context_dim`` (16) emitted by the encoder beside mu and sigma (Kingma et al. 2016,
  Fig. 2; cf. the IAF of depth 2 and width 320 in their Table 1).

The flow is the bottleneck's (``bottleneck=flow``), so any variational model takes it (``aekit train iwae
bottleneck=flow bottleneck.flow=iaf``); these entries name the usual recipes, and their fields are shorthands for
``bottleneck.flow``, ``bottleneck.length``, ``bottleneck.amortised``, ``bottleneck.hidden`` and
``bottleneck.context_dim``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from aekit.config import require
from aekit.models.vae import VAE, VAEConfig
from aekit.nn.flows import check_flow
from aekit.registry import register_model


@dataclass(frozen=True)
class FlowVAEConfig(VAEConfig):
    """``flow`` (planar, radial, iaf) and ``flow_length`` = K, the number of steps; ``amortised``: planar and radial
    parameters from the encoder's features."""

    bottleneck: str = "flow"
    flow: str = "planar"
    flow_length: int = 10
    amortised: bool = True
    shorthands: ClassVar[dict[str, tuple[str, str]]] = {
        "flow": ("bottleneck", "flow"), "flow_length": ("bottleneck", "length"),
        "amortised": ("bottleneck", "amortised")}

    def __post_init__(self) -> None:
        super().__post_init__()
        check_flow(self.flow, self.flow_length, "flow", "flow_length")


@dataclass(frozen=True)
class IAFVAEConfig(FlowVAEConfig):
    """The IAF's MADE widths ``made_hidden`` and the width ``context_dim`` of the context h."""

    flow: str = "iaf"
    flow_length: int = 2
    made_hidden: tuple[int, ...] = (320,)
    context_dim: int = 16
    shorthands: ClassVar[dict[str, tuple[str, str]]] = {
        **FlowVAEConfig.shorthands, "made_hidden": ("bottleneck", "hidden"),
        "context_dim": ("bottleneck", "context_dim")}

    def __post_init__(self) -> None:
        super().__post_init__()
        require(all(w >= 1 for w in self.made_hidden), f"made_hidden={list(self.made_hidden)} must hold positive "
                "widths")
        require(self.context_dim >= 1, f"context_dim={self.context_dim} must be >= 1 (the width of h)")


register_model("vae-nf", config=FlowVAEConfig,
               description="VAE with a planar or radial flow posterior (Rezende & Mohamed 2015)")(VAE)
register_model("vae-iaf", config=IAFVAEConfig,
               description="VAE with an inverse autoregressive flow posterior and context h (Kingma et al. 2016)")(VAE)
