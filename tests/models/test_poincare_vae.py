"""poincare-vae: defaults and the curvature shorthand, the Monte Carlo KL and the embedding on the ball, the
importance-sampled log p(x) through the wrapped normal's own sampling and density against an exact value, the
bottleneck in another variational model, and a run from the command line."""

import json
import math

import torch

import aekit
from aekit import cli
from aekit.metrics import importance_sampled_log_likelihood
from aekit.nn.poincare import WrappedNormalPrior, wrapped_normal_log_prob


def test_terms_embedding_and_curvature_shorthand():
    torch.manual_seed(0)
    model = aekit.build_model("poincare-vae", data_shape=(6,), hidden=(8,), likelihood="gaussian", curvature=2.0)
    assert model.config.latent_dim == 2 and model.config.prior == "wrapped-normal"
    assert model.config.options == {"bottleneck": {"curvature": 2.0}, "prior": {"curvature": 2.0}}
    assert isinstance(model.bottleneck.prior, WrappedNormalPrior) and model.bottleneck.prior.c == 2.0
    x = torch.rand(5, 6)
    out = model(x, n_samples=3)
    params, z = out.latent.params, out.latent.z
    assert z.shape == (3, 5, 2) and (z.norm(dim=-1) < 1 / math.sqrt(2.0)).all()
    log_q = wrapped_normal_log_prob(z, params["mu"], params["sigma"], 2.0)
    log_p = wrapped_normal_log_prob(z, torch.zeros_like(z), torch.ones_like(z), 2.0)
    assert torch.allclose(out.terms["kl"], (log_q - log_p).mean(0), atol=1e-6)
    assert torch.allclose(model.embed(x), params["mu"]) and (params["mu"].norm(dim=-1) < 1 / math.sqrt(2.0)).all()
    samples = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (4, 6) and torch.isfinite(samples).all()
    (out.terms["recon"] + out.terms["kl"]).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_log_likelihood_through_the_posterior_is_exact_for_a_decoder_that_ignores_z():
    """With the decoder's weights at zero p(x|z) = p(x) for every z, so the importance-sampled estimate
    E_q[p(x|z) p(z) / q(z|x)] reaches log p(x) only if log q is the density of the draws and log p a density on the
    same measure (20,000 draws on the 3-ball: within 0.02 nats). q(z|x) is kept a little wider than the prior
    (sigma = 1.2, mu near 0): the weights' variance explodes when q is much narrower than p(z|x) = p(z)."""
    torch.manual_seed(0)
    model = aekit.build_model("poincare-vae", data_shape=(2,), hidden=(), likelihood="gaussian", latent_dim=3)
    with torch.no_grad():
        (decoder,) = model.decoder.net
        decoder.weight.zero_()
        model.bottleneck.proj.weight.mul_(0.1)
        model.bottleneck.proj.bias.copy_(torch.tensor([0.0] * 3 + [math.log(math.expm1(1.2))] * 3))
    x = torch.tensor([[0.5, -0.2], [1.0, 0.3]])
    exact = -model.likelihood.nll(model.decode(torch.zeros(1, 2, 3)), x)[0]  # [B]
    torch.manual_seed(1)
    estimate = importance_sampled_log_likelihood(model, x, n_samples=20_000)
    assert torch.allclose(estimate, exact, atol=0.02)


def test_poincare_bottleneck_in_an_importance_weighted_model():
    iwae = aekit.build_model("iwae", data_shape=(4,), latent_dim=3, hidden=(8,), bottleneck="poincare",
                             prior="wrapped-normal")
    assert torch.isfinite(iwae.objective()(iwae(torch.rand(3, 4)), step=0).total)


def test_train_poincare_vae_from_the_command_line_and_load_it(tmp_path, capsys):
    run = tmp_path / "run"
    code = cli.main(["train", "poincare-vae", "--data", "digits", "--out", str(run), "--steps", "5",
                     "curvature=0.7", "hidden=32", "nll_samples=10", "--seed", "0"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((run / "metrics.json").read_text())
    assert math.isfinite(metrics["test/nll"]) and math.isfinite(metrics["test/elbo"])
    model = aekit.load(run / "model")
    assert model.name == "poincare-vae" and model.bottleneck.c == 0.7 and model.bottleneck.prior.c == 0.7
    capsys.readouterr()
    code = cli.main(["train", "poincare-vae", "--data", "digits", "--out", str(tmp_path / "bad"), "curvature=-1"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code != 0 and len(err) == 1 and "curvature=-1" in err[0] and not (tmp_path / "bad").exists()
