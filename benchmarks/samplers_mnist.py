"""Ex-post samplers on MNIST: a VAE trained at a small budget, every aekit sampler fitted to its latents, and the
sample quality of each, beside Pythae's samplers fitted to the same trained networks.

Quality is precision and recall (Kynkäänniemi et al. 2019, k = 3; :func:`aekit.metrics.samples.precision_recall`)
of ``--rows`` decoded samples against as many MNIST test images, both in the feature space of the trained VAE's
own encoder (posterior means). Two reference rows bound what a sampler can reach in that space: a second set of
held-out test images (real against real) and the VAE's reconstructions of it.

aekit's samplers are fitted as ``aekit sample RUN --sampler NAME`` fits them (:func:`aekit.sampling.run_sampler`,
saved in the run). Pythae's (``pythae.samplers``, 0.1.2) are fitted on a Pythae VAE whose encoder and decoder are
the trained aekit networks, on the same training images; they fit on Pythae's ``model(x).z``, a posterior
*sample*, where aekit's fit the posterior means. Pythae's flows and second stage train for ``--pythae-epochs``
epochs of its own trainer.

    .venv-bench/bin/python benchmarks/samplers_mnist.py --steps 3000 --out /tmp/notes/samplers_mnist.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import aekit_source, machine

import aekit
from aekit.metrics.samples import precision_recall
from aekit.parts import part_names
from aekit.report import plot_samples
from aekit.sampling import as_splits, build_sampler, decode_latents, latents, rows_of, run_sampler


def train_vae(run: Path, steps: int, latent_dim: int, seed: int) -> Any:
    """aekit's VAE (MLP 784-512-256, Bernoulli likelihood) trained on MNIST for ``steps``, saved in ``run``."""
    result = aekit.train("vae", "mnist", run, steps=steps, latent_dim=latent_dim, seed=seed, evaluate=False,
                         progress=False)
    return aekit.load(result.run_dir)


def score(model, x_test: torch.Tensor, images: torch.Tensor) -> dict[str, float]:
    """Precision and recall of ``images`` against ``x_test`` in the model's posterior means, k = 3."""
    return {key: round(value, 4) for key, value in
            precision_recall(latents(model, x_test), latents(model, images), k=3).items()}


def aekit_rows(model, run: Path, x_test: torch.Tensor, figures: Path, sampler_steps: int, seed: int) -> list[dict]:
    rows = []
    for name in part_names("samplers"):
        started = time.perf_counter()
        sampler, _ = run_sampler(run, model, name, {}, steps=None if name == "prior" else sampler_steps, seed=seed)
        images = decode_latents(model, sampler.sample(len(x_test), torch.Generator().manual_seed(seed + 1)))
        plot_samples(images[:64], figures / f"aekit-{name}.png", title=f"aekit sampler {name}")
        rows.append({"library": "aekit", "sampler": name, **score(model, x_test, images),
                     "fit_s": round(time.perf_counter() - started, 1), "fit": sampler.fit_stats})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def mixture_on_posterior_samples(model, splits, x_test: torch.Tensor, seed: int) -> dict:
    """aekit's gaussian-mixture fitted as Pythae fits its samplers: on one posterior sample z ~ q(z|x) of each
    training example instead of its posterior mean (a check of what that choice changes)."""
    with torch.no_grad():
        torch.manual_seed(seed)
        z = [model.encode(x.to(model.device)).z[0].flatten(1) for x in rows_of(splits.train, 10_000, seed).split(1024)]
    sampler = build_sampler(model, "gaussian-mixture")
    sampler.fit(torch.cat(z), torch.zeros(0, model.config.latent_dim), 0, torch.Generator().manual_seed(seed))
    images = decode_latents(model, sampler.sample(len(x_test), torch.Generator().manual_seed(seed + 1)))
    row = {"library": "aekit", "sampler": "gaussian-mixture on posterior samples", **score(model, x_test, images)}
    print(json.dumps(row), flush=True)
    return row


def pythae_vae(model) -> Any:
    """A Pythae VAE whose encoder and decoder are the trained aekit VAE's (the decoder's Bernoulli means)."""
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> ModelOutput:
            q = self.model.bottleneck.posterior(self.model.features(x))  # mu, logvar [B, D]
            return ModelOutput(embedding=q["mu"], log_covariance=q["logvar"])

    class Decoder(BaseDecoder):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, z: torch.Tensor) -> ModelOutput:
            return ModelOutput(reconstruction=self.model.likelihood.mean(self.model.decode(z)))  # [B, 1, 28, 28]

    config = VAEConfig(input_dim=tuple(model.config.data_shape), latent_dim=model.config.latent_dim,
                       reconstruction_loss="bce")
    return VAE(config, encoder=Encoder(), decoder=Decoder()).eval()


def pythae_rows(model, x_train: torch.Tensor, x_val: torch.Tensor, x_test: torch.Tensor, figures: Path, epochs: int,
                seed: int) -> list[dict]:
    from pythae import samplers as ps
    from pythae.trainers import BaseTrainerConfig

    logging.getLogger("pythae").setLevel(logging.WARNING)
    vae = pythae_vae(model)
    chosen = {"NormalSampler": (ps.NormalSampler, None, False),
              "GaussianMixtureSampler": (ps.GaussianMixtureSampler, ps.GaussianMixtureSamplerConfig(n_components=10),
                                         False),
              "TwoStageVAESampler": (ps.TwoStageVAESampler, ps.TwoStageVAESamplerConfig(), True),
              "MAFSampler": (ps.MAFSampler, ps.MAFSamplerConfig(), True),
              "IAFSampler": (ps.IAFSampler, ps.IAFSamplerConfig(), True)}
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for name, (cls, config, trained) in chosen.items():
            torch.manual_seed(seed)
            started = time.perf_counter()
            sampler = cls(vae, config) if config is not None else cls(vae)
            if trained:
                training = BaseTrainerConfig(output_dir=work, num_epochs=epochs, learning_rate=1e-3,
                                             per_device_train_batch_size=128, seed=seed)
                sampler.fit(x_train, eval_data=x_val, training_config=training)
            else:
                sampler.fit(x_train)
            fit_s = round(time.perf_counter() - started, 1)
            with torch.no_grad():
                images = sampler.sample(num_samples=len(x_test), return_gen=True).detach()
            plot_samples(images[:64], figures / f"pythae-{name}.png", title=f"Pythae {name}")
            rows.append({"library": "pythae", "sampler": name, **score(model, x_test, images), "fit_s": fit_s})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3000, help="the VAE's training steps (batch 128)")
    p.add_argument("--latent-dim", type=int, default=16)
    p.add_argument("--sampler-steps", type=int, default=2000, help="aekit's flows' and second stage's fitting steps")
    p.add_argument("--pythae-epochs", type=int, default=10, help="Pythae's flows' and second stage's epochs")
    p.add_argument("--rows", type=int, default=2000, help="test images and samples for precision and recall")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-pythae", action="store_true")
    p.add_argument("--figures", default="benchmarks/out/samplers_mnist")
    p.add_argument("--out", default="benchmarks/results/samplers_mnist.json")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    figures = Path(args.figures)
    figures.mkdir(parents=True, exist_ok=True)
    splits = as_splits("mnist")
    x_test = splits.test.batch(slice(0, args.rows)).inputs  # [rows, 1, 28, 28]
    x_other = splits.test.batch(slice(args.rows, 2 * args.rows)).inputs  # the reference rows' held-out images
    with tempfile.TemporaryDirectory() as work:
        run = Path(work) / "run"
        started = time.perf_counter()
        model = train_vae(run, args.steps, args.latent_dim, args.seed)
        train_s = round(time.perf_counter() - started, 1)
        print(f"VAE trained: {args.steps} steps in {train_s} s", flush=True)
        rows = [{"library": "reference", "sampler": "held-out test images", **score(model, x_test, x_other)},
                {"library": "reference", "sampler": "reconstructions of them",
                 **score(model, x_test, model.reconstruct(x_other))}]
        rows += aekit_rows(model, run, x_test, figures, args.sampler_steps, args.seed)
        rows.append(mixture_on_posterior_samples(model, splits, x_test, args.seed))
    if not args.no_pythae:
        x_train = rows_of(splits.train, 10_000, args.seed)  # the examples aekit's samplers were fitted on
        x_val = rows_of(splits.val, 2_000, args.seed)
        rows += pythae_rows(model, x_train, x_val, x_test, figures, args.pythae_epochs, args.seed)
    result = {"settings": vars(args), "vae_train_s": train_s, "rows": rows, "machine": machine(),
              "aekit": aekit_source()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
