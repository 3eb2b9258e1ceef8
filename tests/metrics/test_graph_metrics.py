"""Link-prediction scores against scikit-learn's definitions, and the node probe."""

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from aekit.metrics.graph import average_precision, link_scores, node_probe_accuracy, roc_auc


@pytest.mark.parametrize("seed", range(5))
def test_auc_and_ap_equal_scikit_learns_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.normal(size=200) + labels, 1)  # rounded: many ties
    s, y = torch.tensor(scores), torch.tensor(labels)
    assert roc_auc(s, y) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert average_precision(s, y) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)


def test_link_scores_by_hand():
    scores = link_scores(torch.tensor([3.0, 1.0]), torch.tensor([2.0, 0.0]))
    assert scores["auc"] == pytest.approx(0.75)  # 3 of the 4 (pos, neg) pairs ordered right
    assert scores["ap"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert np.isnan(roc_auc(torch.ones(3), torch.ones(3)))


def test_node_probe_separates_separable_embeddings_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(300) % 3
    z = torch.nn.functional.one_hot(y, 3).float() * 3 + 0.1 * torch.randn(300, 3, generator=g)
    masks = [torch.zeros(300, dtype=torch.bool) for _ in range(3)]
    masks[0][:30], masks[1][30:90], masks[2][90:] = True, True, True
    result = node_probe_accuracy(z, y, *masks, seeds=3, epochs=100)
    assert result["acc"] == 1.0 and len(result["accs"]) == 3
    noise = torch.randn(300, 3, generator=g)
    first = node_probe_accuracy(noise, y, *masks, seeds=2, epochs=50)
    assert first == node_probe_accuracy(noise, y, *masks, seeds=2, epochs=50)
    assert first["acc"] < 0.6  # noise carries no label
