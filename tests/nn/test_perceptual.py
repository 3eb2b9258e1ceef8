"""The perceptual likelihoods: MS-SSIM against Pythae's implementation, and DFC-VAE's feature loss by hand."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import aekit
from aekit.errors import ConfigError, DataError
from aekit.nn.likelihoods import make_likelihood
from aekit.nn.perceptual import FeatureConsistent, gaussian_window, ms_ssim, scale_weights, ssim_and_cs


def image_pairs():
    """The pairs the reference values were computed on: a 28 x 28 image with Gaussian noise, blurred (3 x 3 box,
    edges replicated), shifted (rolled 2 rows, 1 column), and a 3 x 40 x 36 image (five scales) with noise."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 28, 28, generator=g)
    noisy = (x + 0.1 * torch.randn(1, 1, 28, 28, generator=g)).clamp(0, 1)
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    shifted = torch.roll(x, shifts=(2, 1), dims=(2, 3))
    big = torch.rand(1, 3, 40, 36, generator=g)
    big_noisy = (big + 0.2 * torch.randn(1, 3, 40, 36, generator=g)).clamp(0, 1)
    return {"noise": (x, noisy), "blur": (x, blurred), "shift": (x, shifted), "noise_rgb_5_scales": (big, big_noisy)}


# 1 - Pythae 0.1.2's MSSSIM(window_size=11)(a, b) (pythae/models/msssim_vae/msssim_vae_utils.py), computed in the
# benchmark environment on image_pairs() above (torch 2.13.0, CPU):
#   .venv-bench/bin/python -c "from pythae.models.msssim_vae.msssim_vae_utils import MSSSIM; \
#       [print(k, 1 - float(MSSSIM(11)(a, b))) for k, (a, b) in image_pairs().items()]"
PYTHAE_MSSSIM = {"noise": 0.9858764410018921, "blur": 0.8557301163673401, "shift": 0.7297317385673523,
                 "noise_rgb_5_scales": 0.9731943607330322}


@pytest.mark.parametrize("name", sorted(PYTHAE_MSSSIM))
def test_msssim_matches_pythae(name):
    a, b = image_pairs()[name]
    assert float(ms_ssim(a, b)) == pytest.approx(PYTHAE_MSSSIM[name], abs=1e-5)


def test_msssim_of_an_image_with_itself_is_one_and_it_is_symmetric():
    pairs = image_pairs()
    for a, b in pairs.values():
        for form in ("pythae", "wang"):
            assert torch.allclose(ms_ssim(a, a, form=form), torch.ones(1), atol=1e-6)
            assert torch.allclose(ms_ssim(a, b, form=form), ms_ssim(b, a, form=form), atol=1e-7)
    a, b = pairs["shift"]
    assert float(ms_ssim(a, b)) < 0.9 < float(ms_ssim(*pairs["noise"]))  # a shift is further than light noise


def test_each_example_has_its_own_index():
    pairs = image_pairs()
    a = torch.cat([pairs[k][0] for k in ("noise", "blur", "shift")])  # [3, 1, 28, 28]
    b = torch.cat([pairs[k][1] for k in ("noise", "blur", "shift")])
    expected = torch.tensor([PYTHAE_MSSSIM[k] for k in ("noise", "blur", "shift")])
    assert torch.allclose(ms_ssim(a, b), expected, atol=1e-5)


def test_scales_follow_pythae_for_small_images_and_tiny_ones_are_an_error():
    assert scale_weights(28) == (0.3117, 0.3384, 0.2675, 0.0824)  # MNIST: four scales, Pythae's weights
    assert scale_weights(32) == (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al.'s five
    assert len(scale_weights(7)) == 2 and len(scale_weights(8)) == 3
    with pytest.raises(ConfigError, match="3 px"):
        make_likelihood("msssim", (1, 3, 9))
    with pytest.raises(ConfigError, match=r"images \(C, H, W\)"):
        make_likelihood("msssim", (7,))


def test_wang_form_by_hand_from_the_scales():
    """Wang et al.'s product, ssim_M^{w_M} prod_{j<M} cs_j^{w_j}, from each scale's SSIM and cs."""
    a, b = image_pairs()["noise_rgb_5_scales"]
    weights, window = scale_weights(36), gaussian_window()
    ssims, css = [], []
    for _ in range(5):
        s, c = ssim_and_cs(a, b, window)
        ssims.append((s + 1) / 2)
        css.append((c + 1) / 2)
        a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    expected = ssims[-1] ** weights[-1]
    for c, w in zip(css[:-1], weights[:-1], strict=True):
        expected = expected * c**w
    a, b = image_pairs()["noise_rgb_5_scales"]
    assert torch.allclose(ms_ssim(a, b, form="wang"), expected, atol=1e-6)
    # Pythae's raises the last scale to (M - 1) w_M: (M - 2) w_M more than Wang's
    assert torch.allclose(ms_ssim(a, b, form="pythae"), expected * ssims[-1] ** (3 * weights[-1]), atol=1e-6)


def test_msssim_likelihood_is_one_minus_the_index_and_its_gradient_is_finite():
    likelihood = make_likelihood("msssim", (1, 28, 28))
    a, b = image_pairs()["blur"]
    x_hat = torch.cat([b, a, torch.full_like(a, 0.5)]).unsqueeze(0).requires_grad_()  # [S=1, B=3, 1, 28, 28]
    x = torch.cat([a, a, a])
    nll = likelihood.nll(x_hat, x)
    assert nll.shape == (1, 3)
    values = nll.detach()
    assert float(values[0, 0]) == pytest.approx(1 - PYTHAE_MSSSIM["blur"], abs=1e-5) and float(values[0, 1]) < 1e-6
    nll.sum().backward()  # at x_hat = x too, and for a constant image (zero variance)
    assert torch.isfinite(x_hat.grad).all() and x_hat.grad[0, 0].abs().sum() > 0
    assert torch.equal(likelihood.mean(x_hat), x_hat)


# The feature-consistent loss.
def test_feature_loss_by_hand_for_a_linear_network():
    phi = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        phi.weight.copy_(torch.tensor([[1.0, 2.0, 0.0], [0.0, -1.0, 1.0]]))
    likelihood = FeatureConsistent((3,), phi, pixel_weight=0.5)
    x, x_hat = torch.tensor([[1.0, 0.0, 2.0]]), torch.tensor([[0.0, 1.0, 1.0]])
    # phi(x) = (1, 2), phi(x_hat) = (2, 0): ||.||^2 = 1 + 4 = 5; ||x - x_hat||^2 = 1 + 1 + 1 = 3; 5 + 0.5 * 3
    assert torch.allclose(likelihood.nll(x_hat, x), torch.tensor([6.5]))


def test_feature_loss_sums_the_chosen_layers_with_their_weights():
    torch.manual_seed(0)
    phi = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    likelihood = FeatureConsistent((4,), phi, layers=["0", "2"], layer_weights=[0.5, 2.0])
    x, x_hat = torch.randn(5, 4), torch.randn(2, 5, 4)  # two samples of five examples
    expected = 0.5 * (phi[0](x_hat) - phi[0](x)).pow(2).sum(-1) + 2.0 * (phi(x_hat) - phi(x)).pow(2).sum(-1)
    assert torch.allclose(likelihood.nll(x_hat, x), expected, atol=1e-6)


def test_the_feature_network_gets_no_gradient_but_passes_one_to_the_reconstruction():
    phi = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Dropout(0.5))
    likelihood = FeatureConsistent((1, 8, 8), phi)
    likelihood.train()
    assert not phi.training  # always evaluation mode: running statistics, no dropout
    x_hat = torch.rand(1, 3, 1, 8, 8, requires_grad=True)
    likelihood.nll(x_hat, torch.rand(3, 1, 8, 8)).sum().backward()
    assert x_hat.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in phi.parameters())


def test_a_network_that_does_not_fit_the_data_is_one_clear_error():
    with pytest.raises(DataError, match=r"shape \(1, 8, 8\).*3 channels"):
        FeatureConsistent((1, 8, 8), nn.Conv2d(3, 4, 3))
    with pytest.raises(ConfigError, match="no layer 'conv'"):
        FeatureConsistent((1, 8, 8), nn.Sequential(nn.Conv2d(1, 4, 3)), layers=["conv"])
    with pytest.raises(ConfigError, match="feature_network"):
        aekit.build_model("vae", data_shape=(1, 8, 8), likelihood="feature")
    with pytest.raises(DataError, match="no such model folder"):
        aekit.build_model("vae", data_shape=(1, 8, 8), likelihood="feature",
                          options={"likelihood": {"feature_network": "/no/such/run"}})
