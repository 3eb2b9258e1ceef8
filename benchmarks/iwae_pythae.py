"""Importance-weighted bounds: aekit's IWAE, MIWAE, PIWAE and CIWAE against Pythae's, same network, data, optimiser,
budget and initial weights, side by side.

The rows are those of Pythae's reproducibility table (clementchadebec/benchmark_VAE,
``examples/scripts/reproducibility/README.md`` and the scripts ``iwae.py``, ``miwae.py``, ``piwae.py``, ``ciwae.py``
beside it):

    row    data                                Pythae's NLL (5000 IS)   paper (Burda et al. 2016; Rainforth et al. 2018)
    iwae   binarized MNIST, k = 50             86.82 (0.01)             87.1
    miwae  dynamically binarized MNIST, M=K=8  85.09 (0.00)             84.97 (0.10)
    piwae  dynamically binarized MNIST, M=K=8  84.58 (0.00)             84.46 (0.06)
    ciwae  dynamically binarized MNIST, K=64   84.74 (0.01), beta=0.05  84.57 (0.09)

with the network of those scripts, latent 50:

    encoder  x [784] -> Linear 200 -> tanh -> Linear 200 -> tanh -> (mu [50], log sigma^2 [50])
    decoder  z [50]  -> Linear 200 -> tanh -> Linear 200 -> tanh -> Linear 784 -> Bernoulli means
    Glorot-uniform weights, zero biases; Adam, lr 1e-3, eps 1e-4, batch 20, 3280 epochs, MultiStepLR
    (x 10^(-1/7) at epochs 2, 5, 14, 28, 41, 122, 365, 1094); PIWAE with one Adam per network.

Here the budget is ``--epochs`` over ``--train-examples`` training images (lr constant: the first milestone is
epoch 2). Both libraries start from the same weights (Pythae's networks initialised with the seed, copied into the
aekit model) and train in fresh processes, alternating, each timed inside its own process. Both run Adam with
eps 1e-4 (aekit: ``optimizers.model.eps``; ``--aekit-eps 1e-8`` gives torch's default, as the first runs had).
Every trained model is scored by aekit's estimator on the same test images
(Pythae's weights copied into an aekit model, the copy checked to give the same Bernoulli means and log weights),
with the encoder's bounds beside the NLL: the ELBO (K = 1) and the IWAE bound with 64 samples.

    .venv-bench/bin/python benchmarks/iwae_pythae.py --epochs 1 --nll-samples 5000 --nll-examples 500 \\
        --out benchmarks/results/iwae_pythae.json
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from _common import aekit_source, machine
from torch import nn
from vae_binarized_mnist import aekit_state_from_pythae, nll_subset, pythae_epoch_timer

import aekit
from aekit.data.base import Splits
from aekit.metrics import importance_sampled_log_likelihood

HIDDEN, LATENT_DIM, BATCH_SIZE, LR, ADAM_EPS = 200, 50, 20, 1e-3, 1e-4
SOURCE = ("Pythae reproducibility table, clementchadebec/benchmark_VAE examples/scripts/reproducibility/README.md "
          "(commit 6419e21); papers arXiv:1509.00519 (IWAE), arXiv:1802.04537 (MIWAE, PIWAE, CIWAE)")
PYTHAE_LAYERS = (["encoder.fc1", "encoder.fc2"], "encoder.embedding", "encoder.log_var",
                 ["decoder.fc1", "decoder.fc2", "decoder.fc3"])


@dataclass(frozen=True)
class Row:
    """One model of the table: aekit's name and settings, Pythae's class and config, the reference values."""

    model: str
    data: str
    settings: dict[str, Any]
    pythae: str
    pythae_settings: dict[str, Any]
    reference: dict[str, Any] = field(default_factory=dict)
    compare: bool = True  # trained by Pythae too (False: an aekit-only model for the comparisons at equal budget)


ROWS = {
    "iwae": Row("iwae", "binarized-mnist", {"n_samples": 50}, "IWAE", {"number_samples": 50},
                {"pythae_nll": 86.82, "pythae_sd": 0.01, "paper_nll": 87.1}),
    "miwae": Row("miwae", "dynamic-binarized-mnist", {"n_bounds": 8, "n_samples": 8}, "MIWAE",
                 {"number_gradient_estimates": 8, "number_samples": 8},
                 {"pythae_nll": 85.09, "pythae_sd": 0.00, "paper_nll": 84.97, "paper_se": 0.10}),
    "piwae": Row("piwae", "dynamic-binarized-mnist", {"n_bounds": 8, "n_samples": 8}, "PIWAE",
                 {"number_gradient_estimates": 8, "number_samples": 8},
                 {"pythae_nll": 84.58, "pythae_sd": 0.00, "paper_nll": 84.46, "paper_se": 0.06}),
    "ciwae": Row("ciwae", "dynamic-binarized-mnist", {"n_samples": 64, "beta": 0.05}, "CIWAE",
                 {"number_samples": 64, "beta": 0.05},
                 {"pythae_nll": 84.74, "pythae_sd": 0.01, "paper_nll": 84.57, "paper_se": 0.09,
                  "note": "the table says beta=0.05; its ciwae.py sets beta=0.5"}),
    # aekit alone, at the same budget: the VAE against IWAE (static), IWAE with 64 samples against PIWAE/CIWAE
    "vae": Row("vae", "binarized-mnist", {}, "", {}, compare=False),
    "iwae64-dynamic": Row("iwae", "dynamic-binarized-mnist", {"n_samples": 64}, "", {}, compare=False),
}


def aekit_model(row: Row) -> nn.Module:
    return aekit.build_model(row.model, data_shape=(1, 28, 28), backbone="mlp", hidden=(HIDDEN, HIDDEN),
                             latent_dim=LATENT_DIM, activation="tanh", likelihood="bernoulli", **row.settings)


def aekit_from_pythae(row: Row, state: dict[str, torch.Tensor]) -> nn.Module:
    """An aekit model of ``row`` holding the weights of a Pythae model's (or networks') state dict."""
    model = aekit_model(row)
    model.load_state_dict(aekit_state_from_pythae(state, *PYTHAE_LAYERS))
    return model.eval()


# ---------------------------------------------------------------------------------------------------------
# Pythae: the reproducibility scripts' networks and trainers


def pythae_networks() -> tuple[nn.Module, nn.Module]:
    """The scripts' encoder and decoder (names as there: fc1, fc2, embedding, log_var; fc1, fc2, fc3), Glorot
    uniform weights and zero biases (their ``unif_init``)."""
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    def glorot(module: nn.Module) -> None:
        for m in module.modules():
            if isinstance(m, nn.Linear):
                nn.init.uniform_(m.weight, -math.sqrt(6 / (m.in_features + m.out_features)),
                                 math.sqrt(6 / (m.in_features + m.out_features)))
                nn.init.zeros_(m.bias)

    class Encoder(BaseEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(784, HIDDEN), nn.Linear(HIDDEN, HIDDEN)
            self.embedding, self.log_var = nn.Linear(HIDDEN, LATENT_DIM), nn.Linear(HIDDEN, LATENT_DIM)
            glorot(self)

        def forward(self, x: torch.Tensor) -> ModelOutput:
            h = torch.tanh(self.fc2(torch.tanh(self.fc1(x.reshape(x.shape[0], -1)))))  # [B, 784] -> [B, 200]
            return ModelOutput(embedding=self.embedding(h), log_covariance=self.log_var(h))

    class Decoder(BaseDecoder):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(LATENT_DIM, HIDDEN), nn.Linear(HIDDEN, HIDDEN)
            self.fc3 = nn.Linear(HIDDEN, 784)
            glorot(self)

        def forward(self, z: torch.Tensor) -> ModelOutput:
            h = torch.tanh(self.fc2(torch.tanh(self.fc1(z))))
            return ModelOutput(reconstruction=torch.sigmoid(self.fc3(h)).reshape(z.shape[0], 1, 28, 28))

    return Encoder(), Decoder()


def pythae_model(row: Row) -> nn.Module:
    import pythae.models

    encoder, decoder = pythae_networks()
    config = getattr(pythae.models, f"{row.pythae}Config")(input_dim=(1, 28, 28), latent_dim=LATENT_DIM,
                                                           reconstruction_loss="bce", **row.pythae_settings)
    return getattr(pythae.models, row.pythae)(model_config=config, encoder=encoder, decoder=decoder)


def pythae_dataset(source, dynamic: bool):
    """Pythae's dataset of the images: drawn afresh per item where ``dynamic``, as the scripts' DynBinarizedMNIST."""
    from pythae.data.datasets import DatasetOutput
    from pythae.data.preprocessors import DataProcessor

    if not dynamic:
        return DataProcessor().to_dataset(source.inputs())

    class DynBinarizedMNIST(torch.utils.data.Dataset):
        def __init__(self, grey: torch.Tensor) -> None:
            self.grey = grey

        def __len__(self) -> int:
            return len(self.grey)

        def __getitem__(self, index):
            x = self.grey[index]
            return DatasetOutput(data=(x > torch.rand(x.shape)).float())

    return DynBinarizedMNIST(source.grey.inputs())


def train_pythae(row: Row, train, epochs: int, seed: int, init: dict, workdir: Path) -> tuple[nn.Module, float]:
    """Pythae's trainer of the script (``CoupledOptimizerTrainer`` for PIWAE), from the weights ``init``."""
    from pythae.trainers import BaseTrainer, BaseTrainerConfig, CoupledOptimizerTrainer, CoupledOptimizerTrainerConfig

    torch.manual_seed(seed)
    model = pythae_model(row)
    model.load_state_dict(init, strict=False)
    common = {"output_dir": str(workdir / "pythae"), "per_device_train_batch_size": BATCH_SIZE,
              "num_epochs": epochs, "learning_rate": LR, "steps_saving": None, "steps_predict": None,
              "no_cuda": True, "seed": seed}
    if row.pythae == "PIWAE":
        # the script's learning_rate=1e-3 does not reach this trainer, whose encoder_ and decoder_learning_rate
        # default to 1e-4: here both are set, as aekit's
        adam = {f"{net}_{key}": value for net in ("encoder", "decoder")
                for key, value in (("optimizer_cls", "Adam"), ("optimizer_params", {"eps": ADAM_EPS}),
                                   ("learning_rate", LR))}
        trainer_cls, config = CoupledOptimizerTrainer, CoupledOptimizerTrainerConfig(**common, **adam)
    else:
        trainer_cls = BaseTrainer
        config = BaseTrainerConfig(**common, optimizer_cls="Adam", optimizer_params={"eps": ADAM_EPS})
    timer = pythae_epoch_timer()
    trainer = trainer_cls(model=model, train_dataset=pythae_dataset(train, row.data.startswith("dynamic")),
                          training_config=config, callbacks=[timer])
    trainer.train()
    return trainer._best_model.eval(), timer.loop_s


# ---------------------------------------------------------------------------------------------------------
# One training per fresh process


def training_splits(row: Row, root: str, n_train: int, seed: int) -> Splits:
    """The row's data with a seeded random ``n_train`` of its training images and no validation."""
    splits = aekit.load_data(row.data, root=root)
    train = nll_subset(splits.train, n_train, seed)
    return Splits(train, splits.val.subset(torch.arange(0)), splits.test)


def worker(args: argparse.Namespace) -> None:
    """Train row ``args.worker`` with library ``args.library`` from ``init.safetensors`` in ``args.worker_dir``;
    leave the weights and the times there. The clock starts after torch's import and counts the library's
    imports, the data reading, the training and the writing of the trained model."""
    from safetensors.torch import load_file, save_file

    torch.set_num_threads(args.threads)
    logging.getLogger("pythae").setLevel(logging.WARNING)
    out, row = Path(args.worker_dir), ROWS[args.worker]
    init = load_file(str(out / "init.safetensors"))
    start = time.perf_counter()
    splits = training_splits(row, args.root, args.train_examples, args.seed)
    if args.library == "aekit":
        model = aekit_from_pythae(row, init).train()
        run = aekit.train(model, data=splits, out=out / "run", evaluate=False, epochs=args.epochs,
                          batch_size=BATCH_SIZE, lr=LR, lr_schedule="constant", optimizer="adam", seed=args.seed,
                          optimizers={"model": {"eps": args.aekit_eps}},
                          accelerator="cpu", progress=False, figures=False, threads=args.threads,
                          retain_cpu_memory=True)
        loop_s, state = float(run.metrics["train/wall_time_s"]), run.model.state_dict()
    else:
        model, loop_s = train_pythae(row, splits.train, args.epochs, args.seed, init, out)
        state = model.state_dict()
    wall_s = time.perf_counter() - start
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "weights.safetensors"))
    (out / "timing.json").write_text(json.dumps({"wall_s": wall_s, "loop_s": loop_s}))


def run_worker(name: str, library: str, args: argparse.Namespace, init: dict, workdir: Path
               ) -> tuple[nn.Module, dict[str, float]]:
    """Train in a fresh interpreter; the trained model as an aekit model, and the times."""
    from safetensors.torch import load_file, save_file

    out = workdir / f"{name}-{library}-{time.monotonic_ns()}"
    out.mkdir(parents=True)
    save_file(init, str(out / "init.safetensors"))
    cmd = [sys.executable, __file__, "--worker", name, "--library", library, "--worker-dir", str(out),
           "--epochs", str(args.epochs), "--train-examples", str(args.train_examples), "--seed", str(args.seed),
           "--threads", str(args.threads), "--root", args.root, "--aekit-eps", str(args.aekit_eps)]
    subprocess.run(cmd, check=True, env={**os.environ, "TQDM_DISABLE": "1"})  # Pythae's progress bars off
    state = load_file(str(out / "weights.safetensors"))
    row = ROWS[name]
    if library == "aekit":
        model = aekit_model(row)
        model.load_state_dict(state)
    else:
        model = aekit_from_pythae(row, state)
        model.pythae_state = state  # for the check of the copy and Pythae's own estimator
    return model.eval(), json.loads((out / "timing.json").read_text())


# ---------------------------------------------------------------------------------------------------------
# Scores


def log_px(model: nn.Module, x: torch.Tensor, samples: int, batch: int = 50) -> torch.Tensor:
    """Per-example log (1/K) sum_k w_k with K = ``samples`` ``[N]``: log p(x) for large K, the IWAE bound L_K,
    the ELBO at K = 1."""
    with torch.no_grad():
        return torch.cat([importance_sampled_log_likelihood(model, x[i : i + batch], samples)
                          for i in range(0, len(x), batch)])


def scores(model: nn.Module, x: torch.Tensor, nll_samples: int, seed: int) -> dict[str, Any]:
    """The test NLL (K = ``nll_samples``), the IWAE bound with 64 samples and the ELBO (mean of 16 one-sample
    estimates) on ``x``, each as a mean over the examples with its standard error; ``per_example``: log p(x)."""
    torch.manual_seed(seed)
    start = time.perf_counter()
    lp = log_px(model, x, nll_samples)
    nll_s = time.perf_counter() - start
    iwae64 = log_px(model, x, 64)
    elbo = torch.stack([log_px(model, x, 1) for _ in range(16)]).mean(0)
    se = lambda v: float(v.std() / math.sqrt(len(v)))  # noqa: E731
    return {"nll": -float(lp.mean()), "nll_se": se(lp), "iwae64_bound": float(iwae64.mean()),
            "elbo": float(elbo.mean()), "elbo_se": se(elbo), "gap_nll_minus_iwae64": float((lp - iwae64).mean()),
            "gap_nll_minus_elbo": float((lp - elbo).mean()), "nll_seconds": round(nll_s, 2), "per_example": lp}


def check_copy(row: Row, pythae_state: dict, converted: nn.Module, x: torch.Tensor, k: int = 8) -> dict[str, float]:
    """Largest differences between Pythae's model and its aekit copy on ``x``: the Bernoulli means at the posterior
    mean, and log (1/k) sum_k w_k from the same noise eps (Pythae's formulas for log w, whose constants
    -D/2 log 2 pi cancel in w, against aekit's estimator given ``eps``)."""
    import torch.nn.functional as F

    pythae = pythae_model(row).eval()
    pythae.load_state_dict(pythae_state, strict=False)
    eps = torch.randn(k, len(x), LATENT_DIM)  # [k, B, D]
    with torch.no_grad():
        enc = pythae.encoder(x)
        mu, log_var = enc.embedding, enc.log_covariance  # [B, D]
        means = (pythae.decoder(mu).reconstruction - torch.sigmoid(converted.decode(mu))).abs().max()
        z = mu + eps * (0.5 * log_var).exp()  # [k, B, D]
        recon = pythae.decoder(z.reshape(-1, LATENT_DIM)).reconstruction.reshape(k, len(x), -1)  # -> [k, B, 784]
        log_w = (-F.binary_cross_entropy(recon, x.flatten(1).expand(k, -1, -1), reduction="none").sum(-1)
                 - 0.5 * (z**2).sum(-1) + 0.5 * (log_var + (z - mu) ** 2 / log_var.exp()).sum(-1))  # [k, B]
        theirs = log_w.logsumexp(0) - math.log(k)
        ours = importance_sampled_log_likelihood(converted, x, k, eps=eps)
    return {"means_max_abs_diff": float(means), "log_mean_w_max_abs_diff": float((theirs - ours).abs().max())}


def encoder_gradient_noise(model: nn.Module, x: torch.Tensor, ks: tuple[int, ...], repeats: int, seed: int
                           ) -> dict[str, dict[str, float]]:
    """The inference network's gradient of the IWAE bound L_k on the batch ``x``, drawn ``repeats`` times for each
    k and estimator (reparam, dreg), from ``model``'s weights: the variance per parameter summed over the
    parameters, and the signal-to-noise ratio |E g| / std g per parameter, its median and its mean
    (Rainforth et al. 2018, Tucker et al. 2019)."""
    out: dict[str, dict[str, float]] = {}
    for k in ks:
        for estimator in ("reparam", "dreg"):
            iwae = aekit.build_model("iwae", data_shape=(1, 28, 28), backbone="mlp", hidden=(HIDDEN, HIDDEN),
                                     latent_dim=LATENT_DIM, activation="tanh", likelihood="bernoulli", n_samples=k,
                                     gradient_estimator=estimator)
            iwae.load_state_dict(model.state_dict())
            params = iwae.networks()["inference"]
            objective = iwae.objective()
            torch.manual_seed(seed)
            grads = []
            for _ in range(repeats):
                loss = objective(iwae(x), None).losses["model"]
                grads.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]))
            g = torch.stack(grads)  # [R, P]
            snr = g.mean(0).abs() / g.std(0).clamp_min(1e-12)
            out[f"k={k} {estimator}"] = {"variance_sum": float(g.var(0).sum()), "snr_median": float(snr.median()),
                                         "snr_mean": float(snr.mean()), "mean_norm": float(g.mean(0).norm())}
    return out


def train_rows(args: argparse.Namespace, names: list[str]) -> dict[str, dict[str, Any]]:
    """Each row by each library, fresh processes, the libraries' order alternating from row to row."""
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="aekit-iwae-") as tmp:
        for i, name in enumerate(names):
            row = ROWS[name]
            torch.manual_seed(args.seed)
            encoder, decoder = pythae_networks()  # the initial weights both libraries start from
            init = {f"{part}.{k}": v.contiguous() for part, net in (("encoder", encoder), ("decoder", decoder))
                    for k, v in net.state_dict().items()}
            libraries = ["aekit", "pythae"] if row.compare else ["aekit"]
            for library in libraries if i % 2 == 0 else libraries[::-1]:
                model, timing = run_worker(name, library, args, init, Path(tmp))
                results.setdefault(name, {})[library] = {"model": model, **timing}
                print(f"{name} {library}: wall {timing['wall_s']:.1f} s, loop {timing['loop_s']:.1f} s", flush=True)
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of {', '.join(ROWS)}")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train-examples", type=int, default=0, help="a seeded random subset of the training images "
                   "(0: all 50,000)")
    p.add_argument("--nll-samples", type=int, default=5000)
    p.add_argument("--nll-examples", type=int, default=500, help="seeded random test images scored")
    p.add_argument("--pythae-nll-examples", type=int, default=0, help="test images for Pythae's own get_nll (slow)")
    p.add_argument("--gradient-repeats", type=int, default=200, help="draws of the encoder gradient (0: skip)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--aekit-eps", type=float, default=ADAM_EPS, help="aekit's Adam epsilon (Pythae's: 1e-4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", default="/work/shared/datasets")
    p.add_argument("--worker", choices=tuple(ROWS), help=argparse.SUPPRESS)
    p.add_argument("--library", choices=("aekit", "pythae"), help=argparse.SUPPRESS)
    p.add_argument("--worker-dir", help=argparse.SUPPRESS)
    p.add_argument("--out", default="benchmarks/results/iwae_pythae.json")
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return {}
    torch.set_num_threads(args.threads)
    logging.getLogger("pythae").setLevel(logging.WARNING)
    names = args.rows.split(",")
    trained = train_rows(args, names)
    result: dict[str, Any] = {
        "benchmark": "iwae_pythae", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
        "aekit_source": aekit_source(), "pythae_version": importlib.metadata.version("pythae"), "source": SOURCE,
        "setup": {"hidden": [HIDDEN, HIDDEN], "activation": "tanh", "latent_dim": LATENT_DIM, "batch_size": BATCH_SIZE,
                  "lr": LR, "pythae_adam_eps": ADAM_EPS, "aekit_adam_eps": args.aekit_eps, "epochs": args.epochs,
                  "train_examples": args.train_examples or 50_000, "nll_samples": args.nll_samples,
                  "nll_examples": args.nll_examples, "seed": args.seed, "threads": args.threads},
        "rows": {}}
    for name in names:
        row = ROWS[name]
        test = nll_subset(aekit.load_data(row.data, root=args.root).test, args.nll_examples, args.seed)
        x = test.inputs()
        entry: dict[str, Any] = {"data": row.data, "settings": row.settings, "reference": row.reference}
        for library, got in trained[name].items():
            model = got.pop("model")
            entry[library] = {**{k: round(v, 2) for k, v in got.items()},
                              **scores(model, x, args.nll_samples, args.seed)}
            if library == "pythae":
                entry["copy_check"] = check_copy(row, model.pythae_state, model, x[:64])
                if args.pythae_nll_examples:
                    entry["pythae"]["get_nll"] = pythae_get_nll(row, model.pythae_state, x[: args.pythae_nll_examples],
                                                                args.nll_samples, args.seed)
            if name == "iwae" and library == "aekit" and args.gradient_repeats:
                result["encoder_gradient_noise"] = encoder_gradient_noise(model, x[:BATCH_SIZE], (1, 5, 50),
                                                                          args.gradient_repeats, args.seed)
        if row.compare:
            ours, theirs = entry["aekit"].pop("per_example"), entry["pythae"].pop("per_example")
            diff = -(ours - theirs)  # aekit's NLL minus Pythae's, per test image
            entry["nll_diff_aekit_minus_pythae"] = {"mean": float(diff.mean()),
                                                    "se": float(diff.std() / math.sqrt(len(diff)))}
            entry["wall_ratio_aekit_over_pythae"] = round(entry["aekit"]["wall_s"] / entry["pythae"]["wall_s"], 3)
            entry["loop_ratio_aekit_over_pythae"] = round(entry["aekit"]["loop_s"] / entry["pythae"]["loop_s"], 3)
        else:
            entry["aekit"].pop("per_example")
        result["rows"][name] = entry
        print(json.dumps({name: entry}, indent=1, default=float), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float) + "\n")
    return result


def pythae_get_nll(row: Row, state: dict, x: torch.Tensor, samples: int, seed: int) -> dict[str, float]:
    """Pythae's own estimator on ``x`` (one image at a time, samples in batches of 100)."""
    model = pythae_model(row).eval()
    model.load_state_dict(state, strict=False)
    torch.manual_seed(seed)
    start = time.perf_counter()
    with torch.no_grad():
        value = model.get_nll(x, n_samples=samples, batch_size=min(100, samples))
    return {"nll": -float(value), "examples": len(x), "seconds": round(time.perf_counter() - start, 2)}


if __name__ == "__main__":
    main()
