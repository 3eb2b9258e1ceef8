"""Bad settings of the regularised autoencoders are one-line errors before anything is built or trained."""

import pytest

import aekit
from aekit import cli
from aekit.errors import ConfigError

NAN, INF = float("nan"), float("inf")
BAD = [
    ("info-vae", {"alpha": 1.5}, "alpha=1.5 must be a finite number <= 1"),
    ("info-vae", {"alpha": NAN}, "alpha=nan"),
    ("info-vae", {"lambda_": -1.0}, "lambda_=-1.0 must be a finite number >= 0"),
    ("info-vae", {"lambda_": 0.0, "alpha": 1.0}, "lambda_=0.0 must be > 0"),
    ("info-vae", {"alpha": -2.0, "lambda_": 1.0}, "alpha + lambda_ - 1 = -2"),
    ("info-vae", {"kernel": "laplace"}, "kernel='laplace' is unknown; choose one of imq, rbf"),
    ("wae-mmd", {"kernel_scales": (1.0, -0.5)}, "kernel_scales=(1.0, -0.5) must hold positive finite numbers"),
    ("wae-mmd", {"prior_variance": INF}, "prior_variance=inf must be a positive finite number"),
    ("wae-mmd", {"lambda_": -1.0}, "lambda_=-1.0 must be a finite number >= 0"),
    ("wae-gan", {"lambda_": INF}, "lambda_=inf must be a finite number >= 0"),
    ("wae-gan", {"disc_hidden": (0,)}, "disc_hidden=(0,) must hold positive widths"),
    ("swae", {"projections": 0}, "projections=0 must be >= 1"),
    ("swae", {"lambda_": NAN}, "lambda_=nan must be a finite number >= 0"),
    ("rae", {"beta": -1.0}, "beta=-1.0 must be a finite number >= 0"),
    ("rae", {"lambda_": INF}, "lambda_=inf"),
    ("rae", {"decoder_penalty": "spectral"}, "decoder_penalty='spectral' is unknown; choose one of l2, gradient"),
    ("rae", {"projections": 0}, "projections=0 must be >= 1"),
    ("rae", {"options": {"prior": {"components": 0}}}, "prior.components=0 must be >= 1"),
    ("contractive-ae", {"jacobian": "magic"}, "jacobian='magic' is unknown; choose one of auto, closed-form, exact"),
    ("contractive-ae", {"lambda_": -0.1}, "lambda_=-0.1 must be a finite number >= 0"),
    ("contractive-ae", {"projections": -3}, "projections=-3 must be >= 1"),
    ("lorae", {"lambda_": NAN}, "lambda_=nan must be a finite number >= 0"),
    ("ae", {"regulariser": "mmd", "options": {"regulariser": {"kernel": "cosine"}}}, "kernel='cosine' is unknown"),
]


@pytest.mark.parametrize("name,settings,fragment", BAD, ids=[f"{n}-{'-'.join(s)}" for n, s, _ in BAD])
def test_bad_settings_are_one_line_config_errors(name, settings, fragment):
    with pytest.raises(ConfigError) as error:
        aekit.build_model(name, **settings)
    assert fragment in str(error.value) and "\n" not in str(error.value)


def test_bad_settings_on_the_command_line_stop_before_training(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["train", "swae", "--data", "digits", "--out", str(out), "--steps", "5", "projections=0"])
    error = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(error) == 1 and "projections=0 must be >= 1" in error[0]
    assert not (out / "log.csv").exists() and not (out / "model").exists()
