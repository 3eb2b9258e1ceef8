import pytest
import torch

import aekit
from aekit.errors import ConfigError
from aekit.objectives import Routed, Schedule, Term, WeightedTerms, reaching, with_gradient_of


def test_schedules():
    assert Schedule(4.0)(0) == 4.0
    warm = Schedule(2.0, "linear", warmup_steps=10)
    assert [warm(s) for s in (0, 5, 10, 50)] == [0.0, 1.0, 2.0, 2.0]
    cyc = Schedule(1.0, "cyclical", period=10, cycles=2)
    assert [cyc(s) for s in (0, 2, 5, 9, 10, 12, 25)] == [0.0, 0.4, 1.0, 1.0, 0.0, 0.4, 1.0]
    with pytest.raises(ConfigError):
        Schedule(1.0, "exponential")
    assert warm(None) == 2.0 and cyc(None) == 1.0  # None: the weight every ramp ends on


def test_loss_convention_sum_over_dims_mean_over_batch():
    torch.manual_seed(0)
    model = aekit.build_model("vae", data_shape=(1, 4, 4), latent_dim=2, hidden=(8,))
    x = torch.rand(5, 1, 4, 4).round()
    eps = torch.randn(1, 5, 2)
    out = model(x, eps=eps)
    loss = model.objective()(out, step=0)
    params = model.decode(out.latent.z)[0]
    bce = torch.nn.functional.binary_cross_entropy_with_logits(params, x, reduction="none").sum((1, 2, 3))
    assert torch.allclose(out.terms["recon"], bce, atol=1e-5)
    assert loss.total.item() == pytest.approx((bce + out.terms["kl"]).mean().item(), rel=1e-5)


def test_beta_and_free_bits():
    model = aekit.build_model("beta-vae", data_shape=(6,), latent_dim=3, likelihood="gaussian", beta=3.0,
                              free_bits=0.5)
    out = model(torch.randn(4, 6))
    loss = model.objective()(out, step=0)
    kl_fb = out.latent.stats["kl_per_dim"].mean(0).clamp(min=0.5).sum()
    assert loss.total.item() == pytest.approx((out.terms["recon"].mean() + 3.0 * kl_fb).item(), rel=1e-5)
    assert "beta" not in loss.logs  # a constant weight is no log column


def vae(**settings):
    torch.manual_seed(0)
    return aekit.build_model("vae", data_shape=(6,), latent_dim=3, hidden=(8,), likelihood="gaussian", **settings)


def test_terms_set_by_name_with_schedules_override_the_shorthand():
    """``terms.kl`` wins over ``beta``; a schedule set there ramps the weight, which is then logged."""
    model = vae(beta=2.0, terms={"kl": {"weight": 4, "schedule": "linear", "warmup_steps": 10}})
    out = model(torch.randn(5, 6))
    recon, kl = out.terms["recon"].mean(), out.terms["kl"].mean()
    objective = model.objective()
    for step, weight in ((0, 0.0), (5, 2.0), (10, 4.0), (None, 4.0)):
        loss = objective(out, step)
        assert loss.total.item() == pytest.approx((recon + weight * kl).item(), rel=1e-6)
        assert loss.logs["beta"] == weight
    assert vae(terms={"kl": 0.5}).objective_terms()["kl"].weight.value == 0.5


def test_capacity_penalises_the_distance_from_a_rising_target():
    """Burgess et al. 2018: gamma |KL - C(t)|, C rising linearly to C_max over capacity_steps."""
    model = vae(terms={"kl": {"weight": 10, "capacity": 2.0, "capacity_steps": 100}})
    out = model(torch.randn(5, 6))
    recon, kl = out.terms["recon"].mean(), out.terms["kl"].mean()
    for step, c in ((0, 0.0), (50, 1.0), (1000, 2.0), (None, 2.0)):
        expected = recon + 10 * (kl - c).abs()
        assert model.objective()(out, step).total.item() == pytest.approx(expected.item(), rel=1e-6)


def test_a_term_no_part_declares_is_an_error_naming_it():
    model = vae()
    out = model(torch.randn(3, 6))
    out.terms["commit"] = torch.ones(3)
    with pytest.raises(ConfigError, match="term 'commit' that is neither weighted nor log-only"):
        model.objective()(out, 0)


def test_an_unknown_weight_key_lists_the_model_terms():
    with pytest.raises(ConfigError, match="terms.commit: vae has no term 'commit'; its terms are recon, kl"):
        vae(terms={"commit": 0.25}).objective()
    with pytest.raises(ConfigError, match="terms.kl.warmup is not a term setting"):
        vae(terms={"kl": {"warmup": 10}}).objective()


def test_log_only_terms_are_logged_and_never_minimised():
    model = vae(terms={"kl": {"log_only": "true"}})
    out = model(torch.randn(4, 6))
    loss = model.objective()(out, 0)
    assert loss.total.item() == pytest.approx(out.terms["recon"].mean().item(), rel=1e-6)
    assert loss.logs["kl"].item() == pytest.approx(out.terms["kl"].mean().item())


def test_whole_batch_terms_are_declared_and_summed_as_they_are():
    """A term declared ``batch`` is one value per batch; given per example it is an error, and so is the reverse."""
    objective = WeightedTerms({"recon": Term(), "mmd": Term(weight=3.0, batch=True)}, "wae")

    class Out:
        terms = {"recon": torch.tensor([1.0, 3.0]), "mmd": torch.tensor(0.5)}
        stats: dict = {}

    assert objective(Out(), 0).total.item() == pytest.approx(2.0 + 3 * 0.5)
    Out.terms = {"recon": torch.tensor([1.0, 3.0]), "mmd": torch.tensor([0.5, 0.5])}
    with pytest.raises(ConfigError, match="declared as one value per batch"):
        objective(Out(), 0)


def test_terms_and_part_options_from_the_command_line_keys():
    from aekit.run_config import split_overrides

    model, _, _ = split_overrides({"terms.kl": "4", "terms.kl.schedule": "linear", "terms.kl.warmup_steps": "9",
                                   "likelihood.bins": "32"}, "vae")
    assert model == {"terms": {"kl": {"weight": 4, "schedule": "linear", "warmup_steps": 9}},
                     "options": {"likelihood": {"bins": 32}}}


def test_a_model_default_part_setting_survives_a_user_setting_of_another_key():
    """A mapping field merges key by key over the model's defaults: the user's keys win, the others stay."""
    from dataclasses import dataclass, field

    from aekit.config import from_dict
    from aekit.models.vae import VAEConfig

    @dataclass(frozen=True)
    class Defaulted(VAEConfig):
        options: dict = field(default_factory=lambda: {"likelihood": {"bins": 32}, "backbone": {"layers": 2}})

    config = from_dict(Defaulted, {"options": {"likelihood": {"sigma": 0.5}, "backbone": {"layers": 3}}})
    assert config.options == {"likelihood": {"bins": 32, "sigma": 0.5}, "backbone": {"layers": 3}}
    assert from_dict(Defaulted, {}).options == {"likelihood": {"bins": 32}, "backbone": {"layers": 2}}


def test_old_objective_names_build_the_weighted_terms():
    """Configs saved with the names of the objectives the weighted terms replaced still load."""
    from aekit.parts import build_part, part_names

    assert "adversarial" not in part_names("objectives")
    objective = build_part("objectives", "adversarial", {"recon": Term()})
    assert isinstance(objective, WeightedTerms)
    assert type(aekit.build_model("aae", data_shape=(6,), objective="adversarial").objective()) is WeightedTerms


class RoutedTerms(WeightedTerms):
    """The VAE's terms plus ``extra``, a term that ``make_extra(out)`` gives (a routed one here)."""

    def __init__(self, terms, model, make_extra):
        super().__init__({**terms, "extra": Term(weight=2.0)}, model)
        self.make_extra = make_extra

    def extra_terms(self, out):
        return {"extra": self.make_extra(out)}


def routed_vae(make_extra):
    model = vae()
    objective = RoutedTerms(model.objective_terms(), model.name, make_extra)
    objective.networks = model.networks
    return model, objective


def gradients(model, loss):
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]


def test_the_networks_split_an_autoencoder_into_inference_and_generative_parameters():
    model = aekit.build_model("vae", data_shape=(6,), latent_dim=3, hidden=(8,), likelihood="gaussian-learned")
    networks = model.networks()
    named = {id(p): name for name, p in model.named_parameters()}
    inference = sorted(named[id(p)].split(".")[0] for p in networks["inference"])
    generative = sorted(named[id(p)].split(".")[0] for p in networks["generative"])
    assert set(inference) == {"encoder", "bottleneck"} and set(generative) == {"decoder", "likelihood"}
    assert len(networks["inference"]) + len(networks["generative"]) == len(list(model.parameters()))


def test_a_routed_term_counts_its_value_and_reaches_only_its_network():
    """``reaching(term, inference)``: the loss and the logs hold its value; the encoder's gradient is that of
    the whole loss, the decoder's that of the loss without the term."""
    model, objective = routed_vae(lambda out: reaching(out.terms["recon"], "inference"))
    torch.manual_seed(1)
    out = model(torch.randn(5, 6))
    loss = objective(out, 0)
    recon, kl = out.terms["recon"].mean(), out.terms["kl"].mean()
    assert loss.total.item() == pytest.approx((3 * recon + kl).item(), rel=1e-6)
    assert loss.logs["extra"].item() == pytest.approx(recon.item(), rel=1e-6)
    inference = {id(p) for p in model.networks()["inference"]}
    routed, whole, without = (gradients(model, value) for value in (loss.total, 3 * recon + kl, recon + kl))
    for p, g, g_whole, g_without in zip(model.parameters(), routed, whole, without, strict=True):
        assert torch.allclose(g, g_whole if id(p) in inference else g_without, atol=1e-6)


def test_a_routed_term_takes_a_gradient_of_its_own_for_each_network():
    """One value, two estimators: the inference network's gradient from one tensor, the generative's from
    another; the logged value is the term's."""
    def two_gradients(out):
        recon = out.terms["recon"]
        return Routed({"inference": with_gradient_of(recon, 5 * recon), "generative": recon})

    model, objective = routed_vae(two_gradients)
    out = model(torch.randn(5, 6))
    loss = objective(out, 0)
    recon, kl = out.terms["recon"].mean(), out.terms["kl"].mean()
    assert loss.total.item() == pytest.approx((3 * recon + kl).item(), rel=1e-6)
    inference = {id(p) for p in model.networks()["inference"]}
    routed, for_inference, for_generative = (gradients(model, value) for value in
                                             (loss.total, 11 * recon + kl, 3 * recon + kl))
    for p, g, g_inference, g_generative in zip(model.parameters(), routed, for_inference, for_generative, strict=True):
        assert torch.allclose(g, g_inference if id(p) in inference else g_generative, atol=1e-5)


def test_routed_terms_score_without_gradient_and_name_an_unknown_network():
    model, objective = routed_vae(lambda out: reaching(out.terms["recon"], "inference"))
    with torch.no_grad():  # validation
        out = model(torch.randn(3, 6))
        loss = objective(out, None)
    assert loss.logs["extra"].item() == pytest.approx(out.terms["recon"].mean().item())
    model, objective = routed_vae(lambda out: reaching(out.terms["recon"], "critic"))
    with pytest.raises(ConfigError, match="a term for its critic network, but its networks are inference, generative"):
        objective(model(torch.randn(3, 6)), 0)
