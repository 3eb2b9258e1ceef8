"""Graph metrics: ranking scores of held-out edges, and the node-classification probe on frozen embeddings."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def roc_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random negative, ties
    counting one half (the Mann-Whitney U statistic over the average ranks; equals scikit-learn's
    ``roc_auc_score``)."""
    scores, labels = scores.detach().double().flatten().cpu(), labels.flatten().bool().cpu()
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = torch.argsort(scores)
    sorted_scores = scores[order]
    ranks = torch.empty_like(scores)
    _, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True, return_counts=True)
    first = torch.cumsum(counts, 0) - counts + 1  # the first rank of each run of tied scores
    mean_rank = (first + (counts - 1) / 2.0).double()[inverse]  # [E] in sorted order
    ranks[order] = mean_rank
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Average precision: sum_k (R_k - R_{k-1}) P_k over the distinct score thresholds from the highest down
    (scikit-learn's ``average_precision_score``, no interpolation)."""
    scores, labels = scores.detach().double().flatten().cpu(), labels.flatten().double().cpu()
    if labels.sum() == 0:
        return float("nan")
    order = torch.argsort(scores, descending=True, stable=True)
    s, y = scores[order], labels[order]
    tp, fp = torch.cumsum(y, 0), torch.cumsum(1 - y, 0)
    last = torch.ones_like(s, dtype=torch.bool)
    last[:-1] = s[1:] != s[:-1]  # the last position of each threshold
    tp, fp = tp[last], fp[last]
    precision, recall = tp / (tp + fp), tp / labels.sum()
    previous = torch.cat([recall.new_zeros(1), recall[:-1]])
    return float(((recall - previous) * precision).sum())


def link_scores(pos_logits: torch.Tensor, neg_logits: torch.Tensor) -> dict[str, float]:
    """``auc`` and ``ap`` of held-out edges (positive) against sampled non-edges (negative)."""
    scores = torch.cat([pos_logits, neg_logits])
    labels = torch.cat([torch.ones_like(pos_logits), torch.zeros_like(neg_logits)])
    return {"auc": roc_auc(scores, labels), "ap": average_precision(scores, labels)}


def node_probe_accuracy(z: torch.Tensor, y: torch.Tensor, train: torch.Tensor, val: torch.Tensor, test: torch.Tensor,
                        seeds: int = 10, epochs: int = 300, lr: float = 0.01, weight_decay: float = 1e-4,
                        ) -> dict[str, float | list[float]]:
    """Linear probe on frozen node embeddings, GraphMAE's protocol (Hou et al. 2022, Sec. 4.1): logistic
    regression trained with Adam (``lr``, L2 ``weight_decay``) on the train nodes for ``epochs`` full-batch steps;
    the test accuracy at the epoch of best validation accuracy; mean and standard deviation over ``seeds``
    initialisations. Returns ``acc``, ``acc_std``, ``val_acc``, the per-seed ``accs`` and ``acc_last``, the test
    accuracy after the last epoch (the reference prints both)."""
    with torch.enable_grad():  # also when called under no_grad (the evaluation)
        return _node_probe(z.detach().float().cpu(), y.cpu(), train, val, test, seeds, epochs, lr, weight_decay)


def _node_probe(z, y, train, val, test, seeds, epochs, lr, weight_decay) -> dict[str, float | list[float]]:
    classes = int(y.max()) + 1
    accs, vals, lasts = [], [], []
    for seed in range(seeds):
        g = torch.Generator().manual_seed(seed)
        bound = 1.0 / math.sqrt(z.shape[1])  # nn.Linear's default initialisation, drawn from the seed
        weight = ((torch.rand(classes, z.shape[1], generator=g) * 2 - 1) * bound).requires_grad_()
        bias = ((torch.rand(classes, generator=g) * 2 - 1) * bound).requires_grad_()
        optimizer = torch.optim.Adam([weight, bias], lr=lr, weight_decay=weight_decay)
        best_val, best_test = -1.0, 0.0
        for _ in range(epochs):
            loss = F.cross_entropy(F.linear(z[train], weight, bias), y[train])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                predicted = F.linear(z, weight, bias).argmax(1)
                val_acc = float((predicted[val] == y[val]).float().mean())
                if val_acc >= best_val:
                    best_val, best_test = val_acc, float((predicted[test] == y[test]).float().mean())
        accs.append(best_test)
        lasts.append(float((predicted[test] == y[test]).float().mean()))
        vals.append(best_val)
    t = torch.tensor(accs)
    return {"acc": float(t.mean()), "acc_std": float(t.std()) if len(accs) > 1 else 0.0,
            "val_acc": float(torch.tensor(vals).mean()), "acc_last": float(torch.tensor(lasts).mean()),
            "accs": [round(a, 4) for a in accs]}
