import math

import pytest
import torch

from aekit.metrics import active_units, bce, knn_accuracy, linear_probe_accuracy, mse, psnr


def test_reconstruction_errors_by_hand():
    x = torch.tensor([[0.0, 1.0, 0.5, 0.5]])
    x_hat = torch.tensor([[0.5, 0.5, 0.5, 0.5]])
    assert mse(x, x_hat).item() == pytest.approx(0.125)
    assert psnr(x, x_hat).item() == pytest.approx(10 * math.log10(1 / 0.125))
    assert bce(x, x_hat).item() == pytest.approx(4 * math.log(2), rel=1e-5)


def test_active_units_counts_dimensions_whose_mean_varies():
    torch.manual_seed(0)
    mu = torch.cat([torch.randn(500, 3), 0.01 * torch.randn(500, 2)], dim=1)
    assert active_units(mu) == 3
    assert active_units(mu, threshold=1e-6) == 5


def test_probes_separate_separable_classes_and_fail_on_noise():
    torch.manual_seed(0)
    y = torch.arange(400) % 4
    z = torch.randn(400, 8) * 0.1 + torch.nn.functional.one_hot(y, 8).float()
    assert linear_probe_accuracy(z[:300], y[:300], z[300:], y[300:]) == 1.0
    assert knn_accuracy(z[:300], y[:300], z[300:], y[300:]) == 1.0
    noise = torch.randn(400, 8)
    assert linear_probe_accuracy(noise[:300], y[:300], noise[300:], y[300:]) < 0.5
