"""The MMD U-statistic and the sliced Wasserstein distance against values worked out by hand."""

import math

import pytest
import torch

from aekit.errors import ConfigError
from aekit.nn.divergences import (
    KERNEL_SCALES,
    check_kernel,
    kernel_widths,
    mmd,
    random_directions,
    sliced_wasserstein,
)

# Three points and the same three moved by (1, 1). Squared distances within each set: pairs (0, 1) and (0, 2) are 1
# apart, (1, 2) is 2 apart; across, d2(x_i, y_j) = ||x_i - x_j - (1, 1)||^2 = [[2, 5, 5], [1, 2, 4], [1, 4, 2]].
X = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
Y = X + 1.0


def test_mmd_imq_u_statistic_by_hand():
    # k(x, y) = C / (C + d2) with C = 1. Within a set, the six off-diagonal terms over n(n - 1) = 6:
    within = (1 / 2 + 1 / 2 + 1 / 3) * 2 / 6  # 4/9, the same for both sets
    across = (1 / 3 + 1 / 6 + 1 / 6 + 1 / 2 + 1 / 3 + 1 / 5 + 1 / 2 + 1 / 5 + 1 / 3) / 9  # 41/135
    assert within + within - 2 * across == pytest.approx(38 / 135)
    assert mmd(X, Y, "imq", (1.0,)).item() == pytest.approx(38 / 135, rel=1e-6)


def test_mmd_rbf_u_statistic_by_hand():
    e = math.exp
    within = (e(-1) + e(-1) + e(-2)) * 2 / 6  # k(x, y) = exp(-d2 / C), C = 1, diagonal left out
    across = (e(-2) + e(-5) + e(-5) + e(-1) + e(-2) + e(-4) + e(-1) + e(-4) + e(-2)) / 9
    assert mmd(X, Y, "rbf", (1.0,)).item() == pytest.approx(2 * within - 2 * across, rel=1e-6)


def test_mmd_sums_its_kernel_over_the_widths_of_2_d_sigma2():
    widths = kernel_widths((0.5, 1.0), dim=2, prior_variance=1.5)
    assert widths == (3.0, 6.0)  # s * 2 * d * sigma_z^2
    for kernel in ("imq", "rbf"):
        summed = mmd(X, Y, kernel, widths)
        assert summed.item() == pytest.approx((mmd(X, Y, kernel, (3.0,)) + mmd(X, Y, kernel, (6.0,))).item(), rel=1e-5)
    assert kernel_widths(KERNEL_SCALES, 8) == pytest.approx([16.0 * s for s in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)])


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_mmd_near_zero_for_independent_draws_and_positive_for_a_shift(kernel):
    g = torch.Generator().manual_seed(0)
    widths = kernel_widths(KERNEL_SCALES, 3)
    x, y = torch.randn(500, 3, generator=g), torch.randn(500, 3, generator=g)
    same, shifted = mmd(x, y, kernel, widths).item(), mmd(x, y + 1.0, kernel, widths).item()
    assert abs(same) < 0.02 and shifted > 0.5 and shifted > 25 * abs(same)


def test_sliced_wasserstein_of_1d_codes_is_the_exact_wasserstein_distance():
    x, y = torch.tensor([[0.0], [3.0], [1.0]]), torch.tensor([[2.0], [-1.0], [5.0]])
    # sorted: [0, 1, 3] against [-1, 2, 5]; differences [1, -1, -2]; W_2^2 = mean of squares = 2
    exact = ((x.sort(0).values - y.sort(0).values) ** 2).mean()
    assert exact.item() == 2.0
    directions = random_directions(7, 1, generator=torch.Generator().manual_seed(0))  # +-1 on the 1-D sphere
    assert set(directions.flatten().tolist()) <= {1.0, -1.0}
    assert sliced_wasserstein(x, y, directions).item() == pytest.approx(2.0)


def test_sliced_wasserstein_over_fixed_directions_by_hand():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    y = torch.tensor([[1.0, 1.0], [2.0, 0.0], [0.0, 0.0]])
    directions = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1 / math.sqrt(2), 1 / math.sqrt(2)]])
    # e1: [0, 0, 1] vs [0, 1, 2] -> 2/3; e2: [0, 0, 2] vs [0, 0, 1] -> 1/3; diagonal: [0, 1, 2]/r2 vs [0, 2, 2]/r2
    # -> (0 + 1/2 + 0)/3 = 1/6; the mean over the three directions: (2/3 + 1/3 + 1/6) / 3 = 7/18
    assert sliced_wasserstein(x, y, directions).item() == pytest.approx(7 / 18, rel=1e-6)
    assert sliced_wasserstein(x, x, directions).item() == 0.0


def test_random_directions_are_unit_vectors():
    theta = random_directions(50, 6, generator=torch.Generator().manual_seed(1))
    assert theta.shape == (50, 6) and torch.allclose(theta.norm(dim=1), torch.ones(50))


@pytest.mark.parametrize("kernel,scales,variance,fragment", [
    ("laplace", KERNEL_SCALES, 1.0, "kernel='laplace' is unknown; choose one of imq, rbf"),
    ("imq", (1.0, -0.5), 1.0, "kernel_scales=(1.0, -0.5)"),
    ("imq", (float("nan"),), 1.0, "kernel_scales=(nan,)"),
    ("imq", (), 1.0, "kernel_scales=()"),
    ("rbf", KERNEL_SCALES, 0.0, "prior_variance=0.0"),
    ("rbf", KERNEL_SCALES, float("inf"), "prior_variance=inf"),
])
def test_bad_kernels_are_one_line_errors(kernel, scales, variance, fragment):
    with pytest.raises(ConfigError) as error:
        check_kernel(kernel, scales, variance)
    assert fragment in str(error.value) and "\n" not in str(error.value)
