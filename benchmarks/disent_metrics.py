"""aekit's disentanglement metrics side by side with disent 0.8's on the same representations.

disent's metric modules import its dataset package, which needs h5py and torchvision, and its package imports
lightning; here small stand-ins take their place (a ``DisentDataset`` class and empty modules), so that the
metric code itself is what runs. MIG, SAP and DCI are called on the same matrices and the same train/test rows
(disent's matrix-level functions); FactorVAE draws its own batches through a stand-in dataset whose observations
are the factors and whose representation is a fixed function of them, so it agrees only up to sampling noise.

    .venv-bench/bin/python benchmarks/disent_metrics.py --out benchmarks/results/disent_metrics.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
import warnings
from pathlib import Path

import numpy as np


def stand_ins() -> None:
    """Empty modules for what disent's metrics import but do not use on matrices."""

    class DisentDataset:
        pass

    def stub(name: str, **attrs) -> None:
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module

    stub("disent.dataset", DisentDataset=DisentDataset)
    for name in ("lightning", "disent.frameworks", "disent.frameworks.helper",
                 "disent.frameworks.helper.reconstructions", "disent.nn.loss.reduction",
                 "disent.metrics._flatness", "disent.metrics._factored_components"):
        stub(name, ReconLossHandler=object, batch_loss_reduction=None, metric_flatness=None,
             encode_all_along_factor=None, encode_all_factors=None, filter_inactive_factors=None,
             metric_factored_components=None, metric_distances=None, metric_linearity=None)


class FactorsAsObservations:
    """disent's DisentDataset protocol as its FactorVAE code uses it: observations are the factor indices."""

    def __init__(self, sizes: tuple[int, ...]) -> None:
        self.sizes = sizes
        self.gt_data = types.SimpleNamespace(num_factors=len(sizes), sample_factors=self.sample_factors)

    def sample_factors(self, n: int) -> np.ndarray:
        return np.stack([np.random.randint(0, s, n) for s in self.sizes], axis=1)

    def dataset_sample_batch(self, n: int, mode: str) -> np.ndarray:
        return self.sample_factors(n)

    def dataset_batch_from_factors(self, factors: np.ndarray, mode: str) -> np.ndarray:
        return factors


def representations(factors: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Named codes ``[N, D]`` of the factors: the factors with noise, a rotation of them, one factor spread over two
    units, a representation with a collapsed unit, and noise alone."""
    f = factors.astype(np.float64)
    noisy = f + rng.normal(0, 0.3, f.shape)
    t = rng.uniform(0, 1, len(f))
    return {
        "noisy factors": noisy,
        "rotated": noisy @ np.linalg.qr(rng.normal(size=(f.shape[1], f.shape[1])))[0],
        "factor 0 in two units": np.column_stack([f[:, 0] * t, f[:, 0] * (1 - t), noisy[:, 1:]]),
        "collapsed unit": np.column_stack([np.zeros(len(f)), noisy]),
        "noise": rng.normal(size=f.shape),
    }


def compare(codes: np.ndarray, factors: np.ndarray, seed: int) -> dict[str, dict[str, float]]:
    from disent.metrics import _dci, _mig, _sap, _unsupervised

    from aekit.metrics import disentanglement as dm

    train, test = dm._train_test(len(codes), dm.TRAIN_FRACTION, seed)
    levels = dm.factor_levels(factors)
    ours = {"mig": dm.mig(codes, factors)["mig"],
            "sap (continuous)": dm.sap(codes, factors, mode="continuous")["sap"],
            "sap (discrete)": dm.sap(codes, factors, seed=seed)["sap"],
            "total correlation": dm.total_correlation(codes)}
    theirs = {"mig": _mig._compute_mig(codes.T, levels.T)["mig.discrete_score"],
              "sap (continuous)": _sap._compute_sap(codes.T, levels.T, codes.T, levels.T, True)["sap.score"],
              "sap (discrete)": _sap._compute_sap(codes[train].T, levels[train].T, codes[test].T, levels[test].T,
                                                  False)["sap.score"],
              "total correlation": _unsupervised._gaussian_total_correlation(np.cov(codes.T))}
    dci = dm.dci(codes, factors, seed=seed)
    their_dci = _dci._compute_dci(codes[train].T, levels[train].T, codes[test].T, levels[test].T)
    for key in ("disentanglement", "completeness", "informativeness"):
        ours[f"dci {key}"] = dci[f"dci_{key}"]
        theirs[f"dci {key}"] = their_dci[f"dci.{key}" if key != "informativeness" else "dci.informativeness_test"]
    return {name: {"aekit": float(ours[name]), "disent": float(theirs[name]),
                   "difference": float(ours[name] - theirs[name])} for name in ours}


def compare_factor_vae(codes_of, sizes: tuple[int, ...], n: int, seed: int) -> dict[str, float]:
    """FactorVAE with disent's own sampling against aekit's on ``n`` rows drawn from the same grid."""
    from disent.metrics import _factor_vae

    from aekit.metrics import disentanglement as dm

    np.random.seed(seed)
    theirs = _factor_vae.metric_factor_vae(FactorsAsObservations(sizes), codes_of)["factor_vae.eval_accuracy"]
    factors = np.stack([np.random.randint(0, s, n) for s in sizes], axis=1)
    ours = dm.factor_vae_score(codes_of(factors), factors, prune=0.0, seed=seed)["factor_vae"]
    return {"aekit": float(ours), "disent": float(theirs), "difference": float(ours - theirs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    stand_ins()
    rng = np.random.default_rng(args.seed)
    sizes = (8, 8, 4, 3)  # the XY-blocks grid and a shape factor: classes few enough for the trees in seconds
    factors = np.stack([rng.integers(0, s, args.examples) for s in sizes], axis=1)
    result = {"examples": args.examples, "factor_sizes": sizes, "date": time.strftime("%Y-%m-%d"), "rows": {}}
    for name, codes in representations(factors, rng).items():
        result["rows"][name] = compare(codes, factors, args.seed)
        print(name, json.dumps({k: round(v["difference"], 6) for k, v in result["rows"][name].items()}), flush=True)
    mixing = np.linalg.qr(np.random.default_rng(1).normal(size=(4, 4)))[0]
    for name, codes_of in (("factors", lambda f: np.asarray(f, np.float64) + 0.1 * np.sin(7 * np.asarray(f) + 1)),
                           ("rotated factors", lambda f: np.asarray(f, np.float64) @ mixing)):
        result["rows"].setdefault(name, {})["factor_vae"] = compare_factor_vae(codes_of, sizes, 10_000, args.seed)
        print(name, "factor_vae", result["rows"][name]["factor_vae"], flush=True)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
