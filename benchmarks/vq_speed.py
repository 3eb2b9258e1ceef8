"""Speed of the quantising bottlenecks against vector-quantize-pytorch: VQ, FSQ and LFQ, one process, alternating.

Each case times the quantisation itself on ``N`` rows ``z_e [N, d]`` in training mode, forward and backward:

- ``vq``: aekit's ``vq`` bottleneck, ``quantize(z_e)``, the backward of the output's sum plus 0.25 x the
  commitment term, then the EMA codebook update its step hook makes (``update_codebooks`` with a
  :class:`~aekit.training.hooks.StepContext`, as ``after_optimizer_step`` calls it), against
  ``VectorQuantize(dim=d, codebook_size=K, decay=0.99)`` (otherwise its defaults: an EMA codebook updated inside
  the forward, no k-means, no dead-code replacement, the rotation trick), forward and the backward of its output's
  sum plus its loss. Both with decay 0.99, no dead-code restart (aekit ``dead_after=0``), and the same starting
  entries (the peer's codebook is set to aekit's, so both choose the same codes). aekit runs with the rotation
  trick (``gradient=rotation``, the peer's default estimator) and with its own default, the straight-through
  estimator (``ste``); the ratio is taken for each against the one peer run.
- ``fsq``: ``fsq`` with ``levels`` against ``FSQ(levels=levels)``, the backward of the output's sum.
- ``lfq``: ``lfq`` with ``bits`` against ``LFQ(dim=bits, codebook_size=2^bits, entropy_loss_weight=0.1,
  commitment_loss_weight=0.25)``, the backward of the output's sum plus 0.25 x the commitment and 0.1 x the
  entropy term (the peer: plus its auxiliary loss).

The bottlenecks are built with ``build_part`` on ``PartContext(data_shape=(d,), feature_shape=(d,),
latent_shape=(d,))``; their input projection is not part of what is timed. Within each repeat the libraries'
order alternates. Reported per case: median, interquartile range and min-max of the seconds, the ratio of the
medians aekit / peer and each repeat's ratio; for aekit's VQ the split into forward, backward and update.

The distance search: aekit's ``nearest(z [N, 1, d], embed [1, K, d])`` against the plain fp32 product
``z @ e.T`` of the same shapes, alternating, each as 2 N K d FLOPs: the search's GFLOP/s as a share of the
product's.

    .venv-bench/bin/python benchmarks/vq_speed.py --threads 1 2 --out benchmarks/results/vq_speed.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _common import aekit_source, machine, matmul_peak_gflops

from aekit.nn.quantize.codebook import nearest
from aekit.parts import PartContext, build_part
from aekit.training.hooks import StepContext

VQ_CASES = ((1024, 64), (1024, 256), (16384, 64), (16384, 256))  # (K, d)


def context(dim: int) -> PartContext:
    return PartContext(data_shape=(dim,), feature_shape=(dim,), latent_shape=(dim,))


def spread(seconds: list[float]) -> dict[str, Any]:
    q = statistics.quantiles(seconds, n=4) if len(seconds) > 1 else [seconds[0]] * 3
    return {"median_s": round(statistics.median(seconds), 5), "q1_s": round(q[0], 5), "q3_s": round(q[2], 5),
            "min_s": round(min(seconds), 5), "max_s": round(max(seconds), 5),
            "seconds": [round(s, 5) for s in seconds]}


def alternate(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 2) -> dict[str, list[float]]:
    """Seconds of each function per repeat, their order reversed every other repeat, after ``warmup`` calls."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return times


def compare(times: dict[str, list[float]], peer: str, ours: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {name: spread(t) for name, t in times.items()}
    for name in ours:
        out[f"ratio_{name}_over_{peer}"] = round(out[name]["median_s"] / out[peer]["median_s"], 3)
        out[f"ratio_{name}_per_repeat"] = [round(a / b, 3) for a, b in zip(times[name], times[peer], strict=True)]
    return out


def aekit_vq(n: int, k: int, d: int, gradient: str, z0: torch.Tensor, parts: dict[str, list[float]]):
    bn = build_part("bottlenecks", "vq", context=context(d), codebook_size=k, decay=0.99, dead_after=0,
                    gradient=gradient).train()
    step = [0]

    def run() -> torch.Tensor:
        t0 = time.perf_counter()
        z = z0.clone().requires_grad_()
        q = bn.quantize(z)
        loss = q.z.sum() + 0.25 * q.terms["commit"].sum()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        bn.update_codebooks({"inputs": q.hook["inputs"], "codes": q.codes}, StepContext(step=step[0]))
        t3 = time.perf_counter()
        step[0] += 1
        for name, t in (("forward", t1 - t0), ("backward", t2 - t1), ("update", t3 - t2)):
            parts[name].append(t)
        return q.codes

    return bn, run


def peer_vq(k: int, d: int, embed: torch.Tensor, z0: torch.Tensor):
    from vector_quantize_pytorch import VectorQuantize

    vq = VectorQuantize(dim=d, codebook_size=k, decay=0.99).train()
    cb = vq._codebook
    with torch.no_grad():  # aekit's starting entries, so both search the same codebook
        cb.embed.copy_(embed.view_as(cb.embed))
        cb.embed_avg.copy_(embed.view_as(cb.embed_avg))
        cb.cluster_size.fill_(1.0)

    def run() -> torch.Tensor:
        x = z0.unsqueeze(0).clone().requires_grad_()
        out, codes, loss = vq(x)
        (out.sum() + loss.sum()).backward()
        return codes

    return vq, run


def vq_case(n: int, k: int, d: int, repeats: int) -> dict[str, Any]:
    torch.manual_seed(0)
    z0 = torch.randn(n, d) / d ** 0.5
    parts: dict[str, dict[str, list[float]]] = {g: {"forward": [], "backward": [], "update": []}
                                                 for g in ("rotation", "ste")}
    bn_rot, ours_rot = aekit_vq(n, k, d, "rotation", z0, parts["rotation"])
    bn_ste, ours_ste = aekit_vq(n, k, d, "ste", z0, parts["ste"])
    bn_ste.codebooks[0].embed.copy_(bn_rot.codebooks[0].embed)
    bn_ste.codebooks[0].embed_sum.copy_(bn_rot.codebooks[0].embed_sum)
    _, theirs = peer_vq(k, d, bn_rot.codebooks[0].embed.clone(), z0)
    same = float((ours_rot().view(-1) == theirs().view(-1)).float().mean())  # first step: the same entries
    times = alternate({"aekit_rotation": ours_rot, "aekit_ste": ours_ste, "peer": theirs}, repeats, warmup=1)
    result = compare(times, "peer", ["aekit_rotation", "aekit_ste"])
    result["codes_agree_first_step"] = round(same, 4)
    for g, p in parts.items():
        result[f"aekit_{g}"]["parts_median_s"] = {name: round(statistics.median(t[-repeats:]), 5)
                                                  for name, t in p.items()}
    return result


def search_case(n: int, k: int, d: int, repeats: int) -> dict[str, Any]:
    torch.manual_seed(0)
    z, e = torch.randn(n, d), torch.randn(k, d)
    z3, e3 = z.unsqueeze(1), e.unsqueeze(0)
    times = alternate({"nearest": lambda: nearest(z3, e3), "matmul": lambda: z @ e.T}, repeats)
    result = compare(times, "matmul", ["nearest"])
    flops = 2 * n * k * d
    for name in times:
        result[name]["gflops"] = round(flops / result[name]["median_s"] / 1e9, 1)
    result["search_share_of_matmul"] = round(result["nearest"]["gflops"] / result["matmul"]["gflops"], 3)
    return result


def fsq_case(n: int, levels: list[int], repeats: int) -> dict[str, Any]:
    from vector_quantize_pytorch import FSQ

    d = len(levels)
    torch.manual_seed(0)
    z0 = torch.randn(n, d)
    bn = build_part("bottlenecks", "fsq", context=context(d), levels=tuple(levels)).train()
    peer = FSQ(levels=list(levels)).train()

    def ours() -> None:
        z = z0.clone().requires_grad_()
        bn.quantize(z).z.sum().backward()

    def theirs() -> None:
        x = z0.unsqueeze(0).clone().requires_grad_()
        out, _ = peer(x)
        out.sum().backward()

    return compare(alternate({"aekit": ours, "peer": theirs}, repeats), "peer", ["aekit"])


def lfq_case(n: int, bits: int, repeats: int) -> dict[str, Any]:
    from vector_quantize_pytorch import LFQ

    torch.manual_seed(0)
    z0 = torch.randn(n, bits)
    bn = build_part("bottlenecks", "lfq", context=context(bits), bits=bits).train()
    peer = LFQ(dim=bits, codebook_size=1 << bits, entropy_loss_weight=0.1, commitment_loss_weight=0.25).train()

    def ours() -> None:
        z = z0.clone().requires_grad_()
        q = bn.quantize(z)
        (q.z.sum() + 0.25 * q.terms["commit"].mean() + 0.1 * q.batch_terms["entropy"]).backward()

    def theirs() -> None:
        x = z0.unsqueeze(0).clone().requires_grad_()
        out, _, aux = peer(x)
        (out.sum() + aux.sum()).backward()

    return compare(alternate({"aekit": ours, "peer": theirs}, repeats), "peer", ["aekit"])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--rows", type=int, default=4096)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--slow-repeats", type=int, default=7, help="repeats of the K = 16,384 VQ cases")
    p.add_argument("--cases", nargs="+", default=["vq", "search", "fsq", "lfq"])
    p.add_argument("--lfq-bits", type=int, nargs="+", default=[10, 16])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/vq_speed.json"))
    args = p.parse_args(argv)
    n = args.rows
    result: dict[str, Any] = {"benchmark": "vq_speed", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                              "aekit_source": aekit_source(), "setup": {k: v for k, v in vars(args).items()
                                                                         if k != "out"}, "runs": {}}
    import vector_quantize_pytorch

    result["peer"] = {"vector_quantize_pytorch": getattr(vector_quantize_pytorch, "__version__", "")}
    try:
        from importlib.metadata import version

        result["peer"]["vector_quantize_pytorch"] = version("vector-quantize-pytorch")
    except Exception:  # noqa: BLE001 - the version is only recorded
        pass
    for threads in args.threads:
        torch.set_num_threads(threads)
        run: dict[str, Any] = {"machine": machine(), "matmul_peak": matmul_peak_gflops(2048, runs=5)}
        print(f"threads {threads}: matmul peak {run['matmul_peak']['gflops_median']} GFLOP/s", flush=True)
        for k, d in VQ_CASES:
            reps = args.slow_repeats if k > 4096 else args.repeats
            if "vq" in args.cases:
                r = run[f"vq_K{k}_d{d}"] = vq_case(n, k, d, reps)
                print(f"  vq K={k} d={d}: aekit rotation {r['aekit_rotation']['median_s'] * 1e3:.1f} ms, ste "
                      f"{r['aekit_ste']['median_s'] * 1e3:.1f} ms, peer {r['peer']['median_s'] * 1e3:.1f} ms; ratio "
                      f"{r['ratio_aekit_rotation_over_peer']} / {r['ratio_aekit_ste_over_peer']}; parts "
                      f"{r['aekit_rotation']['parts_median_s']}; codes agree {r['codes_agree_first_step']}",
                      flush=True)
            if "search" in args.cases:
                r = run[f"search_K{k}_d{d}"] = search_case(n, k, d, reps)
                print(f"  search K={k} d={d}: nearest {r['nearest']['gflops']} GFLOP/s, matmul "
                      f"{r['matmul']['gflops']} GFLOP/s, share {r['search_share_of_matmul']}", flush=True)
        if "fsq" in args.cases:
            for rows, levels in ((n, [8, 5, 5, 5]), (4 * n, [8, 8, 8, 6, 5])):
                r = run[f"fsq_{'-'.join(map(str, levels))}_N{rows}"] = fsq_case(rows, levels, args.repeats)
                print(f"  fsq {levels} N={rows}: aekit {r['aekit']['median_s'] * 1e3:.2f} ms, peer "
                      f"{r['peer']['median_s'] * 1e3:.2f} ms, ratio {r['ratio_aekit_over_peer']}", flush=True)
        if "lfq" in args.cases:
            for bits in args.lfq_bits:
                reps = args.repeats if bits <= 12 else args.slow_repeats
                r = run[f"lfq_bits{bits}"] = lfq_case(n, bits, reps)
                print(f"  lfq bits={bits}: aekit {r['aekit']['median_s'] * 1e3:.2f} ms, peer "
                      f"{r['peer']['median_s'] * 1e3:.2f} ms, ratio {r['ratio_aekit_over_peer']}", flush=True)
        result["runs"][f"threads_{threads}"] = run
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")  # after each thread count
    return result


if __name__ == "__main__":
    main()
