"""Disentanglement metrics: how a representation's units line up with the ground-truth factors of the data.

Every function takes ``codes [N, D]`` (one representation per example, e.g. the posterior means) and ``factors
[N, K]`` (the factors of the same examples: integer-valued columns are discrete, their distinct values the levels;
any other column is continuous and cut into ``bins`` equal-width bins where a metric needs levels), and returns a
dict of its values beside the settings it was computed with (``mig_bins``, ``dci_regressor``, ...), so that a
reported number always carries its definition. Mutual information is computed here, from counts (in nats).

Where the literature differs, the choice is a keyword, with disentanglement_lib's (Locatello et al. 2019) as the
default: codes are cut into 20 equal-width bins for MIG, modularity and InfoMEC; SAP's ``mode`` is discrete (a
linear SVM on each unit) or continuous (squared correlation); DCI's ``regressor`` is gradient-boosted trees
(``gbt``) or a fast multinomial logistic regression (``logistic``), seeded with ``seed``; FactorVAE's units are
pruned where their variance is below ``prune``. Codes are z-scored before every linear classifier, so that no
score moves with a unit's scale. The BetaVAE and FactorVAE scores draw their batches with one factor fixed from the
rows given: on data drawn uniformly from a factor grid these are the batches of the papers (see
:class:`aekit.data.factors.FactorSampler` to draw them from the grid itself).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from aekit.config import require, require_choice
from aekit.errors import DataError

Array = np.ndarray | torch.Tensor
BINS = 20  # disentanglement_lib's discretisation of codes
TRAIN_FRACTION = 2 / 3  # the share of the rows that classifiers are fit on (10,000 of 15,000 in disentanglement_lib)


# ---------------------------------------------------------------------------------------------------------
# Inputs, levels, information


def check_inputs(codes: Array, factors: Array) -> tuple[np.ndarray, np.ndarray]:
    """``codes [N, D]`` and ``factors [N, K]`` as float64 arrays, with a one-line error where they do not fit."""
    codes, factors = (np.asarray(a.detach().cpu() if torch.is_tensor(a) else a, np.float64) for a in (codes, factors))
    if codes.ndim != 2 or factors.ndim != 2:
        raise DataError(f"codes of shape {codes.shape} and factors of shape {factors.shape}; give [N, D] and [N, K]")
    if len(codes) != len(factors):
        raise DataError(f"{len(codes)} codes but {len(factors)} rows of factors; give the factors of the same examples")
    if len(codes) < 2 or codes.shape[1] < 1 or factors.shape[1] < 1:
        raise DataError(f"codes {codes.shape} and factors {factors.shape}: need at least 2 examples, 1 unit, 1 factor")
    if not (np.isfinite(codes).all() and np.isfinite(factors).all()):
        raise DataError("codes or factors hold NaN or Inf values; clean them first")
    return codes, factors


def discretize(x: np.ndarray, bins: int = BINS) -> np.ndarray:
    """``[N, D]`` -> ``[N, D]`` int64: each column cut into ``bins`` equal-width bins over its range (a constant
    column is all 0), as disentanglement_lib's ``histogram_discretize``."""
    require(bins >= 2, f"bins={bins} must be at least 2")
    low, high = x.min(0), x.max(0)
    width = np.where(high > low, (high - low) / bins, 1.0)
    return np.clip(np.floor((x - low) / width), 0, bins - 1).astype(np.int64)


def factor_levels(factors: np.ndarray, bins: int = BINS) -> np.ndarray:
    """``[N, K]`` int64 levels 0 .. m-1: an integer-valued column's distinct values in order, any other column cut
    into ``bins`` equal-width bins."""
    levels = np.empty(factors.shape, np.int64)
    for k, column in enumerate(factors.T):
        if np.array_equal(column, np.round(column)):
            levels[:, k] = np.unique(column, return_inverse=True)[1]
        else:
            levels[:, k] = discretize(column[:, None], bins)[:, 0]
    return levels


def entropy(levels: np.ndarray) -> float:
    """H(a) in nats of a column of levels, from the counts."""
    p = np.bincount(levels) / len(levels)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def mutual_information_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[D, K]``: I(a_d; b_k) in nats between the columns of two matrices of levels ``[N, D]`` and ``[N, K]``,
    from the joint counts: sum_xy p(x, y) log p(x, y) / (p(x) p(y))."""
    n = len(a)
    out = np.zeros((a.shape[1], b.shape[1]))
    for d, x in enumerate(a.T):
        for k, y in enumerate(b.T):
            m = int(y.max()) + 1
            joint = np.bincount(x * m + y).astype(np.float64) / n
            cells = np.flatnonzero(joint)
            px, py = np.bincount(x) / n, np.bincount(y) / n
            out[d, k] = float((joint[cells] * np.log(joint[cells] / (px[cells // m] * py[cells % m]))).sum())
    return np.maximum(out, 0.0)


def _train_test(n: int, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    require(0 < train_fraction < 1, f"train_fraction={train_fraction} must lie in (0, 1)")
    order = np.random.default_rng(seed).permutation(n)
    cut = min(n - 1, max(1, round(n * train_fraction)))
    return order[:cut], order[cut:]


def _zscore(x: np.ndarray) -> np.ndarray:
    std = x.std(0)
    return (x - x.mean(0)) / np.where(std > 0, std, 1.0)


def _top_two_gap(matrix: np.ndarray) -> np.ndarray:
    """``[K]``: the largest entry of each column less the second largest (0 with a single row)."""
    ordered = np.sort(matrix, axis=0)[::-1]
    return ordered[0] - ordered[1] if len(ordered) > 1 else np.zeros(matrix.shape[1])


# ---------------------------------------------------------------------------------------------------------
# Information-based metrics


def mig(codes: Array, factors: Array, bins: int = BINS) -> dict[str, Any]:
    """Mutual Information Gap (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs"):

        MIG = 1/K sum_k (I(z_(1); v_k) - I(z_(2); v_k)) / H(v_k),

    z_(1), z_(2) the two units with the most information about factor v_k; the codes cut into ``bins`` bins.
    1 when each factor lives in one unit, 0 when it is shared equally by two (or is in none)."""
    return {"mig": float(_top_two_gap(normalised_information(codes, factors, bins)).mean()), "mig_bins": bins}


def normalised_information(codes: Array, factors: Array, bins: int = BINS) -> np.ndarray:
    """``[D, K]``: I(z_d; v_k) / H(v_k), what each unit tells of each factor as a share of the factor's entropy
    (0 for a constant factor), the codes cut into ``bins`` bins: the matrix MIG reads its gaps from."""
    codes, factors = check_inputs(codes, factors)
    levels = factor_levels(factors, bins)
    info = mutual_information_matrix(discretize(codes, bins), levels)  # [D, K]
    h = np.array([entropy(v) for v in levels.T])  # [K]
    return np.where(h > 0, info / np.where(h > 0, h, 1.0), 0.0)


def modularity(codes: Array, factors: Array, bins: int = BINS) -> dict[str, Any]:
    """Modularity (Ridgeway & Mozer 2018, "Learning Deep Disentangled Embeddings with the F-Statistic Loss"): for
    each unit i with theta_i = max_k I(z_i; v_k), delta_i = sum_{k != k*} I(z_i; v_k)^2 / (theta_i^2 (K - 1));
    modularity = mean_i (1 - delta_i), a unit with no information scoring 0 (codes cut into ``bins`` bins)."""
    codes, factors = check_inputs(codes, factors)
    info = mutual_information_matrix(discretize(codes, bins), factor_levels(factors, bins))  # [D, K]
    theta = info.max(1)
    others = (info**2).sum(1) - theta**2
    k = info.shape[1]
    delta = others / np.where(theta > 0, theta**2, 1.0) / max(k - 1, 1)
    return {"modularity": float(np.where(theta > 0, 1 - delta, 0.0).mean()), "modularity_bins": bins}


def infomec(codes: Array, factors: Array, bins: int = BINS, active: float = 1 / 20) -> dict[str, Any]:
    """InfoMEC (Hsu et al. 2023, "Disentanglement via Latent Quantization"), from the normalised mutual information
    NMI_ik = I(z_i; v_k) / H(v_k) of the active units (range above ``active`` x the largest range):

        InfoM = (mean_i max_k NMI_ik / sum_k NMI_ik - 1/K) / (1 - 1/K)      (modularity, over active units)
        InfoC = (mean_k max_i NMI_ik / sum_i NMI_ik - 1/D') / (1 - 1/D')     (compactness, over factors)
        InfoE = mean_k (H(v_k) - CE_k) / H(v_k)                             (explicitness)

    CE_k the cross-entropy of an unregularised multinomial logistic regression from the z-scored codes to v_k, with
    balanced class weights, on the same rows; H(v_k) the cross-entropy of its intercept-only fit, log m_k for m_k
    levels. The codes are cut into ``bins`` bins (the authors estimate I with a k-nearest-neighbour estimator)."""
    codes, factors = check_inputs(codes, factors)
    levels = factor_levels(factors, bins)
    ranges = codes.max(0) - codes.min(0)
    on = ranges > active * ranges.max() if ranges.max() > 0 else np.zeros(len(ranges), bool)
    settings = {"infomec_bins": bins, "infomec_active_units": int(on.sum())}
    if not on.any():
        return {"infom": 0.0, "infoc": 0.0, "infoe": 0.0, **settings}
    nmi = normalised_information(codes[:, on], factors, bins)  # [D', K]
    k, d = nmi.shape[1], nmi.shape[0]
    share = lambda m: m.max(1) / np.where(m.sum(1) > 0, m.sum(1), 1)  # noqa: E731
    infom = (share(nmi).mean() - 1 / k) / (1 - 1 / k) if k > 1 else 1.0
    infoc = (share(nmi.T).mean() - 1 / d) / (1 - 1 / d) if d > 1 else 1.0
    x = _zscore(codes)
    infoe = np.mean([_predictive_information(x, v) for v in levels.T])
    return {"infom": float(infom), "infoc": float(infoc), "infoe": float(infoe), **settings}


def _predictive_information(x: np.ndarray, y: np.ndarray) -> float:
    """(log m - CE) / log m for an unregularised, class-balanced multinomial logistic regression of ``y`` (m levels)
    on ``x``, scored on the rows it was fit on."""
    from sklearn.linear_model import LogisticRegression

    m = len(np.unique(y))
    if m < 2:
        return 0.0
    model = LogisticRegression(C=np.inf, class_weight="balanced", max_iter=100).fit(x, y)
    p = model.predict_proba(x)[np.arange(len(y)), np.searchsorted(model.classes_, y)]
    return float((math.log(m) + np.log(np.clip(p, 1e-15, 1)).mean()) / math.log(m))


def total_correlation(codes: Array) -> float:
    """Total correlation KL(q(z) || prod_j q(z_j)) of a Gaussian fitted to ``codes [N, D]`` (disentanglement_lib's
    ``gaussian_total_correlation``): 1/2 (sum_j log Sigma_jj - log det Sigma), in nats, over the units that vary.
    Given the mean codes it scores the mean representation, given codes drawn from q(z|x) the sampled one (Bonheme
    & Grzes 2023 compare the two)."""
    x = np.asarray(codes.detach().cpu() if torch.is_tensor(codes) else codes, np.float64)
    require(x.ndim == 2 and len(x) >= 2, f"codes of shape {x.shape}; give [N, D] with N >= 2")
    x = x[:, x.std(0) > 0]
    if x.shape[1] < 2:
        return 0.0
    cov = np.cov(x, rowvar=False)
    return float(0.5 * (np.log(np.diag(cov)).sum() - np.linalg.slogdet(cov)[1]))


# ---------------------------------------------------------------------------------------------------------
# Predictor-based metrics


def sap(codes: Array, factors: Array, mode: str = "discrete", train_fraction: float = TRAIN_FRACTION,
        seed: int = 0) -> dict[str, Any]:
    """Separated Attribute Predictability (Kumar et al. 2018, "Variational Inference of Disentangled Latent
    Concepts from Unlabeled Observations"): S_ik, how well unit i alone predicts factor k; SAP = 1/K sum_k (S_(1)k
    - S_(2)k), the gap between the two best units. ``mode`` discrete: S_ik the test accuracy of a linear SVM
    (C = 0.01, balanced classes, as disentanglement_lib) fit on ``train_fraction`` of the rows of the z-scored unit;
    continuous: S_ik = Cov(z_i, v_k)^2 / (Var z_i Var v_k), the R^2 of a linear fit, on every row."""
    require_choice(mode, ("discrete", "continuous"), "sap mode")
    codes, factors = check_inputs(codes, factors)
    settings = {"sap_mode": mode}
    if mode == "continuous":
        z, v = codes - codes.mean(0), factors - factors.mean(0)
        cov = z.T @ v / len(z)  # [D, K]
        var = np.outer(z.var(0), v.var(0))
        score = np.where(var > 1e-12, cov**2 / np.where(var > 1e-12, var, 1), 0.0)
        return {"sap": float(_top_two_gap(score).mean()), **settings}
    from sklearn.svm import LinearSVC

    levels, x = factor_levels(factors), _zscore(codes)
    train, test = _train_test(len(x), train_fraction, seed)
    score = np.zeros((x.shape[1], levels.shape[1]))
    for i in range(x.shape[1]):
        for k in range(levels.shape[1]):
            y = levels[:, k]
            if len(np.unique(y[train])) < 2:
                continue
            svm = LinearSVC(C=0.01, class_weight="balanced").fit(x[train, i:i + 1], y[train])
            score[i, k] = np.mean(svm.predict(x[test, i:i + 1]) == y[test])
    return {"sap": float(_top_two_gap(score).mean()), "sap_train_fraction": train_fraction, **settings}


def _importance(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, regressor: str,
                seed: int) -> tuple[np.ndarray, float, float]:
    """``[D]`` importance of each unit for predicting ``y``, and the train and test accuracy of the predictor."""
    if len(np.unique(y[train])) < 2:  # nothing to learn: every unit is useless, and the constant is right
        return np.zeros(x.shape[1]), 1.0, float(np.mean(y[test] == y[train][0]))
    if regressor == "gbt":
        from sklearn.ensemble import GradientBoostingClassifier

        model = GradientBoostingClassifier(random_state=seed).fit(x[train], y[train])
        weight = np.abs(model.feature_importances_)
    else:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(tol=1e-3, max_iter=100, random_state=seed).fit(x[train], y[train])
        weight = np.abs(model.coef_).mean(0)  # [D], the z-scored units' mean |coefficient| over the classes
    accuracy = [float(np.mean(model.predict(x[rows]) == y[rows])) for rows in (train, test)]
    return weight, *accuracy


def dci(codes: Array, factors: Array, regressor: str = "gbt", train_fraction: float = TRAIN_FRACTION,
        seed: int = 0) -> dict[str, Any]:
    """Disentanglement, completeness and informativeness (Eastwood & Williams 2018, "A Framework for the
    Quantitative Evaluation of Disentangled Representations"), from the importance R_ik of unit i for factor k
    in a predictor of each factor from all units, fit on ``train_fraction`` of the rows:

        D = sum_i rho_i (1 - H_K(P_i.)),   P_ik = R_ik / sum_k R_ik,   rho_i = sum_k R_ik / sum_ik R_ik
        C = sum_k rho_k (1 - H_D(P_.k)),   P_ik = R_ik / sum_i R_ik,   rho_k = sum_i R_ik / sum_ik R_ik
        I = mean_k test accuracy of the predictor of factor k

    (entropies in base K and D; the weights rho as disentanglement_lib). ``regressor``: ``gbt``, scikit-learn's
    gradient-boosted trees (the authors' random forests' successor in disentanglement_lib), R = their feature
    importances; ``logistic``, a fast multinomial logistic regression on the z-scored codes (L2, C = 1, stopped at a
    tolerance of 1e-3), R = mean |weight|: seconds where the trees take minutes, but blind to relations no linear
    boundary separates (a unit that encodes an angle), which lowers I, and its weights leak onto other units."""
    require_choice(regressor, ("gbt", "logistic"), "dci regressor")
    codes, factors = check_inputs(codes, factors)
    levels, x = factor_levels(factors), _zscore(codes)
    train, test = _train_test(len(x), train_fraction, seed)
    fits = [_importance(x, y, train, test, regressor, seed) for y in levels.T]
    r = np.stack([weight for weight, _, _ in fits], axis=1)  # [D, K]
    settings = {"dci_regressor": regressor, "dci_seed": seed, "dci_train_fraction": train_fraction,
                "dci_informativeness_train": float(np.mean([fit[1] for fit in fits]))}
    d, k = r.shape
    total = r.sum()
    if total <= 0:
        return {"dci_disentanglement": 0.0, "dci_completeness": 0.0,
                "dci_informativeness": float(np.mean([fit[2] for fit in fits])), **settings}
    return {"dci_disentanglement": _weighted_purity(r, k), "dci_completeness": _weighted_purity(r.T, d),
            "dci_informativeness": float(np.mean([fit[2] for fit in fits])), **settings}


def _weighted_purity(r: np.ndarray, base: int) -> float:
    """sum_i rho_i (1 - H_base(r_i / sum r_i)), rho_i = sum r_i / sum r: DCI's disentanglement of the rows of
    ``r`` (its completeness for r transposed); a single column is pure."""
    mass = r.sum(1)
    p = r / np.where(mass > 0, mass, 1)[:, None]
    logs = np.log(np.where(p > 0, p, 1)) / math.log(base) if base > 1 else np.zeros_like(p)
    purity = 1 + (p * logs).sum(1)
    return float((mass / r.sum() * purity).sum())


def explicitness(codes: Array, factors: Array, train_fraction: float = TRAIN_FRACTION,
                 seed: int = 0) -> dict[str, Any]:
    """Explicitness (Ridgeway & Mozer 2018): for each factor, a logistic regression from the z-scored codes fit on
    ``train_fraction`` of the rows; the mean over its classes of the one-vs-rest ROC AUC of its predicted
    probabilities on the other rows; explicitness = the mean over the factors (disentanglement_lib's reading)."""
    from sklearn.linear_model import LogisticRegression

    codes, factors = check_inputs(codes, factors)
    levels, x = factor_levels(factors), _zscore(codes)
    train, test = _train_test(len(x), train_fraction, seed)
    scores = []
    for y in levels.T:
        classes = np.unique(y[train])
        if len(classes) < 2:
            continue
        p = LogisticRegression(random_state=seed).fit(x[train], y[train]).predict_proba(x[test])
        aucs = [_roc_auc(y[test] == c, p[:, j]) for j, c in enumerate(classes) if 0 < (y[test] == c).sum() < len(test)]
        scores.append(np.mean(aucs) if aucs else 0.5)
    return {"explicitness": float(np.mean(scores)) if scores else 0.0, "explicitness_train_fraction": train_fraction}


def _roc_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """The area under the ROC curve, the Mann-Whitney statistic of the scores' ranks (ties sharing a rank)."""
    from scipy.stats import rankdata

    ranks = rankdata(score)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# ---------------------------------------------------------------------------------------------------------
# Intervention-based scores: batches with one factor fixed


def fixed_factor_batches(levels: np.ndarray, n: int, batch_size: int,
                         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` batches of ``batch_size`` rows that share the level of one factor: the factor of each ``[n]``, drawn
    uniformly, and the rows ``[n, batch_size]``, drawn with replacement among the rows at the level of a row drawn
    at random (so a level is as likely as it is among the rows: uniform on a full grid)."""
    k = rng.integers(0, levels.shape[1], n)  # [n]
    anchor = rng.integers(0, len(levels), n)  # [n]: the row whose level is kept
    order = np.argsort(levels, axis=0, kind="stable")  # [N, K]: each factor's rows grouped by level
    ordered = np.take_along_axis(levels, order, axis=0)  # [N, K] sorted levels
    rows = np.empty((n, batch_size), np.int64)
    for factor in range(levels.shape[1]):
        votes = np.flatnonzero(k == factor)
        level = levels[anchor[votes], factor]
        start = np.searchsorted(ordered[:, factor], level, side="left")
        size = np.searchsorted(ordered[:, factor], level, side="right") - start
        pick = start[:, None] + (rng.random((len(votes), batch_size)) * size[:, None]).astype(np.int64)
        rows[votes] = order[pick, factor]
    return k, rows


def beta_vae_score(codes: Array, factors: Array, batch_size: int = 64, n_train: int = 10_000, n_eval: int = 5_000,
                   seed: int = 0) -> dict[str, Any]:
    """BetaVAE score (Higgins et al. 2017, "beta-VAE: Learning Basic Visual Concepts with a Constrained Variational
    Framework"): each point is a factor k drawn at random and the mean over ``batch_size`` pairs of examples that
    share factor k (the others free) of |z_1 - z_2|; a logistic regression (scikit-learn's default, as
    disentanglement_lib) fit on ``n_train`` points predicts k from it; the score is its accuracy on ``n_eval`` other
    points. The codes are divided by their standard deviation, so a unit's scale does not count."""
    from sklearn.linear_model import LogisticRegression

    codes, factors = check_inputs(codes, factors)
    levels, rng = factor_levels(factors), np.random.default_rng(seed)
    std = codes.std(0)
    z = codes / np.where(std > 0, std, 1.0)
    k, rows = fixed_factor_batches(levels, n_train + n_eval, 2 * batch_size, rng)
    points = np.abs(z[rows[:, :batch_size]] - z[rows[:, batch_size:]]).mean(1)  # [n, D]
    model = LogisticRegression(random_state=seed).fit(points[:n_train], k[:n_train])
    accuracy = [float(model.score(points[part], k[part])) for part in (slice(None, n_train), slice(n_train, None))]
    return {"beta_vae": accuracy[1], "beta_vae_train": accuracy[0], "beta_vae_batch_size": batch_size,
            "beta_vae_points": n_train + n_eval}


def factor_vae_score(codes: Array, factors: Array, batch_size: int = 64, n_train: int = 10_000, n_eval: int = 5_000,
                     prune: float = 0.05, seed: int = 0) -> dict[str, Any]:
    """FactorVAE score (Kim & Mnih 2018, "Disentangling by Factorising"): each vote is a factor k drawn at random
    and the unit with the least variance, relative to its variance over all rows, among ``batch_size`` examples that
    share factor k; a majority-vote classifier maps each unit to the factor it votes for most over ``n_train``
    votes; the score is its accuracy on ``n_eval`` other votes. Units whose variance over all rows is below
    ``prune`` take no part (disentanglement_lib's 0.05); the unit voted for is counted under its own index (not
    its index among the units kept, as disentanglement_lib does). 0 when every unit is pruned."""
    codes, factors = check_inputs(codes, factors)
    levels, rng = factor_levels(factors), np.random.default_rng(seed)
    variance = codes.var(0, ddof=1)
    kept = np.flatnonzero(variance >= prune)
    settings = {"factor_vae_batch_size": batch_size, "factor_vae_prune": prune, "factor_vae_units": len(kept)}
    if not len(kept):
        return {"factor_vae": 0.0, "factor_vae_train": 0.0, **settings}
    k, rows = fixed_factor_batches(levels, n_train + n_eval, batch_size, rng)
    local = codes[:, kept][rows].var(1, ddof=1) / variance[kept]  # [n, D']
    unit = kept[local.argmin(1)]  # [n]: back to the unit's own index
    votes = [np.zeros((codes.shape[1], levels.shape[1]), np.int64) for _ in range(2)]
    for part, counts in zip((slice(None, n_train), slice(n_train, None)), votes, strict=True):
        np.add.at(counts, (unit[part], k[part]), 1)
    classifier = votes[0].argmax(1)  # [D]: the factor each unit stands for
    accuracy = [float(v[np.arange(len(v)), classifier].sum() / v.sum()) for v in votes]
    return {"factor_vae": accuracy[1], "factor_vae_train": accuracy[0], **settings}


# ---------------------------------------------------------------------------------------------------------
# All of them


def disentanglement_metrics(codes: Array, factors: Array, bins: int = BINS, sap_mode: str = "discrete",
                            dci_regressor: str = "gbt", prune: float = 0.05, seed: int = 0) -> dict[str, Any]:
    """Every metric of this module on the same codes and factors, each value beside its settings."""
    codes, factors = check_inputs(codes, factors)
    return {
        **beta_vae_score(codes, factors, seed=seed), **factor_vae_score(codes, factors, prune=prune, seed=seed),
        **mig(codes, factors, bins), **sap(codes, factors, sap_mode, seed=seed),
        **dci(codes, factors, dci_regressor, seed=seed), **modularity(codes, factors, bins),
        **explicitness(codes, factors, seed=seed), **infomec(codes, factors, bins),
        "total_correlation": total_correlation(codes),
    }
