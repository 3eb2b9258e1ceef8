"""One suite for every registered model: shapes, save/load, determinism, tiny configs, odd sizes."""

import pytest
import torch

import aekit
from aekit.data.batch import Batch
from aekit.errors import ConfigError, DataError
from aekit.models import Autoencoder
from aekit.registry import list_models, model_entry

NAMES = [entry.name for entry in list_models() if entry.model_class.data_kind != "graph"]  # graphs: their own
SHAPES = [
    ((1, 8, 8), "conv", "bernoulli"),
    ((1, 28, 28), "mlp", "bernoulli"),
    ((3, 32, 32), "conv", "logistic"),
    ((2, 13, 11), "conv", "gaussian-learned"),
    ((4, 5, 7), "mlp", "gaussian"),
    ((7,), "mlp", "gaussian"),
    ((12, 3), "seq-conv", "gaussian-learned"),  # windows of a series [T, C]
    ((9, 2), "gru", "gaussian"),
    ((8, 2), "transformer", "gaussian"),
    ((1, 8, 8), "conv-grid", "bernoulli"),  # a 2x2 grid of latents
    ((2, 13, 11), "conv-grid", "gaussian-learned"),  # a 4x3 grid: odd sizes land exactly
]


# Settings a tiny model of three latents needs: a condition's size, a sparse code's k, a few importance samples, a
# small latent discriminator, few projections, a mixture of two.
TINY = {"cvae": {"condition_dim": 3}, "unscented-ae": {"kappa": 0.5}, "autogen": {"m": 2.0},
        **{name: {"k": 2} for name in ("topk-sae", "batchtopk-sae", "matryoshka-sae", "gradient-sae")},
        "miwae": {"n_bounds": 2, "n_samples": 3}, "piwae": {"n_bounds": 2, "n_samples": 3}, "ciwae": {"n_samples": 4},
        "wae-gan": {"disc_hidden": (8,)}, "swae": {"projections": 8}, "rae": {"options": {"prior": {"components": 2}}},
        "vis": {"n_samples": 3}, "coupled-vae": {"prior_draws": 8}, "vamp-vae": {"components": 4},
        "factor-vae": {"disc_hidden": (8,)}, "joint-vae": {"discrete": (2,)}, "ivae": {"condition_dim": 3},
        "msp": {"attributes": 3}}
# Families that are not encoder -> bottleneck -> decoder autoencoders (ViTs, SparK's CNN), with their tiny sizes.
VIT = {"mae": {"width": 8, "depth": 1, "heads": 2, "decoder_width": 8, "decoder_depth": 1, "decoder_heads": 2},
       "classifier": {"width": 8, "depth": 1, "heads": 2, "classes": 3},
       "spark": {"width": 4}}  # a CNN: its patch is its stride


def is_autoencoder(name):
    return issubclass(model_entry(name).model_class, Autoencoder)


def tiny(name, shape, backbone, likelihood, **kw):
    if name == "code-prior":  # a prior over the codes of a tiny quantised model of these data
        source = {"data_shape": list(shape), "backbone": backbone, "likelihood": likelihood, "latent_dim": 3,
                  "hidden": [16], "channels": [4, 8], "codebook_size": 8}
        return aekit.build_model(name, data_shape=shape, source_model="vq-vae", source_config=source, width=8,
                                 depth=1, heads=2, **kw)
    if not is_autoencoder(name):  # a ViT: the largest patch of 4, 2, 1 that divides the image
        patch = next((p for p in (4, 2, 1) if len(shape) == 3 and shape[1] % p == 0 and shape[2] % p == 0), 1)
        patch = {} if name == "spark" else {"patch_size": patch}
        return aekit.build_model(name, data_shape=shape, **patch, **VIT[name], **kw)
    return aekit.build_model(name, data_shape=shape, backbone=backbone, likelihood=likelihood, latent_dim=3,
                             hidden=(16,), channels=(4, 8), **TINY.get(name, {}), **kw)


def batch(x):
    """Inputs with labels 0, 1, 2, 0, ...: a conditional model conditions on them, the others ignore them."""
    return Batch(x, labels=torch.arange(len(x)) % 3)


def sample_kwargs(model):
    return {"condition": 1} if model.config.condition_dim else {}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape,backbone,likelihood", SHAPES)
def test_shapes_and_loss(name, shape, backbone, likelihood):
    torch.manual_seed(0)
    if name in VIT and backbone == "conv-grid":
        return  # a ViT or a masked CNN has no backbone to choose
    if name in VIT and len(shape) != 3:
        with pytest.raises(ConfigError, match="takes images"):
            tiny(name, shape, backbone, likelihood)
        return
    model = tiny(name, shape, backbone, likelihood)
    x = torch.rand(4, *shape)
    b = batch(x)
    out = model(b)
    declared = model.objective().terms  # a whole-batch term (an MMD) is one value per batch
    assert out.terms and all(term.shape == (() if declared[name].batch else (4,)) for name, term in out.terms.items())
    loss = model.objective()(out, step=0, batch=b)
    assert set(loss.losses) == set(model.parameter_groups())
    for value in loss.losses.values():
        assert value.dim() == 0 and torch.isfinite(value)
    sum(loss.losses.values()).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    model.eval()
    condition = model.condition_of(b)
    if "reconstruction" in model.suites:
        assert model.reconstruct(b).shape == x.shape
        assert model.reconstruct(x.numpy(), condition=condition).shape == x.shape  # numpy in, numpy out
    if not is_autoencoder(name):
        if model.has_prior:  # a prior over another model's codes
            assert model.sample(5, generator=torch.Generator().manual_seed(0)).shape == (5, *shape)
            return
        assert model.embed(b).shape[0] == 4 and model.embed(b).dim() == 2
        with pytest.raises(DataError, match="no prior"):
            model.sample(2)
        return
    m = model.likelihood.param_multiplier
    latent = model.bottleneck.latent_shape  # (3,), or (*L, 3) on a grid
    assert latent[-1] == 3 and (len(latent) == 3) == (backbone == "conv-grid")
    assert out.x_params.shape[1:] == (4, shape[0] * m, *shape[1:])
    assert model.embed(b).shape == (4, *latent)
    encoded = model.encode(x, condition=condition)
    weights = encoded.sample_weights  # sigma points: all 2d + 1 of them, whatever n_samples
    assert encoded.z.shape == (1 if weights is None else len(weights), 4, *latent)
    c5 = None if condition is None else condition[torch.arange(5) % 4]
    assert model.decode(torch.zeros(2, 5, *latent), c5).shape == (2, 5, shape[0] * m, *shape[1:])
    if model.has_prior:
        samples = model.sample(5, generator=torch.Generator().manual_seed(0), **sample_kwargs(model))
        assert samples.shape == (5, *shape)
    else:
        with pytest.raises(DataError, match="no prior"):
            model.sample(2)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name, tmp_path):
    model = tiny(name, (3, 32, 32), "conv", "logistic")
    path = aekit.save_model(model, tmp_path / "m")
    assert sorted(p.name for p in path.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = aekit.load(path)
    assert loaded.config == model.config and type(loaded) is type(model)
    model.eval()
    b = batch(torch.rand(2, 3, 32, 32))
    torch.manual_seed(0)  # a masked model draws its mask
    first = model(b).terms
    torch.manual_seed(0)
    again = loaded(b).terms
    assert all(torch.equal(again[k], v) for k, v in first.items())
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


@pytest.mark.parametrize("name", NAMES)
def test_determinism_under_seed(name):
    def run():
        torch.manual_seed(123)
        model = tiny(name, (1, 8, 8), "conv", "bernoulli")
        torch.manual_seed(7)
        return model(batch(torch.rand(3, 1, 8, 8))).terms

    first, second = run(), run()
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize("name", NAMES)
def test_tiny_model_learns(name):
    """A loop of its own, as a user writes one, running the parts' step hooks as aekit's loop does."""
    import warnings

    torch.manual_seed(0)
    model = tiny(name, (1, 8, 8), "mlp", "bernoulli")
    patterns = (torch.rand(2, 1, 8, 8) > 0.5).float()
    b = Batch(patterns[torch.arange(16) % 2], labels=torch.arange(16) % 2)  # the label is the pattern
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    objective = model.objective()
    hooks = aekit.StepHooks(model, total_steps=100)
    first = None
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*without its step hooks")  # they run: no warning
        for step in range(100):
            hooks.start(step)
            out = model(b)
            loss = objective(out, step, b).total
            first = first if first is not None else loss.item()
            opt.zero_grad()
            loss.backward()
            hooks.before_step(step, outputs=[out], batches=[b])
            opt.step()
            hooks.after_step(step, outputs=[out], batches=[b])
    assert loss.item() < 0.7 * first


@pytest.mark.parametrize("name", NAMES)
def test_wrong_input_shape_and_dtype_are_clear_errors(name):
    model = tiny(name, (1, 8, 8), "mlp", "bernoulli")
    with pytest.raises(DataError, match=r"\(1, 28, 28\).*\(1, 8, 8\)"):
        model(batch(torch.rand(2, 1, 28, 28)))
    with pytest.raises(DataError, match="dtype"):
        model(batch(torch.zeros(2, 1, 8, 8, dtype=torch.uint8)))


def test_registry_rejects_duplicates_and_unknown_names():
    from aekit.registry import register_model

    with pytest.raises(ValueError, match="registered twice"):
        register_model("vae", config=object, description="")(object)
    with pytest.raises(aekit.AekitError, match="not registered"):
        aekit.build_model("no-such-model")
    with pytest.raises(aekit.AekitError, match="unknown vae config key"):
        aekit.build_model("vae", latent_dims=3)
    with pytest.raises(aekit.AekitError, match="latent_dim=0"):
        aekit.build_model("vae", latent_dim=0)


def test_user_supplied_encoder_and_decoder():
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    encoder.out_features = 10
    decoder = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.Unflatten(1, (1, 8, 8)))
    model = aekit.build_model("vae", data_shape=(1, 8, 8), latent_dim=2, encoder=encoder, decoder=decoder)
    assert model.encoder is encoder and model.decoder is decoder
    assert model(torch.rand(3, 1, 8, 8)).terms["kl"].shape == (3,)


def test_denoising_corrupts_only_in_training_and_scores_the_clean_input():
    model = aekit.build_model("dae", data_shape=(4,), latent_dim=2, hidden=(8,), likelihood="gaussian",
                              noise="masking", noise_level=0.5)
    x = torch.rand(3, 4)
    noise = torch.zeros(3, 4)  # every uniform < 0.5: the whole input is masked
    out = model(x, noise=noise)
    expected = model.likelihood.nll(model.decode(model.encode(torch.zeros(3, 4)).z), x).mean(0)
    assert torch.allclose(out.terms["recon"], expected)
    model.eval()
    assert torch.allclose(model(x).terms["recon"], model.likelihood.nll(model.decode(model.encode(x).z), x).mean(0))
