"""Every recipe in configs/ names a registered model and dataset and holds only valid keys and values."""

from pathlib import Path

import pytest

from aekit.cli import _read_recipe
from aekit.config import from_dict
from aekit.data import list_datasets
from aekit.registry import make_config
from aekit.run_config import DataConfig, TrainConfig

RECIPES = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_there_are_recipes():
    assert len(RECIPES) >= 5


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_is_valid(path):
    recipe = _read_recipe(str(path))
    model = dict(recipe["model"])
    config = make_config(model.pop("name"), **model)
    assert getattr(config, "latent_dim", 1) > 0
    assert recipe["data"]["name"] in {name for name, _ in list_datasets()}
    from_dict(DataConfig, recipe["data"])
    from_dict(TrainConfig, recipe["train"])
