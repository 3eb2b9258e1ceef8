"""The collapse diagnostics on constructed posteriors with known answers: a unit that carries one bit, a unit
forced to collapse, a hand-computed mutual information, means correlated where samples are not, and the MMD of the
aggregate posterior to the prior (codes drawn from the prior itself, codes shifted by a known mean, a grid by hand)."""

from __future__ import annotations

import math

import pytest
import torch

from aekit.metrics import aggregate_posterior_mmd, collapsed_units, mean_sample_correlation_gap, mutual_information
from aekit.nn.divergences import KERNEL_SCALES


def _one_bit_and_collapsed(n: int = 2000):
    """Unit 0 splits the examples in two equal halves, far apart (one bit); unit 1 is the prior for every input."""
    g = torch.Generator().manual_seed(0)
    half = torch.arange(n) % 2
    mu = torch.stack([6.0 * half - 3.0, torch.zeros(n)], dim=1)
    logvar = torch.stack([torch.full((n,), math.log(0.01)), torch.zeros(n)], dim=1)
    z = mu + (0.5 * logvar).exp() * torch.randn(n, 2, generator=g)
    return mu, logvar, z


def test_one_bit_carries_log_2_nats_and_a_collapsed_unit_none():
    mu, logvar, z = _one_bit_and_collapsed()
    per_unit = mutual_information(mu, logvar, z, per_unit=True)  # Monte Carlo: sd about 0.016 a unit at N = 2000
    assert abs(per_unit[0] - math.log(2)) < 0.05 and abs(per_unit[1]) < 0.05
    assert abs(mutual_information(mu, logvar, z) - math.log(2)) < 0.05
    assert mutual_information(mu, logvar, z, chunk=7) == mutual_information(mu, logvar, z)  # chunks change nothing


def test_mutual_information_by_hand():
    mu, logvar = torch.tensor([[0.0], [1.0], [3.0]]), torch.tensor([[0.0], [math.log(4.0)], [math.log(0.25)]])
    z = torch.tensor([[0.5], [-1.0], [2.5]])

    def log_normal(x, m, v):
        return -0.5 * ((x - m) ** 2 / v + math.log(2 * math.pi * v))

    var = [1.0, 4.0, 0.25]
    neg_entropy = sum(-0.5 * math.log(2 * math.pi * math.e * v) for v in var) / 3
    log_qz = [math.log(sum(math.exp(log_normal(float(z[i]), float(mu[j]), var[j])) for j in range(3)) / 3)
              for i in range(3)]
    assert abs(float(mutual_information(mu, logvar, z)) - (neg_entropy - sum(log_qz) / 3)) < 1e-6


def test_collapsed_units_are_those_whose_mean_kl_is_below_the_threshold():
    kl = torch.tensor([[0.5, 0.001, 0.04], [0.7, 0.003, 0.0]])
    assert collapsed_units(kl).tolist() == [False, True, False]
    assert collapsed_units(kl, threshold=0.05).tolist() == [False, True, True]


def test_means_correlated_where_samples_are_not_give_a_gap_near_1():
    g = torch.Generator().manual_seed(1)
    n = 4000
    signal = torch.randn(n, generator=g)
    # units 0 and 1: the same tiny signal in the means (passive units), prior noise in the samples; unit 2 active
    mu = torch.stack([1e-3 * signal, -2e-3 * signal, torch.randn(n, generator=g)], dim=1)
    z = mu + torch.cat([torch.randn(n, 2, generator=g), 0.01 * torch.randn(n, 1, generator=g)], dim=1)
    gap = mean_sample_correlation_gap(mu, z)
    assert gap[0] > 0.9 and gap[1] > 0.9 and abs(gap[2]) < 0.1
    constant = torch.zeros(n, 3)  # units that do not vary correlate with nothing
    assert mean_sample_correlation_gap(constant, z).abs().max() < 0.1


def test_codes_drawn_from_the_prior_itself_give_an_mmd_near_0_and_shifted_codes_the_closed_form():
    g = torch.Generator().manual_seed(2)
    n, d = 2000, 2
    z, draws = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    assert abs(float(aggregate_posterior_mmd(z, draws))) < 0.005  # sd about 0.001 over seeds at n = 2000
    # N(mu, I) against N(0, I), Gaussian kernel exp(-||x - y||^2 / C): x - x' ~ N(0, 2I), x - y ~ N(mu, 2I), and
    # E exp(-||w||^2 / C) = (1 + 4/C)^(-d/2) exp(-||mu||^2 / (C + 4)), so MMD^2 = sum_C 2 (1 + 4/C)^(-d/2) (1 -
    # exp(-||mu||^2 / (C + 4))) over the widths C = s 2d
    mu = torch.tensor([1.0, -0.5])
    closed = sum(2 * (1 + 4 / (s * 2 * d)) ** (-d / 2) * (1 - math.exp(-1.25 / (s * 2 * d + 4))) for s in KERNEL_SCALES)
    estimate = float(aggregate_posterior_mmd(z + mu, draws, kernel="rbf"))
    assert abs(estimate - closed) < 0.15  # closed = 0.659; sd about 0.04 over seeds at n = 2000


def test_aggregate_mmd_of_a_grid_of_latents_by_hand():
    z = torch.tensor([[[0.0], [1.0]], [[2.0], [0.0]], [[1.0], [1.0]]])  # [N=3, L=2, D=1]: codes (0,1), (2,0), (1,1)
    draws = torch.tensor([[[0.0], [0.0]], [[1.0], [-1.0]]])  # [M=2, 2, 1]: (0,0), (1,-1)
    x, y = [(0, 1), (2, 0), (1, 1)], [(0, 0), (1, -1)]

    def k(a, b):  # IMQ summed over C = s * 2d, d = 2 flattened coordinates
        sq = sum((ai - bi) ** 2 for ai, bi in zip(a, b, strict=True))
        return sum(4 * s / (4 * s + sq) for s in KERNEL_SCALES)

    within_x = sum(k(a, b) for i, a in enumerate(x) for j, b in enumerate(x) if i != j) / 6
    within_y = 2 * k(y[0], y[1]) / 2
    across = sum(k(a, b) for a in x for b in y) / 6
    assert float(aggregate_posterior_mmd(z, draws)) == pytest.approx(within_x + within_y - 2 * across, abs=1e-12)
