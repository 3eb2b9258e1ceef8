"""Disentanglement metrics on constructed codes whose answer is known, and disentanglement_lib's own cases."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from aekit.errors import ConfigError, DataError
from aekit.metrics import disentanglement as dm


@pytest.fixture(autouse=True)
def quiet_solvers():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's convergence warnings on degenerate codes
        yield


def identity_data(n: int = 3000, factors: int = 10, values: int = 10, seed: int = 0) -> np.ndarray:
    """disentanglement_lib's IdentityObservationsData: factors of ``values`` levels each, drawn uniformly."""
    return np.random.default_rng(seed).integers(0, values, (n, factors)).astype(np.float64)


FAST = {  # each metric with few points, as a function of (codes, factors) -> its headline values
    "beta_vae": lambda c, f: dm.beta_vae_score(c, f, n_train=1000, n_eval=500),
    "factor_vae": lambda c, f: dm.factor_vae_score(c, f, n_train=1000, n_eval=500),
    "mig": dm.mig,
    "sap": lambda c, f: dm.sap(c, f, mode="continuous"),
    "dci": lambda c, f: dm.dci(c, f, regressor="logistic"),
    "modularity": dm.modularity,
    "explicitness": dm.explicitness,
    "infomec": dm.infomec,
}


def scores(codes: np.ndarray, factors: np.ndarray, names=tuple(FAST)) -> dict[str, float]:
    out = {}
    for name in names:
        out.update({k: v for k, v in FAST[name](codes, factors).items() if isinstance(v, float)})
    return out


def test_information_from_counts_matches_the_hand_computed_values():
    a = np.array([[0], [0], [1], [1]])
    assert dm.mutual_information_matrix(a, a)[0, 0] == pytest.approx(math.log(2))
    assert dm.mutual_information_matrix(a, np.array([[0], [1], [0], [1]]))[0, 0] == pytest.approx(0.0)
    # p(x, y) = (1/2, 1/4, 0, 1/4): I = H(x) + H(y) - H(x, y) = 2 (log 2) - 1.5 log 2
    x, y = np.array([[0], [0], [1], [1]]), np.array([[0], [0], [0], [1]])
    expected = math.log(2) + (-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))) - 1.5 * math.log(2)
    assert dm.mutual_information_matrix(x, y)[0, 0] == pytest.approx(expected)
    assert dm.entropy(np.array([0, 1, 2, 3])) == pytest.approx(math.log(4))
    assert dm.discretize(np.array([[0.0], [0.5], [1.0]]), bins=2).ravel().tolist() == [0, 1, 1]


def test_the_factors_themselves_score_near_one_and_noise_near_zero():
    f = identity_data(n=2000, factors=5)
    good = scores(f.copy(), f)
    for name in ("beta_vae", "factor_vae", "mig", "sap", "modularity", "explicitness", "infom", "infoc", "infoe"):
        assert good[name] > 0.9, name
    # the fast regressor's weights leak a little onto the other units (a tree's importances do not)
    assert good["dci_completeness"] > 0.85 and good["dci_disentanglement"] > 0.85
    noise = scores(np.random.default_rng(1).normal(size=f.shape), f)
    for name in ("mig", "sap", "infom", "infoc", "infoe", "dci_disentanglement", "dci_completeness"):
        assert noise[name] < 0.1, name
    assert noise["beta_vae"] < 0.3 and noise["factor_vae"] < 0.3  # chance is 1/5
    assert abs(noise["explicitness"] - 0.5) < 0.05  # chance ROC AUC


def test_one_factor_spread_over_two_units_has_no_gap_and_low_completeness():
    f = identity_data(factors=3)
    rng = np.random.default_rng(2)
    t = rng.uniform(0, 1, len(f))  # factor 0 shared out between units 0 and 1: z0 + z1 = factor 0
    codes = np.stack([f[:, 0] * t, f[:, 0] * (1 - t), f[:, 1], f[:, 2]], axis=1)
    assert dm.mig(codes, f)["mig"] < 0.7  # only factors 1 and 2 count: (0 + 1 + 1) / 3
    assert dm.mig(codes[:, :2], f[:, :1])["mig"] < 0.1
    duplicated = dm.dci(np.hstack([f, f]), f, regressor="logistic")
    assert duplicated["dci_completeness"] < 0.8 < duplicated["dci_disentanglement"]
    assert dm.dci(f, f, regressor="logistic")["dci_completeness"] > 0.9


def test_scores_do_not_move_when_units_are_permuted_or_rescaled():
    f = identity_data(n=2000, factors=4)
    rng = np.random.default_rng(3)
    codes = f + rng.normal(0, 0.5, f.shape)
    # ranges within 20 times of each other: InfoMEC's units stay active (one 20 times narrower than the widest is not)
    changed = codes[:, [2, 0, 3, 1]] * np.array([3.0, -0.5, 7.0, 1.5]) + 4.0
    names = ("mig", "sap", "modularity", "infomec", "factor_vae", "beta_vae", "explicitness")
    a, b = scores(codes, f, names), scores(changed, f, names)
    for name in ("mig", "sap", "modularity", "infom", "infoc", "infoe"):  # up to rounding at bin edges, and the
        assert b[name] == pytest.approx(a[name], abs=1e-3), name  # solver's path, which depends on column order
    for name in ("factor_vae", "beta_vae", "explicitness"):  # drawn batches differ in order only: within noise
        assert b[name] == pytest.approx(a[name], abs=0.05), name
    # trees see only the order of a unit's values; ties between units are broken by a seeded shuffle of the columns
    gbt = [dm.dci(x[:600], f[:600, :2] % 3) for x in (codes, changed)]
    assert gbt[1]["dci_disentanglement"] == pytest.approx(gbt[0]["dci_disentanglement"], abs=0.02)


def test_disentanglement_lib_cases_identity_zero_permuted_duplicated():
    f = identity_data(n=2000)
    zero = np.zeros_like(f)
    permuted = f[:, np.random.default_rng(4).permutation(10)]
    duplicated = np.hstack([f, f])
    for codes in (f, permuted):
        s = scores(codes, f, ("beta_vae", "factor_vae", "mig", "sap", "modularity", "explicitness"))
        assert all(0.9 <= s[k] <= 1.0 for k in ("beta_vae", "factor_vae", "mig", "sap", "modularity",
                                                 "explicitness")), s
    bad = scores(zero, f, ("beta_vae", "factor_vae", "mig", "sap", "modularity"))
    assert all(0.0 <= bad[k] <= 0.2 for k in ("beta_vae", "factor_vae", "mig", "sap", "modularity")), bad
    dup = scores(duplicated, f, ("mig", "modularity", "factor_vae"))
    assert 0.0 <= dup["mig"] <= 0.1 and 0.9 <= dup["modularity"] <= 1.0 and dup["factor_vae"] >= 0.9


def test_factor_vae_counts_a_vote_under_the_units_own_index_after_pruning():
    f = identity_data(n=2000, factors=2)
    codes = np.stack([np.zeros(len(f)), f[:, 0], f[:, 1]], axis=1)  # unit 0 is pruned
    result = dm.factor_vae_score(codes, f, n_train=500, n_eval=500)
    assert result["factor_vae"] == 1.0 and result["factor_vae_units"] == 2
    assert dm.factor_vae_score(codes, f, prune=1e3)["factor_vae"] == 0.0  # every unit pruned


def test_continuous_factors_are_binned_and_the_settings_are_recorded():
    rng = np.random.default_rng(5)
    f = rng.uniform(0, 1, (2000, 2))
    assert dm.mig(f, f, bins=10) == {"mig": pytest.approx(1.0, abs=0.02), "mig_bins": 10}
    result = dm.dci(f, f, regressor="logistic", seed=3)
    assert result["dci_regressor"] == "logistic" and result["dci_seed"] == 3
    assert dm.sap(f, f)["sap_mode"] == "discrete"


def test_total_correlation_is_the_gaussian_closed_form():
    rng = np.random.default_rng(6)
    rho = 0.8
    x = rng.normal(size=(20000, 2)) @ np.linalg.cholesky(np.array([[1, rho], [rho, 1]])).T
    assert dm.total_correlation(x) == pytest.approx(-0.5 * math.log(1 - rho**2), abs=0.02)
    assert dm.total_correlation(rng.normal(size=(20000, 3))) == pytest.approx(0.0, abs=0.01)


def test_bad_inputs_are_one_line_errors_before_work():
    f = identity_data(n=10)
    with pytest.raises(DataError, match="10 codes but 9 rows of factors"):
        dm.mig(f, f[:9])
    with pytest.raises(DataError, match=r"give \[N, D\] and \[N, K\]"):
        dm.dci(f[:, 0], f)
    with pytest.raises(DataError, match="NaN"):
        dm.sap(np.full_like(f, np.nan), f)
    with pytest.raises(ConfigError, match="sap mode='both' is unknown"):
        dm.sap(f, f, mode="both")
    with pytest.raises(ConfigError, match="dci regressor='forest' is unknown"):
        dm.dci(f, f, regressor="forest")
