"""The VQ-VAE training step: aekit's ``vq-vae`` against Pythae's ``VQVAE`` (EMA codebook) on the same network, data,
batch and optimiser; then both trained for the same number of steps on the same batches, and scored the same way.

The network is aekit's ``conv-grid`` backbone for MNIST, used by both libraries (Pythae's models are given aekit's
own modules, copied, as its ``BaseEncoder`` and ``BaseDecoder``):

    encoder  x [B, 1, 28, 28] -> Conv 3x3/2 32 -> ReLU -> Conv 3x3/2 64 -> ReLU -> [B, 64, 7, 7]
             -> per position Linear 64 -> 16 (aekit's ``bottleneck.proj_in``) -> z_e on a 7 x 7 grid of 16
    codebook 512 entries of 16, EMA (decay 0.99), commitment beta = 0.25, straight-through gradient
    decoder z_q [B, 7, 7, 16] -> Conv 3x3 64 -> ReLU -> ConvT 3x3/2 32 -> ReLU -> ConvT 3x3/2 1 -> mean of x
    batch 128, Adam lr 1e-3

Pythae's encoder returns its ``embedding`` as ``[B, 16, 7, 7]`` (its ``VQVAE`` moves the channels last before its
quantiser and back after it); its decoder moves them last again before aekit's decoder, which reads channels last.

The losses, per example, for a reconstruction mu of x (784 pixels) and the 49 x 16 code coordinates:

    Pythae   ||x - mu||^2 + 0.25 * mean over the 784 coordinates of (z_e - sg(z_q))^2
    aekit    -log N(x; mu, sigma^2) + 0.25 * sum over the 784 coordinates of (z_e - sg(z_q))^2

aekit runs here with sigma = 1 / sqrt(2), so that its reconstruction term is Pythae's ||x - mu||^2 plus a constant;
its commitment term is then 784 times Pythae's (a sum where Pythae takes a mean). The quality rows include aekit
with ``terms.commit = 0.25 / 784``: Pythae's loss exactly.

What differs, by library design: the codebook start (aekit: k-means on the encoder's outputs for 4,096 training
images, before the first step; Pythae: uniform in +-1/512), dead-code restarts (aekit: an entry unused for 20 steps
moves to a vector of the batch; Pythae: none), where the EMA runs (aekit: a step hook after the optimiser step,
bincount and index-add; Pythae: inside the forward, with a [N, 512] one-hot and two matmuls), the optimiser (each
library's own: aekit's fused Adam, Pythae's trainer's ``torch.optim.Adam``).

Timing (``--threads``, each in turn): one process, both models from the same weights, the same batches of MNIST
training images. aekit's step is a loop of this script's own with aekit's pieces, as aekit's loop runs them on one
device: ``StepHooks.start``, ``model(x)``, ``objective(out, step, batch)``, backward of the model loss,
``before_step``, the optimiser's step and ``zero_grad``, ``after_step`` (the EMA update and restarts); not the
loop's finiteness check, logging or data loading. Pythae's step is its ``BaseTrainer``'s: ``model(inputs).loss``,
``zero_grad``, ``backward``, ``step``. Each step is timed alone; the libraries alternate in blocks of
``--block`` steps (A B, then B A), after ``--warmup`` steps of each. Reported: median step, IQR and min-max, each
block pair's ratio.

Quality (``--train-steps``, one thread): each row trains from the same initial weights on the same sequence of
batches (a seeded permutation of the training images); then on the 10,000 test images this script computes, the
same way for every model, each position's code (the nearest codebook entry of the model's z_e), the reconstruction
(the decoder of those entries), the test MSE, the share of the 512 entries used and the perplexity of the codes.

``--profile-steps``: torch.profiler over that many steps of each, grouped by operator (and by input shape in the
JSON). ``--retain-cpu-memory``: aekit's opt-in allocator setting (glibc keeps freed blocks instead of unmapping
them), for the whole process and so for both libraries. ``--aekit-chunk``: aekit's ``bottleneck.chunk`` for the
timed model (the search's distances held at once; the default holds all 6,272 x 512 of a batch in one block).

    .venv-bench/bin/python benchmarks/vqvae_pythae.py --threads 1 2 --train-steps 1000 \\
        --out benchmarks/results/vqvae_pythae.json
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import json
import logging
import math
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _common import aekit_source, machine
from torch import nn

import aekit
from aekit.data.batch import Batch
from aekit.optim import make_optimizers
from aekit.parts import DATA_INIT_ROWS, init_from_data
from aekit.run_config import TrainConfig

DATA_SHAPE, CHANNELS, LATENT_DIM, CODEBOOK, BATCH_SIZE, LR, BETA, DECAY = (1, 28, 28), (32, 64), 16, 512, 128, 1e-3, \
    0.25, 0.99
SIGMA = 1 / math.sqrt(2)  # -log N(x; mu, sigma^2) = ||x - mu||^2 + const: Pythae's reconstruction term
RECON_CONST = 784 * (math.log(SIGMA) + 0.5 * math.log(2 * math.pi))  # -log N(x; mu, sigma^2) - ||x - mu||^2
CODE_COORDS = 7 * 7 * LATENT_DIM  # 784: Pythae's commitment is a mean over these, aekit's a sum

# quality rows: aekit's settings (beside the shared ones), or Pythae
ROWS: dict[str, dict[str, Any] | None] = {
    "pythae": None,
    "aekit": {},
    "aekit-matched-loss": {"terms": {"commit": BETA / CODE_COORDS}},
    "aekit-matched-loss-no-kmeans-no-restarts": {"terms": {"commit": BETA / CODE_COORDS},
                                                 "bottleneck": {"kmeans_iters": 0, "dead_after": 0}},
}


def aekit_model(seed: int, **settings: Any) -> nn.Module:
    torch.manual_seed(seed)
    bottleneck = {"decay": DECAY, **settings.pop("bottleneck", {})}
    return aekit.build_model("vq-vae", data_shape=DATA_SHAPE, channels=CHANNELS, latent_dim=LATENT_DIM,
                             codebook_size=CODEBOOK, likelihood="gaussian", sigma=SIGMA,
                             options={"bottleneck": bottleneck}, **settings)


def pythae_model(aekit_init: nn.Module, seed: int) -> nn.Module:
    """Pythae's VQVAE (EMA) whose encoder and decoder are copies of ``aekit_init``'s encoder, ``proj_in`` and
    decoder (same weights); its codebook is Pythae's own start."""
    from pythae.models import VQVAE, VQVAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self, convs: nn.Module, proj_in: nn.Module) -> None:
            super().__init__()
            self.convs, self.proj_in = convs, proj_in

        def forward(self, x: torch.Tensor) -> ModelOutput:
            h = self.convs(x).movedim(1, -1)  # [B, 64, 7, 7] -> [B, 7, 7, 64]
            return ModelOutput(embedding=self.proj_in(h).movedim(-1, 1))  # -> [B, 16, 7, 7]

    class Decoder(BaseDecoder):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, z: torch.Tensor) -> ModelOutput:
            return ModelOutput(reconstruction=self.net(z.movedim(1, -1)))  # [B, 16, 7, 7] -> [B, 7, 7, 16]

    torch.manual_seed(seed)
    config = VQVAEConfig(input_dim=DATA_SHAPE, latent_dim=LATENT_DIM, commitment_loss_factor=BETA,
                         num_embeddings=CODEBOOK, use_ema=True, decay=DECAY)
    encoder = Encoder(copy.deepcopy(aekit_init.encoder), copy.deepcopy(aekit_init.bottleneck.proj_in))
    return VQVAE(model_config=config, encoder=encoder, decoder=Decoder(copy.deepcopy(aekit_init.decoder)))


def start_codebook(model: nn.Module, train_x: torch.Tensor, seed: int) -> None:
    """What aekit's loop does before the first step: each part's start from a sample of training data (the
    codebook's k-means)."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.randperm(len(train_x), generator=g)[:DATA_INIT_ROWS]
    torch.manual_seed(seed)
    init_from_data(model, Batch(train_x[rows]))


def aekit_step(model: nn.Module) -> Callable[[int, torch.Tensor], torch.Tensor]:
    """aekit's training step as its loop runs it on one device (hooks, forward, objective, backward, fused Adam)."""
    objective = model.objective()
    optimizer = make_optimizers(model, TrainConfig(lr=LR, optimizer="adam"))[0]["model"]
    hooks = aekit.StepHooks(model)

    def step(i: int, x: torch.Tensor) -> torch.Tensor:
        hooks.start(i)
        batch = Batch(x)
        out = model(batch.inputs)
        loss = objective(out, i, batch)
        loss.losses["model"].backward()
        hooks.before_step(i, "model", [out], [batch])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        hooks.after_step(i, "model", [out], [batch])
        return out.terms["recon"].detach() - RECON_CONST  # ||x - mu||^2, as Pythae's recon_loss

    return step


def pythae_step(model: nn.Module, n_train: int) -> Callable[[int, torch.Tensor], torch.Tensor]:
    """Pythae's BaseTrainer step (its default optimiser: ``torch.optim.Adam(lr)``)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)

    def step(i: int, x: torch.Tensor) -> torch.Tensor:
        out = model({"data": x}, epoch=1, dataset_size=n_train, uses_ddp=False)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        return out.recon_loss.detach()

    return step


# ---------------------------------------------------------------------------------------------------------
# The same scores for every model


def parts(model: nn.Module) -> tuple[Callable, torch.Tensor, Callable]:
    """``(z_e of x [B, 7, 7, 16], the codebook [512, 16], decoder of z_q [B, 7, 7, 16])`` of either library's
    model."""
    if hasattr(model, "quantizer"):  # Pythae
        return (lambda x: model.encoder(x).embedding.movedim(1, -1), model.quantizer.embeddings,
                lambda z: model.decoder(z.movedim(-1, 1)).reconstruction)
    return (lambda x: model.bottleneck.proj_in(model.features(x)), model.bottleneck.codebooks[0].embed[0],
            model.decoder)


@torch.no_grad()
def scores(model: nn.Module, x: torch.Tensor, batch: int = 1000) -> dict[str, Any]:
    """Test MSE (per pixel, and summed per image), the share of entries used and the perplexity of the codes over
    all positions of ``x``, and the agreement of this script's codes with the library's own."""
    model.eval()
    encode, codebook, decode = parts(model)
    sse, codes, agree = [], [], []
    for i in range(0, len(x), batch):
        xb = x[i : i + batch]
        z = encode(xb)  # [B, 7, 7, 16]
        k = torch.cdist(z.reshape(-1, LATENT_DIM), codebook).argmin(-1)  # [B * 49]
        sse.append((decode(codebook[k].view_as(z)) - xb).pow(2).flatten(1).sum(-1))
        codes.append(k)
        own = (model({"data": xb}).quantized_indices.reshape(-1) if hasattr(model, "quantizer")
               else model.encode(xb).params["codes"].reshape(-1))
        agree.append((own == k).float())
    sse_t, codes_t = torch.cat(sse), torch.cat(codes)
    counts = torch.bincount(codes_t, minlength=CODEBOOK).double()
    p = counts[counts > 0] / counts.sum()
    model.train()
    return {"test_mse_per_pixel": float(sse_t.mean() / 784), "test_sse_per_image": float(sse_t.mean()),
            "test_sse_se": float(sse_t.std() / math.sqrt(len(sse_t))), "codes_used": int((counts > 0).sum()),
            "code_usage": round(float((counts > 0).sum()) / CODEBOOK, 4),
            "perplexity": round(float(torch.exp(-(p * p.log()).sum())), 2),
            "agreement_with_own_codes": float(torch.cat(agree).mean())}


def copy_check(ours: nn.Module, theirs: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """With aekit's codebook copied into the Pythae model (a copy), the largest differences of the codes and the
    reconstructions of ``x`` in evaluation mode: the two models compute the same function."""
    theirs = copy.deepcopy(theirs).eval()
    ours.eval()
    with torch.no_grad():
        theirs.quantizer.embeddings.copy_(ours.bottleneck.codebooks[0].embed[0])
        a, b = ours(x), theirs({"data": x})
        result = {"codes_differ": int((a.latent.params["codes"].reshape(-1) != b.quantized_indices.reshape(-1)).sum()),
                  "recon_max_abs_diff": float((a.x_params - b.recon_x).abs().max())}
    ours.train()
    return result


# ---------------------------------------------------------------------------------------------------------
# Timing


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def spread(seconds: list[float]) -> dict[str, Any]:
    q = statistics.quantiles(seconds, n=4)
    return {"median_ms": round(statistics.median(seconds) * 1e3, 2), "iqr_ms": [round(q[0] * 1e3, 2),
            round(q[2] * 1e3, 2)], "min_ms": round(min(seconds) * 1e3, 2), "max_ms": round(max(seconds) * 1e3, 2),
            "steps": len(seconds)}


def time_steps(steps: dict[str, Callable], batches: torch.Tensor, args: argparse.Namespace) -> dict[str, Any]:
    per_step: dict[str, list[float]] = {name: [] for name in steps}
    blocks: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():  # warm-up: allocator, kernels, Adam state
        for i in range(args.warmup):
            step(i, batches[i % len(batches)])
    counter = args.warmup
    for repeat in range(args.repeats):
        order = list(steps) if repeat % 2 == 0 else list(steps)[::-1]
        for name in order:
            got = []
            for _ in range(args.block):
                x = batches[counter % len(batches)]
                start = time.perf_counter()
                steps[name](counter, x)
                got.append(time.perf_counter() - start)
                counter += 1
            per_step[name] += got
            blocks[name].append(statistics.median(got))
    result: dict[str, Any] = {name: spread(t) for name, t in per_step.items()}
    ratios = [a / b for a, b in zip(blocks["aekit"], blocks["pythae"], strict=True)]
    result["ratio_aekit_over_pythae"] = round(statistics.median(per_step["aekit"])
                                              / statistics.median(per_step["pythae"]), 3)
    result["ratio_per_block"] = [round(r, 3) for r in ratios]
    result["ratio_block_min_max"] = [round(min(ratios), 3), round(max(ratios), 3)]
    return result


def profile(steps: dict[str, Callable], batches: torch.Tensor, n: int, top: int = 14) -> dict[str, Any]:
    """Self CPU time by operator over ``n`` steps of each, the ``top`` operators, in ms per step."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    out: dict[str, Any] = {}
    for name, step in steps.items():
        with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for i in range(n):
                step(i, batches[i % len(batches)])
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events)
        shaped = sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: e.self_cpu_time_total,
                        reverse=True)
        out[name] = {"total_ms_per_step": round(total / n / 1e3, 2),
                     "ops": [{"op": e.key, "self_ms_per_step": round(e.self_cpu_time_total / n / 1e3, 3),
                              "share": round(e.self_cpu_time_total / total, 3), "calls_per_step": e.count / n}
                             for e in events[:top]],
                     "ops_by_shape": [{"op": e.key, "shapes": str(e.input_shapes),
                                       "self_ms_per_step": round(e.self_cpu_time_total / n / 1e3, 3),
                                       "calls_per_step": e.count / n} for e in shaped[: 2 * top]]}
        print(f"profile {name}: {out[name]['total_ms_per_step']} ms a step (self CPU)\n" + "\n".join(
            f"  {o['op']:<40} {o['self_ms_per_step']:8.3f} ms {o['share']:6.1%}" for o in out[name]["ops"]),
            flush=True)
    return out


# ---------------------------------------------------------------------------------------------------------


def train_row(row: str, init: nn.Module, train_x: torch.Tensor, order: torch.Tensor, args: argparse.Namespace
              ) -> tuple[nn.Module, dict[str, Any]]:
    settings = ROWS[row]
    if settings is None:
        model = pythae_model(init, args.seed)
        step = pythae_step(model, len(train_x))
    else:
        model = aekit_model(args.seed, **copy.deepcopy(settings))
        model.load_state_dict(init.state_dict())  # the same weights and codebook buffers as the shared start
        start_codebook(model, train_x, args.seed)
        step = aekit_step(model)
    model.train()
    recon, start = [], time.perf_counter()
    for i in range(args.train_steps):
        idx = order[(i * BATCH_SIZE) % len(order):][:BATCH_SIZE]
        recon.append(float(step(i, train_x[idx]).mean()))
    seconds = time.perf_counter() - start
    curve = {str(s): round(statistics.mean(recon[max(0, s - 50): s]), 2)
             for s in (50, 100, 250, 500, args.train_steps) if s <= args.train_steps}
    return model, {"train_s": round(seconds, 1), "train_recon_mean_of_last_50": curve}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--repeats", type=int, default=10, help="block pairs per thread count")
    p.add_argument("--block", type=int, default=8, help="steps of one library in a row")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--train-steps", type=int, default=1000, help="steps of each quality row (0: skip)")
    p.add_argument("--rows", default=",".join(ROWS), help=f"quality rows, of {', '.join(ROWS)}")
    p.add_argument("--profile-steps", type=int, default=20, help="0: no profile")
    p.add_argument("--aekit-chunk", type=int, default=0, help="aekit's bottleneck.chunk (distances held at once "
                   "in the search) for the timed model; 0: its default")
    p.add_argument("--retain-cpu-memory", action="store_true", help="aekit's allocator setting "
                   "(aekit.training.retain_cpu_memory: glibc keeps freed blocks), process-wide: both libraries")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", default=os.environ.get("AEKIT_DATA", "/work/shared/datasets"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/vqvae_pythae.json"))
    args = p.parse_args(argv)
    logging.getLogger("pythae").setLevel(logging.WARNING)
    if args.retain_cpu_memory:
        from aekit.training import retain_cpu_memory

        args.retain_cpu_memory = retain_cpu_memory()  # whether it applied
    result: dict[str, Any] = {"benchmark": "vqvae_pythae", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                              "load_start": load(), "aekit_source": aekit_source(),
                              "pythae_version": importlib.metadata.version("pythae"),
                              "setup": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    splits = aekit.load_data("mnist", root=args.root)
    train_x, test_x = splits.train.inputs(), splits.test.inputs()
    init = aekit_model(args.seed)  # the weights every model starts from
    g = torch.Generator().manual_seed(args.seed)
    batches = train_x[torch.randperm(len(train_x), generator=g)[: 40 * BATCH_SIZE]].view(40, BATCH_SIZE, *DATA_SHAPE)

    # timing, both models from the same weights, the aekit codebook from its k-means start
    ours = aekit_model(args.seed, **({"bottleneck": {"chunk": args.aekit_chunk}} if args.aekit_chunk else {}))
    ours.load_state_dict(init.state_dict())
    start_codebook(ours, train_x, args.seed)
    theirs = pythae_model(init, args.seed)
    result["copy_check"] = copy_check(ours, theirs, test_x[:256])
    print("copy check:", result["copy_check"], flush=True)
    steps = {"aekit": aekit_step(ours), "pythae": pythae_step(theirs, len(train_x))}
    result["timing"] = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        result["timing"][f"threads={threads}"] = got = {"load_before": load(), **time_steps(steps, batches, args),
                                                        "load_after": load()}
        print(f"threads {threads}: aekit {got['aekit']['median_ms']} ms, pythae {got['pythae']['median_ms']} ms, "
              f"ratio {got['ratio_aekit_over_pythae']} (blocks {got['ratio_block_min_max']}), load "
              f"{got['load_before']} -> {got['load_after']}", flush=True)
    torch.set_num_threads(args.threads[0])
    if args.profile_steps:
        result["profile"] = profile(steps, batches, args.profile_steps)
    result["machine"] = machine()

    # quality at an equal budget, one thread, the same batches for every row
    if args.train_steps:
        torch.set_num_threads(1)
        order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(args.seed))
        result["quality"] = {}
        for row in args.rows.split(","):
            model, got = train_row(row, init, train_x, order, args)
            got.update(scores(model, test_x))
            got["settings"] = ROWS[row]
            result["quality"][row] = got
            print(row, json.dumps(got), flush=True)
    result["load_end"] = load()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
