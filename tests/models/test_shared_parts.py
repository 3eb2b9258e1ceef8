"""The shared parts hold for what the next families need: spatial latents, frozen parts, a prior by name with a
Monte Carlo KL, the bottleneck's log densities, log columns that follow the keys."""

import math

import pytest
import torch
from torch import nn

import aekit
from aekit.metrics import importance_sampled_log_likelihood
from aekit.models.iwae import iwae_bound
from aekit.nn.bottlenecks import BottleneckOutput, DiagonalGaussian
from aekit.nn.priors import Prior
from aekit.parts import PartContext, get_part, list_parts


def ctx(features: int, latent_dim: int) -> PartContext:
    return PartContext(feature_shape=(features,), latent_shape=(latent_dim,))


class SpatialGaussian(DiagonalGaussian):
    """q(z|x) over a [L, D] grid of latents from the features [B, L * F] of a table, projected per position."""

    def __init__(self, positions: int, features: int, latent_dim: int) -> None:
        super().__init__(PartContext(feature_shape=(features,), latent_shape=(positions, latent_dim)))
        self.positions = positions

    def posterior(self, h, batch=None):
        mu, logvar = self.proj(h.view(h.shape[0], self.positions, -1)).chunk(2, dim=-1)  # [B, L, D] each
        return {"mu": mu, "logvar": logvar}


def spatial_model():
    encoder = nn.Flatten()
    encoder.out_features = 12  # 3 positions x 4 features of a [B, 12] table
    decoder = nn.Sequential(nn.Flatten(), nn.Linear(3 * 2, 12))  # [N, L, D] -> [N, 12]
    return aekit.build_model("iwae", data_shape=(12,), latent_dim=2, likelihood="gaussian", n_samples=4,
                             encoder=encoder, decoder=decoder, bottleneck=SpatialGaussian(3, 4, 2))


def test_spatial_latents_flow_through_decode_densities_bounds_and_nll():
    model = spatial_model()
    x = torch.randn(5, 12)
    out = model(x)
    assert out.latent.z.shape == (4, 5, 3, 2) and out.x_params.shape == (4, 5, 12)
    assert out.latent.log_q.shape == out.latent.log_p.shape == (4, 5)
    assert out.terms["kl"].shape == (5,) and out.latent.stats["kl_per_dim"].shape == (5, 3, 2)
    assert iwae_bound(out).shape == (5,)
    assert model.sample(3).shape == (3, 12)
    assert importance_sampled_log_likelihood(model, x, n_samples=20).shape == (5,)


class Laplace(Prior):
    """A prior with no closed-form KL from a Gaussian: the bottleneck then estimates it by Monte Carlo."""

    def log_prob(self, z):
        return self._sum_latent(-z.abs() - math.log(2.0))

    def sample(self, n, generator=None, device=None):
        u = torch.rand(n, *self.latent_shape, generator=generator, device=device) - 0.5
        return -torch.sign(u) * torch.log1p(-2 * u.abs())


def test_a_prior_without_closed_form_gets_the_monte_carlo_kl():
    bottleneck = DiagonalGaussian(ctx(6, 3), prior=Laplace(3))
    h = torch.randn(4, 6)
    eps = torch.randn(2000, 4, 3, generator=torch.Generator().manual_seed(0))
    out: BottleneckOutput = bottleneck(h, n_samples=2000, eps=eps)
    assert "kl_per_dim" not in out.stats
    assert torch.allclose(out.terms["kl"], (out.log_q - out.log_p).mean(0))
    mu, logvar = out.params["mu"], out.params["logvar"]
    # E_q[log q] = -1/2 sum(1 + logvar + log 2 pi); E_q|z| of a Gaussian = sigma sqrt(2/pi) e^{-mu^2/2s^2} + mu erf
    sigma = torch.exp(0.5 * logvar)
    e_abs = sigma * math.sqrt(2 / math.pi) * torch.exp(-mu**2 / (2 * sigma**2)) + mu * torch.erf(mu / (sigma * 2**0.5))
    exact = (-0.5 * (1 + logvar + math.log(2 * math.pi)) + e_abs + math.log(2.0)).sum(-1)
    assert torch.allclose(out.terms["kl"], exact, atol=0.1)
    with pytest.raises(aekit.AekitError, match="free_bits needs the term per latent dimension"):
        model = aekit.build_model("vae", data_shape=(6,), latent_dim=3, hidden=(6,), likelihood="gaussian",
                                  free_bits=0.1, bottleneck=DiagonalGaussian(ctx(6, 3), prior=Laplace(3)))
        model.objective()(model(torch.randn(2, 6)), 0)


def test_parts_are_chosen_by_name():
    kinds = {e.kind for e in list_parts()}
    assert kinds == {"models", "bottlenecks", "priors", "likelihoods", "backbones", "graph_encoders", "corruptions",
                     "maskers", "targets", "regularisers", "objectives", "code_priors", "samplers"}
    assert get_part("objectives", "iwae").name == "iwae"
    model = aekit.build_model("vae", data_shape=(1, 8, 8), hidden=(8,), latent_dim=2, objective="iwae")
    assert type(model.objective()).__name__ == "IWAEBound"
    ae = aekit.build_model("ae", data_shape=(1, 8, 8), hidden=(8,), latent_dim=2, bottleneck="gaussian")
    assert isinstance(ae.bottleneck, DiagonalGaussian)
    with pytest.raises(aekit.AekitError, match="prior='no-such' is unknown; choose one of standard-normal"):
        aekit.build_model("vae", data_shape=(4,), prior="no-such")


class WithTeacher(aekit.models.VAE):
    """A VAE with a frozen teacher network beside it (as distillation or feature-target models have)."""

    def __init__(self, config, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        self.teacher = nn.Linear(64, 3)
        self.freeze("teacher")


def test_frozen_parts_stay_out_of_optimizers_averages_and_saved_weights(tmp_path):
    from aekit.optim import make_optimizers
    from aekit.training import TrainConfig, WeightAverage

    config = aekit.make_config("vae", data_shape=(1, 8, 8), hidden=(8,), latent_dim=2)
    model = WithTeacher(config, name="vae")
    optimizers, _ = make_optimizers(model, TrainConfig())
    optimized = {id(p) for o in optimizers.values() for g in o.param_groups for p in g["params"]}
    assert not optimized & {id(p) for p in model.teacher.parameters()}
    assert not any(n.startswith("teacher.") for n in WeightAverage(model, 0.9).names)
    assert not any(k.startswith("teacher.") for k in model.state_dict())
    path = aekit.save_model(model, tmp_path / "m")
    again = WithTeacher(config, name="vae")
    again.load_state_dict(aekit.io.load_tensors(path / "model.safetensors"))  # the teacher's weights are not needed
    with pytest.raises(RuntimeError, match="missing keys"):
        aekit.build_model("vae", config).load_state_dict({})


def test_log_columns_follow_the_keys_as_they_appear(tmp_path):
    from aekit.training import CSVLog

    log = CSVLog(tmp_path / "log.csv", ["step", "split"], None)
    log.write({"step": 1, "split": "train", "loss": 2.0})
    log.write({"step": 2, "split": "train", "loss": 1.5, "disc_accuracy": 0.5})
    log.write({"step": 3, "split": "val", "loss": 1.0})
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert lines == ["step,split,loss,disc_accuracy", "1,train,2,", "2,train,1.5,0.5", "3,val,1,"]
    resumed = CSVLog(tmp_path / "log.csv", ["step", "split"], resume_step=2)
    assert resumed.columns == ["step", "split", "loss", "disc_accuracy"]
    assert (tmp_path / "log.csv").read_text().splitlines()[-1] == "2,train,1.5,0.5"


def test_a_parts_own_settings_take_dotted_keys(tmp_path):
    from aekit.run_config import split_overrides

    model, _, _ = split_overrides({"likelihood.bins": "32", "likelihood": "logistic", "latent_dim": "2"}, "vae")
    assert model == {"options": {"likelihood": {"bins": 32}}, "likelihood": "logistic", "latent_dim": "2"}
    built = aekit.build_model("vae", data_shape=(3, 8, 8), backbone="conv", channels=(4,), hidden=(8,), **model)
    assert built.likelihood.bins == 32
    saved = aekit.load(aekit.save_model(built, tmp_path / "m"))
    assert saved.likelihood.bins == 32 and saved.config.options == {"likelihood": {"bins": 32}}
    with pytest.raises(aekit.AekitError, match="likelihood.levels: logistic has no such setting; it takes .*bins"):
        aekit.build_model("vae", data_shape=(3, 8, 8), likelihood="logistic", options={"likelihood": {"levels": 3}})
    with pytest.raises(aekit.AekitError, match="parts with settings are likelihood"):
        aekit.build_model("vae", data_shape=(4,), options={"decoder": {"depth": 2}})
    lists, _, _ = split_overrides({"bottleneck.layers": "[8, 4]", "bottleneck.hidden": "[]"}, "vae")
    assert lists == {"options": {"bottleneck": {"layers": [8, 4], "hidden": []}}}  # a bracketed list is a list
