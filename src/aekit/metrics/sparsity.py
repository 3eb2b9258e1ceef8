"""Metrics of sparse codes and dictionaries (sparse autoencoders, transcoders), one definition each.

Each function states its definition; the tests compute each one by hand. Where tools disagree on a definition,
the one used here is said, with why:

- :func:`fraction_of_variance_unexplained` is a ratio of sums over the whole data set, with the data set's mean:
  FVU = sum_n ||x_n - x_hat_n||^2 / sum_n ||x_n - mean_m(x_m)||^2. It is neither the mean of per-row ratios nor
  of per-batch ratios (both weigh rows differently), nor taken about zero instead of the mean (which makes any
  offset look explained). :class:`VarianceAccumulator` gives the same figure batch by batch, exactly.
- :func:`l0` counts the exactly non-zero entries of each code row.
- A latent is dead when it has not fired (been non-zero) on any of the last ``window`` tokens seen
  (:class:`FiringTracker`), Gao et al. 2024's "not fired in the last N tokens".
- :func:`cross_entropy_recovered` is the share of the language-model loss gap closed by the reconstruction,
  against an ablation baseline: (CE_ablated - CE_spliced) / (CE_ablated - CE_clean).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def l0(z: torch.Tensor) -> torch.Tensor:
    """The number of non-zero entries of each code, ``[N, D] -> [N]`` (float, so that it averages): L0 = |{d :
    z_nd != 0}|."""
    return (z != 0).sum(-1).to(torch.float32)


@dataclass
class VarianceAccumulator:
    """The sums behind FVU, added batch by batch in float64, so that the data set's FVU comes out exactly whatever
    the batching: the squared error, and the count, sum and sum of squares of x (for the data set's mean).

    ``add(x, x_hat)`` takes ``[B, ...]`` (every dimension after the first is a feature); ``fvu`` and
    ``explained_variance`` read the figures."""

    error: float = 0.0
    count: int = 0
    total: torch.Tensor | None = None  # sum_n x_n, [F]
    squares: float = 0.0  # sum_n ||x_n||^2

    def add(self, x: torch.Tensor, x_hat: torch.Tensor) -> VarianceAccumulator:
        if x.shape != x_hat.shape:
            raise ValueError(f"x {tuple(x.shape)} and x_hat {tuple(x_hat.shape)} differ in shape; pass one "
                             "reconstruction per row")
        x, x_hat = x.detach().reshape(len(x), -1).double(), x_hat.detach().reshape(len(x_hat), -1).double()
        self.error += float(((x - x_hat) ** 2).sum())
        self.count += len(x)
        self.total = x.sum(0) if self.total is None else self.total + x.sum(0)
        self.squares += float((x**2).sum())
        return self

    @property
    def variance(self) -> float:
        """sum_n ||x_n - mean(x)||^2 = sum_n ||x_n||^2 - N ||mean(x)||^2."""
        if not self.count:
            raise ValueError("no rows were added; add(x, x_hat) at least one batch first")
        mean = self.total / self.count
        return self.squares - self.count * float((mean**2).sum())

    @property
    def fvu(self) -> float:
        """Fraction of variance unexplained of every row added (module docstring); inf when x is constant."""
        variance = self.variance
        return self.error / variance if variance > 0 else float("inf") if self.error > 0 else 0.0

    @property
    def explained_variance(self) -> float:
        """1 - FVU."""
        return 1.0 - self.fvu


def fraction_of_variance_unexplained(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """FVU = sum_n ||x_n - x_hat_n||^2 / sum_n ||x_n - mean(x)||^2, the mean over the rows of ``x`` (module
    docstring); 0 is perfect, 1 is no better than predicting the mean."""
    return VarianceAccumulator().add(x, x_hat).fvu


def explained_variance(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """1 - :func:`fraction_of_variance_unexplained`."""
    return 1.0 - fraction_of_variance_unexplained(x, x_hat)


class FiringTracker:
    """Tokens since each of ``latents`` latents last fired; ``update(z)`` takes a batch of codes ``[B, D]`` in
    order. A latent that has not fired on any of the last ``window`` tokens is dead; one never seen to fire counts
    every token since tracking began."""

    def __init__(self, latents: int, window: int) -> None:
        if window < 1:
            raise ValueError(f"window={window} must be >= 1 token")
        self.window = window
        self.since = torch.zeros(latents, dtype=torch.long)

    def update(self, z: torch.Tensor) -> FiringTracker:
        fired = (z.detach().reshape(-1, z.shape[-1]) != 0)  # [B, D]
        n = fired.shape[0]
        # for a latent that fired in the batch: the tokens after its last firing; else everything added
        last = torch.where(fired.any(0), n - 1 - (fired.flip(0).int().argmax(0)), torch.full_like(self.since, -1))
        self.since = torch.where(last >= 0, (n - 1 - last).to(self.since.device), self.since + n)
        return self

    @property
    def dead(self) -> torch.Tensor:
        """``[D]`` bool: not fired on any of the last ``window`` tokens."""
        return self.since >= self.window

    @property
    def dead_fraction(self) -> float:
        return float(self.dead.float().mean())


def cross_entropy_recovered(ce_clean: float, ce_spliced: float, ce_ablated: float) -> float:
    """The share of the loss gap the reconstruction closes: (CE_ablated - CE_spliced) / (CE_ablated - CE_clean),
    where CE_clean is the model's own loss, CE_spliced its loss with the reconstruction in place of the hooked
    activation and CE_ablated its loss with the activation ablated (zeros or the mean); 1 is a perfect
    reconstruction, 0 no better than the ablation."""
    gap = ce_ablated - ce_clean
    if gap == 0:
        raise ValueError("the ablated loss equals the clean one: the hooked activation does not matter, so no share "
                         "of it can be recovered")
    return (ce_ablated - ce_spliced) / gap


def feature_recovery(true_codes: torch.Tensor, codes: torch.Tensor) -> dict[str, object]:
    """How well learned latents recover known features, from their activations on the same rows.

    ``true_codes [N, F]`` the ground-truth feature activations, ``codes [N, D]`` the learned ones (D >= 1). Each
    true feature is matched to a distinct latent by the Hungarian algorithm on the absolute Pearson correlation of
    their activations over the rows (scipy's ``linear_sum_assignment``); where D < F, F - D features stay unmatched
    and score 0. Returns:

    - ``mcc``: the mean over the F features of the matched |correlation| (the mean correlation coefficient of
      identifiability studies);
    - ``precision [F]``: of the rows where the matched latent fires, the share where the feature is active;
      ``recall [F]``: of the rows where the feature is active, the share where the latent fires; ``f1 [F]`` their
      harmonic mean, and ``mean_f1``;
    - ``match [F]``: the latent matched to each feature (-1: none).

    A feature or latent that never varies has correlation 0 with everything."""
    from scipy.optimize import linear_sum_assignment

    from aekit.metrics.identifiability import correlation_matrix

    t, c = true_codes.detach().double(), codes.detach().double()
    if t.shape[0] != c.shape[0]:
        raise ValueError(f"true_codes has {t.shape[0]} rows and codes {c.shape[0]}; pass both for the same rows")
    corr = torch.from_numpy(correlation_matrix(t, c))  # |corr| [F, D], 0 where either never varies
    rows, cols = linear_sum_assignment(-corr.numpy())
    features = t.shape[1]
    match = torch.full((features,), -1, dtype=torch.long)
    match[torch.as_tensor(rows)] = torch.as_tensor(cols)
    matched = corr[torch.as_tensor(rows), torch.as_tensor(cols)]
    precision, recall = torch.zeros(features, dtype=torch.float64), torch.zeros(features, dtype=torch.float64)
    active, fires = t != 0, c != 0
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        both = float((active[:, i] & fires[:, j]).sum())
        precision[i] = both / max(float(fires[:, j].sum()), 1.0)
        recall[i] = both / max(float(active[:, i].sum()), 1.0)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp_min(1e-300),
                     torch.zeros_like(precision))
    return {"mcc": float(matched.sum()) / features, "precision": precision, "recall": recall, "f1": f1,
            "mean_f1": float(f1.mean()), "match": match}
