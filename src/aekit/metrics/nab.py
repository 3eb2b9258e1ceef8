"""The Numenta Anomaly Benchmark (NAB) score of a streaming anomaly detector.

Lavin & Ahmad (2015), "Evaluating Real-time Anomaly Detection Algorithms - the Numenta Anomaly Benchmark",
IEEE ICMLA, arXiv:1510.03336, section "Scoring"; the rules below are those of the reference code, numenta/NAB at
commit ea702d75 (``nab/sweeper.py``, ``nab/optimizer.py``, ``nab/runner.py``, ``config/profiles.json``), which
is what produced the published scoreboard. Everything here is written afresh from those definitions.

A file has ``n`` rows, one anomaly score ``s_i`` per row and labelled anomaly windows ``[a_k, b_k]`` (row indices,
both ends included, width ``w_k = b_k - a_k + 1``). Row ``i`` is a detection when ``s_i >= threshold``.

- Scaled sigmoid: ``sigma(y) = 2 / (1 + exp(5 y)) - 1`` for ``y <= 3`` and ``-1`` beyond (``y > 3``).
- Probationary period: the first ``min(floor(0.15 n), 0.15 * 5000)`` rows of each file are not scored at all
  (neither detections nor counts); a window counts as missed only if some row of it is scored.
- A detection inside window k at row i sits at ``y = -(b_k - i + 1) / w_k`` (``-1`` at the window's first row,
  ``-1/w_k`` at its last) and earns ``A_TP * sigma(y) / sigma(-1)``; so the first row earns exactly ``A_TP``.
  Only the earliest detection in a window counts; a window with none costs ``-A_FN``.
- A detection outside every window, after window k, sits at ``y = (i - b_k) / (w_k - 1)`` and adds
  ``A_FP * sigma(y)`` (negative); one before the first window of its file adds ``-A_FP``. (A one-row window
  makes that denominator 0, where NAB's sweeper divides by zero; here it takes ``y = 2``, as NAB's earlier
  ``nab/scorer.py`` did.)
- Raw score of a corpus: the sum of these over all files at one threshold; the threshold is chosen per profile to
  maximise the raw score of the whole corpus (one threshold for all files), by sweeping the scores from the
  highest down once: ``O(N log N)`` for ``N`` rows in all.
- Normalised score: ``100 * (raw - null) / (perfect - null)``, where ``null`` is the best raw score of the null
  detector (a constant score on every row, optimised like any other; on NAB it detects nothing, ``-A_FN`` per
  window) and ``perfect = A_TP * (number of windows)``.
- Counts are per scored row: tp (detected, in a window), fp (detected, outside), fn (not detected, in a window),
  tn (not detected, outside).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from aekit.errors import DataError

# config/profiles.json of numenta/NAB at ea702d75 (tnWeight 1.0 is listed there but never used in scoring).
PROFILES: dict[str, dict[str, float]] = {
    "standard": {"tp": 1.0, "fp": 0.11, "fn": 1.0},
    "reward_low_FP_rate": {"tp": 1.0, "fp": 0.22, "fn": 1.0},
    "reward_low_FN_rate": {"tp": 1.0, "fp": 0.11, "fn": 2.0},
}

PROBATION_PERCENT = 0.15

# Normalised NAB scores per detector and profile, from results/final_results.json of numenta/NAB at commit
# ea702d75cc2258d9d7dd35ca8e5e2539d71f3140 (that file last changed in 7c58c75924b8830f22b9ba46f13a3f800282fec0).
# "numenta" is Numenta HTM; "random" is one seed (the README table gives the mean over seeds: 11.0, 1.2, 19.5).
# The raw scores behind them are in config/thresholds.json; e.g. numenta standard 46.634450197137596 with
# null -116 and perfect 116 gives 100 * (46.63... + 116) / 232 = 70.10105611943965.
PUBLISHED_SCOREBOARD: dict[str, dict[str, float]] = {
    "ARTime": {"standard": 74.85377223215792, "reward_low_FP_rate": 65.15400017974811,
               "reward_low_FN_rate": 80.36228493638114},
    "contextOSE": {"standard": 69.89956896844828, "reward_low_FP_rate": 66.97713919047413,
                   "reward_low_FN_rate": 73.18167250416667},
    "earthgeckoSkyline": {"standard": 58.20022252594827, "reward_low_FP_rate": 46.19530112566379,
                          "reward_low_FN_rate": 63.80014835063793},
    "expose": {"standard": 16.43666922426724, "reward_low_FP_rate": 3.1909311068965485,
               "reward_low_FN_rate": 26.920946783333335},
    "htmjava": {"standard": 65.54990960125, "reward_low_FP_rate": 53.25694971610345,
                "reward_low_FN_rate": 70.42407766520115},
    "knncad": {"standard": 57.99434335898808, "reward_low_FP_rate": 43.40851703291233,
               "reward_low_FN_rate": 64.81232086001505},
    "null": {"standard": 0.0, "reward_low_FP_rate": 0.0, "reward_low_FN_rate": 0.0},
    "numenta": {"standard": 70.10105611943965, "reward_low_FP_rate": 63.11684160219828,
                "reward_low_FN_rate": 74.3202443095115},
    "numentaTM": {"standard": 64.55346441254311, "reward_low_FP_rate": 56.665308225043105,
                  "reward_low_FN_rate": 69.18506822906035},
    "random": {"standard": 16.831768350517237, "reward_low_FP_rate": 5.763682319827586,
               "reward_low_FN_rate": 25.876351314080456},
    "randomCutForest": {"standard": 51.717054557073276, "reward_low_FP_rate": 38.360772142413786,
                        "reward_low_FN_rate": 59.74876476310345},
    "relativeEntropy": {"standard": 54.64274893469828, "reward_low_FP_rate": 47.598351759844824,
                        "reward_low_FN_rate": 58.84229239324713},
    "skyline": {"standard": 35.687043255862065, "reward_low_FP_rate": 27.08121005969828,
                "reward_low_FN_rate": 44.4810173429885},
    "twitterADVec": {"standard": 47.06195725408189, "reward_low_FP_rate": 33.610051641206894,
                     "reward_low_FN_rate": 53.50107495100574},
    "windowedGaussian": {"standard": 39.649523496077585, "reward_low_FP_rate": 20.86798582474138,
                         "reward_low_FN_rate": 47.4100271583046},
}

Windows = Sequence[tuple[int, int]]


def scaled_sigmoid(y: float | np.ndarray) -> float | np.ndarray:
    """NAB's scaled sigmoid ``2 / (1 + exp(5 y)) - 1``, and ``-1`` for ``y > 3`` (``sigma(-1) = 0.98661``,
    ``sigma(0) = 0``)."""
    y = np.asarray(y, dtype=np.float64)
    out = np.where(y > 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * np.minimum(y, 3.0))) - 1.0)
    return float(out) if out.ndim == 0 else out


def probation_length(n: int, probation_percent: float = PROBATION_PERCENT) -> int:
    """How many leading rows of an ``n``-row file are not scored: ``min(floor(p n), p * 5000)`` (rows ``i`` with
    ``i`` below it, hence the ceiling for a fractional cap)."""
    return math.ceil(min(math.floor(probation_percent * n), probation_percent * 5000))


def _weights(profile: str | Mapping[str, float]) -> dict[str, float]:
    if isinstance(profile, str):
        if profile not in PROFILES:
            raise DataError(f"NAB profile {profile!r} is unknown; choose one of {', '.join(PROFILES)}")
        return PROFILES[profile]
    missing = {"tp", "fp", "fn"} - set(profile)
    if missing:
        raise DataError(f"a NAB profile needs weights tp, fp and fn; {sorted(missing)} missing from {dict(profile)}")
    return {k: float(profile[k]) for k in ("tp", "fp", "fn")}


def _check(scores, windows: Windows, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The scores as float64 ``[n]`` and the windows as int ``[K, 2]``, checked."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise DataError(f"{name}: anomaly scores must be one per row, shape [n]; got shape {s.shape}")
    if np.isnan(s).any():
        raise DataError(f"{name}: anomaly score at row {int(np.flatnonzero(np.isnan(s))[0])} is NaN")
    w = np.asarray(windows, dtype=np.int64).reshape(-1, 2)
    for k, (a, b) in enumerate(w):
        if not 0 <= a <= b < len(s):
            raise DataError(f"{name}: window {k} = [{a}, {b}] is not an index range inside the {len(s)} rows")
        if k > 0 and a <= w[k - 1, 1]:
            raise DataError(f"{name}: window {k} = [{a}, {b}] starts at or before the end of window {k - 1} = "
                            f"[{w[k - 1, 0]}, {w[k - 1, 1]}]; windows must be sorted and disjoint")
    return s, w


def _row_scores(n: int, w: np.ndarray, weights: Mapping[str, float], probation_percent: float):
    """For each scored row: its index, what it adds to the raw score if detected, and its window (-1 outside)."""
    i = np.arange(n)
    value = np.empty(n)
    window_of = np.full(n, -1)
    widths = w[:, 1] - w[:, 0] + 1
    max_tp = scaled_sigmoid(-1.0)
    for k, (a, b) in enumerate(w):
        window_of[a:b + 1] = k
        value[a:b + 1] = weights["tp"] * scaled_sigmoid(-(b - i[a:b + 1] + 1) / widths[k]) / max_tp
    outside = window_of < 0
    prev = np.searchsorted(w[:, 1], i[outside], side="left") - 1  # the last window ending before the row
    after = prev >= 0
    y = np.full(len(prev), 3.5)  # before any window: sigma = -1
    prev_w = widths[prev[after]]
    gap = (i[outside][after] - w[prev[after], 1]).astype(np.float64)
    y[after] = np.where(prev_w > 1, gap / np.maximum(prev_w - 1, 1), 2.0)
    value[outside] = weights["fp"] * scaled_sigmoid(y)
    scored = i >= probation_length(n, probation_percent)
    return i[scored], value[scored], window_of[scored]


def score_file(scores, windows: Windows, threshold: float, profile: str | Mapping[str, float] = "standard",
               probation_percent: float = PROBATION_PERCENT, name: str = "file") -> tuple[float, dict[str, int]]:
    """Raw NAB score of one file at ``threshold`` (detections are ``scores >= threshold``), and the row counts
    ``{"tp", "fp", "fn", "tn"}``. ``windows``: ``[start, end]`` row indices, both included, sorted and disjoint."""
    s, w = _check(scores, windows, name)
    weights = _weights(profile)
    rows, value, window_of = _row_scores(len(s), w, weights, probation_percent)
    detected = s[rows] >= threshold
    inside = window_of >= 0
    raw = float(value[detected & ~inside].sum())
    for k in np.unique(window_of[inside]):
        hits = np.flatnonzero(detected & (window_of == k))
        raw += float(value[hits[0]]) if len(hits) else -weights["fn"]  # rows are in time order: the earliest
    counts = {"tp": int((detected & inside).sum()), "fp": int((detected & ~inside).sum()),
              "fn": int((~detected & inside).sum()), "tn": int((~detected & ~inside).sum())}
    return raw, counts


def sweep(scores: Sequence, windows: Sequence[Windows], profile: str | Mapping[str, float] = "standard",
          probation_percent: float = PROBATION_PERCENT) -> dict[str, np.ndarray]:
    """Raw corpus score at every distinct threshold, from ``inf`` (no detection) down to the lowest score.

    ``scores[f]`` and ``windows[f]`` are file f's anomaly scores ``[n_f]`` and windows. One sort of all scored
    rows, then running sums: a detection outside windows adds its value; one inside replaces its window's
    current best (``-A_FN`` before any) when it is earlier. Returns arrays ``threshold``, ``raw``, ``tp``,
    ``fp``, ``fn``, ``tn``, one entry per threshold, thresholds decreasing.
    """
    if len(scores) != len(windows):
        raise DataError(f"{len(scores)} score arrays for {len(windows)} window lists; give one of each per file")
    weights = _weights(profile)
    all_s, all_v, all_g, n_windows = [], [], [], 0
    for f, (sc, win) in enumerate(zip(scores, windows, strict=True)):
        s, w = _check(sc, win, f"file {f}")
        rows, value, window_of = _row_scores(len(s), w, weights, probation_percent)
        all_s.append(s[rows])
        all_v.append(value)
        all_g.append(np.where(window_of >= 0, window_of + n_windows, -1))  # windows numbered across the corpus
        n_windows += len(w)
    s, v, g = (np.concatenate(x) if x else np.empty(0) for x in (all_s, all_v, all_g))
    g = g.astype(np.int64)
    order = np.argsort(-s, kind="stable")  # s: [N], from the highest score down
    s, v, g = s[order], v[order], g[order]
    inside = g >= 0
    gain = np.where(inside, 0.0, v)
    at = np.flatnonzero(inside)
    at = at[np.argsort(g[at], kind="stable")]  # window rows grouped by window, sweep order kept within each
    if len(at):
        gg = g[at]
        levels, rank = np.unique(v[at], return_inverse=True)
        offset = gg * len(levels)
        best = levels[np.maximum.accumulate(offset + rank) - offset]  # running best per window (offsets separate)
        before = np.concatenate([[0.0], best[:-1]])
        before[np.concatenate([[True], gg[1:] != gg[:-1]])] = -weights["fn"]
        gain[at] = best - before
    base = -weights["fn"] * len(np.unique(g[inside]))  # windows with a scored row, all missed
    last = np.flatnonzero(np.concatenate([s[1:] != s[:-1], [True]])) if len(s) else np.empty(0, dtype=np.int64)
    tp = np.concatenate([[0], np.cumsum(inside)[last]])
    fp = np.concatenate([[0], np.cumsum(~inside)[last]])
    n_in = int(inside.sum())
    raw = base + np.concatenate([[0.0], np.cumsum(gain)[last]])
    return {"threshold": np.concatenate([[np.inf], s[last]]), "raw": raw, "tp": tp, "fp": fp, "fn": n_in - tp,
            "tn": (len(s) - n_in) - fp}


def optimize_threshold(scores: Sequence, windows: Sequence[Windows], profile: str | Mapping[str, float] = "standard",
                       probation_percent: float = PROBATION_PERCENT) -> tuple[float, float, dict[str, int]]:
    """The single threshold that maximises the raw corpus score (ties go to the highest threshold, as in NAB),
    with that raw score and its counts: ``(threshold, raw, counts)``."""
    table = sweep(scores, windows, profile, probation_percent)
    k = int(np.argmax(table["raw"]))
    return float(table["threshold"][k]), float(table["raw"][k]), {c: int(table[c][k]) for c in ("tp", "fp", "fn", "tn")}


def normalized_score(raw: float, null: float, perfect: float) -> float:
    """NAB's normalisation ``100 * (raw - null) / (perfect - null)``: 0 for the null detector, 100 for the perfect
    one (``nab/runner.py``, ``Runner.normalize``)."""
    if perfect == null:
        raise DataError(f"perfect and null raw scores are both {perfect}, so the NAB score is undefined; the corpus "
                        "needs at least one anomaly window")
    return 100.0 * (raw - null) / (perfect - null)


def nab_score(scores: Sequence, windows: Sequence[Windows], profile: str | Mapping[str, float] = "standard",
              threshold: float | None = None, probation_percent: float = PROBATION_PERCENT) -> dict:
    """Normalised NAB score of a detector over a corpus: ``100 * (raw - null) / (perfect - null)``.

    ``scores[f]``: file f's anomaly scores ``[n_f]``; ``windows[f]``: its windows as ``[start, end]`` row indices.
    ``threshold=None`` optimises one threshold over all files. Returns ``{"score", "raw", "null", "perfect",
    "threshold", "counts"}``.
    """
    weights = _weights(profile)
    if threshold is None:
        threshold, raw, counts = optimize_threshold(scores, windows, weights, probation_percent)
    else:
        raw, counts = 0.0, {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
        for f, (sc, win) in enumerate(zip(scores, windows, strict=True)):
            r, c = score_file(sc, win, threshold, weights, probation_percent, name=f"file {f}")
            raw += r
            counts = {k: counts[k] + c[k] for k in counts}
    constant = [np.full(len(np.asarray(sc)), 0.5) for sc in scores]
    _, null, _ = optimize_threshold(constant, windows, weights, probation_percent)
    perfect = weights["tp"] * sum(len(np.asarray(win).reshape(-1, 2)) for win in windows)
    return {"score": normalized_score(raw, null, perfect), "raw": raw, "null": null, "perfect": perfect,
            "threshold": threshold, "counts": counts}


def nab_scores(scores: Sequence, windows: Sequence[Windows],
               probation_percent: float = PROBATION_PERCENT) -> dict[str, dict]:
    """:func:`nab_score` under each of NAB's three profiles, each with its own optimised threshold."""
    return {name: nab_score(scores, windows, name, probation_percent=probation_percent) for name in PROFILES}
