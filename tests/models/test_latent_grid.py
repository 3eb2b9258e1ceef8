"""A grid of latents: the conv-grid backbone stops at a feature map, the bottleneck works on it channels last,
and the prior, sampling, the NLL estimator, embeddings, evaluation and the report follow the latent's shape."""

import math

import torch

import aekit
from aekit.metrics import importance_sampled_log_likelihood


def test_shapes_through_encode_decode_sample_and_the_nll():
    torch.manual_seed(0)
    model = aekit.build_model("vae", data_shape=(1, 28, 28), latent_dim=4, backbone="conv-grid", channels=(8, 16))
    assert model.encoder.out_shape == (16, 7, 7) and model.bottleneck.latent_shape == (7, 7, 4)
    x = torch.rand(3, 1, 28, 28).round()
    out = model(x, n_samples=2)
    assert out.latent.z.shape == (2, 3, 7, 7, 4) and out.x_params.shape == (2, 3, 1, 28, 28)
    assert out.latent.stats["kl_per_dim"].shape == (3, 7, 7, 4)
    assert torch.allclose(out.terms["kl"], out.latent.stats["kl_per_dim"].flatten(1).sum(-1))
    assert out.latent.log_q.shape == (2, 3)  # summed over the whole grid
    assert model.embed(x).shape == (3, 7, 7, 4) and model.sample(5).shape == (5, 1, 28, 28)
    assert importance_sampled_log_likelihood(model, x, n_samples=6).shape == (3,)
    conditional = aekit.build_model("cvae", data_shape=(1, 12, 10), latent_dim=2, backbone="conv-grid", channels=(4,),
                                    condition_dim=3)
    assert conditional.bottleneck.latent_shape == (6, 5, 2)  # odd and uneven sizes land exactly
    assert conditional.sample(2, condition=torch.eye(3)[1]).shape == (2, 1, 12, 10)


def test_a_conv_vae_with_a_7x7x4_grid_trains_on_mnist_samples_and_scores_its_nll(tmp_path):
    run = aekit.train("vae", "mnist", tmp_path / "grid", steps=40, batch_size=64, backbone="conv-grid",
                      channels=(16, 32), latent_dim=4, lr=2e-3, nll_samples=20, nll_examples=64, val_examples=256,
                      progress=False, figures=True)
    m = run.metrics
    assert run.model.bottleneck.latent_shape == (7, 7, 4)
    assert math.isfinite(m["test/nll"]) and m["test/nll"] < 400  # 784 pixels: a trained model is far below 543
    assert m["test/elbo"] <= -m["test/nll"] + 5 and len(m["test/kl_per_dim"]) == 4
    figures = {p.name for p in (tmp_path / "grid" / "figures").iterdir()}
    assert {"samples.png", "reconstructions.png", "latent_map.png"} <= figures
    assert aekit.load(tmp_path / "grid").sample(2).shape == (2, 1, 28, 28)
