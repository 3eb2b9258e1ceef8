"""VAE-GAN (Larsen et al. 2016): its terms by hand, each network's update from its own loss (Algorithm 1), the
order of the updates in aekit's training loop, and a short run."""

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

import aekit
from aekit.data.batch import Batch

GAMMA = 0.25


def tiny_vae_gan(**kw):
    torch.manual_seed(0)
    return aekit.build_model("vae-gan", data_shape=(1, 8, 8), latent_dim=2, hidden=(16,), gamma=GAMMA, **kw)


def fixed_forward(model, n=4):
    torch.manual_seed(1)
    x, eps, z_p = torch.rand(n, 1, 8, 8), torch.randn(1, n, 2), torch.randn(n, 2)
    return x, model(x, eps=eps, z_prior=z_p), eps, z_p


def grads(loss, params):
    return [torch.zeros_like(p) if g is None else g
            for g, p in zip(torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True), params,
                            strict=True)]


def encoder_params(model):
    return list(model.encoder.parameters()) + list(model.bottleneck.parameters())


def test_terms_are_the_papers():
    model = tiny_vae_gan()
    x, out, eps, z_p = fixed_forward(model)
    x_tilde = torch.sigmoid(model.decode(model.encode(x, eps=eps).z)[0])  # Bernoulli's mean: the reconstruction
    x_p = torch.sigmoid(model.decode(z_p))
    dis = model.discriminator
    (h_x, d_x), (h_t, d_t), (_, d_p) = dis(x), dis(x_tilde), dis(x_p)
    # -log N(Dis_l(x); Dis_l(x~), I) without its constant (eqs. 5-6)
    assert torch.allclose(out.terms["llike"], 0.5 * ((h_x - h_t) ** 2).sum(-1), atol=1e-6)
    prob = torch.sigmoid
    l_gan = torch.log(prob(d_x)) + torch.log(1 - prob(d_p)) + torch.log(1 - prob(d_t))  # eq. 4
    assert torch.allclose(out.terms["disc"], -l_gan, atol=1e-5)
    assert torch.allclose(out.terms["gan"], torch.log(1 - prob(d_t)) + torch.log(1 - prob(d_p)), atol=1e-5)
    loss = model.objective()(out, 0, Batch(x))
    assert torch.allclose(loss.losses["discriminator"], -l_gan.mean(), atol=1e-5)
    expected = out.terms["kl"].mean() + (1 + GAMMA) * out.terms["llike"].mean() + out.terms["gan"].mean()
    assert torch.allclose(loss.losses["model"], expected, atol=1e-5)  # the values; the gradients are routed


def test_each_network_is_updated_by_its_own_loss():
    """Algorithm 1: Enc by L_prior + L_llike, Dec by gamma L_llike + its GAN term, Dis by -L_GAN."""
    model = tiny_vae_gan()
    x, out, _, _ = fixed_forward(model)
    loss = model.objective()(out, 0, Batch(x))
    kl, llike, gan = (out.terms[k].mean() for k in ("kl", "llike", "gan"))
    enc, dec, dis = encoder_params(model), list(model.decoder.parameters()), list(model.discriminator.parameters())
    for got, want in zip(grads(loss.losses["model"], enc), grads(kl + llike, enc), strict=True):
        assert torch.allclose(got, want, atol=1e-6)
    for got, want in zip(grads(loss.losses["model"], dec), grads(GAMMA * llike + gan, dec), strict=True):
        assert torch.allclose(got, want, atol=1e-6)
    assert all(g.abs().sum() > 0 for g in grads(GAMMA * llike + gan, dec)[::2])  # the weights do move
    assert all(torch.all(g == 0) for g in grads(loss.losses["model"], dis))  # the model's loss leaves Dis alone
    for got, want in zip(grads(loss.losses["discriminator"], dis), grads(out.terms["disc"].mean(), dis), strict=True):
        assert torch.allclose(got, want)


def test_the_discriminators_loss_reaches_no_encoder_or_decoder_weight():
    model = tiny_vae_gan()
    x, out, _, _ = fixed_forward(model)
    loss = model.objective()(out, 0, Batch(x)).losses["discriminator"]
    assert all(torch.all(g == 0) for g in grads(loss, encoder_params(model) + list(model.decoder.parameters())))
    assert any(g.abs().sum() > 0 for g in grads(loss, list(model.discriminator.parameters())))


@pytest.mark.parametrize("generator_loss", ["minimax", "non-saturating"])
def test_the_gan_term_reaches_the_decoder_only_and_fools_the_discriminator(generator_loss):
    model = tiny_vae_gan(generator_loss=generator_loss, terms={"kl": 0, "enc_llike": 0, "dec_llike": 0})
    x, out, eps, z_p = fixed_forward(model)
    loss = model.objective()(out, 0, Batch(x)).total
    assert all(torch.all(g == 0) for g in grads(loss, encoder_params(model)))  # no L_GAN in the encoder
    dec = list(model.decoder.parameters())
    step = grads(loss, dec)
    assert any(g.abs().sum() > 0 for g in step)
    with torch.no_grad():  # a small step down the decoder's loss makes Dis(x~) and Dis(x_p) larger
        before = model.discriminator(torch.sigmoid(model.decode(z_p)))[1]
        for p, g in zip(dec, step, strict=True):
            p -= 1e-2 * g
        after = model.discriminator(torch.sigmoid(model.decode(z_p)))[1]
    assert after.mean() > before.mean()


def test_the_loop_runs_algorithm_1s_updates_in_order(tmp_path):
    """Per training step: one forward pass, then the encoder and decoder's update (optimiser ``model``), then the
    discriminator's, with every gradient taken before the first update (all three from the same X, Z, X~, Z_p)."""
    model = tiny_vae_gan()
    dis = list(model.discriminator.parameters())
    events, snapshots = [], {}

    def on_step(optimizer, args, kwargs):
        name = "discriminator" if any(p is dis[0] for g in optimizer.param_groups for p in g["params"]) else "model"
        events.append(name)
        snapshots.setdefault(name, []).append([None if p.grad is None else p.grad.clone() for p in dis])

    handles = [register_optimizer_step_pre_hook(on_step),
               model.encoder.register_forward_hook(lambda *args: events.append("forward"))]
    try:
        aekit.train(model, torch.rand(32, 1, 8, 8), tmp_path / "run", steps=3, evaluate=False, progress=False,
                    batch_size=8, val_fraction=0.25)
    finally:
        for handle in handles:
            handle.remove()
    assert [e for e in events if e != "forward"] == ["model", "discriminator"] * 3
    for i in [i for i, e in enumerate(events) if e == "model"]:
        assert events[i - 1 : i + 2] == ["forward", "model", "discriminator"]  # no second forward in between
    for at_model, at_dis in zip(snapshots["model"], snapshots["discriminator"], strict=True):
        assert all(g is not None for g in at_model)  # Dis's gradient is there before the model's update
        assert all(torch.equal(a, b) for a, b in zip(at_model, at_dis, strict=True))  # and is not taken again


def test_a_short_run_lowers_the_feature_reconstruction_loss(tmp_path):
    """L_llike under the trained discriminator's features: the trained encoder and decoder reconstruct better
    than the ones they started from (the logged L_llike itself follows a discriminator that keeps changing)."""
    import copy

    torch.manual_seed(0)
    patterns = (torch.rand(2, 1, 8, 8) > 0.5).float()
    x = patterns[torch.arange(64) % 2]
    model = aekit.build_model("vae-gan", data_shape=(1, 8, 8), hidden=(32,), latent_dim=2)
    start = copy.deepcopy(model)
    aekit.train(model, x, tmp_path / "run", steps=60, lr=3e-3, evaluate=False, progress=False, batch_size=16,
                val_fraction=0.25)
    start.discriminator.load_state_dict(model.discriminator.state_dict())
    model.eval(), start.eval()
    eps, z_p = torch.zeros(1, 64, 2), torch.zeros(64, 2)
    with torch.no_grad():
        before, after = (m(x, eps=eps, z_prior=z_p).terms for m in (start, model))
    assert after["llike"].mean() < 0.8 * before["llike"].mean()
    assert after["recon"].mean() < before["recon"].mean()
