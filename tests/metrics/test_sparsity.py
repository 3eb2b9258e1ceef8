"""Metrics of sparse codes, each computed by hand, and the synthetic ground-truth data they are scored on."""

import math

import pytest
import torch

from aekit.data import sparse_feature_data
from aekit.metrics import sparsity as sp


def test_l0_counts_the_non_zero_entries_of_each_code():
    z = torch.tensor([[0.0, 1.0, -2.0], [0.0, 0.0, 0.0], [3.0, 1e-9, 0.0]])
    assert sp.l0(z).tolist() == [2.0, 0.0, 2.0]


def test_fvu_is_a_ratio_of_sums_over_the_data_set_about_its_mean():
    x = torch.tensor([[1.0, 0.0], [3.0, 0.0], [2.0, 3.0]])  # mean (2, 1)
    x_hat = torch.tensor([[1.0, 1.0], [3.0, 0.0], [2.0, 1.0]])
    # sum ||x - mean||^2 = (1 + 1) + (1 + 1) + (0 + 4) = 8; sum ||x - x_hat||^2 = 1 + 0 + 4 = 5
    assert sp.fraction_of_variance_unexplained(x, x_hat) == pytest.approx(5 / 8)
    assert sp.explained_variance(x, x_hat) == pytest.approx(3 / 8)
    # batch by batch: the same figure, exactly; the mean of the per-batch ratios is another number
    acc = sp.VarianceAccumulator().add(x[:1], x_hat[:1]).add(x[1:], x_hat[1:])
    assert acc.fvu == pytest.approx(5 / 8, abs=1e-15)
    per_batch = [sp.fraction_of_variance_unexplained(x[1:], x_hat[1:])]  # the first batch of one row has no variance
    assert per_batch[0] != pytest.approx(5 / 8)
    # about zero instead of the mean, an offset would look explained: not this definition
    shifted = x + 100.0
    assert sp.fraction_of_variance_unexplained(shifted, x_hat + 100.0) == pytest.approx(5 / 8)
    assert sp.fraction_of_variance_unexplained(x, x.mean(0).expand_as(x)) == pytest.approx(1.0)  # the mean: 1


def test_fvu_refuses_what_it_cannot_define():
    with pytest.raises(ValueError, match="differ in shape"):
        sp.fraction_of_variance_unexplained(torch.zeros(3, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="no rows were added"):
        _ = sp.VarianceAccumulator().fvu
    constant = torch.ones(4, 2)
    assert sp.fraction_of_variance_unexplained(constant, constant) == 0.0
    assert sp.fraction_of_variance_unexplained(constant, constant + 1) == math.inf


def test_a_latent_is_dead_when_it_has_not_fired_in_the_last_window_tokens():
    tracker = sp.FiringTracker(latents=3, window=4)
    tracker.update(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 2.0, 0.0]]))
    assert tracker.since.tolist() == [2, 0, 3]  # latent 0 fired 2 tokens ago, latent 2 never (3 tokens tracked)
    assert tracker.dead.tolist() == [False, False, False]
    tracker.update(torch.zeros(2, 3))
    assert tracker.since.tolist() == [4, 2, 5] and tracker.dead.tolist() == [True, False, True]
    assert tracker.dead_fraction == pytest.approx(2 / 3)
    tracker.update(torch.tensor([[0.0, 0.0, 5.0]]))
    assert tracker.since.tolist() == [5, 3, 0]


def test_cross_entropy_recovered_is_the_share_of_the_ablation_gap_closed():
    assert sp.cross_entropy_recovered(ce_clean=2.0, ce_spliced=2.5, ce_ablated=4.0) == pytest.approx(0.75)
    assert sp.cross_entropy_recovered(2.0, 2.0, 4.0) == 1.0 and sp.cross_entropy_recovered(2.0, 4.0, 4.0) == 0.0
    with pytest.raises(ValueError, match="does not matter"):
        sp.cross_entropy_recovered(2.0, 2.5, 2.0)


def test_the_synthetic_features_have_their_stated_frequencies_co_occurrence_and_superposition():
    data = sparse_feature_data(40_000, features=64, dim=16, mean_active=6.0, alpha=1.0, seed=3)
    assert data.x.shape == (40_000, 16) and data.codes.shape == (40_000, 64) and data.directions.shape == (64, 16)
    assert float(data.frequencies.sum()) == pytest.approx(6.0, rel=1e-5)
    assert (data.frequencies.diff() <= 0).all()  # a power law, most frequent first
    assert data.frequencies[0] == 1.0  # 6 / H_64 > 1: always active, the rest share the remaining mass
    assert torch.allclose(data.frequencies[1] / data.frequencies[3], torch.tensor(2.0), rtol=1e-5)  # (4/2)^1
    observed = (data.codes != 0).float().mean(0)
    assert torch.allclose(observed, data.frequencies, atol=4 * math.sqrt(0.25 / 40_000) + 1e-3)
    assert float(sp.l0(data.codes).mean()) == pytest.approx(6.0, rel=0.02)
    assert torch.allclose(data.directions.norm(dim=1), torch.ones(64))
    assert torch.allclose(data.x, data.codes @ data.directions, atol=1e-5)  # no noise: exactly the features' sum
    # co-occurrence: features of one group fire together more often than chance only when correlated
    for rho, expected in ((0.0, False), (0.8, True)):
        d = sparse_feature_data(40_000, features=16, dim=8, mean_active=4.0, alpha=0.0, correlation=rho,
                                group_size=8, seed=1)
        a = (d.codes != 0).float()
        together, apart = (a[:, 0] * a[:, 1]).mean(), a[:, 0].mean() * a[:, 1].mean()
        assert bool(together > 1.3 * apart) == expected, (rho, together, apart)
    again = sparse_feature_data(100, features=64, dim=16, seed=3)
    assert torch.equal(again.x, sparse_feature_data(100, features=64, dim=16, seed=3).x)


def test_feature_recovery_matches_features_to_latents_and_scores_them():
    data = sparse_feature_data(5_000, features=20, dim=8, mean_active=3.0, seed=0)
    perfect = sp.feature_recovery(data.codes, data.codes)
    assert perfect["mcc"] == pytest.approx(1.0) and perfect["mean_f1"] == pytest.approx(1.0)
    # the same code with its latents permuted and rescaled, with extra dead latents: still perfect, and matched
    order = torch.randperm(20, generator=torch.Generator().manual_seed(0))
    learned = torch.cat([3.0 * data.codes[:, order], torch.zeros(5_000, 4)], 1)
    found = sp.feature_recovery(data.codes, learned)
    assert found["mcc"] == pytest.approx(1.0) and found["mean_f1"] == pytest.approx(1.0)
    assert torch.equal(order[found["match"]], torch.arange(20))
    # a latent that also fires where its feature does not: precision falls, recall stays
    noisy = data.codes.clone()
    extra = (noisy[:, 0] == 0) & (torch.arange(5_000) % 2 == 0)
    noisy[extra, 0] = 1.0
    scores = sp.feature_recovery(data.codes, noisy)
    active = int((data.codes[:, 0] != 0).sum())
    assert float(scores["recall"][0]) == 1.0
    assert float(scores["precision"][0]) == pytest.approx(active / (active + int(extra.sum())))
    # random codes recover nothing; fewer latents than features leave the rest unmatched
    random = torch.rand(5_000, 20, generator=torch.Generator().manual_seed(1))
    assert sp.feature_recovery(data.codes, random)["mcc"] < 0.1
    half = sp.feature_recovery(data.codes, data.codes[:, :10])
    assert half["mcc"] == pytest.approx(0.5) and (half["match"][10:] == -1).all()
