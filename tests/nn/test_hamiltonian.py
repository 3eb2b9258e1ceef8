"""The Hamiltonian posterior: leapfrog volume preservation and reversibility, energy conservation, the tempering
schedule and the flow's Jacobian, the K = 1 bound against a hand computation on a linear-Gaussian model, and that
bound below the closed-form log p(x)."""

import math

import pytest
import torch
from torch.autograd.functional import jacobian

import aekit
from aekit.errors import ConfigError
from aekit.nn.hamiltonian import HamiltonianPosterior, leapfrog, target_gradient, tempering_schedule
from aekit.parts import PartContext


def quartic_log_target(z):
    """A non-Gaussian log density on R^2 (up to a constant): -sum z^4 / 4 - z_1 z_2."""
    return -(z.pow(4).sum(-1) / 4 + z[..., 0] * z[..., 1])


def gradient_of(log_target):
    return lambda z: target_gradient(log_target, z, create_graph=True)


def test_leapfrog_is_volume_preserving_and_reversible():
    z0, rho0 = torch.tensor([0.7, -0.4], dtype=torch.float64), torch.tensor([0.3, 1.1], dtype=torch.float64)
    step = gradient_of(quartic_log_target)

    def flow(state):  # (z, rho) [4] -> (z', rho'') [4]
        z, rho, _ = leapfrog(state[:2], state[2:], 0.3, step)
        return torch.cat([z, rho])

    jac = jacobian(flow, torch.cat([z0, rho0]))  # [4, 4]
    assert torch.linalg.det(jac).item() == pytest.approx(1.0, abs=1e-12)
    z1, rho1, _ = leapfrog(z0, rho0, 0.3, step)
    z_back, rho_back, _ = leapfrog(z1, -rho1, 0.3, step)
    assert torch.allclose(z_back, z0, atol=1e-12) and torch.allclose(-rho_back, rho0, atol=1e-12)


def test_energy_is_nearly_conserved_and_its_error_shrinks_like_the_step_squared():
    """On N(0, diag(1, 4)) the leapfrog's energy error over a trajectory is O(eps^2): below 1e-4 at eps = 0.01,
    and about 100 times larger at eps = 0.1."""
    precision = torch.tensor([1.0, 0.25], dtype=torch.float64)

    def log_target(z):
        return -0.5 * (precision * z.pow(2)).sum(-1)

    def worst_energy_error(eps):
        z, rho, g = torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([0.5, 0.8], dtype=torch.float64), None
        energy0 = -log_target(z) + rho.pow(2).sum() / 2
        worst = 0.0
        for _ in range(int(round(3.0 / eps))):
            z, rho, g = leapfrog(z, rho, eps, gradient_of(log_target), g)
            worst = max(worst, abs((-log_target(z) + rho.pow(2).sum() / 2 - energy0).item()))
        return worst

    small, large = worst_energy_error(0.01), worst_energy_error(0.1)
    assert small < 1e-4
    assert 50 < large / small < 200


def test_tempering_schedule_is_the_quadratic_one():
    beta0 = torch.tensor(0.25)
    roots = [float(r) for r in tempering_schedule(beta0, 2)]
    # 1/sqrt(beta_k) = (1 - 2) k^2/4 + 2: 2, 1.75, 1
    assert roots == pytest.approx([0.5, 1 / 1.75, 1.0])


def test_the_flow_from_z0_and_gamma0_has_unit_jacobian():
    """(z_0, gamma_0) -> (z_K, rho_K): leapfrog steps preserve volume, rho_0 = gamma_0 / sqrt(beta_0) scales it by
    beta_0^{-d/2} and the tempering steps by beta_0^{d/2}; the product is 1, so log q_K = log q_0 + log N(gamma_0)."""
    context = PartContext(latent_shape=(2,), feature_shape=(3,))
    posterior = HamiltonianPosterior(context, n_lf=3, eps_lf=0.2, beta_zero=0.4).double()

    def flow(state):
        z, rho = posterior.flow(state[:2].view(1, 1, 2), state[2:].view(1, 1, 2), quartic_log_target)
        return torch.cat([z.view(2), rho.view(2)])

    jac = jacobian(flow, torch.tensor([0.2, -0.5, 0.9, 0.1], dtype=torch.float64))
    assert torch.linalg.det(jac).item() == pytest.approx(1.0, abs=1e-10)


def linear_gaussian_hvae(a, s, m, v, **settings):
    """An hvae whose generative model is p(z) = N(0, 1), p(x|z) = N(a z, s^2) on one dimension, with
    q_0(z_0|x) = N(m, v) for any x."""
    model = aekit.build_model("hvae", data_shape=(1,), latent_dim=1, hidden=(), likelihood="gaussian", sigma=s,
                              **settings).double()
    with torch.no_grad():
        (decoder,) = model.decoder.net
        decoder.weight.fill_(a)
        decoder.bias.zero_()
        model.bottleneck.proj.weight.zero_()
        model.bottleneck.proj.bias.copy_(torch.tensor([m, math.log(v)]))
    return model


def log_normal(x, mean, var):
    return -0.5 * ((x - mean) ** 2 / var + math.log(2 * math.pi * var))


def test_k1_bound_matches_a_hand_computation():
    a, s, m, v, x, beta0, eps = 1.5, 0.8, 0.3, 0.5, 1.2, 0.36, 0.4
    model = linear_gaussian_hvae(a, s, m, v, n_lf=1, eps_lf=eps, beta_zero=beta0)
    noise = 0.7
    torch.manual_seed(5)
    gamma0 = torch.randn(1, 1, 1, dtype=torch.float64).item()  # the momentum the forward pass draws next
    torch.manual_seed(5)
    out = model(torch.tensor([[x]], dtype=torch.float64), eps=torch.tensor([[[noise]]], dtype=torch.float64))
    elbo = -(out.terms["recon"] + out.terms["kl"]).item()

    def grad(z):  # d/dz [log N(x; a z, s^2) + log N(z; 0, 1)]
        return a * (x - a * z) / s**2 - z

    z0 = m + math.sqrt(v) * noise
    rho0 = gamma0 / math.sqrt(beta0)
    rho_half = rho0 + eps / 2 * grad(z0)
    z1 = z0 + eps * rho_half
    rho1 = math.sqrt(beta0) * (rho_half + eps / 2 * grad(z1))  # K = 1: sqrt(beta_0 / beta_1), beta_1 = 1
    expected = (log_normal(x, a * z1, s**2) + log_normal(z1, 0, 1) + log_normal(rho1, 0, 1)
                - log_normal(z0, m, v) - log_normal(gamma0, 0, 1))
    assert elbo == pytest.approx(expected, abs=1e-7)  # log eps_lf and logit beta_0 are made in float32
    assert out.latent.z.item() == pytest.approx(z1, abs=1e-7)


@pytest.mark.parametrize("n_lf,beta0,eps", [(1, 0.3, 0.3), (3, 0.6, 0.2)])
def test_bound_is_below_the_closed_form_log_likelihood(n_lf, beta0, eps):
    """log p(x) = log N(x; 0, a^2 + s^2); the bound's mean over 20,000 draws stays below it (3 standard errors)
    and within 1 nat of it for a q_0 near the posterior."""
    a, s, x = 1.5, 0.8, 1.2
    post_var = 1 / (1 + a**2 / s**2)
    model = linear_gaussian_hvae(a, s, post_var * a * x / s**2 + 0.2, post_var * 1.5, n_lf=n_lf, eps_lf=eps,
                                 beta_zero=beta0)
    torch.manual_seed(0)
    with torch.no_grad():
        out = model(torch.tensor([[x]], dtype=torch.float64), n_samples=20_000)
    per_sample = (out.log_px_z + out.latent.log_p - out.latent.log_q)[:, 0]  # [S]
    log_px = log_normal(x, 0, a**2 + s**2)
    mean, stderr = per_sample.mean().item(), per_sample.std().item() / math.sqrt(len(per_sample))
    assert mean == pytest.approx(-(out.terms["recon"] + out.terms["kl"]).item(), abs=1e-9)
    assert mean < log_px + 3 * stderr
    assert mean > log_px - 1.0


def test_exact_q0_without_tempering_and_a_tiny_step_gives_log_px_at_every_draw():
    """q_0 = p(z|x), beta_0 = 1 and eps -> 0: z_K = z_0, rho_K = gamma_0, and each draw's bound is log p(x)."""
    a, s, x = 1.5, 0.8, 1.2
    post_var = 1 / (1 + a**2 / s**2)
    model = linear_gaussian_hvae(a, s, post_var * a * x / s**2, post_var, n_lf=2, eps_lf=1e-6, beta_zero=1.0)
    with torch.no_grad():
        out = model(torch.tensor([[x]], dtype=torch.float64), n_samples=50)
    per_sample = out.log_px_z + out.latent.log_p - out.latent.log_q
    assert torch.allclose(per_sample, torch.full_like(per_sample, log_normal(x, 0, a**2 + s**2)), atol=1e-5)


@pytest.mark.parametrize("settings,fragment", [
    ({"n_lf": 0}, "n_lf=0: the number of leapfrog steps K must be a whole number >= 1"),
    ({"eps_lf": 0.0}, "eps_lf=0.0: the leapfrog step size must be > 0"),
    ({"eps_lf": -0.1}, "eps_lf=-0.1: the leapfrog step size must be > 0"),
    ({"beta_zero": 0.0}, r"beta_zero=0.0: the initial inverse temperature beta_0 must lie in \(0, 1\]"),
    ({"beta_zero": 1.5}, r"beta_zero=1.5: the initial inverse temperature beta_0 must lie in \(0, 1\]"),
    ({"beta_zero": 1.0, "learn_beta_zero": True}, "a learnt beta_0 is a sigmoid and starts below 1"),
])
def test_bad_settings_are_one_clear_error(settings, fragment):
    with pytest.raises(ConfigError, match=fragment):
        aekit.build_model("hvae", data_shape=(4,), **settings)
    with pytest.raises(ConfigError, match=fragment):  # the bottleneck on its own, in any variational model
        aekit.build_model("vae", data_shape=(4,), bottleneck="hamiltonian", options={"bottleneck": settings})
