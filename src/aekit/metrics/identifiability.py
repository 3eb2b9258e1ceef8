"""Identifiability metrics: how well learnt codes recover the true sources up to a permutation and a scaling.

``mcc``, the mean correlation coefficient (Hyvarinen & Morioka 2016; Khemakhem et al. 2020, Sec. 6): the absolute
Pearson correlation between every true source s_i and every code unit z_j, then the one-to-one matching of sources
to units that maximises their sum (the Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``), and the
mean over the matched pairs,

    MCC = max_pi 1/K sum_i |corr(s_i, z_pi(i))|   in [0, 1],

1 for codes equal to the sources up to a permutation, signs and scales. With more units than sources the best K
units are matched; a unit or a source that never varies correlates with nothing (0).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from aekit.errors import DataError

Array = np.ndarray | torch.Tensor


def correlation_matrix(sources: Array, codes: Array) -> np.ndarray:
    """|corr(s_i, z_j)| ``[K, D]`` for sources ``[N, K]`` and codes ``[N, D]`` (0 where either is constant)."""
    s, z = (np.asarray(a.detach().cpu() if torch.is_tensor(a) else a, dtype=np.float64) for a in (sources, codes))
    if s.ndim != 2 or z.ndim != 2 or len(s) != len(z) or len(s) < 2:
        raise DataError(f"mcc needs sources [N, K] and codes [N, D] with the same N >= 2, got {s.shape} and "
                        f"{z.shape}")
    s, z = s - s.mean(0), z - z.mean(0)
    norms = np.outer(np.linalg.norm(s, axis=0), np.linalg.norm(z, axis=0))  # [K, D]
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(norms > 0, (s.T @ z) / np.where(norms > 0, norms, 1.0), 0.0)
    return np.abs(corr)


def mcc(sources: Array, codes: Array) -> dict[str, Any]:
    """The mean correlation coefficient (module docstring), with the matched unit of each source and the matched
    correlations; needs at least as many code units as sources."""
    from scipy.optimize import linear_sum_assignment

    corr = correlation_matrix(sources, codes)
    k, d = corr.shape
    if d < k:
        raise DataError(f"mcc matches each of {k} sources to its own code unit, but the codes have {d}; give codes "
                        f"of at least {k} units")
    rows, cols = linear_sum_assignment(-corr)  # maximise the sum of |corr|
    matched = corr[rows, cols]
    return {"mcc": float(matched.mean()), "mcc_units": cols.tolist(), "mcc_per_source": matched.tolist()}
