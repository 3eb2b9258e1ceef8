"""The mean correlation coefficient: 1 for the sources themselves and for any permutation, sign flip and scaling
of them, near 0 for independent noise, the Hungarian matching against a brute force over permutations."""

import itertools

import numpy as np
import pytest

from aekit.errors import DataError
from aekit.metrics.identifiability import correlation_matrix, mcc


def sources(n=5000, k=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, k))


def test_identity_permutation_and_sign_flips_score_one():
    s = sources()
    assert mcc(s, s)["mcc"] == pytest.approx(1.0)
    z = -3.0 * s[:, [2, 0, 3, 1]] + 7.0
    result = mcc(s, z)
    assert result["mcc"] == pytest.approx(1.0) and result["mcc_units"] == [1, 3, 0, 2]


def test_independent_noise_scores_near_zero():
    """|corr| of independent samples of 5,000 is about sqrt(2 / (pi n)) = 0.011; the best matching stays < 0.05."""
    assert mcc(sources(seed=0), sources(seed=1))["mcc"] < 0.05


def test_the_matching_is_the_best_over_permutations():
    rng = np.random.default_rng(3)
    s = sources(n=400, k=3)
    z = s @ rng.standard_normal((3, 4)) + 0.5 * rng.standard_normal((400, 4))  # mixed, with an extra unit
    corr = correlation_matrix(s, z)
    best = max(np.mean([corr[i, p[i]] for i in range(3)]) for p in itertools.permutations(range(4), 3))
    assert mcc(s, z)["mcc"] == pytest.approx(best)


def test_a_constant_unit_and_too_few_units():
    s = sources(n=100, k=2)
    z = np.c_[s[:, 0], np.zeros(100)]
    assert mcc(s, z)["mcc_per_source"] == pytest.approx([1.0, 0.0])
    with pytest.raises(DataError, match="at least 2 units"):
        mcc(s, s[:, :1])
