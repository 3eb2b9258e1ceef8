"""The VampPrior VAE and the hyperspherical VAE against Pythae 0.1.2's VAMP and SVAE: the networks, data and settings
of Pythae's reproducibility scripts (``examples/scripts/reproducibility/vamp.py`` and ``svae.py``), at a CPU budget,
the NLL and the training wall time side by side.

    row   data                          network (Pythae's script)                         Pythae's table (full run)
    vamp  binarized MNIST               gated dense 784-300-300, latent 40, log sigma^2   85.79 NLL, 2,000 epochs,
                                        through hardtanh(-6, 2); decoder gated 40-300-    RMSprop lr 1e-4, batch 100,
                                        300 -> 784; K = 500 pseudo-inputs                 KL warm-up over 100 epochs
    svae  dynamically binarized MNIST   MLP 784-256-128 ReLU, latent 11 on S^10, kappa =  93.13 NLL, 500 epochs,
                                        softplus(.) + 1; decoder 11-128-256-784           Adam lr 1e-3, batch 64

Both libraries train the same networks from the same initial weights (Pythae's, built under the seed and copied into
aekit's model: for ``vamp`` the gated networks are given to aekit as the model's encoder and decoder, Pythae's
pseudo-input layer u_k = hardtanh(W e_k + b) copied as aekit's w_k = W e_k + b; for ``svae`` aekit's own MLP
backbone has the same shapes), on the same data, for ``--epochs`` epochs over ``--train-examples`` seeded random
training images, one after the other in this process (1 thread), the order alternating from row to row. The KL
warm-up of the VAMP script (100 epochs) is longer than this budget: both libraries train without it here.

Differences that remain, stated: aekit's Gaussian head has no hardtanh(-6, 2) on log sigma^2 (the copy of a trained
Pythae VAMP into aekit is checked: the share of test and pseudo-input log-variances the clamp would have changed is
reported, and where it is 0 the two compute the same function); Pythae's SVAE ``get_nll`` uses kappa = softplus(.)
without the + 1 its training uses, so it scores a different posterior than it trained.

Every trained model is scored by aekit's importance-sampled estimator (``importance_sampled_log_likelihood``) on the
same seeded test images with the same K (Pythae's weights copied into an aekit model of the same function), and
Pythae's models also by Pythae's own ``get_nll``.

    .venv-bench/bin/python benchmarks/vamp_svae_pythae.py --epochs 2 --nll-samples 1000 --nll-examples 1000
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import json
import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import aekit_source, machine, pythae_fit
from iwae_pythae import pythae_dataset
from torch import nn
from vae_binarized_mnist import nll_subset

import aekit
from aekit.data.base import Splits
from aekit.metrics import importance_sampled_log_likelihood

ROWS = {  # data, latent, batch, optimiser, lr, Pythae class, reference NLL
    "vamp": ("binarized-mnist", 40, 100, "RMSprop", 1e-4, "VAMP", 85.79),
    "svae": ("dynamic-binarized-mnist", 11, 64, "Adam", 1e-3, "SVAE", 93.13),
}
K_PSEUDO, GATED = 500, 300


class GatedDense(nn.Module):
    """h(x) * sigmoid(g(x)) (Dauphin et al. 2017), the VampPrior paper's layer."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.h, self.g = nn.Linear(n_in, n_out), nn.Linear(n_in, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.h(x) * torch.sigmoid(self.g(x))


def he_normal(module: nn.Module) -> None:
    """The VAMP script's initialisation: N(0, 2 / fan_in) weights (biases as torch leaves them)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            m.weight.data.normal_(0, math.sqrt(2.0 / m.in_features))


def pythae_networks(row: str) -> tuple[nn.Module, nn.Module]:
    """The script's encoder and decoder as Pythae modules, each holding a ``body`` (and heads) that aekit reuses."""
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    latent = ROWS[row][1]
    vamp = row == "vamp"

    class Encoder(BaseEncoder):
        def __init__(self) -> None:
            super().__init__()
            width = GATED if vamp else 128
            self.body = (nn.Sequential(nn.Flatten(), GatedDense(784, GATED), GatedDense(GATED, GATED)) if vamp else
                         nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU()))
            self.embedding, self.second = nn.Linear(width, latent), nn.Linear(width, latent if vamp else 1)
            if vamp:
                he_normal(self)

        def forward(self, x: torch.Tensor) -> ModelOutput:
            h = self.body(x)  # [B, 784] -> [B, F]
            if vamp:
                return ModelOutput(embedding=self.embedding(h), log_covariance=nn.functional.hardtanh(
                    self.second(h), -6.0, 2.0))
            return ModelOutput(embedding=self.embedding(h), log_concentration=self.second(h))

    class Decoder(BaseDecoder):
        def __init__(self) -> None:
            super().__init__()
            self.body = (nn.Sequential(GatedDense(latent, GATED), GatedDense(GATED, GATED), nn.Linear(GATED, 784))
                         if vamp else nn.Sequential(nn.Linear(latent, 128), nn.ReLU(), nn.Linear(128, 256), nn.ReLU(),
                                                    nn.Linear(256, 784)))
            if vamp:
                he_normal(self)

        def forward(self, z: torch.Tensor) -> ModelOutput:
            return ModelOutput(reconstruction=torch.sigmoid(self.body(z)).view(-1, 1, 28, 28))

    return Encoder(), Decoder()


def aekit_model(row: str, encoder: nn.Module, decoder: nn.Module, pseudo: nn.Linear | None = None) -> nn.Module:
    """aekit's model computing the function of Pythae's networks (logits out of the decoder; for vamp, no clamp on
    log sigma^2) with their weights; ``pseudo``: Pythae's pseudo-input layer."""
    latent = ROWS[row][1]
    heads = torch.cat([encoder.embedding.weight, encoder.second.weight]), torch.cat([encoder.embedding.bias,
                                                                                      encoder.second.bias])
    if row == "vamp":
        body = copy.deepcopy(encoder.body)
        body.out_features = GATED
        model = aekit.build_model("vamp-vae", data_shape=(1, 28, 28), latent_dim=latent, likelihood="bernoulli",
                                  components=K_PSEUDO, encoder=body, decoder=nn.Sequential(
                                      copy.deepcopy(decoder.body), nn.Unflatten(1, (1, 28, 28))))
        with torch.no_grad():
            model.bottleneck.prior.pseudo_weights.copy_((pseudo.weight.T + pseudo.bias).view(K_PSEUDO, 1, 28, 28))
    else:
        model = aekit.build_model("svae", data_shape=(1, 28, 28), latent_dim=latent, backbone="mlp",
                                  hidden=(256, 128), activation="relu", likelihood="bernoulli")
        state = {f"encoder.net.{2 * i}.{p}": encoder.body[1 + 2 * i].state_dict()[p] for i in range(2)
                 for p in ("weight", "bias")}
        state |= {f"decoder.net.{2 * i}.{p}": decoder.body[2 * i].state_dict()[p] for i in range(3)
                  for p in ("weight", "bias")}
        missing = model.load_state_dict(state, strict=False).missing_keys
        assert set(missing) <= {"bottleneck.proj.weight", "bottleneck.proj.bias"}, missing
    with torch.no_grad():
        model.bottleneck.proj.weight.copy_(heads[0])
        model.bottleneck.proj.bias.copy_(heads[1])
    return model


def pythae_model(row: str, encoder: nn.Module, decoder: nn.Module) -> nn.Module:
    import pythae.models

    _, latent, _, _, _, cls, _ = ROWS[row]
    settings = {"number_components": K_PSEUDO, "linear_scheduling_steps": 0} if row == "vamp" else {}
    config = getattr(pythae.models, f"{cls}Config")(input_dim=(1, 28, 28), latent_dim=latent,
                                                     reconstruction_loss="bce", **settings)
    return getattr(pythae.models, cls)(model_config=config, encoder=encoder, decoder=decoder)


def train_aekit(row: str, init: nn.Module, splits: Splits, args, workdir: Path) -> tuple[nn.Module, float]:
    _, _, batch, optimiser, lr, _, _ = ROWS[row]
    model = aekit_model(row, init.encoder, init.decoder, getattr(init, "pseudo_inputs", [None])[0])
    start = time.perf_counter()
    run = aekit.train(model, data=splits, out=workdir / f"aekit-{row}", evaluate=False, epochs=args.epochs,
                      batch_size=batch, lr=lr, lr_schedule="constant", optimizer=optimiser.lower(), seed=args.seed,
                      accelerator="cpu", progress=False, figures=False, threads=args.threads)
    return run.model.eval(), time.perf_counter() - start


def train_pythae(row: str, init: nn.Module, splits: Splits, args, workdir: Path) -> tuple[nn.Module, float]:
    data, _, batch, optimiser, lr, _, _ = ROWS[row]
    return pythae_fit(init, pythae_dataset(splits.train, data.startswith("dynamic")), workdir / f"pythae-{row}",
                      batch, args.epochs, lr, args.seed, optimizer=optimiser)


@torch.no_grad()
def aekit_nll(model: nn.Module, x: torch.Tensor, samples: int, seed: int) -> dict[str, float]:
    torch.manual_seed(seed)
    start = time.perf_counter()
    lp = torch.cat([importance_sampled_log_likelihood(model, x[i : i + 50], samples) for i in range(0, len(x), 50)])
    return {"nll": round(-float(lp.mean()), 3), "nll_se": round(float(lp.std() / math.sqrt(len(lp))), 3),
            "nll_seconds": round(time.perf_counter() - start, 1)}


@torch.no_grad()
def clamped_share(pythae: nn.Module, x: torch.Tensor) -> float:
    """The share of log sigma^2 values, over the test images and the pseudo-inputs, outside [-6, 2]: those a copy
    without the clamp computes differently."""
    inputs = torch.cat([x, pythae.pseudo_inputs(torch.eye(K_PSEUDO)).view(-1, 1, 28, 28)])
    raw = pythae.encoder.second(pythae.encoder.body(inputs))
    return round(float(((raw < -6) | (raw > 2)).float().mean()), 5)


def run_row(row: str, i: int, args, tmp: Path) -> dict[str, Any]:
    data, *_, reference = ROWS[row]
    splits = aekit.load_data(data, root=args.root)
    train = nll_subset(splits.train, args.train_examples, args.seed)
    splits = Splits(train, splits.val.subset(torch.arange(0)), splits.test)
    x = nll_subset(splits.test, args.nll_examples, args.seed).inputs()
    torch.manual_seed(args.seed)
    init = pythae_model(row, *pythae_networks(row))
    entry: dict[str, Any] = {"reference_nll": reference}
    for library in ("aekit", "pythae") if i % 2 == 0 else ("pythae", "aekit"):
        start_from = copy.deepcopy(init)
        train_fn = train_aekit if library == "aekit" else train_pythae
        model, wall = train_fn(row, start_from, splits, args, tmp)
        result = {"wall_s": round(wall, 1)}
        if library == "pythae":
            torch.manual_seed(args.seed)
            result["pythae_get_nll"] = round(-float(model.get_nll(x, n_samples=args.nll_samples,
                                                                  batch_size=min(100, args.nll_samples))), 3)
            if row == "vamp":
                result["log_var_clamped_share"] = clamped_share(model, x)
            model = aekit_model(row, model.encoder, model.decoder, getattr(model, "pseudo_inputs", [None])[0]).eval()
        entry[library] = result | aekit_nll(model, x, args.nll_samples, args.seed)
        print(row, library, entry[library], flush=True)
    entry["wall_ratio_aekit_over_pythae"] = round(entry["aekit"]["wall_s"] / entry["pythae"]["wall_s"], 3)
    return entry


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default=",".join(ROWS))
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train-examples", type=int, default=50_000)
    p.add_argument("--nll-samples", type=int, default=1000)
    p.add_argument("--nll-examples", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--root", default=os.environ.get("AEKIT_DATA", "/work/shared/datasets"))
    p.add_argument("--out", default="benchmarks/results/vamp_svae_pythae.json")
    args = p.parse_args(argv)
    os.environ["TQDM_DISABLE"] = "1"
    torch.set_num_threads(args.threads)
    logging.getLogger("pythae").setLevel(logging.WARNING)
    result: dict[str, Any] = {
        "benchmark": "vamp_svae_pythae", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(), "aekit_source": aekit_source(), "pythae_version": importlib.metadata.version("pythae"),
        "settings": vars(args), "rows": {}}
    with tempfile.TemporaryDirectory(prefix="aekit-vamp-svae-") as tmp:
        for i, row in enumerate(args.rows.split(",")):
            result["rows"][row] = run_row(row, i, args, Path(tmp))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["rows"], indent=1))
    return result


if __name__ == "__main__":
    main()
