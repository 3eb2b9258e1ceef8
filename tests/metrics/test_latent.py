"""The collapse diagnostics on constructed posteriors with known answers: a unit that carries one bit, a unit
forced to collapse, a hand-computed mutual information, and means correlated where samples are not."""

from __future__ import annotations

import math

import torch

from aekit.metrics import collapsed_units, mean_sample_correlation_gap, mutual_information


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
