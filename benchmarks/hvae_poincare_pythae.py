"""Hamiltonian and Poincaré VAEs: aekit's hvae and poincare-vae against Pythae 0.1.2's HVAE and PoincareVAE on
binarized MNIST at a small CPU budget, NLL and wall time side by side.

The network is that of the importance-weighted and flow comparisons (``iwae_pythae.py``, Pythae's reproducibility
scripts):

    encoder  x [784] -> Linear 200 -> tanh -> Linear 200 -> tanh -> (mu [50], log sigma^2 [50])
    decoder  z [50]  -> Linear 200 -> tanh -> Linear 200 -> tanh -> Linear 784 -> Bernoulli
    Adam, lr 1e-3, eps 1e-4, batch 20, constant lr, one seed

and the models of each row, at Pythae's default settings:

    row       aekit                                          Pythae 0.1.2
    hvae      hvae, n_lf 3, eps_lf 0.001, beta_zero 0.3      HVAE, the same settings (its defaults)
    poincare  poincare-vae, c = 1, wrapped normal q and p    PoincareVAE, c = 1, wrapped normal q and p

Pythae's HVAE reads the decoder's output as Bernoulli logits, so its decoder here ends without the sigmoid; its
PoincareVAE takes the encoder's mu as the point on the ball, so its encoder here maps mu by the ball's exp_0 and
Pythae's own projection off the boundary, as aekit's posterior does (with exp_0 alone, Pythae's loss turned NaN
within the first 30 steps). Both libraries start from the same initial encoder and decoder (Pythae's networks,
Glorot-uniform weights and zero biases, built under the seed and copied into aekit's model). They train one after
the other in this process, the order alternating from row to row; each model is scored by its own library's
importance-sampled estimator on the same seeded test images with the same K (aekit:
``importance_sampled_log_likelihood``, with q_0(z|x) as the proposal for the hvae; Pythae: ``get_nll``, one image at
a time, samples in batches of 100).

    .venv-bench/bin/python benchmarks/hvae_poincare_pythae.py --train-examples 10000 --nll-samples 500 \\
        --nll-examples 200 --out benchmarks/results/hvae_poincare_pythae.json
"""

from __future__ import annotations

import argparse
import importlib.metadata
import tempfile
import time
from pathlib import Path
from typing import Any

import iwae_pythae
import torch
from _common import aekit_source, machine, pythae_fit, save_json
from flow_vae_pythae import binarized_mnist_comparison, nll
from iwae_pythae import ADAM_EPS, BATCH_SIZE, HIDDEN, LR, PYTHAE_LAYERS, pythae_networks
from torch import nn
from vae_binarized_mnist import aekit_state_from_pythae

import aekit
from aekit.data.base import Splits

ROWS: dict[str, tuple[str, dict[str, Any], str, dict[str, Any]]] = {
    "hvae": ("hvae", {"n_lf": 3, "eps_lf": 1e-3, "beta_zero": 0.3}, "HVAE",
             {"n_lf": 3, "eps_lf": 1e-3, "beta_zero": 0.3}),
    "poincare": ("poincare-vae", {"curvature": 1.0}, "PoincareVAE",
                 {"curvature": 1.0, "prior_distribution": "wrapped_normal",
                  "posterior_distribution": "wrapped_normal"}),
}
REFERENCE = {"hvae": 86.21, "poincare": 101.66}  # Pythae's README reproducibility table (full training)


def initial_state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    encoder, decoder = pythae_networks()
    return {f"{part}.{k}": v for part, net in (("encoder", encoder), ("decoder", decoder))
            for k, v in net.state_dict().items()}


def train_aekit(row: str, splits: Splits, args: argparse.Namespace, workdir: Path) -> tuple[nn.Module, float]:
    name, settings, _, _ = ROWS[row]
    model = aekit.build_model(name, data_shape=(1, 28, 28), backbone="mlp", hidden=(HIDDEN, HIDDEN),
                              latent_dim=iwae_pythae.LATENT_DIM, activation="tanh", likelihood="bernoulli", **settings)
    missing = model.load_state_dict(aekit_state_from_pythae(initial_state(args.seed), *PYTHAE_LAYERS),
                                     strict=False).missing_keys
    assert all(key in ("bottleneck.log_eps", "bottleneck.logit_beta_zero") for key in missing), missing  # settings
    start = time.perf_counter()
    run = aekit.train(model, data=splits, out=workdir / f"aekit-{row}", evaluate=False, epochs=args.epochs,
                      batch_size=BATCH_SIZE, lr=LR, lr_schedule="constant", optimizer="adam", seed=args.seed,
                      optimizers={"model": {"eps": ADAM_EPS}}, accelerator="cpu", progress=False, figures=False,
                      threads=args.threads)
    return run.model.eval(), time.perf_counter() - start


def pythae_row_networks(row: str, seed: int) -> tuple[nn.Module, nn.Module]:
    """Pythae's networks of the comparison, the HVAE's decoder giving logits and the PoincareVAE's encoder a point
    on the ball (module docstring)."""
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.models.pvae.pvae_utils import PoincareBall, _project

    torch.manual_seed(seed)
    encoder, decoder = pythae_networks()

    class LogitDecoder(BaseDecoder):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2, self.fc3 = decoder.fc1, decoder.fc2, decoder.fc3

        def forward(self, z: torch.Tensor) -> ModelOutput:
            h = torch.tanh(self.fc2(torch.tanh(self.fc1(z))))
            return ModelOutput(reconstruction=self.fc3(h).reshape(z.shape[0], 1, 28, 28))

    class BallEncoder(BaseEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.inner = encoder
            self.ball = PoincareBall(dim=iwae_pythae.LATENT_DIM, c=ROWS["poincare"][3]["curvature"])

        def forward(self, x: torch.Tensor) -> ModelOutput:
            out = self.inner(x)
            mu = _project(self.ball.expmap0(out.embedding), c=self.ball.c)  # kept off the boundary, as aekit's
            return ModelOutput(embedding=mu, log_covariance=out.log_covariance)

    return (BallEncoder(), decoder) if row == "poincare" else (encoder, LogitDecoder())


def train_pythae(row: str, splits: Splits, args: argparse.Namespace, workdir: Path) -> tuple[nn.Module, float]:
    import pythae.models
    from pythae.data.preprocessors import DataProcessor

    _, _, cls, settings = ROWS[row]
    encoder, decoder = pythae_row_networks(row, args.seed)
    config = getattr(pythae.models, f"{cls}Config")(input_dim=(1, 28, 28), latent_dim=iwae_pythae.LATENT_DIM,
                                                    reconstruction_loss="bce", **settings)
    model = getattr(pythae.models, cls)(model_config=config, encoder=encoder, decoder=decoder)
    return pythae_fit(model, DataProcessor().to_dataset(splits.train.inputs()), workdir / f"pythae-{row}",
                      BATCH_SIZE, args.epochs, LR, args.seed, optimizer_params={"eps": ADAM_EPS})


def pythae_nll(model: nn.Module, x: torch.Tensor, samples: int, seed: int) -> dict[str, Any]:
    """Pythae's ``get_nll`` needs gradients for the HVAE's leapfrog steps: :func:`nll` runs it without them, so the
    HVAE is scored here with them on."""
    if type(model).__name__ != "HVAE":
        return nll("pythae", model, x, samples, seed)
    torch.manual_seed(seed)
    start = time.perf_counter()
    value = -float(model.get_nll(x, n_samples=samples, batch_size=min(100, samples)))
    return {"nll": round(value, 3), "nll_se": float("nan"), "nll_seconds": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of {', '.join(ROWS)}")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train-examples", type=int, default=10_000, help="a seeded random subset of the training images")
    p.add_argument("--nll-samples", type=int, default=500)
    p.add_argument("--nll-examples", type=int, default=200, help="seeded random test images scored")
    p.add_argument("--latent-dim", type=int, default=iwae_pythae.LATENT_DIM, help="the networks' latent width")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", default="/work/shared/datasets")
    p.add_argument("--out", default="benchmarks/results/hvae_poincare_pythae.json")
    args = p.parse_args(argv)
    iwae_pythae.LATENT_DIM = args.latent_dim  # the comparison's networks read it when built
    splits, x = binarized_mnist_comparison(args)
    result: dict[str, Any] = {
        "benchmark": "hvae_poincare_pythae", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(), "aekit_source": aekit_source(), "pythae_version": importlib.metadata.version("pythae"),
        "setup": {"hidden": [HIDDEN, HIDDEN], "activation": "tanh", "latent_dim": iwae_pythae.LATENT_DIM,
                  "batch_size": BATCH_SIZE, "lr": LR, "adam_eps": ADAM_EPS, "epochs": args.epochs,
                  "train_examples": args.train_examples, "nll_samples": args.nll_samples,
                  "nll_examples": args.nll_examples, "seed": args.seed, "threads": args.threads},
        "reference_full_training": REFERENCE, "rows": {}}
    with tempfile.TemporaryDirectory(prefix="aekit-hvae-poincare-") as tmp:
        for i, row in enumerate(args.rows.split(",")):
            entry: dict[str, Any] = {"aekit": ROWS[row][:2], "pythae": ROWS[row][2:]}
            for library in ("aekit", "pythae") if i % 2 == 0 else ("pythae", "aekit"):
                train = train_aekit if library == "aekit" else train_pythae
                try:
                    model, wall_s = train(row, splits, args, Path(tmp))
                except ArithmeticError as error:  # Pythae stops on a NaN loss
                    entry[f"{library}_result"] = {"error": str(error)}
                    print(row, library, entry[f"{library}_result"], flush=True)
                    continue
                scored = (nll("aekit", model, x, args.nll_samples, args.seed) if library == "aekit"
                          else pythae_nll(model, x, args.nll_samples, args.seed))
                entry[f"{library}_result"] = {"wall_s": round(wall_s, 1), **scored}
                print(row, library, entry[f"{library}_result"], flush=True)
            if all("wall_s" in entry[f"{library}_result"] for library in ("aekit", "pythae")):
                entry["wall_ratio_aekit_over_pythae"] = round(entry["aekit_result"]["wall_s"]
                                                              / entry["pythae_result"]["wall_s"], 3)
            result["rows"][row] = entry
    save_json(result, args.out)
    return result


if __name__ == "__main__":
    main()
