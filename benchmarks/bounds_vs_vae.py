"""The other bounds of the seed papers against the plain VAE on statically binarized MNIST, at a CPU budget.

Five models share one network, one budget and one seed: encoder x [784] -> Linear 400 -> ReLU -> (mu, log
sigma^2) [16], decoder z [16] -> Linear 400 -> ReLU -> Linear 784 -> Bernoulli logits; Adam (lr 1e-3, cosine
decay), batch 100, the same number of epochs on the 50,000 training images, torch seed 0, one thread. Each
model keeps its paper's defaults (no setting is tuned, so one recipe per model):

    vae           the ELBO (Kingma & Welling 2014)
    vis           log p^(x) for the decoder, log(1 + chi^2(p(z|x) || q)) for the encoder, K = 16 samples
                  (Li et al. 2024 use K = 500)
    coupled-vae   the decoder on the entropic OT coupling with m = 128 prior draws, eps = 1 (Hao & Shafto 2023)
    unscented-ae  2d + 1 = 33 sigma points, ||Sigma^1/2 - I||_F + ||mu||_2 for the KL (Janjos et al. 2023)
    autogen       m = 2 copies of the reconstruction term (Mansbridge et al. 2018)

Each trained model is scored on ``--examples`` images drawn at random (seeded, the same for every model) from the
validation set and from the test set, with the same three measures (the binarized test set is ordered by digit:
its first 2,000 images are nearly all 0s and 1s, so a prefix is no sample of it):

- ``nll``: -log p(x) by importance sampling with the model's q(z|x) as the proposal and ``--nll-samples`` samples
  (:func:`aekit.metrics.likelihood.importance_sampled_log_likelihood`, Burda et al. 2016), nats;
- ``recon``: -log p(x | z = mu(x)), the reconstruction from the posterior mean, nats;
- ``fd``: in place of FID (no Inception network here), the Frechet distance between ``--fd-samples`` decoded prior
  samples (Bernoulli means) and as many held-out images, in the 64 features of the penultimate layer of an MLP
  digit classifier (784-256-64-10, two epochs on the first 20,000 labelled grey-level MNIST training images,
  seed 0; the binarized set has no labels), the same classifier for every model; ``fd_real`` is that of the
  held-out images against as many training images, its floor at this sample size.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bounds_vs_vae.py --epochs 2 --examples 500 --nll-samples 500 \
        --fd-samples 2000 --out benchmarks/results/bounds_vs_vae.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import aekit_source, machine
from scipy import linalg
from torch import nn

import aekit
from aekit.metrics.likelihood import importance_sampled_log_likelihood

MODELS: dict[str, dict[str, Any]] = {
    "vae": {},
    "vis": {"n_samples": 16},
    "coupled-vae": {"prior_draws": 128, "epsilon": 1.0},
    "unscented-ae": {},
    "autogen": {"m": 2.0},
}
NETWORK = {"backbone": "mlp", "hidden": [400], "latent_dim": 16, "activation": "relu", "likelihood": "bernoulli"}
BATCH_SIZE, LR = 100, 1e-3


def train(name: str, epochs: int, seed: int, root: str) -> tuple[torch.nn.Module, float]:
    """The model trained in memory, and the training loop's wall time in seconds."""
    settings = {**NETWORK, **MODELS[name], "root": root, "epochs": epochs, "batch_size": BATCH_SIZE, "lr": LR,
                "seed": seed, "accelerator": "cpu", "threads": 1, "progress": False, "figures": False,
                "eval_every": 0, "val_examples": 1000}
    start = time.perf_counter()
    run = aekit.train(name, data="binarized-mnist", out=None, evaluate=False, **settings)
    return run.model.eval(), time.perf_counter() - start


def classifier_features(train_x: torch.Tensor, train_y: torch.Tensor, seed: int) -> nn.Module:
    """An MLP digit classifier 784-256-64-10 trained two epochs on ``train_x [N, 1, 28, 28]`` in [0, 1]; the
    returned module gives its 64 features."""
    torch.manual_seed(seed)
    features = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU())
    net = nn.Sequential(features, nn.Linear(64, 10))
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(2):
        for index in torch.randperm(len(train_x)).split(128):
            optimiser.zero_grad()
            nn.functional.cross_entropy(net(train_x[index]), train_y[index]).backward()
            optimiser.step()
    return features.eval()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||m_a - m_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^{1/2}) between the Gaussians fitted to two feature sets
    ``[N, F]`` (Heusel et al. 2017, the FID's formula)."""
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b).real
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


@torch.no_grad()
def score(model, x: torch.Tensor, held_out_features: np.ndarray, features: nn.Module, args) -> dict[str, float]:
    """nll, recon and fd on ``x [N, 1, 28, 28]`` (module docstring)."""
    torch.manual_seed(args.seed)
    nll = torch.cat([-importance_sampled_log_likelihood(model, chunk, n_samples=args.nll_samples)
                     for chunk in x.split(100)])
    mu = model.encode(x).mean  # [N, 16]
    recon = model.likelihood.nll(model.decode(mu), x)  # [N]
    samples = model.sample(args.fd_samples, generator=torch.Generator().manual_seed(args.seed))
    fd = frechet_distance(features(samples).numpy(), held_out_features)
    return {"nll": float(nll.mean()), "nll_stderr": float(nll.std() / len(nll) ** 0.5),
            "recon": float(recon.mean()), "fd": fd, "nll_per_example": nll.tolist()}


def paired_differences(results: dict[str, Any], baseline: str = "vae") -> None:
    """Each model's NLL minus the baseline's on the same images, with the standard error of the paired
    differences; the per-example NLLs are then dropped from the record."""
    for split in ("val", "test"):
        base = np.array(results[baseline][split]["nll_per_example"]) if baseline in results else None
        for result in results.values():
            nll = np.array(result[split].pop("nll_per_example"))
            if base is not None:
                diff = nll - base
                result[split]["nll_minus_vae"] = float(diff.mean())
                result[split]["nll_minus_vae_stderr"] = float(diff.std(ddof=1) / len(diff) ** 0.5)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--examples", type=int, default=500, help="validation and test images scored")
    p.add_argument("--nll-samples", type=int, default=500)
    p.add_argument("--fd-samples", type=int, default=2000)
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--root", default="/work/shared/datasets", help="folder holding binarized_mnist/")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/bounds_vs_vae.json"))
    args = p.parse_args()
    torch.set_num_threads(1)
    splits = aekit.load_data("binarized-mnist", root=args.root)
    labelled = aekit.load_data("mnist", root=args.root).train
    features = classifier_features(labelled.x[:20_000].float() / 255, labelled.y[:20_000], args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    rows = {split: torch.randperm(len(getattr(splits, split)), generator=generator)
            for split in ("train", "val", "test")}  # a seeded order of each split, shared by every model
    with torch.no_grad():
        held_out = {split: features(getattr(splits, split).x[rows[split][: args.fd_samples]].float()).numpy()
                    for split in ("val", "test")}
        train_features = features(splits.train.x[rows["train"][: args.fd_samples]].float()).numpy()
    record: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "machine": machine(),
                              "aekit": aekit_source(), "network": NETWORK, "models": MODELS,
                              "fd_real": {split: frechet_distance(train_features, held_out[split])
                                          for split in held_out}, "results": {}}
    for name in args.models:
        model, seconds = train(name, args.epochs, args.seed, args.root)
        record["results"][name] = {"train_s": seconds, **{
            split: score(model, getattr(splits, split).x[rows[split][: args.examples]].float(), held_out[split],
                         features, args)
            for split in ("val", "test")}}
        print(name, json.dumps({split: {k: v for k, v in record["results"][name][split].items()
                                        if k != "nll_per_example"} for split in ("val", "test")}), flush=True)
    paired_differences(record["results"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
