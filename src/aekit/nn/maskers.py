"""Maskers: which tokens a masked model sees. One interface for every masked family (images, video, graphs).

A masker takes tokens ``[B, L, D]`` laid out on a grid (``(h, w)`` for image patches; ``(L,)`` for a plain
sequence) and a ratio r, and returns a :class:`Masking`: the ``K`` visible ids per example, the ids that restore
the original order, and the binary mask (1 = hidden). Every masker works the same way: it scores each token
(lower = more likely kept) and keeps the ``K`` lowest scores, by ``argsort`` as MAE does, so that every example
in a batch keeps exactly

    K = floor(L * (1 - r))    (computed with a 1e-6 tolerance: 10 tokens at r = 0.9 keep 1, not 0)

tokens and the encoder runs on a dense ``[B, K, D]`` batch. The scores come from uniform noise ``[B, L]``, which
can be passed in (``noise=``) for exact tests; maskers with structure shape that noise (blocks, a grid,
filtered noise) and use it to break ties.

The ratio may follow a schedule over training steps (``ratio_schedule=linear``: from ``ratio_start`` to the
ratio over ``ratio_steps``); the step hook sets the current ratio from the step at the start of every training
step, so a resumed run continues the schedule where it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from aekit.config import require
from aekit.errors import ConfigError
from aekit.parts import PartContext, build_part, register_part

RATIO_SCHEDULES = ("constant", "linear", "cosine")


def visible_count(length: int, ratio: float) -> int:
    """K = floor(L (1 - r)), the number of tokens kept at mask ratio r; a ratio that keeps none is an error."""
    keep = math.floor(length * (1.0 - ratio) + 1e-6)
    if keep < 1:
        raise ConfigError(f"mask_ratio={ratio} leaves no visible token of {length}; lower it below "
                          f"{1 - 1 / length:.4g}")
    return keep


@dataclass
class Masking:
    """ids_keep ``[B, K]``: the visible tokens, in the order the encoder sees them; ids_restore ``[B, L]``: where
    each original token sits in ``[visible, hidden]`` order (to undo the shuffle); mask ``[B, L]``: 1 = hidden."""

    ids_keep: torch.Tensor
    ids_restore: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def from_scores(cls, scores: torch.Tensor, keep: int) -> Masking:
        """Keep the ``keep`` lowest scores of each row of ``scores [B, L]``."""
        ids_shuffle = torch.argsort(scores, dim=1)  # [B, L], kept ones first
        ids_restore = torch.argsort(ids_shuffle, dim=1)  # [B, L]
        mask = torch.ones_like(scores)
        mask[:, :keep] = 0
        return cls(ids_shuffle[:, :keep], ids_restore, torch.gather(mask, 1, ids_restore))

    def visible(self, tokens: torch.Tensor) -> torch.Tensor:
        """The visible tokens: ``[B, L, D] -> [B, K, D]``."""
        return torch.gather(tokens, 1, self.ids_keep.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


class Masker(nn.Module):
    """Scores tokens from noise; subclasses shape the scores (``scores``). ``ratio`` is the final mask ratio."""

    def __init__(self, ratio: float = 0.75) -> None:
        super().__init__()
        require(0.0 <= ratio < 1.0, f"mask_ratio={ratio} must be in [0, 1); 0.75 is MAE's")
        self.final_ratio = ratio
        # The ratio of this step, set by the step hook: a Python number, so that reading it syncs no device and
        # breaks no compiled graph (a constant schedule compiles once; a ramp recompiles as its ratio moves).
        self.ratio = float(ratio)
        self.set_schedule()

    def set_schedule(self, kind: str = "constant", start: float | None = None, steps: int = 0) -> None:
        """Move the ratio from ``start`` to the final ratio over ``steps`` training steps (linear or cosine)."""
        require(kind in RATIO_SCHEDULES, f"ratio_schedule={kind!r} is unknown; choose one of "
                f"{', '.join(RATIO_SCHEDULES)}")
        start = self.final_ratio if start is None else start
        require(0.0 <= start < 1.0, f"ratio_start={start} must be in [0, 1)")
        require(steps >= 0, f"ratio_steps={steps} must be >= 0")
        self.schedule, self.start, self.steps = kind, start, steps
        self.ratio = self.ratio_at(0)

    def ratio_at(self, step: int) -> float:
        """The scheduled ratio at training ``step``: constant, or linear / cosine from ``ratio_start``."""
        if self.schedule == "constant" or self.steps == 0 or step >= self.steps:
            return self.final_ratio
        t = step / self.steps
        if self.schedule == "cosine":
            t = 0.5 * (1.0 - math.cos(math.pi * t))
        return self.start + t * (self.final_ratio - self.start)

    def on_train_step_start(self, ctx) -> None:
        self.ratio = self.ratio_at(ctx.step)

    def current_ratio(self) -> float:
        """The scheduled ratio while training; the final one in evaluation."""
        return self.ratio if self.training else self.final_ratio

    needs_difficulty = False  # a masker that hides what the model finds hard (hpm) is given its predicted losses

    def scores(self, noise: torch.Tensor, grid: tuple[int, ...], ratio: float) -> torch.Tensor:
        return noise

    def forward(self, tokens: torch.Tensor, grid: tuple[int, ...] | None = None, noise: torch.Tensor | None = None,
                ratio: float | None = None, difficulty: torch.Tensor | None = None) -> Masking:
        """Mask ``tokens [B, L, D]`` on ``grid`` (default ``(L,)``) with ``noise [B, L]`` (uniform when None);
        ``difficulty [B, L]``: the model's predicted loss of each token, for maskers that read it."""
        b, length = tokens.shape[:2]
        grid = tuple(grid or (length,))
        require(math.prod(grid) == length, f"grid {grid} holds {math.prod(grid)} tokens, not {length}")
        ratio = self.current_ratio() if ratio is None else ratio
        keep = visible_count(length, ratio)
        if noise is None:
            noise = torch.rand(b, length, device=tokens.device)
        elif tuple(noise.shape) != (b, length):
            raise ConfigError(f"noise of shape {tuple(noise.shape)} does not fit {b} examples of {length} tokens; "
                              f"pass noise [{b}, {length}]")
        scores = self.scores(noise.to(tokens.device), grid, ratio)
        if difficulty is not None:
            scores = self.with_difficulty(scores, difficulty, length - keep)
        return Masking.from_scores(scores, keep)

    def with_difficulty(self, scores: torch.Tensor, difficulty: torch.Tensor, hidden: int) -> torch.Tensor:
        return scores


def _image_grid(grid: tuple[int, ...], name: str) -> tuple[int, int]:
    if len(grid) != 2:
        raise ConfigError(f"masker={name} needs tokens on a 2-D grid (image patches), got grid {grid}; "
                          "use masker=random")
    return grid[0], grid[1]


@register_part("maskers", "random", "uniform per-example random masking by argsort of noise (MAE)")
class RandomMasker(Masker):
    """He et al. 2022, Sec. 3: shuffle the tokens by uniform noise and keep the first K."""


@register_part("maskers", "block", "block-wise masking of rectangles of random area and aspect (BEiT)")
class BlockMasker(Masker):
    """Bao et al. 2022 (BEiT), Algorithm 1: add rectangles of ``s`` patches (s uniform in ``[min_patches,
    remaining]``) with aspect ratio log-uniform in ``[aspect, 1 / aspect]`` until the masked share reaches the
    ratio. The blocks are then ranked first for hiding (the noise breaks ties), so that exactly L - K patches are
    hidden: blocks that overshoot give back their last patches, too few blocks are topped up at random."""

    def __init__(self, ratio: float = 0.75, min_patches: int = 4, aspect: float = 0.3) -> None:
        super().__init__(ratio)
        require(min_patches >= 1, f"masker.min_patches={min_patches} must be >= 1")
        require(0 < aspect <= 1, f"masker.aspect={aspect} must be in (0, 1]")
        self.min_patches, self.aspect = min_patches, aspect

    def _blocks(self, h: int, w: int, target: int, generator: torch.Generator | None) -> torch.Tensor:
        mask = torch.zeros(h, w, dtype=torch.bool)
        for _ in range(10 * h * w):  # bounded: each attempt adds a block or is given up
            left = target - int(mask.sum())
            if left <= 0:
                break
            area = float(torch.empty(()).uniform_(min(self.min_patches, left), left, generator=generator))
            log_aspect = float(torch.empty(()).uniform_(math.log(self.aspect), -math.log(self.aspect),
                                                        generator=generator))
            bh = round(math.sqrt(area * math.exp(log_aspect)))
            bw = round(math.sqrt(area / math.exp(log_aspect)))
            if 0 < bh <= h and 0 < bw <= w:
                top = int(torch.randint(0, h - bh + 1, (), generator=generator))
                col = int(torch.randint(0, w - bw + 1, (), generator=generator))
                mask[top : top + bh, col : col + bw] = True
        return mask.flatten()

    def scores(self, noise: torch.Tensor, grid: tuple[int, ...], ratio: float) -> torch.Tensor:
        h, w = _image_grid(grid, "block")
        # The blocks' positions are drawn from a generator seeded by the noise, so given noise gives given masks.
        seeds = (noise[:, 0].double() * 2**31).long().tolist()
        target = noise.shape[1] - visible_count(noise.shape[1], ratio)
        blocks = torch.stack([self._blocks(h, w, target, torch.Generator().manual_seed(s)) for s in seeds])
        return blocks.to(noise.device, noise.dtype) + noise  # blocks in [1, 2), the rest in [0, 1)


@register_part("maskers", "grid", "regular grid: keep one patch in each s x s cell, s = round(1 / sqrt(1 - r))")
class GridMasker(Masker):
    """He et al. 2022, Fig. 6: grid-wise sampling keeps one of every four patches at r = 0.75. The kept
    patch's offset within the cell is drawn per example from the noise."""

    def scores(self, noise: torch.Tensor, grid: tuple[int, ...], ratio: float) -> torch.Tensor:
        h, w = _image_grid(grid, "grid")
        s = max(1, round(1.0 / math.sqrt(1.0 - ratio)))
        offset = (noise[:, :2] * s).long().clamp(max=s - 1)  # [B, 2] per-example (row, col) offsets
        rows = torch.arange(h, device=noise.device).repeat_interleave(w)  # [L]
        cols = torch.arange(w, device=noise.device).repeat(h)  # [L]
        on_grid = ((rows[None] % s) == offset[:, :1]) & ((cols[None] % s) == offset[:, 1:])  # [B, L]
        return (~on_grid).to(noise.dtype) + noise


@register_part("maskers", "hpm", "hard patches mining: hide the patches a loss predictor finds hardest (HPM)")
class HardPatchesMasker(Masker):
    """Wang et al. 2023 (HPM): an auxiliary head predicts each patch's reconstruction loss; of the L - K hidden
    patches, a share alpha(t) are those with the highest predicted loss and the rest are drawn at random, with
    alpha(t) = ``hard_share`` * min(1, (t + 1) / T) growing over the T steps of the run (``hard_steps``, 0: the
    whole run), from random masking to hard patches. Without predicted losses (evaluation) it masks at random."""

    needs_difficulty = True

    def __init__(self, ratio: float = 0.75, hard_share: float = 0.5, hard_steps: int = 0) -> None:
        super().__init__(ratio)
        require(0 <= hard_share <= 1, f"masker.hard_share={hard_share} must be in [0, 1]")
        require(hard_steps >= 0, f"masker.hard_steps={hard_steps} must be >= 0 (0: the whole run)")
        self.hard_share, self.hard_steps = hard_share, hard_steps
        self.register_buffer("alpha", torch.tensor(0.0), persistent=False)

    def on_train_step_start(self, ctx) -> None:
        super().on_train_step_start(ctx)
        span = self.hard_steps or max(ctx.total_steps, 1)
        self.alpha.fill_(self.hard_share * min(1.0, (ctx.step + 1) / span))

    def with_difficulty(self, scores: torch.Tensor, difficulty: torch.Tensor, hidden: int) -> torch.Tensor:
        hard = int(hidden * float(self.alpha))
        if hard == 0:
            return scores
        top = difficulty.topk(hard, dim=1).indices  # [B, hard] the hardest patches
        return scores.scatter_add(1, top, torch.full_like(top, 2, dtype=scores.dtype))  # ranked first to hide


# ColorMAE's noise colours: the part of the spectrum each keeps, as a Gaussian low-pass of the white noise
# (red), its complement (blue), a difference of two low-passes (green) and that band's complement (purple).
COLOURS = ("red", "blue", "green", "purple")


def filtered_noise(noise: torch.Tensor, colour: str, sigma: float = 1.0) -> torch.Tensor:
    """White noise ``[B, h, w]`` filtered to a colour: ``red`` = G_sigma * n (low-pass), ``blue`` = n - red
    (high-pass), ``green`` = G_sigma * n - G_{2 sigma} * n (band-pass), ``purple`` = n - green (band-stop);
    Gaussian filters in the Fourier domain (periodic boundary). Each map is standardised."""
    b, h, w = noise.shape
    fy = torch.fft.fftfreq(h, device=noise.device)[:, None]
    fx = torch.fft.fftfreq(w, device=noise.device)[None, :]
    radius2 = fy**2 + fx**2  # [h, w], cycles per patch squared

    def low_pass(s: float) -> torch.Tensor:
        gain = torch.exp(-2 * math.pi**2 * s**2 * radius2)  # the Fourier transform of a Gaussian of std s
        return torch.fft.ifft2(torch.fft.fft2(noise.double()) * gain).real

    white = noise.double() - noise.double().mean((1, 2), keepdim=True)
    out = {
        "red": lambda: low_pass(sigma),
        "blue": lambda: white - low_pass(sigma),
        "green": lambda: low_pass(sigma) - low_pass(2 * sigma),
        "purple": lambda: white - (low_pass(sigma) - low_pass(2 * sigma)),
    }[colour]()
    out = out - out.mean((1, 2), keepdim=True)
    return (out / out.std((1, 2), keepdim=True).clamp(min=1e-12)).to(noise.dtype)


class ColourNoiseMasker(Masker):
    """Hinojosa et al. 2024 (ColorMAE): hide the patches where filtered random noise is highest, thresholded
    to the ratio. Red noise gives blobs, blue noise an even spread, green noise blobs of one size, purple noise
    a mix of fine and coarse."""

    colour = "red"

    def __init__(self, ratio: float = 0.75, sigma: float = 1.0) -> None:
        super().__init__(ratio)
        require(sigma > 0, f"masker.sigma={sigma} must be positive (the filter's width, in patches)")
        self.sigma = sigma

    def scores(self, noise: torch.Tensor, grid: tuple[int, ...], ratio: float) -> torch.Tensor:
        h, w = _image_grid(grid, f"{self.colour}-noise")
        return filtered_noise(noise.view(-1, h, w), self.colour, self.sigma).flatten(1)


for _colour, _what in zip(COLOURS, ("low-pass", "high-pass", "band-pass", "band-stop"), strict=True):
    register_part("maskers", f"{_colour}-noise", f"ColorMAE: hide where {_what} filtered noise is highest")(
        type(f"{_colour.title()}NoiseMasker", (ColourNoiseMasker,), {"colour": _colour})
    )


def make_masker(name: str, ratio: float, options: dict, schedule: str = "constant", start: float | None = None,
                steps: int = 0, context: PartContext | None = None) -> Masker:
    """The registered masker ``name`` at mask ratio ``ratio`` with its ``options`` (``masker.KEY=VALUE``) and
    ratio schedule; ``context`` (the data's shape) reaches a masker that declares one."""
    masker = build_part("maskers", name, ratio, context=context, **options)
    masker.set_schedule(schedule, start, steps)
    return masker
