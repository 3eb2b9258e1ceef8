"""The inverse-Lipschitz decoder: its input-convex potential (convex, with the written-out gradient autograd gives),
the bound ||f(z_1) - f(z_2)|| >= L ||z_1 - z_2|| on random pairs whatever the weights (and the plain decoder failing
it at the same L), and the backbone that carries it into any model."""

import pytest
import torch

import aekit
from aekit.errors import ConfigError
from aekit.nn.backbones import MLPDecoder
from aekit.nn.inverse_lipschitz import InputConvexNetwork, InverseLipschitzDecoder


def scrambled(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter drawn afresh from N(0, 1): the bound must hold by construction, not by initialisation."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return module


def expansion(f, n: int = 2000, d: int = 3, seed: int = 1) -> torch.Tensor:
    """||f(z_1) - f(z_2)|| / ||z_1 - z_2|| over n random pairs, near and far: ``[n]``."""
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=g)
    z2 = z1 + torch.randn(n, d, generator=g) * torch.logspace(-2, 1, n)[:, None]
    with torch.no_grad():
        return (f(z1) - f(z2)).flatten(1).norm(dim=1) / (z1 - z2).norm(dim=1)


def test_the_potential_is_convex_and_its_gradient_is_autograds():
    icnn = scrambled(InputConvexNetwork(4, 16, 3)).double()
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(500, 4, generator=g, dtype=torch.float64), torch.randn(500, 4, generator=g, dtype=torch.float64)
    assert (icnn((a + b) / 2) <= (icnn(a) + icnn(b)) / 2 + 1e-9).all()  # midpoint convexity
    y = a.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(icnn(y).sum(), y)
    assert torch.allclose(icnn.gradient(a), auto, atol=1e-10)


@pytest.mark.parametrize("embedding", ["orthonormal", "pad"])
@pytest.mark.parametrize("lipschitz", [0.5, 2.0])
def test_the_decoder_is_L_inverse_lipschitz_whatever_its_weights(embedding, lipschitz):
    for seed in (0, 1):
        decoder = scrambled(InverseLipschitzDecoder(3, (1, 5, 4), lipschitz, width=16, embedding=embedding), seed)
        ratio = expansion(decoder)
        assert ratio.min() >= lipschitz * (1 - 1e-4), float(ratio.min())
    beta = decoder.beta
    assert torch.allclose(beta.T @ beta, torch.eye(3), atol=1e-6)  # orthonormal columns: beta keeps distances


def test_the_plain_decoder_fails_the_bound_at_the_same_L():
    torch.manual_seed(0)
    ratio = expansion(MLPDecoder(3, (1, 5, 4), hidden=(16, 16)))
    assert ratio.min() < 0.5  # below L = 0.5 and L = 2 at its initialisation: nothing keeps two codes' outputs apart
    plain, constrained = MLPDecoder(3, (1, 5, 4), hidden=(16, 16)), InverseLipschitzDecoder(3, (1, 5, 4), 2.0, 16)
    for decoder in (plain, constrained):  # every weight 0: a decoder that ignores the code, if it can
        with torch.no_grad():
            for p in decoder.parameters():
                p.zero_()
    assert expansion(plain).max() == 0 and (expansion(constrained) - 2.0).abs().max() < 1e-3  # g = alpha^2 y


def test_any_model_takes_the_backbone_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = aekit.build_model("vae", data_shape=(1, 6, 6), latent_dim=2, hidden=(8,), backbone="inverse-lipschitz",
                              options={"backbone": {"inverse_lipschitz": 3.0, "icnn_width": 8}})
    assert isinstance(model.decoder, InverseLipschitzDecoder) and model.decoder.inverse_lipschitz == 3.0
    assert expansion(model.decoder, d=2).min() >= 3.0 * (1 - 1e-4)
    x = (torch.rand(4, 1, 6, 6) > 0.5).float()
    model.eval()
    loaded = aekit.load(aekit.save_model(model, tmp_path / "m"))
    with torch.no_grad():
        z = torch.randn(5, 2)
        assert torch.equal(loaded.decoder(z), model.decoder(z)) and model(x).x_params.shape[-3:] == (1, 6, 6)
    conv = aekit.build_model("beta-vae", data_shape=(1, 8, 8), latent_dim=2, backbone="inverse-lipschitz",
                             channels=(4,), options={"backbone": {"encoder": "conv", "icnn_width": 8}})
    assert type(conv.encoder).__name__ == "ConvEncoder"


@pytest.mark.parametrize("options,fragment", [
    ({"inverse_lipschitz": -1.0}, "inverse_lipschitz=-1.0 must be a finite number >= 0"),
    ({"encoder": "conv-grid"}, "backbone.encoder=conv-grid gives a grid of latents"),
    ({"embedding": "identity"}, "embedding='identity' is unknown"),
])
def test_bad_settings_are_one_line_errors(options, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(".", r"\.")):
        aekit.build_model("vae", data_shape=(1, 8, 8), latent_dim=2, hidden=(8,), channels=(4,),
                          backbone="inverse-lipschitz", options={"backbone": options})
