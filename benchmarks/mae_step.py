"""MAE training step: aekit's ``mae`` against Hugging Face ``ViTMAEForPreTraining`` on one configuration.

Both models get the same weights (converted) and the same batches and noise; one step is forward, backward and
an AdamW update. The two alternate in blocks of ``--steps`` steps, ``--repeats`` times, in one process, so that
the machine's drift touches both; the figures are medians of the per-step times. Also timed: the fp32 matmul
peak of the machine (a large square product), achieved GFLOP/s of each model (matrix-product FLOPs counted by
``aekit.models.mae.mae_flops``, x3 for forward + backward), and aekit's step with the encoder on the visible
tokens only against the encoder on every token (mask ratio 0: the same decoder, the encoder on all L + 1).

    python benchmarks/mae_step.py --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import warnings

import torch


def vitmae(config):
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    from aekit.interop import vitmae_config_from_mae

    hf = ViTMAEForPreTraining(ViTMAEConfig(**vitmae_config_from_mae(config)))
    hf.config._attn_implementation = "sdpa"
    return hf


def step_fn(model, kind, x, noise, compiled=False):
    """One training step; ``compiled``: the forward and the loss under ``torch.compile`` (inductor), as aekit's
    ``compile=true`` runs them, the backward and the optimiser step outside."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)  # the same optimiser for both

    def loss_of():
        if kind == "hf":
            return model(pixel_values=x, noise=noise).loss
        return model(x, noise=noise).terms["recon"].mean()

    forward = torch.compile(loss_of) if compiled else loss_of

    def step():
        loss = forward()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def timed(step, n):
    start = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - start) / n


def matmul_peak(threads, size=2048, n=10):
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(n):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * size**3 / statistics.median(times) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default="")
    parser.add_argument("--compile", action="store_true", help="also both steps with the forward compiled")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="mae is being trained without its step hooks")  # a constant ratio

    from aekit.interop import from_vitmae
    from aekit.models.mae import MAEConfig, mae_flops
    from aekit.nn.vit import sincos_position_embedding

    config = MAEConfig(data_shape=(3, 32, 32), patch_size=4, width=192, depth=6, heads=3, decoder_width=128,
                       decoder_depth=2, decoder_heads=4, mask_ratio=0.75, pos_order="wh", norm_eps=1e-12)
    results = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        hf = vitmae(config)
        with torch.no_grad():  # the table a pretrained ViTMAE holds (transformers 5 leaves a fresh one at 0)
            hf.vit.embeddings.position_embeddings[0, 1:] = sincos_position_embedding(8, 8, 192, "wh")
            hf.decoder.decoder_pos_embed[0, 1:] = sincos_position_embedding(8, 8, 128, "wh")
        ours = from_vitmae(hf).train()
        hf.train()
        all_tokens = type(ours)(MAEConfig(**{**config.__dict__, "mask_ratio": 0.0})).train()
        x = torch.rand(args.batch, 3, 32, 32)
        noise = torch.rand(args.batch, 64)
        steps = {"hf": step_fn(hf, "hf", x, noise), "aekit": step_fn(ours, "aekit", x, noise),
                 "aekit_all_tokens": step_fn(all_tokens, "aekit", x, noise)}
        if args.compile:  # copies, so that the eager models' weights and optimiser states stay their own
            import copy

            steps["hf_compiled"] = step_fn(copy.deepcopy(hf), "hf", x, noise, compiled=True)
            steps["aekit_compiled"] = step_fn(copy.deepcopy(ours), "aekit", x, noise, compiled=True)
        compile_s = {}
        for name, step in steps.items():  # warm-up (and compilation)
            start = time.perf_counter()
            timed(step, 2)
            compile_s[name] = time.perf_counter() - start
        per = {k: [] for k in steps}
        for _ in range(args.repeats):
            for k, step in steps.items():
                per[k].append(timed(step, args.steps))
        med = {k: statistics.median(v) for k, v in per.items()}
        flops = 3 * args.batch * mae_flops(config)["total"]
        peak = matmul_peak(threads)
        row = {
            "threads": threads, "hf_s": med["hf"], "aekit_s": med["aekit"], "ratio": med["aekit"] / med["hf"],
            "ratio_min_max": [min(a / h for a, h in zip(per["aekit"], per["hf"], strict=True)),
                              max(a / h for a, h in zip(per["aekit"], per["hf"], strict=True))],
            "all_tokens_s": med["aekit_all_tokens"], "visible_speedup": med["aekit_all_tokens"] / med["aekit"],
            "gflops_aekit": flops / med["aekit"] / 1e9, "gflops_hf": flops / med["hf"] / 1e9,
            "matmul_peak_gflops": peak,
        }
        row["peak_share_aekit"] = row["gflops_aekit"] / peak
        row["peak_share_hf"] = row["gflops_hf"] / peak
        if args.compile:
            for name in ("aekit_compiled", "hf_compiled"):
                row[f"{name}_s"] = med[name]
                row[f"{name}_warmup_s"] = compile_s[name]  # two steps, compilation included
            row["ratio_aekit_compiled_over_hf"] = med["aekit_compiled"] / med["hf"]
            row["ratio_aekit_compiled_over_hf_compiled"] = med["aekit_compiled"] / med["hf_compiled"]
            pairs = list(zip(per["aekit_compiled"], per["hf"], strict=True))
            row["ratio_aekit_compiled_over_hf_min_max"] = [min(a / h for a, h in pairs), max(a / h for a, h in pairs)]
        results.append(row)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    meta = {"torch": torch.__version__, "machine": platform.processor() or platform.machine(),
            "config": "32x32, patch 4, width 192, depth 6, 3 heads, decoder 2 x 128 (4 heads), batch 64, ratio 0.75"}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
