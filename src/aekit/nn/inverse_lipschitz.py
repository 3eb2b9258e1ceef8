"""An inverse-Lipschitz decoder: the decoder of Kinoshita, Oono, Fukumizu, Yoshida & Maeda (2023, "Controlling
Posterior Collapse by an Inverse Lipschitz Constraint on the Decoder Network", ICML), built on the Brenier-map
decoder of LIDVAE (Wang, Blei & Cunningham 2021, "Posterior Collapse and Latent Variable Non-identifiability").

A function f is L-inverse Lipschitz when ||f(z_1) - f(z_2)|| >= L ||z_1 - z_2|| for all z_1, z_2: the decoder
cannot map two codes far apart to outputs close together, so the likelihood cannot ignore the code, and the
posterior cannot collapse to the prior. The paper bounds how far the posterior stays from the prior by a term that
grows with L^2; L is the knob.

The construction. For a convex F, the gradient of F(y) + (alpha / 2) ||y||^2 is strongly monotone,

    <g(y_1) - g(y_2), y_1 - y_2> >= alpha ||y_1 - y_2||^2,   g(y) = grad F(y) + alpha y,

hence alpha-inverse Lipschitz (Cauchy-Schwarz); F is an input-convex network (Amos, Xu & Kolter 2017), and g a
Brenier map. From a code of d coordinates to an output of n >= d, the decoder is

    f = g_2 o beta o g_1,   g_1 on R^d,   beta: R^d -> R^n a matrix with orthonormal columns,   g_2 on R^n,

each g_i with alpha = sqrt(L), so that the composition is L-inverse Lipschitz (the constants multiply; beta's is
1). The paper's main text takes beta(y) = (y, 0) (``embedding="pad"``); by default beta is a fixed random
orthonormal embedding (drawn once from a fixed seed, kept with the weights), so that the alpha y term of g_2 is
spread over every output rather than spent on the first d (for images, d border pixels that are always 0, where a
Bernoulli likelihood barely notices it). With L = 0 it is LIDVAE's injective decoder, with no bound. The output
is the likelihood's parameters (the logits of a Bernoulli likelihood; the mean, then the log-scale, of a Gaussian
one with a learned scale), and the bound holds for them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from aekit.config import require, require_choice


class InputConvexNetwork(nn.Module):
    """F: R^n -> R, convex in its input y (Amos, Xu & Kolter 2017), with ``depth`` hidden layers of ``width``:

        h_1 = s(A_1 y + b_1),   h_{k+1} = s(W_k h_k + A_{k+1} y + b_{k+1}),   F(y) = w^T h_K + a^T y,

    s = softplus (convex, increasing) and W_k, w >= 0 (softplus of free parameters), so each h_k is convex in y.
    :meth:`gradient` gives grad F(y) by the chain rule written out, so it needs no autograd graph (it works under
    ``torch.no_grad``) and trains as an ordinary forward."""

    def __init__(self, dim: int, width: int, depth: int) -> None:
        super().__init__()
        self.inputs = nn.ModuleList(nn.Linear(dim, width) for _ in range(depth))  # A_k, b_k
        start = math.log(math.expm1(1.0 / width))  # softplus(start) = 1/width: each layer averages the last
        self.hidden = nn.ParameterList(nn.Parameter(start + 0.1 * torch.randn(width, width))
                                       for _ in range(depth - 1))  # W_k before the softplus
        self.out = nn.Parameter(start + 0.1 * torch.randn(width))  # w before the softplus
        self.skip = nn.Parameter(torch.zeros(dim))  # a

    def pre_activations(self, y: torch.Tensor) -> list[torch.Tensor]:
        """u_k = W_{k-1} h_{k-1} + A_k y + b_k for each layer: ``y [N, n] -> [N, width]`` each."""
        u: list[torch.Tensor] = []
        for k, layer in enumerate(self.inputs):
            term = layer(y)
            u.append(term if k == 0 else term + F.softplus(u[-1]) @ F.softplus(self.hidden[k - 1]).T)
        return u

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """F(y): ``[N, n] -> [N]``."""
        return F.softplus(self.pre_activations(y)[-1]) @ F.softplus(self.out) + y @ self.skip

    def gradient(self, y: torch.Tensor) -> torch.Tensor:
        """grad_y F(y) ``[N, n]``: delta_K = w * s'(u_K), delta_k = (W_k^T delta_{k+1}) * s'(u_k) (s' = sigmoid),
        and grad F = a + sum_k A_k^T delta_k."""
        u = self.pre_activations(y)
        delta = F.softplus(self.out) * torch.sigmoid(u[-1])  # dF/du_K  [N, width]
        grad = self.skip + delta @ self.inputs[-1].weight  # [N, width] @ [width, n] -> [N, n]
        for k in range(len(u) - 2, -1, -1):
            delta = (delta @ F.softplus(self.hidden[k])) * torch.sigmoid(u[k])  # dF/du_k
            grad = grad + delta @ self.inputs[k].weight
        return grad


class BrenierMap(nn.Module):
    """g(y) = grad F(y) + alpha y with F input-convex: alpha-inverse Lipschitz on R^n (module docstring)."""

    def __init__(self, dim: int, alpha: float, width: int, depth: int) -> None:
        super().__init__()
        self.potential = InputConvexNetwork(dim, width, depth)
        self.alpha = alpha

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.potential.gradient(y) + self.alpha * y  # [N, n]


def padding(n: int, d: int) -> torch.Tensor:
    """beta(y) = (y, 0): the first d of n coordinates, ``[n, d]``."""
    return torch.eye(n, d)


def random_orthonormal(n: int, d: int) -> torch.Tensor:
    """d orthonormal columns in R^n from the QR factorisation of a Gaussian matrix with a fixed seed, ``[n, d]``."""
    gaussian = torch.randn(n, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return torch.linalg.qr(gaussian).Q.float()


EMBEDDINGS = {"orthonormal": random_orthonormal, "pad": padding}


class InverseLipschitzDecoder(nn.Module):
    """``z [N, d] -> params [N, *out_shape]`` by f = g_2 o beta o g_1, L-inverse Lipschitz from the code to the
    flattened output (module docstring); ``width`` and ``depth`` size each Brenier map's input-convex network."""

    def __init__(self, latent_dim: int, out_shape: Sequence[int], inverse_lipschitz: float = 1.0,
                 width: int = 256, depth: int = 2, embedding: str = "orthonormal") -> None:
        super().__init__()
        n = math.prod(out_shape)
        require(math.isfinite(inverse_lipschitz) and inverse_lipschitz >= 0,
                f"inverse_lipschitz={inverse_lipschitz} must be a finite number >= 0 (0: no lower bound)")
        require(width >= 1 and depth >= 1, f"icnn_width={width} and icnn_depth={depth} must be >= 1")
        require(n >= latent_dim, f"the inverse-Lipschitz decoder embeds the {latent_dim} latent coordinates into the "
                f"{n} outputs, which must be as many or more; lower latent_dim")
        require_choice(embedding, EMBEDDINGS, "embedding")
        self.out_shape = tuple(out_shape)
        self.register_buffer("beta", EMBEDDINGS[embedding](n, latent_dim))  # [n, d], orthonormal columns
        self.inverse_lipschitz = inverse_lipschitz
        alpha = math.sqrt(inverse_lipschitz)  # g_2 o beta o g_1: alpha * 1 * alpha = L
        self.latent_map = BrenierMap(latent_dim, alpha, width, depth)  # g_1 on R^d
        self.output_map = BrenierMap(n, alpha, width, depth)  # g_2 on R^n

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        y = self.latent_map(z) @ self.beta.T  # beta: [N, d] -> [N, n]
        return self.output_map(y).view(-1, *self.out_shape)  # [N, n] -> [N, *out_shape]
