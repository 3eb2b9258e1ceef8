"""Maskers: exactly K visible tokens, consistent ids, injectable noise, and each masker's own structure."""

import pytest
import torch

from aekit.errors import ConfigError
from aekit.nn.maskers import Masking, filtered_noise, make_masker, visible_count
from aekit.parts import part_names

MASKERS = part_names("maskers")


def test_builtin_maskers_are_registered():
    assert {"random", "block", "grid", "red-noise", "blue-noise", "green-noise", "purple-noise"} <= set(MASKERS)


def test_visible_count_is_the_floor_with_a_tolerance():
    assert visible_count(64, 0.75) == 16
    assert visible_count(49, 0.75) == 12  # floor(12.25)
    assert visible_count(10, 0.9) == 1  # 10 * (1 - 0.9) = 0.999...: one token, not zero
    assert visible_count(196, 0.0) == 196
    with pytest.raises(ConfigError, match="leaves no visible token"):
        visible_count(4, 0.9)


@pytest.mark.parametrize("name", MASKERS)
def test_every_masker_keeps_exactly_k_and_its_ids_agree(name):
    torch.manual_seed(0)
    masker = make_masker(name, 0.75, {})
    tokens = torch.randn(6, 64, 5)
    m = masker(tokens, (8, 8))
    assert m.ids_keep.shape == (6, 16) and m.ids_restore.shape == (6, 64)
    assert torch.equal(m.mask.sum(1), torch.full((6,), 48.0))
    assert torch.equal(torch.gather(m.mask, 1, m.ids_keep), torch.zeros(6, 16))  # the kept ones are not hidden
    # ids_restore is a permutation that sends the j-th kept token to place j and every hidden one after K
    assert torch.equal(m.ids_restore.sort(1).values, torch.arange(64).expand(6, -1))
    assert torch.equal(torch.gather(m.ids_restore, 1, m.ids_keep), torch.arange(16).expand(6, -1))
    assert bool((m.ids_restore[m.mask.bool()] >= 16).all())
    assert torch.equal(m.visible(tokens), tokens[torch.arange(6)[:, None], m.ids_keep])


@pytest.mark.parametrize("name", MASKERS)
def test_given_noise_gives_the_same_masks(name):
    masker = make_masker(name, 0.6, {})
    noise = torch.rand(3, 36)
    tokens = torch.zeros(3, 36, 2)
    first, second = masker(tokens, (6, 6), noise), masker(tokens, (6, 6), noise.clone())
    assert torch.equal(first.mask, second.mask) and torch.equal(first.ids_keep, second.ids_keep)


def test_random_masking_keeps_the_lowest_noise_as_mae_does():
    noise = torch.tensor([[0.9, 0.1, 0.5, 0.3], [0.2, 0.8, 0.6, 0.4]])
    m = make_masker("random", 0.5, {})(torch.zeros(2, 4, 1), None, noise)
    assert m.ids_keep.tolist() == [[1, 3], [0, 3]]
    assert m.mask.tolist() == [[1, 0, 1, 0], [0, 1, 1, 0]]


def test_masking_from_scores_matches_a_hand_example():
    m = Masking.from_scores(torch.tensor([[3.0, 1.0, 2.0]]), keep=1)
    assert m.ids_keep.tolist() == [[1]] and m.ids_restore.tolist() == [[2, 0, 1]] and m.mask.tolist() == [[1, 0, 1]]


def neighbour_agreement(mask, h, w):
    """The share of horizontally or vertically adjacent patch pairs that are both hidden or both visible."""
    grid = mask.view(-1, h, w)
    same = torch.cat([(grid[:, 1:] == grid[:, :-1]).flatten(1), (grid[:, :, 1:] == grid[:, :, :-1]).flatten(1)], 1)
    return float(same.float().mean())


def test_block_and_red_noise_masks_are_clustered_and_blue_noise_spread_out():
    torch.manual_seed(0)
    tokens = torch.zeros(64, 196, 1)
    agree = {name: neighbour_agreement(make_masker(name, 0.5, {})(tokens, (14, 14)).mask, 14, 14)
             for name in ("random", "block", "red-noise", "blue-noise", "green-noise")}
    assert abs(agree["random"] - 0.5) < 0.03  # independent patches at r = 0.5 agree half the time
    assert agree["block"] > agree["random"] + 0.15
    assert agree["red-noise"] > agree["random"] + 0.15
    assert agree["blue-noise"] < agree["random"] - 0.02  # anti-clustered: neighbours tend to differ
    assert agree["green-noise"] > agree["blue-noise"]


def test_grid_keeps_one_patch_per_two_by_two_cell_at_075():
    masker = make_masker("grid", 0.75, {})
    m = masker(torch.zeros(4, 64, 1), (8, 8))
    for keep in m.ids_keep:
        rows, cols = keep // 8, keep % 8
        assert len(set((rows % 2).tolist())) == 1 and len(set((cols % 2).tolist())) == 1
        assert sorted(set((rows // 2 * 4 + cols // 2).tolist())) == list(range(16))  # one in every cell


def test_filtered_noise_colours_take_their_part_of_the_spectrum():
    torch.manual_seed(0)
    white = torch.rand(32, 16, 16)

    def low_share(x):  # the share of power at the lowest quarter of frequencies
        power = torch.fft.fft2(x).abs().pow(2)
        f = torch.fft.fftfreq(16).abs()
        low = (f[:, None] < 0.125) & (f[None, :] < 0.125)
        return float(power[:, low].sum() / power.sum())

    shares = {c: low_share(filtered_noise(white, c)) for c in ("red", "blue", "green", "purple")}
    flat = low_share(white - white.mean((1, 2), keepdim=True))  # about 9 of 256 frequencies: 3.5 %
    assert shares["red"] > 5 * flat and shares["blue"] < flat / 5
    assert shares["purple"] > shares["blue"] and shares["green"] < shares["red"]
    for c in shares:
        x = filtered_noise(white, c)
        assert torch.allclose(x.mean((1, 2)), torch.zeros(32), atol=1e-5)
        assert torch.allclose(x.std((1, 2)), torch.ones(32), atol=1e-4)


def test_structured_maskers_need_a_2d_grid_and_bad_settings_are_clear():
    with pytest.raises(ConfigError, match="2-D grid"):
        make_masker("block", 0.5, {})(torch.zeros(2, 16, 1))
    with pytest.raises(ConfigError, match=r"mask_ratio=1.0 must be in \[0, 1\)"):
        make_masker("random", 1.0, {})
    with pytest.raises(ConfigError, match="mask_ratio=-0.1"):
        make_masker("random", -0.1, {})
    with pytest.raises(ConfigError, match="masker.radius: block has no such setting"):
        make_masker("block", 0.5, {"radius": 2})
    with pytest.raises(ConfigError, match=r"noise of shape \(2, 3\)"):
        make_masker("random", 0.5, {})(torch.zeros(2, 16, 1), None, torch.rand(2, 3))


def test_ratio_schedule_moves_in_training_and_evaluation_uses_the_final_ratio():
    class Ctx:
        def __init__(self, step):
            self.step = step

    masker = make_masker("random", 0.75, {}, schedule="linear", start=0.5, steps=10)
    assert masker.ratio_at(0) == 0.5 and masker.ratio_at(5) == 0.625 and masker.ratio_at(10) == 0.75
    masker.on_train_step_start(Ctx(5))
    m = masker(torch.zeros(1, 16, 1))
    assert float(m.mask.sum()) == 16 - visible_count(16, 0.625)
    masker.eval()
    assert float(masker(torch.zeros(1, 16, 1)).mask.sum()) == 12
    cosine = make_masker("random", 0.8, {}, schedule="cosine", start=0.4, steps=4)
    assert cosine.ratio_at(2) == pytest.approx(0.6) and cosine.ratio_at(1) < 0.5
    with pytest.raises(ConfigError, match="ratio_schedule='step'"):
        make_masker("random", 0.75, {}, schedule="step")


def test_hpm_hides_the_hardest_share_and_grows_it_over_the_run():
    class Ctx:
        def __init__(self, step, total):
            self.step, self.total_steps = step, total

    masker = make_masker("hpm", 0.5, {"hard_share": 0.5})
    difficulty = torch.arange(16.0).expand(3, -1)  # patch 15 the hardest
    noise = torch.rand(3, 16)
    masker.on_train_step_start(Ctx(-1, 10))  # alpha = 0: random masking
    assert torch.equal(masker(torch.zeros(3, 16, 1), None, noise, difficulty=difficulty).mask,
                       make_masker("random", 0.5, {})(torch.zeros(3, 16, 1), None, noise).mask)
    masker.on_train_step_start(Ctx(9, 10))  # the end of the run: alpha = 0.5, 4 of the 8 hidden are the hardest
    mask = masker(torch.zeros(3, 16, 1), None, noise, difficulty=difficulty).mask
    assert bool((mask[:, 12:] == 1).all()) and torch.equal(mask.sum(1), torch.full((3,), 8.0))
    masker.on_train_step_start(Ctx(4, 10))
    assert float(masker.alpha) == 0.25
    with pytest.raises(ConfigError, match="hard_share=2"):
        make_masker("hpm", 0.5, {"hard_share": 2})
