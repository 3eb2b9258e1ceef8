import os
from pathlib import Path

import pytest

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture(scope="session", autouse=True)
def _datasets_root():
    """Point $AEKIT_DATA at ../shared/datasets (the layout every registered on-disk dataset expects)."""
    os.environ.setdefault("AEKIT_DATA", str(SHARED_DATASETS))
    yield
