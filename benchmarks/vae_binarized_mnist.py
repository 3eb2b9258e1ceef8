"""VAE on statically binarized MNIST: aekit against Pythae, same network, same data, same optimiser.

The setup is the one of Pythae's reproducibility table (VAE, Binary MNIST, NLL 89.78 with 200 importance
samples; reference 89.9 from Rezende & Mohamed 2015, arXiv:1505.05770), read from
clementchadebec/benchmark_VAE ``examples/scripts/reproducibility/vae.py`` and
``configs/binary_mnist/vae/vae_config.json``:

    encoder  x [784] -> Linear 400 -> ReLU -> (mu [40], log sigma^2 [40])
    decoder  z [40]  -> Linear 400 -> ReLU -> Linear 784 -> Bernoulli means
    Adam, lr 1e-4, batch 100, 500 epochs, MultiStepLR (x 10^-1/5 at epochs 200, 350, ...)

Both libraries see the same arrays (``aekit.data.load_data("binarized-mnist")``: 50k train / 10k test) with
the same torch thread count; every training runs in a fresh Python process of its own, timed inside it. Each
model's test NLL is measured twice: with aekit's importance-sampling estimator (the Pythae weights are copied
into an aekit VAE of the same shape, so one estimator scores both) and with Pythae's own ``VAE.get_nll``.
``--select-on-valid`` is the reference script's protocol: the validation loss every epoch, and the weights of
the best epoch at the end. ``--train-on-val`` trains both on the 50,000 training and 10,000 validation images
together, with no validation (aekit keeps its last weights; Pythae, given no eval data, those of the epoch with
the lowest training loss).

    .venv-bench/bin/python benchmarks/vae_binarized_mnist.py --epochs 5 --nll-samples 5000 \
        --nll-examples 1000 --repeats 1 --out benchmarks/results/vae_binarized_mnist.json
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import aekit_source, machine
from torch import nn

import aekit
from aekit.data.base import Dataset

# The reproducibility setup (see the module docstring).
HIDDEN = 400
LATENT_DIM = 40
BATCH_SIZE = 100
LR = 1e-4
LR_MILESTONES = [200, 350, 500, 750, 1000]  # epochs; Pythae's reference multiplies lr by 10^(-1/5) at each
REFERENCE = {
    "pythae_reproduced_nll": 89.78,
    "pythae_reproduced_nll_samples": 200,
    "paper_nll": 89.9,
    "source": "Pythae reproducibility table (clementchadebec/benchmark_VAE, "
              "examples/scripts/reproducibility/README.md); paper arXiv:1505.05770",
    "epochs": 500,
}
TARGET_NLL, TARGET_RATIO = 90.0, 0.6
AEKIT = ("aekit", "aekit-compiled")  # aekit eager, and with its training step under torch.compile


# ---------------------------------------------------------------------------------------------------------
# aekit


def aekit_overrides(
    epochs: int, root: str, seed: int, precision: str = "32-true", select_on_valid: bool = False,
    train_on_val: bool = False, compile: bool = False,
) -> dict[str, Any]:
    """The setup as aekit config keys: AdamW with weight_decay=0 is Adam; the lr falls by 10^(-1/5) at the same
    epochs as Pythae's MultiStepLR (aekit counts milestones in optimiser steps). With ``select_on_valid`` the
    validation loss is measured every epoch and the run ends on the weights of the best one (``keep_best``),
    as the reference script's ``final_model``; with ``train_on_val`` it trains on the 60,000 training and
    validation images and keeps its last weights."""
    steps_per_epoch = (60_000 if train_on_val else 50_000) // BATCH_SIZE
    if train_on_val:
        selection = {"train_on_val": True}
    elif select_on_valid:
        selection = {"eval_every": steps_per_epoch, "keep_best": True, "val_examples": 0}
    else:  # validate once, at the end, as Pythae does without eval data
        selection = {"eval_every": epochs * steps_per_epoch}
    return {
        "backbone": "mlp", "hidden": [HIDDEN], "latent_dim": LATENT_DIM, "activation": "relu",
        "likelihood": "bernoulli", "root": root, "epochs": epochs, "batch_size": BATCH_SIZE, "lr": LR,
        "lr_schedule": "multistep", "lr_milestones": [m * steps_per_epoch for m in LR_MILESTONES],
        "lr_gamma": 10 ** (-1 / 5), "weight_decay": 0.0, "seed": seed, "accelerator": "cpu",
        "progress": False, "figures": False, "precision": precision, "threads": torch.get_num_threads(),
        "retain_cpu_memory": True, "compile": compile, **selection,
    }


def train_aekit(
    epochs: int, root: str, seed: int, out: Path, precision: str = "32-true", select_on_valid: bool = False,
    train_on_val: bool = False, compile: bool = False,
) -> dict[str, float]:
    """Train into the run directory ``out`` (the trained model is ``out / "model"``) and return the loop time.
    ``aekit.train`` reads the data and imports Lightning Fabric itself; ``compile``: the training step under
    ``torch.compile`` (its compilation inside the timed loop)."""
    overrides = aekit_overrides(epochs, root, seed, precision, select_on_valid, train_on_val, compile)
    run = aekit.train("vae", data="binarized-mnist", out=out, evaluate=False, **overrides)
    return {"loop_s": float(run.metrics["train/wall_time_s"])}


# ---------------------------------------------------------------------------------------------------------
# Pythae


def pythae_networks() -> tuple[nn.Module, nn.Module]:
    """The reproducibility encoder and decoder, written against Pythae's BaseEncoder/BaseDecoder contract."""
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = nn.Sequential(nn.Linear(784, HIDDEN), nn.ReLU())
            self.mu = nn.Linear(HIDDEN, LATENT_DIM)
            self.logvar = nn.Linear(HIDDEN, LATENT_DIM)

        def forward(self, x: torch.Tensor) -> ModelOutput:
            h = self.hidden(x.reshape(x.shape[0], 784))  # [B, 1, 28, 28] -> [B, 784] -> [B, 400]
            return ModelOutput(embedding=self.mu(h), log_covariance=self.logvar(h))

    class Decoder(BaseDecoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(LATENT_DIM, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 784), nn.Sigmoid())

        def forward(self, z: torch.Tensor) -> ModelOutput:
            return ModelOutput(reconstruction=self.net(z).reshape(z.shape[0], 1, 28, 28))  # [N, 784] -> [N, 1, 28, 28]

    return Encoder(), Decoder()


def pythae_vae() -> nn.Module:
    """Pythae's VAE with the reproducibility networks and its BCE reconstruction loss."""
    from pythae.models import VAE, VAEConfig

    encoder, decoder = pythae_networks()
    return VAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=LATENT_DIM, reconstruction_loss="bce"),
               encoder=encoder, decoder=decoder)


def pythae_epoch_timer():
    """A Pythae training callback whose ``loop_s`` is the time of the training batches of every epoch (from
    ``on_train_step_begin``, once an epoch, to the last ``on_train_step_end``, once a batch): like aekit's loop
    time, validation excluded."""
    from pythae.trainers.training_callbacks import TrainingCallback

    class EpochTimer(TrainingCallback):
        def __init__(self) -> None:
            self.loop_s, self._start, self._last = 0.0, 0.0, 0.0

        def on_train_step_begin(self, training_config, **kwargs) -> None:
            self._start = self._last = time.perf_counter()

        def on_train_step_end(self, training_config, **kwargs) -> None:
            self._last = time.perf_counter()

        def on_epoch_end(self, training_config, **kwargs) -> None:
            self.loop_s += self._last - self._start

    return EpochTimer()


def train_pythae(
    epochs: int, train_x: np.ndarray, seed: int, workdir: Path, valid_x: np.ndarray | None = None
) -> tuple[nn.Module, dict[str, float]]:
    """Pythae's trainer; with ``valid_x`` it measures the validation loss every epoch and keeps the weights of
    the best epoch, as the reference script does (``eval_dataset``, then ``final_model``)."""
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig

    torch.manual_seed(seed)
    model = pythae_vae()
    config = BaseTrainerConfig(
        output_dir=str(workdir / f"pythae-{time.monotonic_ns()}"), per_device_train_batch_size=BATCH_SIZE,
        per_device_eval_batch_size=BATCH_SIZE, num_epochs=epochs, learning_rate=LR, optimizer_cls="Adam",
        scheduler_cls="MultiStepLR",
        scheduler_params={"milestones": LR_MILESTONES, "gamma": 10 ** (-1 / 5)}, steps_saving=None,
        steps_predict=None, no_cuda=True, seed=seed,
    )
    timer = pythae_epoch_timer()
    pipeline = TrainingPipeline(model=model, training_config=config)
    pipeline(train_data=train_x, eval_data=valid_x, callbacks=[timer])
    return pipeline.trainer._best_model.eval(), {"loop_s": timer.loop_s}


def aekit_state_from_pythae(state: dict[str, torch.Tensor], encoder: list[str], mu: str, logvar: str,
                            decoder: list[str]) -> dict[str, torch.Tensor]:
    """An aekit MLP model's state dict from a Pythae model's: ``encoder`` and ``decoder`` name Pythae's Linear
    layers in order (aekit's ``net.0``, ``net.2``, ...: activations between them), ``mu`` and ``logvar`` its two
    heads, stacked into aekit's one projection (mu, then log sigma^2). Pythae's decoder ends in a sigmoid and its
    loss is BCE on the means; aekit's Bernoulli likelihood takes the logits before it, so the sigmoid is dropped."""
    out = {}
    for part, layers in (("encoder", encoder), ("decoder", decoder)):
        for i, name in enumerate(layers):
            for param in ("weight", "bias"):
                out[f"{part}.net.{2 * i}.{param}"] = state[f"{name}.{param}"]
    for param in ("weight", "bias"):  # [2D, F]: mu, then logvar
        out[f"bottleneck.proj.{param}"] = torch.cat([state[f"{mu}.{param}"], state[f"{logvar}.{param}"]])
    return out


def pythae_as_aekit(pythae_model: nn.Module) -> nn.Module:
    """An aekit VAE holding the Pythae model's weights: the same function, so aekit's estimator applies."""
    model = aekit.build_model("vae", data_shape=(1, 28, 28), backbone="mlp", hidden=(HIDDEN,), latent_dim=LATENT_DIM,
                              activation="relu", likelihood="bernoulli")
    state = aekit_state_from_pythae(pythae_model.state_dict(), ["encoder.hidden.0"], "encoder.mu", "encoder.logvar",
                                    ["decoder.net.0", "decoder.net.2"])
    model.load_state_dict(state)
    return model.eval()


# ---------------------------------------------------------------------------------------------------------
# Test NLL


def nll_subset(test: Dataset, n_examples: int, seed: int) -> Dataset:
    """The test images every estimator scores: all of them, or a seeded random ``n_examples`` (not the first
    n, whose difficulty differs from the whole set's)."""
    if not n_examples or n_examples >= len(test):
        return test
    index = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:n_examples].sort().values
    return test.subset(index, name=f"{test.name}[{n_examples} random]")


def aekit_nll(model: nn.Module, test: Dataset, n_samples: int, seed: int) -> dict[str, float]:
    """NLL and ELBO on the same images, with aekit's estimator."""
    start = time.perf_counter()
    metrics = aekit.evaluate(model, test, nll_samples=n_samples, seed=seed)
    return {"nll": metrics["test/nll"], "elbo": metrics["test/elbo"], "seconds": time.perf_counter() - start}


def pythae_get_nll(model: nn.Module, test: Dataset, n_samples: int, seed: int) -> dict[str, float]:
    """Pythae's ``get_nll`` returns the mean log p(x); its samples come in batches of 100, so K is rounded
    down to a multiple of 100."""
    torch.manual_seed(seed)
    start = time.perf_counter()
    with torch.no_grad():
        log_px = model.get_nll(test.inputs(), n_samples=n_samples, batch_size=min(100, n_samples))
    return {"nll": -float(log_px), "seconds": time.perf_counter() - start}


def check_conversion(pythae_model: nn.Module, converted: nn.Module, x: torch.Tensor) -> float:
    """Largest difference between the two models' Bernoulli means at the posterior mean; ~1e-7 when equal."""
    with torch.no_grad():
        mu = pythae_model.encoder(x).embedding
        theirs = pythae_model.decoder(mu).reconstruction
        ours = torch.sigmoid(converted.decode(converted.encode(x).mean))
    return float((theirs - ours).abs().max())


# ---------------------------------------------------------------------------------------------------------
# One training per fresh process: no library inherits another's imports, caches or allocator settings.


def worker(args: argparse.Namespace) -> None:
    """Train ``args.worker`` once and leave its model and timings in ``args.worker_dir``.

    The wall time of either library counts the same things: importing the library's training machinery
    (Lightning Fabric; Pythae's models and trainer), reading the data with the same loader, and the training
    itself, validation and the writing of its outputs included. torch is imported before the clock starts."""
    torch.set_num_threads(args.threads)
    logging.getLogger("pythae").setLevel(logging.WARNING)
    out = Path(args.worker_dir)
    if args.worker == "pythae" and args.pythae_retain_memory:  # aekit's allocator setting, given to Pythae by hand
        from aekit.training import retain_cpu_memory

        retain_cpu_memory()
    start = time.perf_counter()
    if args.worker in AEKIT:  # aekit's run directory holds the trained model
        t = train_aekit(args.epochs, args.root, args.seed, out / "run", args.aekit_precision, args.select_on_valid,
                        args.train_on_val, compile=args.worker == "aekit-compiled")
    else:
        splits = aekit.load_data("binarized-mnist", root=args.root)
        if args.train_on_val:
            splits = splits.with_val_in_train()
        valid_x = splits.val.inputs().numpy() if args.select_on_valid else None  # the official 10,000 images
        model, t = train_pythae(args.epochs, splits.train.inputs().numpy(), args.seed, out, valid_x)
    t["wall_s"] = time.perf_counter() - start
    if args.worker == "pythae":  # its weights, for the NLL measured in the parent process
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "weights.safetensors"))
    (out / "timing.json").write_text(json.dumps(t))


def run_worker(lib: str, args: argparse.Namespace, seed: int, workdir: Path) -> tuple[nn.Module, dict[str, float]]:
    """Start a fresh interpreter for one training and load what it left."""
    from safetensors.torch import load_file

    out = workdir / f"{lib}-{seed}-{time.monotonic_ns()}"
    out.mkdir(parents=True)
    cmd = [sys.executable, __file__, "--worker", lib, "--worker-dir", str(out), "--epochs", str(args.epochs),
           "--seed", str(seed), "--threads", str(args.threads), "--root", args.root,
           "--aekit-precision", args.aekit_precision]
    cmd += ["--select-on-valid"] * args.select_on_valid + ["--pythae-retain-memory"] * args.pythae_retain_memory
    cmd += ["--train-on-val"] * args.train_on_val
    subprocess.run(cmd, check=True)
    if lib in AEKIT:
        model = aekit.load(out / "run" / "model", map_location="cpu")
    else:
        model = pythae_vae()
        model.load_state_dict(load_file(str(out / "weights.safetensors")))
    return model.eval(), json.loads((out / "timing.json").read_text())


# ---------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=REFERENCE["epochs"])
    p.add_argument("--nll-samples", type=int, default=5000, help="importance samples K per test example")
    p.add_argument("--nll-examples", type=int, default=0, help="random test examples scored (0: all 10,000)")
    p.add_argument("--repeats", type=int, default=1, help="trainings per library; timings are medians")
    p.add_argument("--libraries", default="aekit,pythae",
                   help="which to train: aekit, aekit-compiled (compile=true) and pythae, comma-separated")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for both libraries (1: robust when other jobs share the cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--aekit-precision", default="32-true", help="aekit's Fabric precision, e.g. bf16-mixed")
    p.add_argument("--select-on-valid", action="store_true",
                   help="the reference script's model selection: validation loss every epoch, best epoch's weights")
    p.add_argument("--train-on-val", action="store_true",
                   help="train on the training and validation images together, no validation, no selection")
    p.add_argument("--pythae-retain-memory", action="store_true",
                   help="give Pythae's process the allocator setting aekit applies to its own (retain_cpu_memory)")
    p.add_argument("--worker", choices=(*AEKIT, "pythae"), help=argparse.SUPPRESS)
    p.add_argument("--worker-dir", help=argparse.SUPPRESS)
    p.add_argument("--root", default="/work/shared/datasets", help="folder holding binarized_mnist/")
    p.add_argument("--skip-pythae-get-nll", action="store_true",
                   help="Pythae's own estimator is slow (one example at a time)")
    p.add_argument("--out", default="benchmarks/results/vae_binarized_mnist.json")
    args = p.parse_args(argv)
    if args.train_on_val and args.select_on_valid:
        p.error("--train-on-val leaves no validation images for --select-on-valid; pass one of them")
    if args.worker:
        worker(args)
        return {}

    torch.set_num_threads(args.threads)
    logging.getLogger("pythae").setLevel(logging.WARNING)
    splits = aekit.load_data("binarized-mnist", root=args.root)
    print(f"data: train {tuple(splits.train.x.shape)}, test {tuple(splits.test.x.shape)}; threads {args.threads}")

    libraries = [lib for lib in (*AEKIT, "pythae") if lib in args.libraries.split(",")]
    timings: dict[str, list[dict[str, float]]] = {lib: [] for lib in libraries}
    models: dict[str, nn.Module] = {}
    with tempfile.TemporaryDirectory(prefix="aekit-bench-") as tmp:
        for repeat in range(args.repeats):
            order = libraries if repeat % 2 == 0 else libraries[::-1]  # alternate against drift
            for lib in order:
                seed = args.seed + repeat
                model, t = run_worker(lib, args, seed, Path(tmp))
                timings[lib].append(t)
                models.setdefault(lib, model)
                print(f"[{repeat}] {lib}: {args.epochs} epochs, wall {t['wall_s']:.1f} s, loop {t['loop_s']:.1f} s",
                      flush=True)

    result: dict[str, Any] = {
        "benchmark": "vae_binarized_mnist", "machine": machine(), "aekit_source": aekit_source(),
        "reference": REFERENCE,
        "setup": {"hidden": [HIDDEN], "latent_dim": LATENT_DIM, "batch_size": BATCH_SIZE, "lr": LR,
                  "optimizer": "Adam", "epochs": args.epochs,
                  "train_examples": len(splits.train) + (len(splits.val) if args.train_on_val else 0),
                  "repeats": args.repeats, "nll_samples": args.nll_samples,
                  "nll_examples": args.nll_examples or len(splits.test), "seed": args.seed,
                  "select_on_valid": args.select_on_valid, "train_on_val": args.train_on_val,
                  "aekit_precision": args.aekit_precision, "pythae_retain_memory": args.pythae_retain_memory,
                  "process_per_training": True},
    }
    for lib in libraries:
        result[lib] = {
            "train_wall_s": [round(t["wall_s"], 2) for t in timings[lib]],
            "train_loop_s": [round(t["loop_s"], 2) for t in timings[lib]],
            "train_wall_s_median": round(statistics.median(t["wall_s"] for t in timings[lib]), 2),
            "train_loop_s_median": round(statistics.median(t["loop_s"] for t in timings[lib]), 2),
        }
        result[lib]["loop_s_per_epoch"] = round(result[lib]["train_loop_s_median"] / args.epochs, 3)
    scored = dict(models)
    if "pythae" in models:
        result["pythae"]["version"] = importlib.metadata.version("pythae")
        scored["pythae"] = pythae_as_aekit(models["pythae"])
        result["pythae"]["conversion_max_abs_diff"] = check_conversion(models["pythae"], scored["pythae"],
                                                                       splits.test.inputs(slice(0, 256)))
    for lib in (lib for lib in AEKIT if lib in libraries and "pythae" in libraries):
        for key in ("wall", "loop"):
            per_repeat = [a / b for a, b in zip(result[lib][f"train_{key}_s"], result["pythae"][f"train_{key}_s"],
                                                strict=True)]  # each repeat's pair, run back to back
            name = "aekit" if lib == "aekit" else "aekit_compiled"
            result[f"ratio_{name}_over_pythae_{key}"] = round(
                result[lib][f"train_{key}_s_median"] / result["pythae"][f"train_{key}_s_median"], 3)
            result[f"ratio_{name}_over_pythae_{key}_per_repeat"] = [round(r, 3) for r in per_repeat]
    test = nll_subset(splits.test, args.nll_examples, args.seed)
    result["setup"]["nll_subset"] = test.name
    for lib, model in scored.items():
        result[lib]["elbo_full_test"] = aekit.evaluate(model, splits.test, seed=args.seed)["test/elbo"]
        result[lib]["nll_aekit_estimator"] = aekit_nll(model, test, args.nll_samples, args.seed)
        print(f"{lib:6s} NLL (aekit estimator): {result[lib]['nll_aekit_estimator']}", flush=True)
    if "pythae" in models and not args.skip_pythae_get_nll:
        result["pythae"]["nll_pythae_get_nll"] = pythae_get_nll(models["pythae"], test, args.nll_samples, args.seed)
        print(f"pythae NLL (Pythae get_nll):  {result['pythae']['nll_pythae_get_nll']}", flush=True)

    result["targets"] = {}
    if "aekit" in models:
        nll = result["aekit"]["nll_aekit_estimator"]["nll"]
        result["targets"]["nll_le_90"] = {
            "target": TARGET_NLL, "value": nll, "met": nll <= TARGET_NLL,
            "note": f"{args.epochs} of {REFERENCE['epochs']} reference epochs, K={args.nll_samples}"}
    if "ratio_aekit_over_pythae_wall" in result:
        ratio = result["ratio_aekit_over_pythae_wall"]
        result["targets"]["wall_ratio_le_0.6"] = {"target": TARGET_RATIO, "value": ratio, "met": ratio <= TARGET_RATIO}
    if "ratio_aekit_compiled_over_pythae_wall" in result:
        ratio = result["ratio_aekit_compiled_over_pythae_wall"]
        result["targets"]["compiled_wall_ratio_le_0.5"] = {"target": 0.5, "value": ratio, "met": ratio <= 0.5}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in (*libraries, "targets")}, indent=2))
    return result


if __name__ == "__main__":
    main()
