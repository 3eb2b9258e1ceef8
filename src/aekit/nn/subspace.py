"""Matrix subspace projection (Li, Liu, Gao & Han 2020, "Latent Space Factorisation and Manipulation via Matrix
Subspace Projection").

A linear map M ``[K, D]`` reads K attributes from a code z ``[D]``, y_hat = M z. Its complement N ``[D - K, D]``,
the orthonormal rows spanning the null space of M, reads everything else: U = [M; N] is invertible (orthogonal
when M's rows are orthonormal) and N M^T = 0. The attribute information is pushed into M's subspace by

    L_MSP = alpha ||M z - y||^2 + beta ||N z||^2,   ||N z||^2 = ||(I - M^+ M) z||^2,

(the second form: N^T N = I - M^+ M is the projection onto the complement of M's rows, computed from M by the
pseudo-inverse, whose gradient exists where a basis of the null space has none). An attribute is edited by
replacing the attribute part of U z and mapping back (the paper's editing rule):

    z' = U^{-1} [y'; N z] = z + M^+ (y' - M z),

so that M z' = y' exactly and N z' = N z. The reference implementation (as ported in disent) takes M^T for M^+
(exact for orthonormal rows): its loss is ||M z - y||^2 + ||z - M^T y||^2 and its edit z + M^T (y' - M z).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from aekit.objectives import Term


class SubspaceProjection(nn.Module):
    """M ``[K, D]`` (Xavier-normal start) and the terms ``msp_attr`` = ||M z - y||^2 and ``msp_null`` = ||N z||^2
    per example, for codes ``z [B, D]`` and attributes ``y [B, K]``."""

    terms: ClassVar[dict[str, Term]] = {"msp_attr": Term(), "msp_null": Term()}

    def __init__(self, latent_dim: int, attributes: int) -> None:
        super().__init__()
        self.M = nn.Parameter(torch.randn(attributes, latent_dim) * math.sqrt(2.0 / (attributes + latent_dim)))

    def attributes(self, z: torch.Tensor) -> torch.Tensor:
        """y_hat = M z: ``[..., D] -> [..., K]``."""
        return z @ self.M.T

    def complement_projection(self) -> torch.Tensor:
        """I - M^+ M ``[D, D]``: the projection onto the null space of M (N^T N)."""
        return torch.eye(self.M.shape[1], dtype=self.M.dtype, device=self.M.device) - torch.linalg.pinv(self.M) @ self.M

    @torch.no_grad()
    def complement(self) -> torch.Tensor:
        """N ``[D - K, D]``: orthonormal rows spanning the null space of M (the last right singular vectors)."""
        _, _, vh = torch.linalg.svd(self.M, full_matrices=True)  # vh [D, D]
        return vh[self.M.shape[0]:]

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``msp_null`` ``[B]``, and ``msp_attr`` ``[B]`` where the attributes ``y`` are given."""
        terms = {"msp_null": (z @ self.complement_projection()).pow(2).sum(-1)}  # P symmetric: P z = z P
        if y is not None:
            terms["msp_attr"] = (self.attributes(z) - y.to(z.dtype)).pow(2).sum(-1)
        return terms

    def edit(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """z' = U^{-1} [y'; N z] for codes ``z [B, D]`` and the wanted attributes ``y [B, K]``: M z' = y',
        N z' = N z."""
        n = self.complement()
        u = torch.cat([self.M, n])  # U [D, D]
        parts = torch.cat([y.to(z.dtype), z @ n.T], dim=-1)  # [y'; N z] [B, D]
        return torch.linalg.solve(u, parts.T).T
