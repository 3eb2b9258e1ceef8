"""Precision and recall of samples (Kynkäänniemi et al. 2019): the limits and a case worked by hand."""

import pytest
import torch

from aekit.errors import DataError
from aekit.metrics.samples import knn_radii, precision_recall


def test_identical_sets_score_one():
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    assert precision_recall(x, x.clone(), k=3) == {"precision": 1.0, "recall": 1.0}


def test_far_disjoint_sets_score_zero():
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(40, 3, generator=g), torch.randn(30, 3, generator=g) + 100.0
    assert precision_recall(real, fake, k=3) == {"precision": 0.0, "recall": 0.0}


def test_hand_computed_case():
    # real 0, 1, 2, 3 with k = 1: every radius is 1. fake 0.5, 0.6, 10: radii 0.1, 0.1, 9.4.
    # precision: 0.5 and 0.6 lie within 1 of a real point, 10 does not -> 2/3.
    # recall: 0 is 0.5 from 0.5 (> 0.1) and 10 from 10 (> 9.4): out; 1, 2, 3 lie within 9.4 of 10: in -> 3/4.
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    fake = torch.tensor([[0.5], [0.6], [10.0]])
    assert torch.allclose(knn_radii(fake, 1), torch.tensor([0.1, 0.1, 9.4], dtype=torch.float64), atol=1e-6)
    scores = precision_recall(real, fake, k=1)
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(3 / 4)


def test_bad_inputs():
    x = torch.zeros(5, 2)
    with pytest.raises(DataError, match="k=0"):
        precision_recall(x, x, k=0)
    with pytest.raises(DataError, match="fake has 3 rows"):
        precision_recall(x, x[:3], k=3)
    with pytest.raises(DataError, match="same feature space"):
        precision_recall(x, torch.zeros(5, 3), k=1)
