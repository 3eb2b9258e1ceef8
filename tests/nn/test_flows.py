"""Flow posteriors: each step's log-determinant against the autograd Jacobian, the planar and radial invertibility
constraints, the IAF's triangular Jacobian, single steps by hand, the density at the identity and by numeric
integration of the change of variables, and bad settings."""

import math
import re

import pytest
import torch
from torch.autograd.functional import jacobian

from aekit.errors import ConfigError
from aekit.nn.flows import NormalisingFlowPosterior, iaf_step, planar_step, planar_u_hat, radial_alpha_beta, radial_step
from aekit.nn.hierarchical import log_density
from aekit.parts import PartContext

FLOWS = ("planar", "radial", "iaf")


def flow_bottleneck(flow, d=3, length=3, features=5, **kw):
    """A float64 flow bottleneck on features of width ``features``, its parameters spread (x 1.5) so that every
    step bends the space well away from the identity."""
    torch.manual_seed(0)
    context = PartContext(feature_shape=(features,), latent_shape=(d,))
    bn = NormalisingFlowPosterior(context, flow=flow, length=length, hidden=(16,), context_dim=4, **kw).double()
    with torch.no_grad():
        for p in bn.flow.parameters():
            p.mul_(1.5)
    return bn


def flow_of(bn, params, b):
    """z_0 ``[D]`` -> z_K ``[D]`` for example ``b`` and its sum of log |det| (a scalar)."""
    one = {name: value[b : b + 1] for name, value in params.items()}  # [1, ...]

    def f(z0):
        z, log_det = bn.flow(z0.view(1, 1, -1), one)  # S = B = 1
        return z.view(-1), log_det.view(())

    return f


@pytest.mark.parametrize("flow", FLOWS)
def test_log_det_of_the_chain_matches_the_autograd_jacobian(flow):
    bn = flow_bottleneck(flow)
    params = bn.posterior(torch.randn(4, 5, dtype=torch.float64))
    for b in range(4):
        f = flow_of(bn, params, b)
        z0 = 1.5 * torch.randn(3, dtype=torch.float64)
        J = jacobian(lambda z, f=f: f(z)[0], z0)  # [D, D]
        sign, logabsdet = torch.linalg.slogdet(J)
        assert sign > 0  # orientation kept: every step is invertible
        assert f(z0)[1].item() == pytest.approx(logabsdet.item(), abs=1e-10)


@pytest.mark.parametrize("scale", [0.5, 3.0])
def test_planar_and_radial_steps_at_random_parameters_match_the_jacobian(scale):
    torch.manual_seed(1)
    d = 4
    for _ in range(5):
        u, w, z_r = (scale * torch.randn(d, dtype=torch.float64) for _ in range(3))
        b, alpha_raw, beta_raw = (scale * torch.randn(1, dtype=torch.float64) for _ in range(3))
        z = torch.randn(d, dtype=torch.float64)
        for step, theta in ((planar_step, (u, w, b)), (radial_step, (z_r, alpha_raw, beta_raw))):
            J = jacobian(lambda z, step=step, theta=theta: step(z, *theta)[0], z)
            assert step(z, *theta)[1].item() == pytest.approx(torch.linalg.slogdet(J)[1].item(), abs=1e-10)


def test_planar_u_hat_keeps_w_u_above_minus_one():
    """w^T u^ = m(w^T u) = -1 + softplus(w^T u) >= -1 (Rezende & Mohamed, Appendix A; -1 to float64's precision
    only for w^T u below about -37), even for u = -5 w, where the unconstrained step folds the space (checked)."""
    torch.manual_seed(2)
    w = torch.randn(1000, 3, dtype=torch.float64)
    u = torch.cat([torch.randn(500, 3, dtype=torch.float64), -5 * w[500:]])
    u_hat, wu_hat = planar_u_hat(u, w)
    assert (wu_hat >= -1).all() and (wu_hat[:500] > -1).all()
    assert torch.allclose(wu_hat.squeeze(-1), torch.nn.functional.softplus((w * u).sum(-1)) - 1)
    assert torch.allclose((w * u_hat).sum(-1, keepdim=True), wu_hat, atol=1e-12)
    z = 3 * torch.randn(1000, 3, dtype=torch.float64)
    assert torch.isfinite(planar_step(z, u, w, torch.zeros(1000, 1, dtype=torch.float64))[1]).all()
    assert (1 + (1 - torch.tanh((w * z).sum(-1)) ** 2) * (w * u).sum(-1) <= 0).any()  # unconstrained: not invertible


def test_radial_keeps_beta_above_minus_alpha():
    raw = torch.linspace(-30, 30, 61, dtype=torch.float64)
    alpha, beta = radial_alpha_beta(raw[:, None], raw[None, :])
    assert (alpha > 0).all() and (beta >= -alpha).all()
    z_r = torch.zeros(2, dtype=torch.float64)
    for z in (z_r, torch.tensor([1e-3, 0.0], dtype=torch.float64), torch.tensor([3.0, 4.0], dtype=torch.float64)):
        _, log_det = radial_step(z, z_r, torch.tensor([0.0], dtype=torch.float64), torch.tensor([-20.0],
                                                                                                    dtype=torch.float64))
        assert torch.isfinite(log_det).all()  # beta near -alpha, even at r = 0: still invertible


def test_planar_and_radial_steps_by_hand():
    # planar: w = (1, 0), u = (-2, 1), b = 0.1 at z = (0.5, 0.3); w^T u = -2, so u^ = (-1 + softplus(-2), 1)
    u_hat0 = -1 + math.log1p(math.exp(-2))
    t = math.tanh(0.5 + 0.1)
    z, log_det = planar_step(torch.tensor([0.5, 0.3]), torch.tensor([-2.0, 1.0]), torch.tensor([1.0, 0.0]),
                             torch.tensor([0.1]))
    assert z.tolist() == pytest.approx([0.5 + u_hat0 * t, 0.3 + t], abs=1e-6)
    assert log_det.item() == pytest.approx(math.log(1 + (1 - t * t) * u_hat0), abs=1e-6)
    # radial: z_r = 0, alpha = 1, beta = 0.5 at z = (3, 4): r = 5, h = 1/6, f(z) = (1 + 1/12) z,
    # det = (1 + beta h)^(D - 1) (1 + alpha beta h^2) = (13/12)(1 + 1/72)
    alpha_raw, beta_raw = math.log(math.e - 1), math.log(math.exp(1.5) - 1)
    z, log_det = radial_step(torch.tensor([3.0, 4.0]), torch.zeros(2), torch.tensor([alpha_raw]),
                             torch.tensor([beta_raw]))
    assert z.tolist() == pytest.approx([3.25, 13 / 3], abs=1e-5)
    assert log_det.item() == pytest.approx(math.log(13 / 12 * (1 + 1 / 72)), abs=1e-6)


def test_iaf_steps_are_triangular_with_log_det_the_sum_of_log_sigma():
    """Each step's Jacobian is lower triangular in its order (the first step reads z_1..z_D, the second the reverse:
    upper triangular), with sigma = sigmoid(s) on the diagonal; m and s see only the earlier coordinates, and h."""
    bn = flow_bottleneck("iaf", d=4, length=2)
    h = bn.posterior(torch.randn(1, 5, dtype=torch.float64))["h"][0]  # [C]
    z = torch.randn(4, dtype=torch.float64)
    for k, made in enumerate(bn.flow.steps):
        m, s = made(z, h)
        J = jacobian(lambda z, made=made: iaf_step(z, *made(z, h))[0], z)
        triangle = torch.tril(J) if k == 0 else torch.triu(J)
        assert torch.equal(J, triangle) and torch.allclose(J.diagonal(), torch.sigmoid(s))
        assert iaf_step(z, m, s)[1].item() == pytest.approx(torch.sigmoid(s).log().sum().item(), abs=1e-12)
        dm_dz = jacobian(lambda z, made=made: made(z, h)[0], z)
        assert torch.equal(dm_dz, torch.tril(dm_dz, -1) if k == 0 else torch.triu(dm_dz, 1))  # strictly earlier
        assert jacobian(lambda h, made=made: made(z, h)[1], h).abs().sum() > 0  # the context enters
    f = flow_of(bn, bn.posterior(h.new_zeros(1, 5)), 0)
    z_k, log_det = f(z)
    assert log_det.item() == pytest.approx(torch.linalg.slogdet(jacobian(lambda z: f(z)[0], z))[1].item(), abs=1e-10)


def at_identity(bn):
    """Every step the identity: u = w = 0 (planar: u^ = u where w = 0), beta = 0 (radial: b' = a'), sigma = 1
    (IAF: s = 40)."""
    with torch.no_grad():
        if bn.flow_name == "iaf":
            for made in bn.flow.steps:
                made.out.weight.zero_()
                made.out.bias[made.out.bias.shape[0] // 2:] = 40.0
                made.out.bias[: made.out.bias.shape[0] // 2] = 0.0
        else:
            bn.flow.proj.weight.zero_()
            theta = bn.flow.proj.bias.view(bn.length, -1)  # [K, P]
            if bn.flow_name == "planar":
                theta[:, : 2 * bn.latent_dim] = 0.0  # u, w
            else:
                theta[:, -1] = theta[:, -2]  # softplus(b') - softplus(a') = 0
    return bn


@pytest.mark.parametrize("flow", FLOWS)
def test_flows_at_the_identity_give_the_base_gaussian(flow):
    bn = at_identity(flow_bottleneck(flow))
    h, eps = torch.randn(4, 5, dtype=torch.float64), torch.randn(6, 4, 3, dtype=torch.float64)
    out = bn(h, n_samples=6, eps=eps)
    mu, logvar = out.params["mu0"], out.params["logvar0"]
    assert torch.allclose(out.z, mu + torch.exp(0.5 * logvar) * eps, atol=1e-12)
    assert torch.allclose(out.log_q, log_density(out.z, mu, logvar).sum(-1), atol=1e-10)
    assert torch.allclose(out.log_p, log_density(out.z, torch.zeros(()), torch.zeros(())).sum(-1))
    assert torch.allclose(out.terms["kl"], (out.log_q - out.log_p).mean(0))
    assert torch.allclose(out.mean, mu)


@pytest.mark.parametrize("flow", FLOWS)
def test_the_density_by_change_of_variables_integrates_to_one(flow):
    """In 2-D: a fine grid of cells over z_0 in [-8, 8]^2 pushed through the flow; the claimed density
    q_K(z_K) = q_0(z_0) / |det| at each pushed centre times the area of the pushed cell (the shoelace formula on
    its pushed corners, no derivative) sums to 1. Without the log-determinant, or with its sign flipped, the sum
    is off by far more than the tolerance (checked)."""
    bn = flow_bottleneck(flow, d=2, length=4)
    params = {name: value[:1] for name, value in bn.posterior(torch.randn(1, 5, dtype=torch.float64)).items()}
    params["mu0"], params["logvar0"] = torch.zeros(1, 2, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64)
    n, edge = 400, 8.0
    ticks = torch.linspace(-edge, edge, n + 1, dtype=torch.float64)
    corners = torch.stack(torch.meshgrid(ticks, ticks, indexing="ij"), -1)  # [n + 1, n + 1, 2]
    pushed = bn.flow(corners.view(-1, 1, 2), params)[0].view(n + 1, n + 1, 2)
    a, b, c, d = pushed[:-1, :-1], pushed[1:, :-1], pushed[1:, 1:], pushed[:-1, 1:]  # [n, n, 2] each
    p, q = c - a, d - b  # the diagonals: area = |p x q| / 2
    area = 0.5 * (p[..., 0] * q[..., 1] - p[..., 1] * q[..., 0]).abs()  # [n, n]
    centres = (corners[:-1, :-1] + corners[1:, 1:]) / 2  # [n, n, 2]
    z0 = centres.view(-1, 1, 2)  # [n^2, 1, 2]: S = n^2 samples of one example
    _, log_det = bn.flow(z0, params)
    log_q0 = log_density(z0, torch.zeros(()), torch.zeros(())).sum(-1)  # [n^2, 1]
    mass = lambda sign: ((log_q0 - sign * log_det.squeeze(-1)).exp().view(n, n) * area).sum().item()  # noqa: E731
    assert mass(1) == pytest.approx(1.0, abs=2e-3)
    assert abs(mass(0) - 1) > 0.02 and abs(mass(-1) - 1) > 0.02


def test_bad_settings_are_one_line_errors():
    context = PartContext(feature_shape=(5,), latent_shape=(3,))
    for settings, fragment in (({"length": 0}, "bottleneck.length=0"), ({"length": -2}, "bottleneck.length=-2"),
                               ({"flow": "spline"}, "bottleneck.flow='spline' is unknown"),
                               ({"flow": "iaf", "context_dim": 0}, "bottleneck.context_dim=0"),
                               ({"flow": "iaf", "hidden": (8, 0)}, "bottleneck.hidden=[8, 0]")):
        with pytest.raises(ConfigError, match=re.escape(fragment)) as error:
            NormalisingFlowPosterior(context, **settings)
        assert "\n" not in str(error.value)
