"""Training throughput of a TopK sparse autoencoder: aekit against SAELens, on the same activations.

Both libraries train the same model on the same float32 rows already in memory (no language model, no dataset
download): a TopK SAE (Gao et al. 2024) with ``d_in`` inputs (384, the width of all-MiniLM-L6-v2), ``d_sae``
latents (8 x 384), ``k`` = 32 active latents per row, batches of 4,096 rows, Adam at lr 4e-4 held constant,
gradients clipped to norm 1, for ``--steps`` steps.

- SAELens: ``TopKTrainingSAE(TopKTrainingSAEConfig(...))`` trained by its own ``SAETrainer.fit()``, which takes
  any iterator of activation batches as its data provider (SAELens trains on synthetic activations the same way,
  ``sae_lens.synthetic.training.train_toy_sae``). Its step, run unchanged: ``training_forward_pass`` (MSE summed
  over the inputs, mean over the batch, plus the AuxK loss where latents are dead), the firing statistics of every
  latent, ``backward``, ``clip_grad_norm_(1.0)``, ``Adam.step``, ``zero_grad``, the (constant) lr scheduler.
  Its defaults are kept: ``rescale_acts_by_decoder_norm=True`` (the pre-activations are multiplied by each
  decoder row's norm and the code divided by it, so the decoder behaves as unit-norm without being normalised),
  ``decoder_init_norm=0.1``, dense (not sparse-tensor) activations, ``normalize_activations="none"``.
- aekit: the registered ``topk-sae`` (``--aekit-model auto``; ``ae backbone=dictionary bottleneck=topk`` with
  ``--aekit-model ae``), trained by ``aekit.train(..., out=None, evaluate=False)`` in memory, ``optimizer=adam
  lr_schedule=constant grad_clip=1 val_fraction=0 test_fraction=0 threads=THREADS``. Its step: the forward (the
  ``l0`` term logged, not trained; AuxK where latents are dead), the backward, the decoder gradient's component
  along each (unit-norm) column removed, the clip, fused ``Adam.step``, the columns renormalised, each latent's
  tokens since it last fired counted. The Gaussian likelihood's sigma is 1/sqrt(2), so its reconstruction term
  is the summed squared error (plus a constant): the same loss, gradient and clipping threshold as SAELens's MSE.
  Its set-up (excluded from the timing) starts b_dec at the geometric median of 4,096 rows; SAELens starts it at
  0.

AuxK is off in both unless ``--dead-window`` is set: each computes it only once a latent has not fired for a
window (SAELens ``dead_feature_window`` steps, aekit ``dead_tokens`` tokens), and the window is set to
``--dead-window`` steps (``x batch`` tokens for aekit), by default one more than the run's steps. Both still
count every latent's firing each step and check for dead latents. (The AuxK losses themselves differ: SAELens
uses ``d_in / 2`` latents and weight 1 on the summed squared error, aekit ``aux_k`` = 512 and weight 1/32 on half
of it.)

Timing: each library runs in a fresh process of its own, one process at a time, the two alternating (their order
swapped every repeat). Each step's start is stamped: for SAELens when its trainer draws the step's batch from
the iterator, for aekit by an ``on_train_step_start`` step hook of a parameter-free part added to the model.
Throughput is ``batch x (steps - 1 - warmup) / (start of the last step - start of step warmup)``: set-up, the
first ``--warmup`` steps and everything after the last step's start are excluded. Peak resident memory is the
process's ``VmHWM``; ``rss_before_mib`` is its resident memory after the imports and the data, before the library
builds its model. Logging: SAELens's default ``tqdm`` bar (its losses read every 100 steps), no wandb; aekit's
default progress (a line at least every 10 s, its logs read every 10 steps), no files (``out=None``).

    .venv-bench/bin/python benchmarks/sae_speed.py --check-losses 50 --steps 40 --repeats 5 --threads 2

``--check-losses N`` first trains each library N steps and prints each one's training MSE (summed over the
inputs, mean over the batch) at the first and last step; ``--profile`` first runs each library once under the
torch profiler and prints its operators over the timed steps (by self time, then by input shape).
``--aekit-set KEY=VALUE`` adds an aekit model or training key. Needs ``sae-lens`` (``.venv-bench``):

    python3 -m venv .venv-bench
    .venv-bench/bin/pip install torch==2.13.0        # first, or pip pulls the CUDA build
    .venv-bench/bin/pip install -e .
    .venv-bench/bin/pip install sae-lens "torch==2.13.0"
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
LIBRARIES = ("sae-lens", "aekit")


# ---------------------------------------------------------------------------------------------------------
# The data


def activations(path: Path, rows: int, d_in: int, mean_active: float, seed: int) -> Path:
    """Rows of ``sparse_feature_data`` (4 x d_in sparse features in superposition), written once as float32."""
    if path.is_file():
        return path
    import numpy as np

    from aekit.data import sparse_feature_data

    data = sparse_feature_data(rows, features=4 * d_in, dim=d_in, mean_active=mean_active, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, data.x.numpy().astype("float32"))
    return path


PROFILER = None  # the torch profiler of a --profile run, stepped at the start of each training step


def stamp(stamps: list[float]) -> None:
    """Mark the start of a training step."""
    stamps.append(time.perf_counter())
    if PROFILER is not None:
        PROFILER.step()


def rss_mib(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------------------------
# SAELens


def train_sae_lens(x, args, stamps: list[float], mses: list[float] | None) -> dict[str, Any]:
    import torch
    from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    class Batches:
        """Batches of ``x``: the rows in a fresh seeded permutation every epoch, the start of each step stamped."""

        def __init__(self) -> None:
            self.generator = torch.Generator().manual_seed(args.seed)
            self.per_epoch = len(x) // args.batch
            self.position, self.perm = 0, None

        def __iter__(self):
            return self

        def __next__(self):
            stamp(stamps)
            in_epoch = self.position % self.per_epoch
            if in_epoch == 0:
                self.perm = torch.randperm(len(x), generator=self.generator)
            self.position += 1
            return x[self.perm[in_epoch * args.batch : (in_epoch + 1) * args.batch]]

    class RecordingSAE(TopKTrainingSAE):
        def training_forward_pass(self, step_input):
            out = super().training_forward_pass(step_input)
            mses.append(float(out.losses["mse_loss"]))
            return out

    torch.manual_seed(args.seed)
    cfg = TopKTrainingSAEConfig(d_in=args.d_in, d_sae=args.d_sae, k=args.k, dtype="float32", device="cpu",
                                normalize_activations="none")
    sae = (RecordingSAE if mses is not None else TopKTrainingSAE)(cfg)
    window = dead_window(args)
    trainer_cfg = SAETrainerConfig(
        total_training_samples=args.steps * args.batch, train_batch_size_samples=args.batch, lr=args.lr,
        lr_end=args.lr, lr_scheduler_name="constant", adam_beta1=0.9, adam_beta2=0.999, device="cpu",
        autocast=False, dead_feature_window=window, n_checkpoints=0, checkpoint_path=None,
        save_final_checkpoint=False, logger=LoggingConfig(log_to_wandb=False))
    trainer = SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=Batches())
    trainer.fit()
    return {"steps": trainer.n_training_steps, "dead_feature_window": window,
            "settings": {k: v for k, v in cfg.to_dict().items() if k != "metadata"}}


# ---------------------------------------------------------------------------------------------------------
# aekit


def dead_window(args) -> int:
    """Steps without firing after which a latent counts as dead (AuxK then trains it); default: more than the run's
    steps, so AuxK never runs."""
    return args.dead_window or args.steps + 1


def aekit_settings(args) -> tuple[str, dict[str, Any]]:
    """The aekit model's name and its settings (model and training keys, as ``aekit train`` takes them): the
    registered ``topk-sae`` where it exists (``--aekit-model auto``), else ``ae`` with the sparse parts. The
    Gaussian's sigma = 1/sqrt(2) makes the reconstruction term the summed squared error, SAELens's loss."""
    from aekit.registry import list_models
    from aekit.run_config import literal

    name = args.aekit_model
    if name == "auto":
        name = "topk-sae" if any(e.name == "topk-sae" for e in list_models()) else "ae"
    dead_tokens = dead_window(args) * args.batch
    if name == "ae":
        model = {"backbone": "dictionary", "bottleneck": "topk", "bottleneck.k": args.k,
                 "bottleneck.dead_tokens": dead_tokens, "likelihood": "gaussian"}
    else:
        model = {"k": args.k, "dead_tokens": dead_tokens}
    model["sigma"] = math.sqrt(0.5)
    train = {"steps": args.steps, "batch_size": args.batch, "lr": args.lr, "lr_schedule": "constant",
             "optimizer": "adam", "weight_decay": 0.0, "grad_clip": 1.0, "val_fraction": 0.0, "test_fraction": 0.0,
             "threads": args.threads, "accelerator": "cpu", "seed": args.seed}
    extra = dict(item.split("=", 1) for item in args.aekit_set)
    return name, {"latent_dim": args.d_sae, **model, **train, **{k: literal(v) for k, v in extra.items()}}


def train_aekit(x, args, stamps: list[float], mses: list[float] | None) -> dict[str, Any]:
    import torch

    import aekit
    from aekit.run_config import split_overrides

    class Clock(torch.nn.Module):
        """A part without weights whose step hook stamps the start of each step."""

        def on_train_step_start(self, ctx) -> None:
            stamp(stamps)

    class RecordingClock(Clock):
        def before_optimizer_step(self, ctx) -> None:
            x_hat, target = ctx.outputs[0].x_params[0], ctx.batches[0].inputs
            mses.append(float((x_hat - target).pow(2).sum(-1).mean()))

    name, settings = aekit_settings(args)
    model_keys, data_keys, train_keys = split_overrides(settings, name)
    model = aekit.build_model(name, data_shape=(args.d_in,), **model_keys)
    model.add_module("benchmark_clock", RecordingClock() if mses is not None else Clock())
    result = aekit.train(model, data=x, out=None, evaluate=False, **data_keys, **train_keys)
    return {"steps": result.metrics["train/steps"], "model": name, "settings": settings,
            "train_samples_per_s": result.metrics["train/samples_per_s"]}


# ---------------------------------------------------------------------------------------------------------
# One run, in a process of its own


def worker(args) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    if args.worker == "sae-lens":  # each library's imports before the baseline
        import sae_lens  # noqa: F401
    else:
        import lightning_fabric  # noqa: F401

        import aekit.training  # noqa: F401
    rows = np.load(args.data)
    x = torch.from_numpy(rows) if args.worker == "sae-lens" else rows
    before = rss_mib()
    stamps: list[float] = []
    mses: list[float] | None = [] if args.record_mse else None
    train = train_sae_lens if args.worker == "sae-lens" else train_aekit
    global PROFILER
    if args.profile:  # the steps after the warm-up, but the last (whose end is not stamped)
        from torch.profiler import ProfilerActivity, profile, schedule

        active = args.steps - args.warmup - 1
        PROFILER = profile(activities=[ProfilerActivity.CPU], record_shapes=True,
                           schedule=schedule(wait=args.warmup + 1, warmup=0, active=active, repeat=1))
        PROFILER.start()
    info = train(x, args, stamps, mses)
    if PROFILER is not None:
        PROFILER.stop()
        table = PROFILER.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
        shapes = PROFILER.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=25,
                                                                       max_name_column_width=40)
        print(f"--- {args.worker}: steps {args.warmup}-{args.steps - 2} ---\n{table}\n{shapes}", file=sys.stderr)
    intervals = [b - a for a, b in zip(stamps[:-1], stamps[1:], strict=True)]
    timed = intervals[args.warmup :]
    record = {
        "library": args.worker, "threads": torch.get_num_threads(), **info,
        "tokens_per_s": round(args.batch * len(timed) / sum(timed), 1) if timed else None,
        "step_s_median": round(statistics.median(timed), 4) if timed else None,
        "step_s_all": [round(t, 4) for t in intervals],
        "rss_before_mib": round(before), "peak_rss_mib": round(rss_mib("VmHWM")),
    }
    if mses is not None:
        record["mse_first"], record["mse_last"], record["mse"] = mses[0], mses[-1], [round(m, 4) for m in mses]
    print("RESULT " + json.dumps(record), flush=True)


def run_worker(library: str, args, data: Path, steps: int, record_mse: bool = False, profile: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--worker", library, "--data", str(data), "--steps", str(steps),
           "--warmup", str(args.warmup), "--threads", str(args.threads), "--d-in", str(args.d_in),
           "--d-sae", str(args.d_sae), "--k", str(args.k), "--batch", str(args.batch), "--lr", str(args.lr),
           "--seed", str(args.seed), "--aekit-model", args.aekit_model,
           "--dead-window", str(args.dead_window)]
    cmd += [f"--aekit-set={item}" for item in args.aekit_set]
    cmd += ["--record-mse"] if record_mse else []
    cmd += ["--profile"] if profile else []
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"{library} run failed ({done.returncode})")
    if profile:
        sys.stderr.write(done.stderr)
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def spread(values: list[float], digits: int = 1) -> dict[str, Any]:
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits), "runs": [round(v, digits) for v in values]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="training steps of each timed run")
    parser.add_argument("--warmup", type=int, default=5, help="first steps left out of the timing")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--d-in", type=int, default=384)
    parser.add_argument("--d-sae", type=int, default=0, help="latents (default 8 x d_in)")
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--lr", type=float, default=4e-4)
    parser.add_argument("--rows", type=int, default=16384, help="rows of activations (reused every epoch)")
    parser.add_argument("--mean-active", type=float, default=32.0, help="true features active per row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--libraries", default=",".join(LIBRARIES))
    parser.add_argument("--aekit-model", default="auto", help="auto (topk-sae where registered, else ae), ae, "
                        "topk-sae")
    parser.add_argument("--aekit-set", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra aekit model or training key (repeatable)")
    parser.add_argument("--dead-window", type=int, default=0,
                        help="steps without firing after which a latent is dead and AuxK trains it: SAELens's "
                        "dead_feature_window, aekit's dead_tokens / batch (0: steps + 1, so AuxK never runs)")
    parser.add_argument("--check-losses", type=int, default=0, metavar="N",
                        help="first train each library N steps and print its first and last training MSE")
    parser.add_argument("--profile", action="store_true", help="print the torch profiler's top operators of "
                        "each library's steps (a run of --steps steps each)")
    parser.add_argument("--data-dir", default=str(ROOT / "out"))
    parser.add_argument("--out", help="write the JSON here too")
    parser.add_argument("--worker", choices=LIBRARIES, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--record-mse", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.d_sae = args.d_sae or 8 * args.d_in
    if args.worker:
        worker(args)
        return

    from importlib.metadata import version

    from _common import aekit_source, machine

    libraries = [lib.strip() for lib in args.libraries.split(",")]
    name = f"sae_speed_{args.rows}x{args.d_in}_a{args.mean_active:g}_s{args.seed}.npy"
    data = activations(Path(args.data_dir) / name, args.rows, args.d_in, args.mean_active, args.seed)
    result: dict[str, Any] = {
        "benchmark": "sae_speed", "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
        "aekit": aekit_source(), "sae_lens": version("sae-lens"),
        "settings": {k: getattr(args, k) for k in ("steps", "warmup", "repeats", "threads", "d_in", "d_sae", "k",
                                                   "batch", "lr", "rows", "mean_active", "seed", "aekit_model",
                                                   "aekit_set", "dead_window")},
    }
    if args.check_losses:
        checks = {lib: run_worker(lib, args, data, args.check_losses, record_mse=True) for lib in libraries}
        result["loss_check"] = {lib: {"steps": r["steps"], "mse_first": round(r["mse_first"], 4),
                                      "mse_last": round(r["mse_last"], 4)} for lib, r in checks.items()}
        print(json.dumps({"loss_check": result["loss_check"]}), flush=True)
    if args.profile:
        for lib in libraries:
            run_worker(lib, args, data, args.steps, profile=True)
    runs: dict[str, list[dict]] = {lib: [] for lib in libraries}
    for repeat in range(args.repeats):
        for lib in libraries if repeat % 2 == 0 else libraries[::-1]:
            record = run_worker(lib, args, data, args.steps)
            runs[lib].append(record)
            print(json.dumps({"repeat": repeat, "library": lib, "tokens_per_s": record["tokens_per_s"],
                              "peak_rss_mib": record["peak_rss_mib"]}), flush=True)
    if args.repeats:
        summarise(result, runs, libraries)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    for key in ("tokens_per_s", "ratio_aekit_over_sae_lens", "peak_rss_mib", "rss_before_mib"):
        if key in result:
            print(key, json.dumps(result[key]))


def summarise(result: dict[str, Any], runs: dict[str, list[dict]], libraries: list[str]) -> None:
    result["tokens_per_s"] = {lib: spread([r["tokens_per_s"] for r in rs]) for lib, rs in runs.items()}
    result["peak_rss_mib"] = {lib: spread([r["peak_rss_mib"] for r in rs], 0) for lib, rs in runs.items()}
    result["rss_before_mib"] = {lib: spread([r["rss_before_mib"] for r in rs], 0) for lib, rs in runs.items()}
    if set(LIBRARIES) <= set(libraries):
        pairs = [a["tokens_per_s"] / s["tokens_per_s"] for a, s in zip(runs["aekit"], runs["sae-lens"], strict=True)]
        result["ratio_aekit_over_sae_lens"] = spread(pairs, 3)
    result["runs"] = runs


if __name__ == "__main__":
    main()
