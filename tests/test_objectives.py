import pytest
import torch

import aekit
from aekit.errors import ConfigError
from aekit.objectives import ELBO, Schedule


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
    assert ELBO()(out, 0).logs["beta"] == 1.0
