"""The priors over codes: normalised distributions (summed over every sequence), causality, the masking-ratio
schedules, and samples that follow the prior."""

import itertools
import math

import pytest
import torch

from aekit.errors import ConfigError
from aekit.nn.code_priors import AutoregressivePrior, MaskedTokenPrior

SIZES, POSITIONS = [2, 3], 2  # two positions of two code columns: 36 sequences of T = 4 tokens


def all_sequences():
    columns = [range(SIZES[i % 2]) for i in range(len(SIZES) * POSITIONS)]
    return torch.tensor(list(itertools.product(*columns)))


def test_the_autoregressive_prior_is_a_distribution_over_every_sequence_and_causal():
    torch.manual_seed(0)
    prior = AutoregressivePrior(SIZES, POSITIONS, width=16, depth=2, heads=2)
    with torch.no_grad():
        total = torch.logsumexp(prior.log_prob(all_sequences()), 0)
    assert float(total) == pytest.approx(0.0, abs=1e-5)
    ids = prior.net.ids(all_sequences()[:2].clone())
    changed = ids.clone()
    changed[:, 2] = prior.net.offsets[2] + 1 - all_sequences()[:2, 2]
    before, after = prior.net(ids), prior.net(changed)
    assert torch.allclose(before[:, :2], after[:, :2]) and not torch.allclose(before[:, 2:], after[:, 2:])


def test_the_masked_prior_is_a_distribution_along_any_one_order():
    torch.manual_seed(1)
    prior = MaskedTokenPrior(SIZES, POSITIONS, width=16, depth=2, heads=2)
    with torch.no_grad():
        log_p = torch.stack([prior.log_prob(seq[None], torch.Generator().manual_seed(3))[0] for seq in all_sequences()])
    assert float(torch.logsumexp(log_p, 0)) == pytest.approx(0.0, abs=1e-5)


def test_logits_outside_a_columns_codebook_are_impossible():
    prior = AutoregressivePrior(SIZES, POSITIONS, width=16, depth=1, heads=2)
    logits = prior.net(prior.net.ids(all_sequences()[:3]))
    assert torch.isinf(logits[:, 0, 2]).all() and torch.isfinite(logits[:, 1, 2]).all()  # column 0 has 2 codes


def test_autoregressive_samples_follow_the_prior():
    torch.manual_seed(2)
    prior = AutoregressivePrior([3], 2, width=16, depth=1, heads=2)
    with torch.no_grad():
        prior.net.head.bias.copy_(torch.tensor([2.0, 0.0, -1.0]))
        samples = prior.sample(6000, torch.Generator().manual_seed(0))
        sequences = torch.tensor(list(itertools.product(range(3), range(3))))
        expected = prior.log_prob(sequences).exp()
    observed = torch.stack([(samples == s).all(-1).float().mean() for s in sequences])
    assert torch.allclose(observed, expected, atol=0.02)


def test_masking_ratios_follow_maskgit_and_mage_and_decoding_ends_with_every_token_drawn():
    prior = MaskedTokenPrior(SIZES, POSITIONS, width=16, depth=1, heads=2, schedule="mage", steps=3)
    r = prior.mask_ratio(20_000, torch.device("cpu"))
    assert r.min() >= 0.5 and r.max() <= 1.0 and 0.6 < float(r.mean()) < 0.75
    cosine = MaskedTokenPrior(SIZES, POSITIONS, width=16, depth=1, heads=2).mask_ratio(20_000, torch.device("cpu"))
    assert float(cosine.mean()) == pytest.approx(2 / math.pi, abs=0.01)  # E cos(pi u / 2) = 2 / pi
    codes = prior.sample(50, torch.Generator().manual_seed(0))
    assert codes.shape == (50, 4) and (codes[:, 0::2] < 2).all() and (codes[:, 1::2] < 3).all()


def test_bad_network_settings_are_refused():
    with pytest.raises(ConfigError, match="schedule"):
        MaskedTokenPrior(SIZES, POSITIONS, schedule="linear")
    with pytest.raises(ConfigError, match="steps=0"):
        MaskedTokenPrior(SIZES, POSITIONS, steps=0)
