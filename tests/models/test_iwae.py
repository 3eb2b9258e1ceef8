"""IWAE (Burda et al. 2016): the k-sample bound's math against hand-computed and exact values."""

import dataclasses
import math

import pytest
import torch
from torch import nn

import aekit
from aekit.models.iwae import iwae_bound
from aekit.nn.bottlenecks import DiagonalGaussian
from aekit.parts import PartContext


def tiny_iwae(k):
    torch.manual_seed(0)
    return aekit.build_model("iwae", data_shape=(1, 8, 8), latent_dim=3, hidden=(16,), n_samples=k)


def test_bound_is_the_log_mean_of_the_importance_weights():
    model = tiny_iwae(4)
    x = torch.rand(2, 1, 8, 8)
    eps = torch.randn(4, 2, 3)
    out = model(x, eps=eps)
    latent = out.latent
    mu, logvar = latent.params["mu"], latent.params["logvar"]
    z = mu + torch.exp(0.5 * logvar) * eps
    log_px_z = -model.likelihood.nll(model.decode(z), x)
    log_pz = (-0.5 * (z**2 + math.log(2 * math.pi))).sum(-1)
    log_qz = (-0.5 * ((z - mu) ** 2 / logvar.exp() + logvar + math.log(2 * math.pi))).sum(-1)
    by_hand = torch.log(torch.exp(log_px_z + log_pz - log_qz).mean(0))  # small enough not to overflow here
    assert torch.allclose(iwae_bound(out), by_hand, atol=1e-4)
    loss = model.objective()(out, step=0)
    assert torch.allclose(loss.total, -by_hand.mean(), atol=1e-4)


def test_at_k_1_it_is_the_elbo():
    model = tiny_iwae(1)
    x = torch.rand(3, 1, 8, 8)
    out = model(x, eps=torch.randn(1, 3, 3))
    single_sample_elbo = out.log_px_z[0] + out.latent.log_p[0] - out.latent.log_q[0]
    assert torch.allclose(iwae_bound(out), single_sample_elbo, atol=1e-5)
    # in expectation, the closed-form-KL ELBO of the VAE
    many = model(x.repeat(4000, 1, 1, 1), eps=torch.randn(1, 12000, 3, generator=torch.Generator().manual_seed(1)))
    mc = iwae_bound(many).view(4000, 3).mean(0)
    analytic = -(many.terms["recon"].view(4000, 3).mean(0) + out.terms["kl"])  # E[log p(x|z)] - closed-form KL
    assert torch.allclose(mc, analytic, atol=0.1), (mc, analytic)


def test_bound_increases_with_k_on_average():
    model = tiny_iwae(1)
    x = torch.rand(4, 1, 8, 8)
    g = torch.Generator().manual_seed(2)
    means = []
    for k in (1, 5, 50):  # [k, B] bounds of 2000 / k repeats of the 4 inputs
        reps = 2000 // k
        eps = torch.randn(k, 4 * reps, 3, generator=g)
        out = model(x.repeat(reps, 1, 1, 1), eps=eps, n_samples=k)
        means.append(float(iwae_bound(out).mean().detach()))
    assert means[0] < means[1] < means[2], means


def linear_gaussian(sigma=0.5, **settings):
    """x = W z + b + sigma * noise, z ~ N(0, I): log p(x) = log N(x; b, W W^T + sigma^2 I) exactly."""
    g = torch.Generator().manual_seed(3)
    W, b = torch.randn(3, 2, generator=g), torch.randn(3, generator=g)
    encoder = nn.Identity()
    encoder.out_features = 3
    decoder = nn.Linear(2, 3)
    with torch.no_grad():
        decoder.weight.copy_(W)
        decoder.bias.copy_(b)
    model = aekit.build_model("iwae", data_shape=(3,), latent_dim=2, likelihood="gaussian", sigma=sigma,
                              encoder=encoder, decoder=decoder, **settings)
    # an imperfect posterior: the exact mean shifted by 0.3, the exact diagonal variances doubled
    M = torch.eye(2) + W.T @ W / sigma**2
    A = torch.linalg.solve(M, W.T) / sigma**2  # exact posterior mean = A (x - b)
    with torch.no_grad():
        proj = model.bottleneck.proj
        proj.weight.zero_()
        proj.weight[:2] = A
        proj.bias[:2] = -A @ b + 0.3
        proj.bias[2:] = torch.log(torch.diagonal(torch.linalg.inv(M)) * 2.0)
    exact = torch.distributions.MultivariateNormal(b, W @ W.T + sigma**2 * torch.eye(3))
    return model, exact


def test_bound_converges_to_the_exact_log_likelihood_of_a_linear_gaussian_model():
    model, exact = linear_gaussian()
    torch.manual_seed(4)
    x = exact.sample((8,))
    log_px = exact.log_prob(x)  # [8]
    gaps = []
    with torch.no_grad():
        for k, repeats in ((1, 500), (10, 500), (100, 100), (5000, 4)):
            out = model(x.repeat(repeats, 1), n_samples=k)
            gaps.append(float((log_px.repeat(repeats) - iwae_bound(out)).mean()))
    assert all(g > -0.01 for g in gaps), gaps  # a lower bound, up to its sampling noise
    assert gaps[0] > gaps[1] > gaps[2] > gaps[3], gaps
    assert gaps[0] > 0.2 and gaps[3] < 0.01, gaps


def test_k_below_one_is_a_clear_error():
    with pytest.raises(aekit.AekitError, match="n_samples=0"):
        aekit.build_model("iwae", data_shape=(4,), n_samples=0)


def test_the_vae_trains_on_the_iwae_bound_by_name(tmp_path):
    run = aekit.train("vae", "digits", tmp_path / "run", steps=5, objective="iwae", n_samples=3, hidden=(16,),
                      latent_dim=2, progress=False, figures=False, nll_samples=5)
    assert run.model.objective().__class__.__name__ == "IWAEBound"
    header = (tmp_path / "run" / "log.csv").read_text().splitlines()[0].split(",")
    assert "iwae_bound" in header and "nll" not in header


# The gradient estimators (Roeder et al. 2017; Tucker et al. 2019), on the linear-Gaussian model above.


class PerDraw(DiagonalGaussian):
    """The posterior with an offset on (mu, logvar) per example, a parameter at zero: row b of its gradient is
    example b's gradient for the posterior's bias, so one batch of N copies of x gives N independent draws of the
    inference network's gradient."""

    def __init__(self, draws: int) -> None:
        super().__init__(PartContext(feature_shape=(3,), latent_shape=(2,)))
        self.offset = nn.Parameter(torch.zeros(draws, 4))

    def posterior(self, h, batch=None):
        mu, logvar = (self.proj(h) + self.offset).chunk(2, dim=-1)  # [B, 2] each
        return {"mu": mu, "logvar": logvar}


def encoder_gradients(estimator, k, draws, seed=0):
    """``draws`` independent draws ``[N, 4]`` of the gradient of -L_k for q's (mu, logvar) at one input, each
    from k samples; the same samples (common random numbers) for every estimator at one seed."""
    model, _ = linear_gaussian(bottleneck=PerDraw(draws), n_samples=k, gradient_estimator=estimator)
    x = torch.tensor([[0.5, -1.0, 0.8]]).expand(draws, 3)
    eps = torch.randn(k, draws, 2, generator=torch.Generator().manual_seed(seed))
    model.objective()(model(x, eps=eps), step=0).total.backward()
    return model.bottleneck.offset.grad * draws  # the batch mean's 1/N undone


def signal_to_noise(grads):
    """|E g| / sqrt(tr Var g) over the draws ``[N, P]``."""
    return float(grads.mean(0).norm() / grads.var(0).sum().sqrt())


@pytest.mark.parametrize("estimator", ["reparam", "stl", "dreg"])
def test_every_estimator_logs_the_true_bound_and_leaves_the_decoder_gradient(estimator):
    """The same weights and samples: the loss and the logged bound are the plain estimator's, and so is the
    generative network's gradient; only the inference network's changes."""
    x, eps = torch.rand(3, 1, 8, 8), torch.randn(4, 3, 3)
    reference = tiny_iwae(4)
    plain = reference.objective()(reference(x, eps=eps), step=0)
    model = aekit.build_model("iwae", **{**dataclasses.asdict(reference.config), "gradient_estimator": estimator})
    model.load_state_dict(reference.state_dict())
    out = model(x, eps=eps)
    loss = model.objective()(out, step=0)
    assert torch.allclose(loss.total, plain.total) and torch.allclose(loss.logs["iwae_bound"], iwae_bound(out).mean())
    decoder = list(model.decoder.parameters())
    for mine, usual in zip(torch.autograd.grad(loss.total, decoder),
                           torch.autograd.grad(plain.total, list(reference.decoder.parameters())), strict=True):
        assert torch.allclose(mine, usual, atol=1e-6)


def test_stl_and_dreg_are_unbiased_where_the_theory_says():
    """The mean of each estimator's draws against the plain reparameterised one's, within four standard errors of
    their paired difference: STL and DReG agree with it for the ELBO (k = 1); at k = 20 DReG does, and STL is
    biased (Tucker et al. 2019: its dropped score term has a nonzero mean once the weights are normalised)."""
    def gap_in_standard_errors(estimator, k):
        difference = encoder_gradients(estimator, k, 20000) - encoder_gradients("reparam", k, 20000)  # [N, 4]
        return (difference.mean(0) / (difference.std(0) / math.sqrt(len(difference)))).abs()

    assert (gap_in_standard_errors("stl", 1) < 4).all() and (gap_in_standard_errors("dreg", 1) < 4).all()
    assert (gap_in_standard_errors("dreg", 20) < 4).all()
    assert (gap_in_standard_errors("stl", 20) > 20).any()


def test_dreg_has_a_lower_variance_than_the_reparameterised_gradient():
    plain, dreg = (encoder_gradients(estimator, 20, 20000) for estimator in ("reparam", "dreg"))
    assert (dreg.var(0) < 0.1 * plain.var(0)).all(), (dreg.var(0), plain.var(0))


def test_the_signal_to_noise_ratio_falls_with_k_for_reparam_and_not_for_dreg():
    """Rainforth et al. 2018: the IWAE bound's gradient for the inference network has SNR O(1/sqrt(k));
    Tucker et al. 2019: DReG's grows as sqrt(k)."""
    plain = [signal_to_noise(encoder_gradients("reparam", k, 10000)) for k in (1, 10, 100)]
    dreg = [signal_to_noise(encoder_gradients("dreg", k, 10000)) for k in (1, 10, 100)]
    assert plain[0] > 2 * plain[1] > 4 * plain[2], plain
    assert dreg[0] < dreg[1] < dreg[2], dreg


def test_an_unknown_estimator_is_a_one_line_error():
    with pytest.raises(aekit.AekitError, match=r"^gradient_estimator='score' is unknown; choose one of reparam, "
                                               r"stl, dreg$"):
        aekit.build_model("iwae", data_shape=(4,), gradient_estimator="score")
