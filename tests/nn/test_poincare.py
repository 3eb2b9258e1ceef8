"""The Poincaré ball and its wrapped normal: exp and log maps inverse to each other, Möbius addition's identities,
samples inside the ball, the density integrating to one on the disk (quadrature in geodesic polar coordinates) and
matching a histogram of draws, and its Euclidean limit as c -> 0; the gyroplane layer against the distance to a
hyperplane by hand, its zero set and its Euclidean limit."""

import math

import pytest
import torch

import aekit
from aekit.errors import ConfigError
from aekit.nn.poincare import (
    Gyroplane,
    conformal_factor,
    distance,
    expmap,
    expmap0,
    logmap,
    logmap0,
    mobius_add,
    wrapped_normal_log_prob,
    wrapped_normal_sample,
)

F64 = torch.float64


@pytest.mark.parametrize("c", [0.3, 1.0, 2.5])
def test_exp_and_log_maps_are_inverse(c):
    g = torch.Generator().manual_seed(0)
    x = expmap0(torch.randn(50, 3, generator=g, dtype=F64) / math.sqrt(c), c)  # points on the ball
    u = torch.randn(50, 3, generator=g, dtype=F64) / conformal_factor(x, c)  # at x, of Riemannian length ~ 1
    assert torch.allclose(logmap(x, expmap(x, u, c), c), u, atol=1e-9)
    y = expmap0(torch.randn(50, 3, generator=g, dtype=F64), c)
    assert torch.allclose(expmap(x, logmap(x, y, c), c), y, atol=1e-9)
    assert torch.allclose(logmap0(expmap0(u, c), c), u, atol=1e-9)
    zero = torch.zeros_like(x)
    assert torch.allclose(expmap(zero, u, c), expmap0(u, c), atol=1e-12)  # exp_0 is exp_x at x = 0
    # the Riemannian length of log_x(y) is the distance: lambda_x ||log_x(y)|| = d_c(x, y)
    assert torch.allclose(conformal_factor(x, c) * logmap(x, y, c).norm(dim=-1, keepdim=True), distance(x, y, c))


@pytest.mark.parametrize("c", [0.5, 1.0])
def test_mobius_addition_identities(c):
    g = torch.Generator().manual_seed(1)
    x = expmap0(torch.randn(20, 4, generator=g, dtype=F64), c)
    y = expmap0(torch.randn(20, 4, generator=g, dtype=F64), c)
    zero = torch.zeros_like(x)
    assert torch.allclose(mobius_add(zero, x, c), x) and torch.allclose(mobius_add(x, zero, c), x)
    assert torch.allclose(mobius_add(-x, x, c), zero, atol=1e-12)
    # the left cancellation law, -x (+) (x (+) y) = y
    assert torch.allclose(mobius_add(-x, mobius_add(x, y, c), c), y, atol=1e-10)
    # distance is invariant under the left Möbius translation z -> a (+) z
    assert torch.allclose(distance(mobius_add(y, x, c), mobius_add(y, zero, c), c), distance(x, zero, c), atol=1e-9)


@pytest.mark.parametrize("c", [0.5, 1.0, 4.0])
def test_samples_stay_inside_the_ball(c):
    g = torch.Generator().manual_seed(2)
    mu = expmap0(2.0 * torch.randn(100, 5, generator=g), c)  # float32, some near the boundary
    z = wrapped_normal_sample(mu, torch.full_like(mu, 3.0), c, torch.randn(20, 100, 5, generator=g))
    assert torch.isfinite(z).all() and (z.norm(dim=-1) < 1 / math.sqrt(c)).all()
    assert torch.isfinite(wrapped_normal_log_prob(z, mu, torch.full_like(mu, 3.0), c)).all()


MU, SIGMA = torch.tensor([0.3, -0.2], dtype=F64), torch.tensor([0.5, 0.7], dtype=F64)


def polar_grid(c, n_t=1200, n_theta=360, t_max=8.0):
    """Points of the disk in geodesic polar coordinates about the origin, z = tanh(sqrt(c) t / 2) / sqrt(c)
    (cos theta, sin theta), and their Riemannian areas sinh(sqrt(c) t) / sqrt(c) dt dtheta (midpoint rule)."""
    t = (torch.arange(n_t, dtype=F64) + 0.5) * t_max / n_t
    theta = (torch.arange(n_theta, dtype=F64) + 0.5) * 2 * math.pi / n_theta
    radius = torch.tanh(math.sqrt(c) * t / 2) / math.sqrt(c)
    z = torch.stack([radius[:, None] * torch.cos(theta), radius[:, None] * torch.sin(theta)], dim=-1)
    area = (torch.sinh(math.sqrt(c) * t) / math.sqrt(c))[:, None].expand(n_t, n_theta) * (t_max / n_t) * (
        2 * math.pi / n_theta)
    return z, area


@pytest.mark.parametrize("c", [0.5, 1.0, 2.0])
def test_wrapped_normal_density_integrates_to_one_on_the_disk(c):
    z, area = polar_grid(c)
    mu = expmap0(MU, c)
    density = wrapped_normal_log_prob(z, mu, SIGMA, c).exp()  # [n_t, n_theta]
    assert (density * area).sum().item() == pytest.approx(1.0, abs=2e-4)


def test_wrapped_normal_density_matches_a_histogram_of_draws():
    """The share of 200,000 draws in each cell of a 4 x 4 grid over [-0.8, 0.8]^2 against the density's integral
    over the cell (lambda_z^2 dz, midpoint rule on 50 x 50 points a cell), within 4 standard errors."""
    c, n = 1.0, 200_000
    mu = expmap0(MU, c)
    z = wrapped_normal_sample(mu, SIGMA, c, torch.randn(n, 2, generator=torch.Generator().manual_seed(3), dtype=F64))
    edges = torch.linspace(-0.8, 0.8, 5, dtype=F64)
    fine = 50
    for i in range(4):
        for j in range(4):
            lo_x, hi_x, lo_y, hi_y = edges[i], edges[i + 1], edges[j], edges[j + 1]
            inside = ((z[:, 0] >= lo_x) & (z[:, 0] < hi_x) & (z[:, 1] >= lo_y) & (z[:, 1] < hi_y)).double().mean()
            xs = lo_x + (torch.arange(fine, dtype=F64) + 0.5) * (hi_x - lo_x) / fine
            ys = lo_y + (torch.arange(fine, dtype=F64) + 0.5) * (hi_y - lo_y) / fine
            points = torch.stack(torch.meshgrid(xs, ys, indexing="ij"), dim=-1)  # [fine, fine, 2]
            volume = conformal_factor(points, c).squeeze(-1).pow(2) * ((hi_x - lo_x) * (hi_y - lo_y) / fine**2)
            mass = (wrapped_normal_log_prob(points, mu, SIGMA, c).exp() * volume).sum()
            stderr = math.sqrt(max(mass.item() * (1 - mass.item()), 1e-6) / n)
            assert abs(inside.item() - mass.item()) < 4 * stderr + 1e-4, (i, j, inside.item(), mass.item())


def test_small_curvature_tends_to_the_euclidean_gaussian():
    """As c -> 0, lambda -> 2 and z -> mu + v / 2: the density times lambda_z^d is N(z; mu, sigma^2 / 4)."""
    c = 1e-8
    mu = torch.tensor([0.4, -1.0, 0.2], dtype=F64)
    sigma = torch.tensor([0.5, 1.0, 2.0], dtype=F64)
    z = mu + torch.randn(10, 3, generator=torch.Generator().manual_seed(4), dtype=F64) * sigma / 2
    wrapped = wrapped_normal_log_prob(z, mu, sigma, c) + 3 * torch.log(conformal_factor(z, c)).squeeze(-1)
    euclidean = torch.distributions.Normal(mu, sigma / 2).log_prob(z).sum(-1)
    assert torch.allclose(wrapped, euclidean, atol=1e-5)
    eps = torch.randn(10, 3, dtype=F64)
    assert torch.allclose(wrapped_normal_sample(mu, sigma, c, eps), mu + sigma * eps / 2, atol=1e-6)


def gyroplane(offset, normal, c):
    layer = Gyroplane(offset.shape[-1], offset.shape[0], c).double()
    with torch.no_grad():
        layer.offset.copy_(offset)
        layer.normal.copy_(normal)
    return layer


def test_gyroplane_is_the_scaled_geodesic_distance_to_a_hyperplane():
    """Through the origin with normal e_1 (c = 1): the geodesic from (r, 0, 0) to the plane z_1 = 0 runs along the
    axis to the origin, of length 2 artanh(r), and lambda_0 ||e_1|| = 2, so f = 4 artanh(r), signed."""
    layer = gyroplane(torch.zeros(1, 3, dtype=F64), torch.tensor([[1.0, 0.0, 0.0]], dtype=F64), 1.0)
    r = torch.tensor([0.1, 0.5, -0.9], dtype=F64)
    z = torch.stack([r, torch.zeros_like(r), torch.zeros_like(r)], dim=-1)
    assert torch.allclose(layer(z)[:, 0], 4 * torch.atanh(r))


def test_gyroplane_vanishes_on_its_hyperplane_and_is_affine_as_c_vanishes():
    g = torch.Generator().manual_seed(5)
    offset, normal = 0.3 * torch.randn(4, 3, generator=g, dtype=F64), torch.randn(4, 3, generator=g, dtype=F64)
    c = 0.7
    layer = gyroplane(offset, normal, c)
    p = expmap0(offset, c)
    a = normal * (1 - c * p.pow(2).sum(-1, keepdim=True))  # the normal moved to p
    v = torch.randn(4, 3, generator=g, dtype=F64)
    v = v - (v * a).sum(-1, keepdim=True) / a.pow(2).sum(-1, keepdim=True) * a  # orthogonal to a_k
    on_plane = expmap(p, 0.3 * v, c)  # [4, 3]: point k on hyperplane k
    assert torch.allclose(torch.diagonal(layer(on_plane)), torch.zeros(4, dtype=F64), atol=1e-10)
    tiny = 1e-9
    flat = gyroplane(offset, normal, tiny)
    z = 0.5 * torch.randn(6, 3, generator=g, dtype=F64)
    affine = 4 * ((z[:, None, :] - offset) * normal).sum(-1)  # 4 <n_k, z - p_k>, p_k -> p'_k as c -> 0
    assert torch.allclose(flat(z), affine, atol=1e-6)


def test_gyroplane_backbone_in_a_poincare_vae():
    model = aekit.build_model("poincare-vae", data_shape=(6,), hidden=(8,), latent_dim=3, curvature=0.5,
                              backbone="gyroplane-mlp")
    assert model.config.options["backbone"] == {"curvature": 0.5} and model.decoder[0].c == 0.5
    out = model(torch.rand(4, 6))
    (out.terms["recon"] + out.terms["kl"]).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("settings,fragment", [
    ({"backbone": "gyroplane-mlp", "hidden": ()}, "the gyroplane layer is the decoder's first hidden layer"),
    ({"backbone": "gyroplane-mlp", "condition_dim": 2}, "backbone=gyroplane-mlp reads one point"),
    ({"curvature": 0.0}, "curvature=0.0: the Poincaré ball's curvature -c needs c > 0"),
    ({"curvature": -1.0}, "curvature=-1.0: the Poincaré ball's curvature -c needs c > 0"),
    ({"curvature": 1.0, "options": {"prior": {"curvature": 2.0}}}, "needs prior=wrapped-normal with "
                                                                    r"prior.curvature=1.0"),
    ({"prior": "standard-normal"}, "needs prior=wrapped-normal"),
])
def test_bad_settings_are_one_clear_error(settings, fragment):
    with pytest.raises(ConfigError, match=fragment):
        aekit.build_model("poincare-vae", data_shape=(4,), **settings)
