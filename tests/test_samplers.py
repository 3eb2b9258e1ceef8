"""Ex-post samplers: each fits a known 2-D mixture better than N(0, I), EM's likelihood rises at every iteration,
a saved sampler draws the same samples after loading, the command line fits once and reuses, and bad input is one
line."""

import math
import os

import pytest
import torch

import aekit
from aekit import cli
from aekit.errors import ConfigError, DataError
from aekit.metrics.samples import precision_recall
from aekit.nn.priors import fit_gaussian_mixture
from aekit.parts import PartContext, build_part
from aekit.sampling import build_sampler, save_sampler

# The latents to fit: an equal mixture of three N(mu_k, 0.5^2 I) in 2-D, far from N(0, I).
MEANS = torch.tensor([[-4.0, 0.0], [4.0, 0.0], [0.0, 5.0]])
SD = 0.5
# Each sampler's options and fitting steps, small enough to run in a few seconds.
FITS = {"gaussian-mixture": ({"components": 6}, 0), "maf": ({"hidden": [32], "lr": 3e-3}, 300),
        "iaf": ({"hidden": [32], "lr": 3e-3}, 300), "two-stage": ({"hidden": [64, 64], "lr": 3e-3}, 400)}


def mixture(n, seed):
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(3, (n,), generator=g)
    return MEANS[k] + SD * torch.randn(n, 2, generator=g)


def true_log_prob(z):
    """log (1/3) sum_k N(z; mu_k, 0.5^2 I), the density the latents are drawn from."""
    return (torch.distributions.Normal(MEANS, SD).log_prob(z.unsqueeze(1)).sum(-1) - math.log(3)).logsumexp(-1)


def fitted(name, z_train, z_val):
    options, steps = FITS[name]
    sampler = build_part("samplers", name, context=PartContext(latent_shape=(2,)), **options)
    sampler.fit(z_train, z_val, steps, torch.Generator().manual_seed(0))
    return sampler


@pytest.mark.parametrize("name", FITS)
def test_each_sampler_fits_a_mixture_better_than_the_prior(name):
    z_train, z_val, z_test = mixture(1000, 1), mixture(300, 2), mixture(500, 3)
    sampler = fitted(name, z_train, z_val)
    samples = sampler.sample(500, torch.Generator().manual_seed(4))
    prior = torch.randn(500, 2, generator=torch.Generator().manual_seed(4))
    ours, theirs = precision_recall(z_test, samples), precision_recall(z_test, prior)
    # N(0, I) reaches one mode's edge at best (precision ~0.02, recall ~0.16 here)
    assert ours["precision"] > theirs["precision"] + 0.3 and ours["recall"] > theirs["recall"] + 0.4, (ours, theirs)
    for statistic in (lambda z: z.mean(0), lambda z: z.std(0)):  # moments nearer the held-out latents' than N(0, I)'s
        target = statistic(z_test)
        assert (statistic(samples) - target).abs().max() < 0.5 * (statistic(prior) - target).abs().max()
    standard_normal = -0.5 * (z_test.pow(2) + math.log(2 * math.pi)).sum(-1)
    assert sampler.log_prob(z_test).mean() > standard_normal.mean() + 5  # held-out log-likelihood (a bound: two-stage)


def test_gaussian_mixture_matches_the_true_density_and_sklearn():
    z_train, z_test = mixture(1000, 1), mixture(500, 3)
    sampler = fitted("gaussian-mixture", z_train, z_train[:0])
    nll = -sampler.log_prob(z_test).mean().item()
    assert nll == pytest.approx(-true_log_prob(z_test).mean().item(), abs=0.15)  # 2.63 nats by the closed form
    mixture_class = pytest.importorskip("sklearn.mixture").GaussianMixture
    reference = mixture_class(6, covariance_type="full", random_state=0).fit(z_train.double().numpy())
    assert nll == pytest.approx(-reference.score(z_test.double().numpy()), abs=0.05)


def test_em_increases_the_likelihood_every_iteration():
    history: list[float] = []
    fit_gaussian_mixture(mixture(600, 5), 4, iterations=50, seed=2, history=history)
    assert len(history) >= 3
    assert all(later >= earlier - 1e-9 for earlier, later in zip(history, history[1:], strict=False))


def test_em_of_one_component_is_the_sample_mean_and_covariance():
    x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])  # mean (1, 1), covariance I (1/N)
    weights, means, scale_tril = fit_gaussian_mixture(x, 1, floor=1e-6)
    assert torch.allclose(weights, torch.ones(1, dtype=torch.float64))
    assert torch.allclose(means, torch.ones(1, 2, dtype=torch.float64))
    assert torch.allclose(scale_tril[0], math.sqrt(1 + 1e-6) * torch.eye(2, dtype=torch.float64))


def tiny_vae(name="vae", **kw):
    torch.manual_seed(0)
    return aekit.build_model(name, data_shape=(6,), latent_dim=2, hidden=(8,), likelihood="gaussian", **kw)


@pytest.mark.parametrize("name,options", [("prior", {}), ("gaussian-mixture", {"components": 2}), ("maf", {}),
                                          ("iaf", {"length": 2}), ("two-stage", {"hidden": [8]})])
def test_saved_sampler_draws_the_same_samples_after_loading(tmp_path, name, options):
    model = tiny_vae()
    data = torch.randn(300, 6, generator=torch.Generator().manual_seed(0))
    sampler = model.fit_sampler(name, data=data, steps=5, **options)
    assert model.samplers[name] is sampler and 0 <= sampler.quality["precision"] <= 1
    save_sampler(sampler, model.save_pretrained(tmp_path / "model"))
    loaded = aekit.load(tmp_path / "model")
    assert loaded.samplers[name].options == sampler.options and loaded.samplers[name].fit_stats == sampler.fit_stats
    draw = [m.sample(7, torch.Generator().manual_seed(3), sampler=name) for m in (model, loaded)]
    assert draw[0].shape == (7, 6) and torch.equal(draw[0], draw[1])


def test_prior_sampler_draws_a_vamp_prior_as_the_model_does():
    model = tiny_vae("vamp-vae", components=4)
    sampler = model.fit_sampler("prior", data=torch.rand(120, 6))
    assert type(model.bottleneck.prior).__name__ == "VampPrior" and sampler.fit_stats["train_latents"] > 0
    ours = model.sample(9, torch.Generator().manual_seed(5), sampler="prior")
    assert torch.equal(ours, model.sample(9, torch.Generator().manual_seed(5)))  # the mixture of pseudo-posteriors


def run_cli(capsys, *args):
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_fits_once_then_reuses(tmp_path, capsys):
    run = tmp_path / "run"
    aekit.train("vae", "digits", run, steps=20, latent_dim=2, hidden=[16], evaluate=False, progress=False)
    args = ("sample", run, "-n", "5", "--sampler", "gaussian-mixture", "--option", "components=3")
    code, out, err = run_cli(capsys, *args)
    assert code == 0 and "sampler gaussian-mixture: fitted and saved" in out and "fitting sampler" in err
    assert "sample quality: precision" in out
    saved = run / "model" / "samplers" / "gaussian-mixture.safetensors"
    stamp = os.stat(saved).st_mtime_ns
    code, out, err = run_cli(capsys, *args)
    assert code == 0 and "saved, reused" in out and "fitting" not in err and os.stat(saved).st_mtime_ns == stamp
    assert (run / "samples" / "samples-n5-seed0-gaussian-mixture.png").is_file()
    assert (run / "figures" / "sampler_gaussian-mixture.png").read_bytes()[:4] == b"\x89PNG"  # for the report
    assert aekit.load(run).samplers["gaussian-mixture"].options["components"] == 3
    code, _, err = run_cli(capsys, "sample", run, "--sampler", "gaussian-mixture", "--option", "components=4")
    assert code != 0 and "pass --refit" in err.splitlines()[-1]
    code, _, err = run_cli(capsys, "sample", run, "--sampler", "no-such")
    assert code != 0 and "choose one of prior, gaussian-mixture" in err.splitlines()[-1]


def test_bad_inputs_are_one_line():
    vae = tiny_vae()
    with pytest.raises(ConfigError, match="sampler='no-such' is unknown; choose one of prior, gaussian-mixture"):
        build_sampler(vae, "no-such")
    with pytest.raises(ConfigError, match="components=0"):
        build_sampler(vae, "gaussian-mixture", components=0)
    with pytest.raises(ConfigError, match="ae has no prior .* fit an ex-post sampler instead: gaussian-mixture"):
        build_sampler(tiny_vae("ae"), "prior")
    with pytest.raises(ConfigError, match="discrete .* code-prior"):
        build_sampler(tiny_vae("vq-vae", codebook_size=4, backbone="mlp"), "gaussian-mixture")
    mae = aekit.build_model("mae", data_shape=(1, 4, 4), patch_size=2, width=8, depth=1, heads=2, decoder_width=8,
                            decoder_depth=1, decoder_heads=2)
    with pytest.raises(ConfigError, match="mae .* has no latent space"):
        build_sampler(mae, "maf")
    gae = aekit.build_model("gae", data_shape=(5,), hidden=(8,), latent_dim=2)
    with pytest.raises(ConfigError, match="gae is a graph model"):
        build_sampler(gae, "gaussian-mixture")
    with pytest.raises(DataError, match="do not fit vae"):
        vae.fit_sampler("gaussian-mixture", data=torch.randn(50, 5))
    with pytest.raises(ConfigError, match="no fitted sampler 'maf'"):
        vae.sample(3, sampler="maf")


def test_a_fitted_sampler_joins_the_runs_report(tmp_path, capsys):
    run = tmp_path / "run"
    aekit.train("vae", "digits", run, steps=20, latent_dim=2, hidden=[16], progress=False, figures=False,
                nll_samples=0)
    assert "sampler_maf.png" not in (run / "report.html").read_text()
    code, _, _ = run_cli(capsys, "sample", run, "-n", "4", "--sampler", "maf", "--sampler-steps", "20")
    html = (run / "report.html").read_text()
    assert code == 0 and "sampler_maf.png" in html and "Samples decoded from the ex-post sampler maf" in html
