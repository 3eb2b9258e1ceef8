"""A prior over the codes of a trained quantised autoencoder, so that the pair generates (VQ-VAE's second stage,
van den Oord et al. 2017, Sec. 3.2): x ~ p(x | z_q(k)), k ~ p(k).

``init`` names the quantised run (or model folder). Its model is rebuilt from the config copied into this one
(``source_model``, ``source_config``) and its weights loaded at the start of training; they stay fixed (out of
the optimiser and the weight average) but are saved with the prior, so the prior's run alone samples images. Each
batch is encoded to its codes ``[B, *L, G]`` and the prior (``network``: :mod:`aekit.nn.code_priors`) is trained
on them; ``sample(n)`` draws codes and decodes them. The ``code-prior`` evaluation suite reports the test
log-likelihood of the codes in bits per code, beside the bits of the codes' own distribution without context.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from aekit.config import require
from aekit.data.batch import Batch
from aekit.errors import DataError
from aekit.models.base import Model
from aekit.objectives import Term
from aekit.parts import build_part, part_names
from aekit.registry import register_model

NETWORK_SETTINGS = ("width", "depth", "heads")


@dataclass(frozen=True)
class CodePriorConfig:
    """``network``: ``autoregressive`` or ``masked``, of ``width``, ``depth`` and ``heads``; ``schedule`` and
    ``steps``: the masked prior's masking-ratio schedule and decoding steps; ``temperature``: of sampling."""

    data_shape: tuple[int, ...] = (1, 28, 28)
    init: str = ""
    source_model: str = ""
    source_config: dict[str, Any] = field(default_factory=dict)
    network: str = "autoregressive"
    width: int = 128
    depth: int = 4
    heads: int = 4
    schedule: str = "cosine"
    steps: int = 8
    temperature: float = 1.0
    objective: str = ""
    terms: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require(self.network in part_names("code_priors"), f"network={self.network!r} is unknown; choose one of "
                f"{', '.join(part_names('code_priors'))}")
        require(self.temperature > 0, f"temperature={self.temperature} must be > 0")


@dataclass
class CodePriorOutput:
    codes: torch.Tensor  # [B, T]
    terms: dict[str, torch.Tensor]
    stats: dict[str, torch.Tensor] = field(default_factory=dict)


@register_model("code-prior", config=CodePriorConfig, description="A prior over a quantised run's codes, "
                "autoregressive or masked (MaskGIT), so that it generates (init=RUN)")
class CodePrior(Model):
    config_class = CodePriorConfig
    has_prior = True

    def __init__(self, config: CodePriorConfig, name: str = "code-prior") -> None:
        super().__init__(config, name)
        from aekit.registry import build_model, make_config

        require(bool(config.source_model), "a code prior needs the quantised run it models: pass init=RUN (a run "
                "or model folder of vq-vae, rvq-vae, fsq-ae, lfq-ae or qlae)")
        self.autoencoder = build_model(config.source_model, make_config(config.source_model, **config.source_config))
        sizes = getattr(self.autoencoder.bottleneck, "codebook_sizes", None)
        if sizes is None:
            raise DataError(f"{config.init or config.source_model}: is a {config.source_model}, whose latents are "
                            "not quantised; a code prior models the codes of vq-vae, rvq-vae, fsq-ae, lfq-ae or qlae")
        self.autoencoder.requires_grad_(False).eval()  # fixed: no gradient, no codebook update, no k-means
        shape = self.autoencoder.bottleneck.code_shape  # (*positions, G): a grid, or a list of tokens
        self.grid, self.columns = tuple(shape[:-1]), shape[-1]
        options = {k: getattr(config, k) for k in NETWORK_SETTINGS}
        if config.network == "masked":
            options.update(schedule=config.schedule, steps=config.steps)
        self.network = build_part("code_priors", config.network, list(sizes), math.prod(self.grid), **options)

    @classmethod
    def fit_to_data(cls, values: dict[str, Any], splits) -> tuple[dict[str, Any], list[str]]:
        """The source model's name and config from ``init``, and a check that the data fit it."""
        values, notes = super().fit_to_data(values, splits)
        if values.get("init"):
            from aekit.io import read_json, resolve_model_dir

            saved = read_json(resolve_model_dir(values["init"]) / "config.json")
            values["source_model"], values["source_config"] = saved["model"], saved["config"]
            if list(saved["config"].get("data_shape", [])) != list(values["data_shape"]):
                raise DataError(f"{values['init']} was trained on examples of shape {saved['config']['data_shape']}; "
                                f"these data have {list(values['data_shape'])}: train the prior on the same data")
            notes.append(f"the codes of {values['init']} ({saved['model']})")
        return values, notes

    def initial_weights(self) -> None:
        """The source run's weights (a fresh run; a resumed one reads its checkpoint)."""
        if self.config.init:
            from aekit.io import load

            self.autoencoder.load_state_dict(load(self.config.init).state_dict())

    def train(self, mode: bool = True) -> CodePrior:
        super().train(mode)
        self.autoencoder.eval()  # fixed: its codes do not depend on the mode (no restarts, no code sampling)
        return self

    def own_terms(self) -> dict[str, Term]:
        return {"nll": Term()}

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """The token sequence ``[B, T]`` of inputs ``x``: their codes, position-major."""
        return self.autoencoder.encode(x).params["codes"].reshape(len(x), -1)

    def check_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """``codes [B, *L, G]`` or ``[B, T]`` as tokens ``[B, T]``, refused with one line when they are not the
        source's."""
        tokens = codes.reshape(len(codes), -1)
        require(tokens.shape[1] == self.network.net.length, f"codes of {tokens.shape[1]} tokens per example; this "
                f"prior models {self.network.net.length} (a {'x'.join(map(str, self.grid)) or 'single'} grid of "
                f"{self.columns} code columns)")
        sizes = torch.tensor(self.network.net.sizes, device=tokens.device).repeat(math.prod(self.grid))
        require(bool(((tokens >= 0) & (tokens < sizes)).all()), "codes lie outside the codebook: column g takes "
                f"0 <= code < {self.network.net.sizes[0] if self.columns == 1 else self.network.net.sizes}")
        return tokens.long()

    def forward(self, x: torch.Tensor | Batch) -> CodePriorOutput:
        x = x.inputs if isinstance(x, Batch) else x
        self.check_input(x)
        codes = self.codes(x)
        return CodePriorOutput(codes=codes, terms={"nll": self.network.nll(codes)})

    @property
    def suites(self) -> tuple[str, ...]:
        """The code prior's likelihood; a masked prior's representation too (MAGE)."""
        return ("code-prior", "representation") if self.config.network == "masked" else ("code-prior",)

    @torch.no_grad()
    def embed(self, x: torch.Tensor | Batch, condition: Any = None) -> torch.Tensor:
        """A masked prior's representation of ``x`` ``[B, W]``: its token features, averaged (MAGE)."""
        x = x.inputs if isinstance(x, Batch) else x
        if self.config.network != "masked":
            raise DataError(f"{self.name} with network={self.config.network} gives no representation; a masked prior "
                            "does (network=masked, schedule=mage)")
        return self.network.represent(self.codes(x))

    def log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        """log p(k) ``[B]`` of codes ``[B, *L, G]`` (exact; for the masked prior, along a random order)."""
        return self.network.log_prob(self.check_codes(codes))

    @torch.no_grad()
    def sample_codes(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws of codes ``[n, *L, G]``."""
        return self.network.sample(n, generator, self.config.temperature).view(n, *self.grid, self.columns)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, condition: Any = None) -> torch.Tensor:
        """Means of p(x | z_q(k)) for codes k drawn from the prior."""
        require(n >= 1, f"n={n}: the number of samples must be >= 1")
        if condition is not None:
            raise DataError(f"{self.name} is not conditional; leave out the condition")
        ae = self.autoencoder
        z = ae.bottleneck.decode_codes(self.sample_codes(n, generator))  # [n, *L, D]
        return ae.likelihood.mean(ae.decode(z))
