"""Sample quality: precision and recall of generated samples against real ones (Kynkäänniemi, Karras, Laine,
Lehtinen & Aila 2019, "Improved Precision and Recall Metric for Assessing Generative Models").

Each set approximates its manifold by k-NN balls: a point phi belongs to the manifold of a set Phi when it lies in
the ball of some phi' in Phi whose radius is the distance from phi' to its k-th nearest neighbour in Phi (itself
excluded),

    f(phi, Phi) = 1  if  ||phi - phi'||_2 <= ||phi' - NN_k(phi', Phi)||_2  for at least one phi' in Phi,

    precision(Phi_r, Phi_g) = 1/|Phi_g| sum_{phi_g} f(phi_g, Phi_r),
    recall(Phi_r, Phi_g)    = 1/|Phi_r| sum_{phi_r} f(phi_r, Phi_g).

Precision is the share of samples that look like some real example (fidelity); recall is the share of real
examples that some sample resembles (coverage). The paper uses k = 3 and VGG-16 features; here the features are
whatever the caller gives (aekit's sampler report uses the trained model's own posterior means).
"""

from __future__ import annotations

import torch

from aekit.errors import DataError

ROWS_AT_ONCE = 1024  # rows of a distance matrix held at a time


def knn_radii(features: torch.Tensor, k: int = 3) -> torch.Tensor:
    """``[N]``: each row's distance to its k-th nearest other row of ``features [N, F]`` (the row itself, at
    distance 0, is not counted)."""
    features = features.double()
    radii = [torch.cdist(chunk, features).topk(k + 1, dim=1, largest=False).values[:, k]  # [rows, k + 1] -> [rows]
             for chunk in features.split(ROWS_AT_ONCE)]
    return torch.cat(radii)


def in_manifold(points: torch.Tensor, support: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """``[M]`` bools: f(phi, Phi) for each row phi of ``points [M, F]``, Phi being ``support [N, F]`` with its k-NN
    ``radii [N]``."""
    support = support.double()
    inside = [(torch.cdist(chunk.double(), support) <= radii).any(dim=1) for chunk in points.split(ROWS_AT_ONCE)]
    return torch.cat(inside)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> dict[str, float]:
    """Kynkäänniemi et al.'s (2019) precision and recall (module docstring) of samples ``fake [M, F]`` against
    ``real [N, F]`` with k-NN manifolds of ``k`` neighbours: ``{"precision": p, "recall": r}``, each in [0, 1]."""
    real, fake = real.flatten(1), fake.flatten(1)
    if k < 1:
        raise DataError(f"k={k}: the manifolds need at least one neighbour; pass k >= 1 (the paper's k is 3)")
    for name, rows in (("real", real), ("fake", fake)):
        if len(rows) <= k:
            raise DataError(f"{name} has {len(rows)} rows; the k-NN manifold with k={k} needs more than {k}")
    if real.shape[1] != fake.shape[1]:
        raise DataError(f"real rows have {real.shape[1]} features and fake rows {fake.shape[1]}; give both in the "
                        "same feature space")
    precision = in_manifold(fake, real, knn_radii(real, k)).double().mean().item()
    recall = in_manifold(real, fake, knn_radii(fake, k)).double().mean().item()
    return {"precision": precision, "recall": recall}
