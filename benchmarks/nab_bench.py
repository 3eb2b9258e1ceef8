"""aekit's sequence AE and VAE detectors on the 58 NAB series, scored by NAB's own rules, against PyOD's
AutoEncoder on the same sliding windows and against the published NAB scoreboard.

Protocol (online-style, each score from the past only): per series, the detector trains on the probationary
rows (the first ``min(floor(0.15 n), 750)``, which NAB does not score) and scores every row t by the window of
rows t - T + 1 .. t (the first row repeated before the start). A file's raw scores are mapped to [0, 1] online
(``--post likelihood``, the default): the anomaly likelihood of Ahmad et al. 2017 (``aekit.detect.
anomaly_likelihood``: the last 10 raw scores' mean against the mean and spread of the last 8640, log-spread as
NAB's HTM detector does); or (``--post unit``) with the statistics of the file's training rows only,
``z = max(0, (s - median) / (q99 - median))``, ``p = z / (1 + z)``. NAB's sweep then chooses one threshold per
profile over the whole corpus (``aekit.metrics.nab``).

aekit: ``SeriesDetector`` (``ae`` and ``vae``), GRU backbone 32 wide, latent 8, window 32, ``steps`` Adam steps of
batch 64 at lr 1e-3, score = -log p(x | z) at the posterior mean. PyOD: ``AutoEncoder`` on the flattened windows
(standardised with the training rows' statistics), hidden 64-32, the same number of epochs' worth of updates
(``epochs = ceil(steps * 64 / n_train_windows)``), batch 64, lr 1e-3, its other defaults. One torch thread.

    .venv-bench/bin/python benchmarks/nab_bench.py --out benchmarks/results/nab.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

WINDOW = 32


def post_process(kind: str, scores: np.ndarray, train: int) -> np.ndarray:
    if kind == "likelihood":
        from aekit.detect import anomaly_likelihood

        return anomaly_likelihood(scores)
    return to_unit(scores, train)


def to_unit(scores: np.ndarray, train: int) -> np.ndarray:
    s = np.nan_to_num(np.asarray(scores, np.float64), posinf=np.finfo(np.float64).max / 4)
    med, q99 = np.median(s[:train]), np.quantile(s[:train], 0.99)
    z = np.maximum(0.0, (s - med) / max(q99 - med, 1e-12))
    return z / (1.0 + z)


def aekit_scores(model: str, values: np.ndarray, train: int, steps: int, seed: int) -> np.ndarray:
    from aekit.sklearn import SeriesDetector

    detector = SeriesDetector(model, window=WINDOW, backbone="gru", hidden=(32,), latent_dim=8, steps=steps,
                              batch_size=64, lr=1e-3, random_state=seed, criterion="recon")
    detector.fit(values[:train])
    return detector.anomaly_score(values)


def past_windows(values: np.ndarray) -> np.ndarray:
    padded = np.concatenate([np.repeat(values[:1], WINDOW - 1), values])
    return np.lib.stride_tricks.sliding_window_view(padded, WINDOW)  # [n, T], row t ends at t


def pyod_scores(values: np.ndarray, train: int, steps: int, seed: int) -> np.ndarray:
    from pyod.models.auto_encoder import AutoEncoder

    mean, std = values[:train].mean(), values[:train].std() or 1.0
    windows = past_windows((values - mean) / std).astype(np.float32)
    epochs = max(1, math.ceil(steps * 64 / train))
    detector = AutoEncoder(hidden_neuron_list=[64, 32], epoch_num=epochs, batch_size=64, lr=1e-3,
                           random_state=seed, verbose=0)
    detector.fit(windows[:train])
    return detector.decision_function(windows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--detectors", nargs="+", default=["aekit-ae", "aekit-vae", "pyod-ae"])
    parser.add_argument("--limit", type=int, default=0, help="the first N series with windows only (a check)")
    parser.add_argument("--post", default="likelihood", choices=["likelihood", "unit"],
                        help="raw scores -> [0, 1]: the online anomaly likelihood, or the training-quantile map")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from aekit.data.nab import read_nab
    from aekit.metrics.nab import PUBLISHED_SCOREBOARD, nab_scores, probation_length

    root = Path(os.environ.get("AEKIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "datasets")) / "nab"
    files = read_nab(root)
    files = [f for f in files if f.windows][: args.limit] if args.limit else files
    report = {"series": len(files), "window": WINDOW, "steps": args.steps, "seed": args.seed, "post": args.post,
              "detectors": {}}
    for name in args.detectors:
        t0, unit = time.perf_counter(), []
        for f in files:
            train = probation_length(len(f.values))
            if name == "pyod-ae":
                raw = pyod_scores(f.values, train, args.steps, args.seed)
            else:
                raw = aekit_scores(name.split("-")[1], f.values, train, args.steps, args.seed)
            unit.append(post_process(args.post, raw, train))
        seconds = time.perf_counter() - t0
        scores = nab_scores(unit, [f.windows for f in files])
        report["detectors"][name] = {"seconds": round(seconds, 1), **{
            profile: {"score": round(r["score"], 2), "threshold": round(r["threshold"], 4), "counts": r["counts"]}
            for profile, r in scores.items()}}
        print(json.dumps({name: report["detectors"][name]}), flush=True)
    report["published"] = {k: PUBLISHED_SCOREBOARD[k] for k in ("numenta", "ARTime", "windowedGaussian", "random",
                                                                 "null")}
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
