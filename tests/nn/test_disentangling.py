"""The disentangling parts by hand: beta-TCVAE's minibatch estimators of log q(z) against a brute-force sum and a
Monte Carlo reference, FactorVAE's permutation and DIP-VAE's covariance penalties."""

import math

import pytest
import torch
from torch.distributions import Normal

from aekit.errors import ConfigError
from aekit.nn.disentangling import (
    dip_covariance,
    dip_penalties,
    log_importance_weights,
    permute_dims,
    tc_decomposition,
)


def test_stratified_and_weighted_sampling_weights_by_hand():
    w = log_importance_weights(4, 10, "mss", torch.float64).exp()  # N = 10, M = 4
    other, strat = 1 / 3, (10 - 4 + 1) / (10 * 3)  # 1/(M-1), (N-M+1)/(N(M-1)) = 7/30
    expected = torch.tensor([[0.1, strat, other, other],
                             [other, 0.1, strat, other],
                             [other, other, 0.1, strat],
                             [strat, other, other, 0.1]], dtype=torch.float64)
    assert torch.allclose(w, expected)
    assert torch.allclose(w.sum(1), torch.ones(4, dtype=torch.float64))  # each row: a distribution over the batch
    assert torch.allclose(log_importance_weights(4, 10, "mws"), torch.full((4, 4), -math.log(40)))  # 1/(N M)
    assert log_importance_weights(1, 10).item() == 0.0
    with pytest.raises(ConfigError, match="estimator='iwae'"):
        log_importance_weights(4, 10, "iwae")


def brute_force_log_q(z, mu, std, w):
    """log sum_j w_ij q(z_i | x_j) and sum_k log sum_j w_ij q(z_ik | x_j), one example and one term at a time."""
    B, d = z.shape
    joint, marginals = torch.zeros(B, dtype=torch.float64), torch.zeros(B, dtype=torch.float64)
    for i in range(B):
        joint[i] = math.log(sum(w[i, j] * math.prod(Normal(mu[j, k], std[j, k]).log_prob(z[i, k]).exp()
                                                     for k in range(d)) for j in range(B)))
        marginals[i] = sum(math.log(sum(w[i, j] * Normal(mu[j, k], std[j, k]).log_prob(z[i, k]).exp()
                                        for j in range(B))) for k in range(d))
    return joint, marginals


@pytest.mark.parametrize("estimator", ["mss", "mws"])
def test_decomposition_against_a_brute_force_sum_on_a_tiny_batch(estimator):
    g = torch.Generator().manual_seed(0)
    B, d, N = 4, 3, 10
    mu, logvar = torch.randn(B, d, generator=g, dtype=torch.float64), torch.randn(B, d, generator=g).double() * 0.3
    z = mu + torch.exp(0.5 * logvar) * torch.randn(B, d, generator=g, dtype=torch.float64)
    log_p = Normal(0.0, 1.0).log_prob(z).sum(1)  # [B]
    parts = tc_decomposition(z[None], mu, logvar, log_p[None], N, estimator)
    w = log_importance_weights(B, N, estimator, torch.float64).exp()
    log_qz, log_prod = brute_force_log_q(z, mu, torch.exp(0.5 * logvar), w)
    log_qz_x = Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(1)
    assert torch.allclose(parts["mi"][0], log_qz_x - log_qz)
    assert torch.allclose(parts["tc"][0], log_qz - log_prod)
    assert torch.allclose(parts["dim_kl"][0], log_prod - log_p)
    assert torch.allclose(sum(parts.values())[0], log_qz_x - log_p)  # the sampled KL, whatever the estimates


def test_stratified_estimate_of_q_z_is_unbiased_over_random_batches():
    """Monte Carlo reference: example 0's code z_0 in 20,000 batches of M = 8 drawn without replacement from N = 40;
    the mean of sum_j w_0j q(z_0 | x_j) is q(z_0) = 1/N sum_n q(z_0 | x_n), the whole data set's mixture."""
    g = torch.Generator().manual_seed(1)
    N, M, R = 40, 8, 20_000
    mu, std = torch.randn(N, generator=g, dtype=torch.float64), 0.5 + torch.rand(N, generator=g, dtype=torch.float64)
    z0 = mu[0] + std[0] * 0.3
    q = Normal(mu, std).log_prob(z0).exp()  # q(z_0 | x_n) [N]
    exact = q.mean()
    others = 1 + torch.rand(R, N - 1, generator=g).argsort(1)[:, : M - 1]  # [R, M - 1]: the batch beside example 0
    batches = torch.cat([torch.zeros(R, 1, dtype=torch.long), others], 1)  # [R, M], example 0 first
    w = log_importance_weights(M, N, "mss", torch.float64).exp()  # [M, M]
    for row in range(M):  # example 0 at each place of the batch in turn
        order = [*range(1, row + 1), 0, *range(row + 1, M)]
        estimates = (w[row] * q[batches[:, order]]).sum(1)  # [R]
        assert abs(estimates.mean() / exact - 1) < 0.01, (row, float(estimates.mean()), float(exact))
    weighted = q[batches].sum(1).mean() / (N * M)  # minibatch-weighted, 1/(N M) each: about q(z_0) / N here
    assert abs(weighted * N / exact - 1) < 0.05


def batch_decomposition(mu, std, g):
    z = mu + std * torch.randn(mu.shape, generator=g, dtype=torch.float64)
    logvar = torch.full_like(mu, 2 * math.log(std))
    return tc_decomposition(z[None], mu, logvar, Normal(0.0, 1.0).log_prob(z).sum(1)[None], len(mu), "mss")


def test_total_correlation_is_near_zero_for_independent_coordinates_and_not_for_dependent_ones():
    g = torch.Generator().manual_seed(2)
    mu = torch.randn(1024, 2, generator=g, dtype=torch.float64)  # independent coordinates across the batch
    independent = batch_decomposition(mu, 0.3, g)["tc"].mean()
    dependent = batch_decomposition(torch.stack([mu[:, 0], mu[:, 0]], 1), 0.3, g)["tc"].mean()  # z_2 follows z_1
    assert abs(independent) < 0.05 and dependent > 0.5, (float(independent), float(dependent))
    same = batch_decomposition(torch.zeros(16, 3, dtype=torch.float64), 0.7, g)  # q(z) = q(z|x) = N(0, 0.49 I)
    assert torch.allclose(same["tc"], torch.zeros(1, 16, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(same["mi"], torch.zeros(1, 16, dtype=torch.float64), atol=1e-12)


def test_permutation_keeps_each_marginal_and_breaks_the_dependence():
    z = torch.tensor([[0.0, 0.0], [1.0, 10.0], [2.0, 20.0]])  # z_2 = 10 z_1
    permutation = torch.tensor([[0, 2], [1, 0], [2, 1]])  # column 1 unchanged, column 2 shifted
    shuffled = permute_dims(z, permutation)
    assert torch.equal(shuffled, torch.tensor([[0.0, 20.0], [1.0, 0.0], [2.0, 10.0]]))
    torch.manual_seed(0)
    z = torch.randn(500, 1).repeat(1, 3) + torch.arange(3.0)  # three copies of one variable
    shuffled = permute_dims(z)
    assert torch.equal(shuffled.sort(0).values, z.sort(0).values)  # every coordinate's values kept
    assert torch.corrcoef(z.T)[0, 1] > 0.99 and torch.corrcoef(shuffled.T)[0, 1].abs() < 0.15


def test_dip_penalties_by_hand():
    mu = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, -2.0]])  # mean 0; Cov = [[2/3, 2/3], [2/3, 8/3]]
    logvar = torch.log(torch.tensor([[0.5, 1.0]] * 3))  # E[Sigma] = diag(0.5, 1)
    one = dip_penalties(dip_covariance(mu, None, "I"))
    assert torch.allclose(one["dip_od"], torch.tensor(8 / 9)) and torch.allclose(one["dip_d"], torch.tensor(26 / 9))
    two = dip_penalties(dip_covariance(mu, logvar, "II"))  # Cov = [[7/6, 2/3], [2/3, 11/3]]
    assert torch.allclose(two["dip_od"], torch.tensor(8 / 9))
    assert torch.allclose(two["dip_d"], torch.tensor(1 / 36 + 64 / 9))
