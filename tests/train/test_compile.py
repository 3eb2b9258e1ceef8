"""``compile=true``: each micro-batch's forward and objective under ``torch.compile``, for every model of the
conformance suite (the ``aot_eager`` backend: it compiles in seconds and draws the eager random numbers, so the
first loss is the eager one), once with inductor, and the uncompiled fallback where compilation fails."""

import csv
import math
import sys
import warnings
from pathlib import Path

import pytest
import torch

import aekit
from aekit.errors import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from test_conformance import NAMES, tiny  # noqa: E402  (the conformance suite's models and their tiny configs)

SETTINGS = dict(log_every=1, batch_size=16, val_fraction=0.0, test_fraction=0.0, progress=False, evaluate=False)
REFUSE = "aekit_tests_refuse"


def refuse(graph, example_inputs):
    raise RuntimeError("this backend compiles nothing")


if REFUSE not in torch._dynamo.list_backends(exclude_tags=()):
    torch._dynamo.register_backend(refuse, name=REFUSE)


@pytest.fixture(autouse=True)
def fresh_compiler():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def data():
    generator = torch.Generator().manual_seed(0)
    patterns = (torch.rand(3, 1, 8, 8, generator=generator) > 0.5).float()
    labels = torch.arange(48) % 3
    return patterns[labels], labels  # the label is the pattern


def train_losses(name, out, **overrides):
    """The training losses of a tiny ``name`` built under seed 0, one a step."""
    torch.manual_seed(0)
    model = tiny(name, (1, 8, 8), "mlp", "bernoulli")
    aekit.train(model, data(), out, **{**SETTINGS, **overrides})
    rows = csv.DictReader((out / "log.csv").read_text().splitlines())
    return [float(r["loss"]) for r in rows if r["split"] == "train"]


@pytest.mark.parametrize("name", NAMES)
def test_a_compiled_step_gives_the_eager_loss(name, tmp_path):
    eager = train_losses(name, tmp_path / "eager", steps=1)
    compiled = train_losses(name, tmp_path / "compiled", steps=2, compile=True, compile_backend="aot_eager")
    assert compiled[0] == pytest.approx(eager[0], rel=1e-5) and math.isfinite(compiled[1])


@pytest.mark.slow
def test_inductor_compiles_the_step_of_a_vae(tmp_path):
    eager = train_losses("vae", tmp_path / "eager", steps=2)
    with torch._inductor.config.patch(fallback_random=True):  # the eager random numbers
        compiled = train_losses("vae", tmp_path / "compiled", steps=2, compile=True)
    assert compiled == pytest.approx(eager, rel=1e-5)


def test_a_step_that_does_not_compile_trains_uncompiled_after_one_warning(tmp_path):
    eager = train_losses("vae", tmp_path / "eager", steps=3)
    with pytest.warns(UserWarning, match=r"compile=true: torch.compile cannot compile vae's forward and objective "
                                         r"\(.*this backend compiles nothing.*\); .* set compile=false") as caught:
        compiled = train_losses("vae", tmp_path / "compiled", steps=3, compile=True, compile_backend=REFUSE)
    assert compiled == eager and len([w for w in caught if "compile=true" in str(w.message)]) == 1
    with pytest.raises(ConfigError, match="compile_backend='inductr' is not a torch.compile backend; choose one of"):
        train_losses("vae", tmp_path / "typo", steps=1, compile=True, compile_backend="inductr")
    with pytest.raises(ConfigError, match="compile_mode='fast' is unknown"):
        train_losses("vae", tmp_path / "mode", steps=1, compile=True, compile_mode="fast")


def test_step_hooks_read_the_outputs_of_a_compiled_step(tmp_path):
    import hooked_models  # noqa: F401  (registers hooked-ae; this folder is on sys.path)

    def trained(out, **overrides):
        return aekit.train("hooked-ae", "digits", out, steps=3, hidden=(16,), latent_dim=2, progress=False,
                           evaluate=False, **overrides).model.tracker

    eager = trained(tmp_path / "eager")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="compile=true")  # compiled, not fallen back to eager
        compiled = trained(tmp_path / "compiled", compile=True, compile_backend="aot_eager")
    assert int(compiled.updates) == 3 and torch.allclose(compiled.ema, eager.ema, atol=1e-6)
