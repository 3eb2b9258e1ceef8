"""Adversarial autoencoder (Makhzani et al. 2016): the game's losses by hand; two optimisers, each its own."""

import pytest
import torch
from safetensors.torch import load_file

import aekit
from aekit.data.batch import Batch


def tiny_aae(**kw):
    torch.manual_seed(0)
    return aekit.build_model("aae", data_shape=(1, 8, 8), latent_dim=2, hidden=(16,), disc_hidden=(8,), **kw)


def test_losses_are_the_papers_cross_entropies():
    model = tiny_aae(adv_weight=0.5)
    x = torch.rand(3, 1, 8, 8)
    z_prior = torch.randn(3, 2)
    out = model(x, z_prior=z_prior)
    z_q = model.encode(x).mean
    d = model.discriminator
    d_real, d_fake = d(z_prior), d(z_q)
    assert torch.allclose(out.terms["adv"], -torch.log(torch.sigmoid(d_fake)), atol=1e-5)
    disc = -torch.log(torch.sigmoid(d_real)) - torch.log(1 - torch.sigmoid(d_fake))
    assert torch.allclose(out.terms["disc"], disc, atol=1e-5)
    loss = model.objective()(out, 0, Batch(x))
    assert torch.allclose(loss.losses["model"], out.terms["recon"].mean() + 0.5 * out.terms["adv"].mean())
    assert torch.allclose(loss.losses["discriminator"], out.terms["disc"].mean())
    assert 0.0 <= float(loss.logs["disc_accuracy"]) <= 1.0


def test_discriminator_loss_does_not_reach_the_encoder():
    model = tiny_aae()
    out = model(torch.rand(4, 1, 8, 8))
    grads = torch.autograd.grad(out.terms["disc"].sum(), list(model.encoder.parameters()), allow_unused=True)
    assert all(g is None or torch.all(g == 0) for g in grads)


def test_parameter_groups_split_the_discriminator_off():
    model = tiny_aae()
    groups = model.parameter_groups()
    assert set(groups) == {"model", "discriminator"}
    assert {n for n, _ in groups["discriminator"]} == {n for n, _ in model.named_parameters()
                                                       if n.startswith("discriminator.")}
    assert len(groups["model"]) + len(groups["discriminator"]) == len(list(model.parameters()))


def checkpoint_weights(run, step):
    return load_file(str(run / "checkpoints" / f"step-{step:08d}" / "model.safetensors"))


@pytest.mark.parametrize("name", ["aae", "factor-vae"])
def test_each_optimizer_moves_only_its_own_parameters(name, tmp_path):
    """With ``every=2`` on one optimiser, step 1 (odd) steps only the other: between the checkpoints of steps 1
    and 2, only the other's parameters change."""
    common = dict(steps=2, checkpoint_every=1, keep_checkpoints=3, hidden=(16,), latent_dim=2, disc_hidden=(8,),
                  evaluate=False, progress=False)
    for resting, moving in (("model", "discriminator"), ("discriminator", "model")):
        out = tmp_path / resting
        aekit.train(name, "digits", out, **{f"optimizers.{resting}.every": 2}, **common)
        before, after = checkpoint_weights(out, 1), checkpoint_weights(out, 2)
        for key in before:
            changed = not torch.equal(before[key], after[key])
            is_disc = key.startswith("discriminator.")
            assert changed == (is_disc == (moving == "discriminator")), (resting, key, changed)


def test_the_adversary_pulls_the_aggregate_posterior_towards_the_prior(tmp_path):
    """The codes' moments against N(0, I): |mean|^2 + |std - 1|^2 over the dimensions, for the same autoencoder
    trained without (adv_weight=0) and with the adversary."""
    x = aekit.load_data("digits").test.inputs(slice(0, 300))
    distance = {}
    for weight in (0.0, 1.0):
        run = aekit.train("aae", "digits", tmp_path / str(weight), steps=300, hidden=(64,), latent_dim=2,
                          disc_hidden=(64, 64), batch_size=64, adv_weight=weight, evaluate=False, progress=False)
        z = run.model.embed(x)
        distance[weight] = float((z.mean(0) ** 2).sum() + ((z.std(0) - 1) ** 2).sum())
    assert distance[1.0] < distance[0.0] / 5, distance
    samples = run.model.sample(4, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (4, 1, 8, 8)
    assert samples.var(0).sum() > 0  # not one collapsed image
