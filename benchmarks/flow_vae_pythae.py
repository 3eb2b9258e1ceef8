"""Flow posteriors: aekit's vae-nf and vae-iaf against Pythae's VAE_LinNF and VAE_IAF on binarized MNIST at a small
CPU budget, NLL and wall time side by side.

The network is that of the importance-weighted comparison (``iwae_pythae.py``, Pythae's reproducibility scripts):

    encoder  x [784] -> Linear 200 -> tanh -> Linear 200 -> tanh -> (mu [50], log sigma^2 [50])
    decoder  z [50]  -> Linear 200 -> tanh -> Linear 200 -> tanh -> Linear 784 -> Bernoulli means
    Adam, lr 1e-3, eps 1e-4, batch 20, constant lr, one seed

and the posteriors of each row:

    row         aekit                                          Pythae 0.1.2
    planar      vae-nf, K = 10 planar steps, amortised         VAE_LinNF, flows = 10 x Planar (free parameters)
    planar-free vae-nf, K = 10 planar steps, amortised=false   (the same Pythae model: the like-for-like row)
    iaf         vae-iaf, 2 steps, MADE [320], context h of 16  VAE_IAF, 2 MADE blocks of one hidden layer of 320

Pythae's planar flow has no u^ constraint (it takes log(|1 + u^T psi| + 1e-4)) and its IAF no context h (its
VAE_IAF reads z only). Both libraries start from the same initial encoder, decoder and Gaussian heads (Pythae's
networks, Glorot-uniform weights and zero biases, built under the seed and copied into aekit's model); each flow
starts from its own library's initial weights. They train one after the other in this process, the order
alternating from row to row; each model is scored by its own library's importance-sampled estimator on the same
seeded test images with the same K (aekit: ``importance_sampled_log_likelihood``; Pythae: ``get_nll``, one image
at a time, samples in batches of 100). ``--rows vae`` adds aekit's plain VAE at the same budget (no Pythae run).

    .venv-bench/bin/python benchmarks/flow_vae_pythae.py --train-examples 20000 --nll-samples 1000 \\
        --nll-examples 300 --out benchmarks/results/flow_vae_pythae.json
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import aekit_source, machine, pythae_fit, save_json
from iwae_pythae import ADAM_EPS, BATCH_SIZE, HIDDEN, LATENT_DIM, LR, PYTHAE_LAYERS, pythae_networks
from torch import nn
from vae_binarized_mnist import aekit_state_from_pythae, nll_subset

import aekit
from aekit.data.base import Splits
from aekit.metrics import importance_sampled_log_likelihood

K_PLANAR, IAF_STEPS, MADE_WIDTH, CONTEXT = 10, 2, 320, 16
ROWS: dict[str, tuple[str, dict[str, Any], str, dict[str, Any]]] = {
    "planar": ("vae-nf", {"flow_length": K_PLANAR}, "VAE_LinNF", {"flows": ["Planar"] * K_PLANAR}),
    "planar-free": ("vae-nf", {"flow_length": K_PLANAR, "amortised": False}, "VAE_LinNF",
                    {"flows": ["Planar"] * K_PLANAR}),
    "iaf": ("vae-iaf", {"flow_length": IAF_STEPS, "made_hidden": (MADE_WIDTH,), "context_dim": CONTEXT}, "VAE_IAF",
            {"n_made_blocks": IAF_STEPS, "n_hidden_in_made": 1, "hidden_size": MADE_WIDTH}),
    "vae": ("vae", {}, "", {}),  # aekit alone: the Gaussian posterior at the same budget
}


def train_aekit(row: str, splits: Splits, args: argparse.Namespace, workdir: Path) -> tuple[nn.Module, float]:
    """aekit's model of ``row`` trained from Pythae's initial encoder, decoder and Gaussian heads (the same seed
    builds them), its flow from its own initial weights."""
    name, settings, _, _ = ROWS[row]
    torch.manual_seed(args.seed)
    encoder, decoder = pythae_networks()
    init = {f"{part}.{k}": v for part, net in (("encoder", encoder), ("decoder", decoder))
            for k, v in net.state_dict().items()}
    model = aekit.build_model(name, data_shape=(1, 28, 28), backbone="mlp", hidden=(HIDDEN, HIDDEN),
                              latent_dim=LATENT_DIM, activation="tanh", likelihood="bernoulli", **settings)
    heads = "bottleneck.q0.proj." if hasattr(model.bottleneck, "q0") else "bottleneck.proj."  # q_0's, in a flow
    shared = {k.replace("bottleneck.proj.", heads): v for k, v in aekit_state_from_pythae(init, *PYTHAE_LAYERS).items()}
    missing = model.load_state_dict(shared, strict=False).missing_keys
    assert all(key.startswith("bottleneck.flow.") for key in missing), missing
    start = time.perf_counter()
    run = aekit.train(model, data=splits, out=workdir / f"aekit-{row}", evaluate=False, epochs=args.epochs,
                      batch_size=BATCH_SIZE, lr=LR, lr_schedule="constant", optimizer="adam", seed=args.seed,
                      optimizers={"model": {"eps": ADAM_EPS}}, accelerator="cpu", progress=False, figures=False,
                      threads=args.threads)
    return run.model.eval(), time.perf_counter() - start


def train_pythae(row: str, splits: Splits, args: argparse.Namespace, workdir: Path) -> tuple[nn.Module, float]:
    import pythae.models
    from pythae.data.preprocessors import DataProcessor

    _, _, cls, settings = ROWS[row]
    torch.manual_seed(args.seed)
    encoder, decoder = pythae_networks()
    config = getattr(pythae.models, f"{cls}_Config")(input_dim=(1, 28, 28), latent_dim=LATENT_DIM,
                                                      reconstruction_loss="bce", **settings)
    model = getattr(pythae.models, cls)(model_config=config, encoder=encoder, decoder=decoder)
    return pythae_fit(model, DataProcessor().to_dataset(splits.train.inputs()), workdir / f"pythae-{row}",
                      BATCH_SIZE, args.epochs, LR, args.seed, optimizer_params={"eps": ADAM_EPS})


def nll(library: str, model: nn.Module, x: torch.Tensor, samples: int, seed: int) -> dict[str, float]:
    """Mean NLL over the images ``x`` by the library's own estimator with ``samples`` importance samples, its
    standard error where the estimator gives one value per image, and the seconds it took."""
    torch.manual_seed(seed)
    start = time.perf_counter()
    with torch.no_grad():
        if library == "aekit":
            lp = torch.cat([importance_sampled_log_likelihood(model, x[i : i + 50], samples)
                            for i in range(0, len(x), 50)])  # [N]
            value, se = -float(lp.mean()), float(lp.std() / math.sqrt(len(lp)))
        else:
            value, se = -float(model.get_nll(x, n_samples=samples, batch_size=min(100, samples))), float("nan")
    return {"nll": round(value, 3), "nll_se": round(se, 3), "nll_seconds": round(time.perf_counter() - start, 1)}


def binarized_mnist_comparison(args: argparse.Namespace) -> tuple[Splits, torch.Tensor]:
    """Pythae quiet and ``args.threads`` threads; the seeded training subset (no validation) and the seeded test
    images every model is scored on."""
    os.environ["TQDM_DISABLE"] = "1"  # Pythae's progress bars off
    torch.set_num_threads(args.threads)
    logging.getLogger("pythae").setLevel(logging.WARNING)
    data = aekit.load_data("binarized-mnist", root=args.root)
    splits = Splits(nll_subset(data.train, args.train_examples, args.seed), data.val.subset(torch.arange(0)),
                    data.test)
    x = nll_subset(data.test, args.nll_examples, args.seed).inputs()
    return splits, x


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of {', '.join(ROWS)}")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train-examples", type=int, default=10_000, help="a seeded random subset of the training images")
    p.add_argument("--nll-samples", type=int, default=1000)
    p.add_argument("--nll-examples", type=int, default=300, help="seeded random test images scored")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", default="/work/shared/datasets")
    p.add_argument("--out", default="benchmarks/results/flow_vae_pythae.json")
    args = p.parse_args(argv)
    splits, x = binarized_mnist_comparison(args)
    result: dict[str, Any] = {
        "benchmark": "flow_vae_pythae", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(), "aekit_source": aekit_source(), "pythae_version": importlib.metadata.version("pythae"),
        "setup": {"hidden": [HIDDEN, HIDDEN], "activation": "tanh", "latent_dim": LATENT_DIM,
                  "batch_size": BATCH_SIZE, "lr": LR, "adam_eps": ADAM_EPS, "epochs": args.epochs,
                  "train_examples": args.train_examples, "nll_samples": args.nll_samples,
                  "nll_examples": args.nll_examples, "seed": args.seed, "threads": args.threads},
        "rows": {}}
    with tempfile.TemporaryDirectory(prefix="aekit-flows-") as tmp:
        for i, row in enumerate(args.rows.split(",")):
            entry: dict[str, Any] = {"aekit": ROWS[row][:2], "pythae": ROWS[row][2:]}
            libraries = ("aekit", "pythae") if ROWS[row][2] else ("aekit",)
            for library in libraries if i % 2 == 0 else libraries[::-1]:
                train = train_aekit if library == "aekit" else train_pythae
                model, wall_s = train(row, splits, args, Path(tmp))
                entry[f"{library}_result"] = {"wall_s": round(wall_s, 1),
                                              **nll(library, model, x, args.nll_samples, args.seed)}
                print(row, library, entry[f"{library}_result"], flush=True)
            if "pythae_result" in entry:
                entry["wall_ratio_aekit_over_pythae"] = round(entry["aekit_result"]["wall_s"]
                                                              / entry["pythae_result"]["wall_s"], 3)
            result["rows"][row] = entry
    save_json(result, args.out)
    return result


if __name__ == "__main__":
    main()
