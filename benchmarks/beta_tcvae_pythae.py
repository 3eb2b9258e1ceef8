"""beta-TCVAE on dSprites: aekit's ``beta-tcvae`` against Pythae 0.1.2's BetaTCVAE on the network, settings and
data of Pythae's reproducibility script (``examples/scripts/reproducibility/betatcvae.py``), at a CPU budget: the
ELBO and the modified ELBO (the training objective) side by side, and the training wall time.

Pythae's script, which its table reports (modified ELBO 710.41, ELBO 85.54 after 50 epochs of all 737,280 images;
the paper's 712.26 / 86.40):

    encoder  x [4096] -> Linear 1200 -> ReLU -> Linear 1200 -> ReLU -> (mu [10], log sigma^2 [10])
    decoder  z [10]   -> Linear 1200 -> tanh -> Linear 1200 -> tanh -> Linear 1200 -> tanh -> Linear 4096 -> sigmoid
    beta = 6, alpha = gamma = 1, minibatch-weighted sampling (use_mss=False), BCE, batch 1000, Adam lr 1e-3, eps 1e-4

Here both libraries train the same networks (aekit's built from the same modules, given as the model's encoder and
decoder; its Bernoulli takes the logits before the sigmoid) from the same initial weights, on the same seeded random
``--train-examples`` dSprites images held in memory, for ``--epochs`` epochs, one after the other in this process
(1 thread). Both trained models are then scored by one estimator, aekit's, on the same 10,000 training images in
batches of 1,000: the ELBO (closed-form KL) and the modified ELBO (recon + MI + 6 TC + dimension-wise KL with the
minibatch-weighted estimates of the batch and N = the training set's size), each negated as in Pythae's table.

    .venv-bench/bin/python benchmarks/beta_tcvae_pythae.py --train-examples 50000 --epochs 3
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import aekit_source, machine, pythae_fit
from torch import nn

import aekit
from aekit.data.base import Dataset, Splits

LATENT, HIDDEN, BATCH, LR, EPS, BETA = 10, 1200, 1000, 1e-3, 1e-4, 6.0
PIXELS = 64 * 64


def networks() -> tuple[nn.Module, nn.Module]:
    """Pythae's encoder and decoder of the script's shapes (torch's default initialisation, under the caller's
    seed), as Pythae modules."""
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(PIXELS, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN),
                                      nn.ReLU())
            self.embedding, self.log_var = nn.Linear(HIDDEN, LATENT), nn.Linear(HIDDEN, LATENT)

        def forward(self, x: torch.Tensor) -> ModelOutput:
            h = self.body(x)  # [B, 1, 64, 64] -> [B, 1200]
            return ModelOutput(embedding=self.embedding(h), log_covariance=self.log_var(h))

    class Decoder(BaseDecoder):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(LATENT, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, HIDDEN), nn.Tanh(),
                                      nn.Linear(HIDDEN, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, PIXELS),
                                      nn.Unflatten(1, (1, 64, 64)))

        def forward(self, z: torch.Tensor) -> ModelOutput:
            return ModelOutput(reconstruction=torch.sigmoid(self.body(z)))  # [B, 1, 64, 64]

    return Encoder(), Decoder()


def aekit_model(encoder: nn.Module, decoder: nn.Module) -> nn.Module:
    """aekit's beta-tcvae on copies of Pythae's encoder body and decoder body (logits out), its Gaussian head
    holding Pythae's two heads (mu, then log sigma^2)."""
    import copy

    body = copy.deepcopy(encoder.body)
    body.out_features = HIDDEN  # the width the Gaussian head reads
    model = aekit.build_model("beta-tcvae", data_shape=(1, 64, 64), latent_dim=LATENT, likelihood="bernoulli",
                              beta=BETA, estimator="mws", encoder=body, decoder=copy.deepcopy(decoder.body))
    with torch.no_grad():
        model.bottleneck.proj.weight.copy_(torch.cat([encoder.embedding.weight, encoder.log_var.weight]))
        model.bottleneck.proj.bias.copy_(torch.cat([encoder.embedding.bias, encoder.log_var.bias]))
    return model


def pythae_as_aekit(pythae_model: nn.Module) -> nn.Module:
    """An aekit beta-tcvae computing the trained Pythae model's function, for the one estimator."""
    return aekit_model(pythae_model.encoder, pythae_model.decoder)


def train_aekit(encoder: nn.Module, decoder: nn.Module, splits: Splits, args, workdir: Path):
    model = aekit_model(encoder, decoder)
    start = time.perf_counter()
    run = aekit.train(model, data=splits, out=workdir / "aekit", evaluate=False, epochs=args.epochs,
                      batch_size=BATCH, lr=LR, lr_schedule="constant", optimizer="adam", seed=args.seed,
                      optimizers={"model": {"eps": EPS}}, accelerator="cpu", progress=False, figures=False,
                      threads=args.threads)
    return run.model.eval(), time.perf_counter() - start


def train_pythae(encoder: nn.Module, decoder: nn.Module, x: torch.Tensor, args, workdir: Path):
    from pythae.data.preprocessors import DataProcessor
    from pythae.models import BetaTCVAE, BetaTCVAEConfig

    config = BetaTCVAEConfig(input_dim=(1, 64, 64), latent_dim=LATENT, reconstruction_loss="bce", beta=BETA,
                             gamma=1, alpha=1, use_mss=False)
    model = BetaTCVAE(model_config=config, encoder=encoder, decoder=decoder)
    trained, wall = pythae_fit(model, DataProcessor().to_dataset(x), workdir / "pythae", BATCH, args.epochs, LR,
                               args.seed, optimizer_params={"eps": EPS})
    return pythae_as_aekit(trained).eval(), wall


@torch.no_grad()
def score(model: nn.Module, x: torch.Tensor, n_train: int) -> dict[str, float]:
    """-ELBO and the -modified ELBO per image, means over ``x`` in batches of 1,000, one seed for both models."""
    torch.manual_seed(0)
    objective = model.objective()
    objective.dataset_size = n_train
    sums = {"elbo": 0.0, "modified_elbo": 0.0}
    for i in range(0, len(x), BATCH):
        out = model(x[i : i + BATCH])
        t = {**out.terms, **objective.extra_terms(out)}  # recon, kl; mi, tc, dim_kl from the batch
        sums["elbo"] += float((t["recon"] + t["kl"]).sum())
        sums["modified_elbo"] += float((t["recon"] + t["mi"] + BETA * t["tc"] + t["dim_kl"]).sum())
    return {k: round(v / len(x), 2) for k, v in sums.items()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train-examples", type=int, default=50_000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--score-examples", type=int, default=10_000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--out", default="benchmarks/results/beta_tcvae_pythae.json")
    args = p.parse_args(argv)
    os.environ["TQDM_DISABLE"] = "1"
    torch.set_num_threads(args.threads)
    logging.getLogger("pythae").setLevel(logging.WARNING)
    train = aekit.load_data("dsprites").train
    index = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed))[: args.train_examples]
    x = torch.cat([train.inputs(index[i : i + 5000]) for i in range(0, len(index), 5000)])  # [N, 1, 64, 64] in {0, 1}
    empty = Dataset(x[:0], None, "dsprites-empty")
    splits = Splits(Dataset(x, None, "dsprites-subset"), empty, empty)
    torch.manual_seed(args.seed)
    encoder, decoder = networks()
    result: dict[str, Any] = {
        "benchmark": "beta_tcvae_pythae", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(), "aekit_source": aekit_source(), "pythae_version": importlib.metadata.version("pythae"),
        "settings": {**vars(args), "batch": BATCH, "lr": LR, "adam_eps": EPS, "beta": BETA, "estimator": "mws"},
        "reference": {"pythae_50_epochs": {"modified_elbo": 710.41, "elbo": 85.54},
                      "paper": {"modified_elbo": 712.26, "elbo": 86.40}}}
    scored = x[: args.score_examples]
    with tempfile.TemporaryDirectory(prefix="aekit-tcvae-") as tmp:
        for library in ("pythae", "aekit"):  # Pythae's trainer moves its networks: aekit copies them first
            import copy

            enc, dec = copy.deepcopy(encoder), copy.deepcopy(decoder)
            if library == "aekit":
                model, wall = train_aekit(enc, dec, splits, args, Path(tmp))
            else:
                model, wall = train_pythae(enc, dec, x, args, Path(tmp))
            result[library] = {"wall_s": round(wall, 1), **score(model, scored, len(x))}
            print(library, result[library], flush=True)
    result["wall_ratio_aekit_over_pythae"] = round(result["aekit"]["wall_s"] / result["pythae"]["wall_s"], 3)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
