"""Perceptual reconstruction losses, registered as likelihoods: MS-SSIM and a feature-consistent loss.

Neither is a normalised density: each "negative log-likelihood" is a loss per example that stands in the
``recon`` term's place, and ``mean`` is the decoder's output itself.

- ``msssim``: 1 - MS-SSIM(x, x_hat) (Wang, Simoncelli & Bovik 2003, "Multi-scale structural similarity for image
  quality assessment"), as Pythae's MSSSIM_VAE scores a reconstruction. At scale j (the image average-pooled
  j - 1 times), with Gaussian-window (11 x 11, sigma 1.5) local means mu, variances sigma^2 and covariance,

      l_j = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1),   cs_j = (2 sigma_xy + C2) / (sigma_x^2 + sigma_y^2 + C2),

  C1 = (K1 L)^2, C2 = (K2 L)^2, K1 = 0.01, K2 = 0.03, L = 1 (data in [0, 1]), each averaged over the image;
  ssim_j = mean(l_j cs_j). Wang et al.'s index over M = 5 scales with weights w = (0.0448, 0.2856, 0.3001,
  0.2363, 0.1333) is

      MS-SSIM = ssim_M^{w_M} prod_{j<M} cs_j^{w_j}                                        (``form=wang``)

  Pythae's implementation (from jorge-pessoa/pytorch-msssim), which ``form=pythae`` (the default) reproduces
  value for value, maps each ssim_j and cs_j to (s + 1) / 2 (both forms do: a negative base has no real power),
  raises the last scale to (M - 1) w_M, and takes fewer scales for small images, by their smaller side:
  < 4 px one scale, < 8 two, < 16 three, < 32 four (weights (0.3117, 0.3384, 0.2675, 0.0824) for MNIST's 28 x 28),
  else five. With one scale Pythae's product is empty (MS-SSIM = 1, whatever the images): here images under
  4 px are a ConfigError instead. The windows are zero-padded (``same`` size). Pythae averages over the whole
  batch before the product; here each example has its own index (a batch of one gives Pythae's value).
- ``feature``: the feature-perceptual loss of DFC-VAE (Hou, Shen, Sun & Qiu 2017, "Deep Feature Consistent
  Variational Autoencoder", eq. 6),

      L_rec(x, x_hat) = sum_l alpha_l || phi_l(x) - phi_l(x_hat) ||^2 + lambda_pix || x - x_hat ||^2,

  phi_l the activations of layer l of a frozen network phi (``feature_layers``, names of its submodules; none:
  its output), alpha_l = ``layer_weights`` (1 each by default), lambda_pix = ``pixel_weight`` (0 by default).
  phi is a user ``nn.Module`` or an aekit model folder (``feature_network=runs/xyz``: its encoder). It stays in
  evaluation mode and out of the optimisers; its weights are part of the model's saved weights.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from aekit.errors import ConfigError, DataError
from aekit.nn.likelihoods import Likelihood
from aekit.parts import PartContext, register_part

MSSSIM_FORMS = ("pythae", "wang")

# Scale weights by the images' smaller side: (bound, weights) for sides below the bound, five scales beyond.
_SCALE_WEIGHTS = (
    (8, (0.3222, 0.6778)),
    (16, (0.4558, 0.1633, 0.3809)),
    (32, (0.3117, 0.3384, 0.2675, 0.0824)),
)
WANG_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, five scales


def scale_weights(side: int) -> tuple[float, ...]:
    """The MS-SSIM weight of each scale for images whose smaller side is ``side`` px (module docstring)."""
    if side < 4:
        raise ConfigError(f"msssim: images of {side} px on their smaller side are too small for MS-SSIM (at least "
                          "4 px); use likelihood=bernoulli or gaussian for such data")
    return next((weights for bound, weights in _SCALE_WEIGHTS if side < bound), WANG_WEIGHTS)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """The normalised 1-d Gaussian window ``[size]`` centred on ``size // 2``."""
    offsets = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(offsets**2) / (2 * sigma**2))
    return (g / g.sum()).float()


def ssim_and_cs(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor, k1: float = 0.01, k2: float = 0.03
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example, SSIM(x, y) = mean(l cs) and the contrast-structure mean(cs) at one scale: ``x, y [N, C, H, W]
    -> ([N], [N])``, local statistics under the window ``[k]`` (the 2-d window is its outer product, applied as two
    1-d passes), zero-padded to the same size."""
    channels, k = x.shape[1], window.numel()
    moments = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # [N, 5C, H, W]: every local statistic in one pass
    w = window.to(x).expand(5 * channels, 1, k)  # [5C, 1, k]
    local = F.conv2d(moments, w.unsqueeze(-1), padding=(k // 2, 0), groups=5 * channels)  # down the rows
    local = F.conv2d(local, w.unsqueeze(-2), padding=(0, k // 2), groups=5 * channels)  # then along them
    mu_x, mu_y, xx, yy, xy = local.chunk(5, dim=1)  # each [N, C, H, W]
    var_x, var_y, cov_xy = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    c1, c2 = k1**2, k2**2
    cs_map = (2 * cov_xy + c2) / (var_x + var_y + c2)
    l_map = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (l_map * cs_map).mean((1, 2, 3)), cs_map.mean((1, 2, 3))


def ms_ssim(x: torch.Tensor, y: torch.Tensor, window_size: int = 11, window_sigma: float = 1.5,
            form: str = "pythae") -> torch.Tensor:
    """MS-SSIM of each pair of images, ``x, y [N, C, H, W] -> [N]`` (module docstring for the two forms)."""
    if form not in MSSSIM_FORMS:
        raise ConfigError(f"msssim form={form!r} is unknown; choose one of {', '.join(MSSSIM_FORMS)}")
    weights = torch.tensor(scale_weights(min(x.shape[-2:])), dtype=x.dtype, device=x.device)  # [M]
    window = gaussian_window(window_size, window_sigma)
    ssims, css = [], []
    for level in range(len(weights)):
        if level:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        ssim, cs = ssim_and_cs(x, y, window)
        ssims.append(ssim)
        css.append(cs)
    ssim_last = (ssims[-1] + 1) / 2  # [N], mapped into [0, 1] as Pythae does
    cs_scales = (torch.stack(css[:-1], dim=-1) + 1) / 2  # [N, M - 1]
    last_power = weights[-1] * (len(weights) - 1 if form == "pythae" else 1)
    return (cs_scales ** weights[:-1]).prod(-1) * ssim_last**last_power


class MSSSIM(Likelihood):
    """-log p(x | z) := 1 - MS-SSIM(x, x_hat) per example, x_hat the decoder's output (module docstring)."""

    def __init__(self, data_shape: tuple[int, ...], window_size: int = 11, window_sigma: float = 1.5,
                 form: str = "pythae") -> None:
        super().__init__(data_shape)
        if len(self.data_shape) != 3:
            raise ConfigError(f"likelihood=msssim scores images (C, H, W); data_shape={self.data_shape} is not one; "
                              "use likelihood=gaussian or bernoulli")
        if form not in MSSSIM_FORMS:
            raise ConfigError(f"likelihood.form={form!r} is unknown; choose one of {', '.join(MSSSIM_FORMS)}")
        if window_size < 1 or window_size % 2 == 0 or window_sigma <= 0:
            raise ConfigError(f"likelihood.window_size={window_size} must be odd and >= 1 and window_sigma="
                              f"{window_sigma} > 0")
        scale_weights(min(self.data_shape[1:]))  # too small an image is an error now, not at the first step
        self.window_size, self.window_sigma, self.form = window_size, window_sigma, form

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``params [..., B, C, H, W], x [B, C, H, W] -> [..., B]``."""
        lead = params.shape[: params.dim() - 3]  # (..., B)
        x_hat = params.reshape(-1, *params.shape[-3:])  # [N, C, H, W], N = prod(lead)
        target = x.expand_as(params).reshape(x_hat.shape)
        return (1 - ms_ssim(target, x_hat, self.window_size, self.window_sigma, self.form)).view(lead)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return params

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        return params


def load_feature_network(path: str | os.PathLike, data_shape: tuple[int, ...]) -> nn.Module:
    """The encoder of the aekit model saved in ``path``, trained on examples of ``data_shape``."""
    from aekit.io import load

    if not os.path.exists(path):
        raise DataError(f"feature_network={path}: no such model folder; train one first (aekit train ...) or pass "
                        "an nn.Module, build_model('dfc-vae', feature_network=module)")
    model = load(path)
    source_shape = tuple(getattr(model.config, "data_shape", ()))
    if source_shape != tuple(data_shape):
        raise DataError(f"feature_network={path} was trained on examples of shape {source_shape}, these are "
                        f"{tuple(data_shape)}; use a model trained on data of this shape")
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, nn.Module):
        raise DataError(f"feature_network={path}: a {model.name} has no encoder to take features from")
    return encoder


class FeatureConsistent(Likelihood):
    """DFC-VAE's loss, sum_l alpha_l ||phi_l(x) - phi_l(x_hat)||^2 + lambda_pix ||x - x_hat||^2 per example
    (module docstring), phi frozen: no gradient reaches its weights, though one passes through it to x_hat."""

    def __init__(self, data_shape: tuple[int, ...], network: nn.Module, layers: Sequence[str] = (),
                 layer_weights: Sequence[float] = (), pixel_weight: float = 0.0) -> None:
        super().__init__(data_shape)
        self.layers = tuple(layers)
        self.layer_weights = tuple(float(w) for w in layer_weights) or (1.0,) * max(len(self.layers), 1)
        if len(self.layer_weights) != max(len(self.layers), 1):
            raise ConfigError(f"layer_weights={list(self.layer_weights)}: one weight per feature layer "
                              f"({list(self.layers) or ['output']})")
        if min(self.layer_weights) < 0 or not math.isfinite(pixel_weight) or pixel_weight < 0:
            raise ConfigError(f"layer_weights={list(self.layer_weights)} and pixel_weight={pixel_weight} must be >= 0")
        known = dict(network.named_modules())
        unknown = [name for name in self.layers if name not in known or not name]
        if unknown:
            raise ConfigError(f"feature_layers: the feature network has no layer {unknown[0]!r}; its layers are "
                              f"{', '.join(name for name in known if name)}")
        self.network, self.pixel_weight = network.requires_grad_(False).eval(), float(pixel_weight)
        self.check_fits()

    def train(self, mode: bool = True) -> FeatureConsistent:
        super().train(mode)
        self.network.eval()  # always: no dropout, BatchNorm's running statistics
        return self

    def check_fits(self) -> None:
        """One pass on a blank example: a network that does not take the data is a DataError naming the shapes."""
        device = next(iter(self.network.parameters()), torch.empty(0)).device
        try:
            with torch.no_grad():
                self.features(torch.zeros(1, *self.data_shape, device=device))
        except (RuntimeError, ValueError, TypeError) as exc:
            reason = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise DataError(f"feature_network does not take examples of shape {self.data_shape} ([B, "
                            f"{', '.join(map(str, self.data_shape))}]): {reason[:200]}; pass a network made for "
                            "these data") from None

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """phi_l(x) for each chosen layer (the network's output when none is chosen), ``x [N, *S]``."""
        found: dict[str, torch.Tensor] = {}
        handles = [self.network.get_submodule(name).register_forward_hook(
            lambda module, inputs, output, name=name: found.__setitem__(name, output)) for name in self.layers]
        try:
            output = self.network(x)
        finally:
            for handle in handles:
                handle.remove()
        return [found[name] for name in self.layers] if self.layers else [output]

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``params [..., B, *S], x [B, *S] -> [..., B]``."""
        lead = params.shape[: params.dim() - len(self.data_shape)]  # (..., B)
        x_hat = params.reshape(-1, *self.data_shape)  # [N, *S], N = prod(lead)
        with torch.no_grad():
            target = self.features(x)  # phi_l(x) [B, ...]: a fixed target
        loss = params.new_zeros(lead)
        for weight, phi_x, phi_x_hat in zip(self.layer_weights, target, self.features(x_hat), strict=True):
            phi_x_hat = phi_x_hat.reshape(*lead, *phi_x.shape[1:])  # [N, ...] -> [..., B, ...]
            loss = loss + weight * (phi_x_hat - phi_x).pow(2).flatten(len(lead)).sum(-1)
        if self.pixel_weight:
            loss = loss + self.pixel_weight * (params - x).pow(2).flatten(len(lead)).sum(-1)
        return loss

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return params

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        return params


@register_part("likelihoods", "msssim", "1 - MS-SSIM(x, x_hat), Pythae's MSSSIM_VAE loss (`window_size`, "
               "`window_sigma`, `form`: pythae or wang)")
def msssim_likelihood(context: PartContext, sigma: float = 1.0, window_size: int = 11, window_sigma: float = 1.5,
                      form: str = "pythae") -> MSSSIM:
    return MSSSIM(context.data_shape, window_size, window_sigma, form)


@register_part("likelihoods", "feature", "DFC-VAE's feature-consistent loss through a frozen network "
               "(`feature_network`: a model folder, `feature_layers`, `layer_weights`, `pixel_weight`)")
def feature_likelihood(context: PartContext, sigma: float = 1.0, feature_network: str | nn.Module = "",
                       feature_layers: Sequence[str] = (), layer_weights: Sequence[float] = (),
                       pixel_weight: float = 0.0) -> FeatureConsistent:
    if isinstance(feature_network, nn.Module):
        network = feature_network
    elif feature_network:
        network = load_feature_network(feature_network, context.data_shape)
    else:
        raise ConfigError("likelihood=feature needs a frozen network: likelihood.feature_network=<model folder>, or "
                          "build_model('dfc-vae', feature_network=<nn.Module>)")
    return FeatureConsistent(context.data_shape, network, feature_layers, layer_weights, pixel_weight)
