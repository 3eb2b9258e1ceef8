"""The quantisers' math: the chunked search, k-means, the EMA codebook by hand, dead-code restarts, the rotation
trick, FSQ's grid, LFQ's factorised entropy against the softmax over every code, residual stacks, autocast."""

import math

import pytest
import torch

from aekit.errors import ConfigError
from aekit.nn.quantize.base import straight_through
from aekit.nn.quantize.codebook import code_counts, kmeans, nearest, perplexity
from aekit.nn.quantize.scalar import mean_code_entropy
from aekit.parts import PartContext, build_part
from aekit.training.hooks import StepContext


def quantiser(name, dim=8, grid=(), **settings):
    context = PartContext(data_shape=(dim,), feature_shape=(dim, *grid), latent_shape=(*grid, dim))
    return build_part("bottlenecks", name, context=context, **settings)


def test_the_chunked_search_finds_the_nearest_entry_of_each_head():
    torch.manual_seed(0)
    z, embed = torch.randn(300, 3, 5), torch.randn(3, 70, 5)
    brute = torch.stack([torch.cdist(z[:, h], embed[h]).argmin(-1) for h in range(3)], 1)
    assert torch.equal(nearest(z, embed, chunk=3 * 70 * 7), brute)  # 7 rows a chunk
    assert torch.equal(nearest(z, embed), brute)
    cosine = torch.stack([(torch.nn.functional.normalize(z[:, h], dim=-1)
                           @ torch.nn.functional.normalize(embed[h], dim=-1).t()).argmax(-1) for h in range(3)], 1)
    assert torch.equal(nearest(z, embed, cosine=True, chunk=500), cosine)


def test_a_codebook_of_2_to_the_16_entries_is_searched_in_bounded_chunks():
    torch.manual_seed(1)
    z, embed = torch.randn(64, 1, 4), torch.randn(1, 1 << 16, 4)
    assert torch.equal(nearest(z, embed, chunk=1 << 18)[:, 0], torch.cdist(z[:, 0], embed[0]).argmin(-1))


def test_stochastic_codes_follow_the_softmax_of_negative_squared_distances():
    z, embed = torch.zeros(20_000, 1, 1), torch.tensor([[[0.0], [1.0], [2.0]]])
    codes = nearest(z, embed, temperature=2.0, generator=torch.Generator().manual_seed(0))[:, 0]
    expected = torch.softmax(-torch.tensor([0.0, 1.0, 4.0]) / 2.0, 0)
    observed = torch.bincount(codes, minlength=3).float() / len(codes)
    assert torch.allclose(observed, expected, atol=0.015)


def test_kmeans_finds_separated_clusters_and_counts_and_perplexity_are_by_definition():
    torch.manual_seed(2)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    z = (centres[:, None] + 0.1 * torch.randn(3, 50, 2)).reshape(-1, 2)
    found = kmeans(z, 3, iters=10, generator=torch.Generator().manual_seed(0))
    assert torch.cdist(found, centres).min(0).values.max() < 0.1
    counts = code_counts(torch.tensor([[0, 1], [0, 1], [2, 1]]), 3)
    assert counts.tolist() == [[2, 0, 1], [0, 3, 0]]
    entropy = -(2 / 3) * math.log(2 / 3) - (1 / 3) * math.log(1 / 3)
    assert perplexity(counts).tolist() == pytest.approx([math.exp(entropy), 1.0])


def after_step(q, out, step=0):
    """The quantiser's hook on one step's output, as the loop hands it over."""
    q.after_optimizer_step(StepContext(step, outputs=[type("Out", (), {"latent": out})()]))


def test_the_ema_codebook_follows_its_moving_averages_by_hand():
    torch.manual_seed(3)
    q = quantiser("vq", codebook_size=6, decay=0.5, dead_after=0)
    cb = q.codebooks[0]
    size, total = cb.cluster_size.clone(), cb.embed_sum.clone()
    out = q(torch.randn(10, 8))
    z_e, codes = out.params["z_e"].detach(), out.params["codes"][:, 0]
    counts = torch.bincount(codes, minlength=6).float()
    sums = torch.zeros(6, 8).index_add_(0, codes, z_e)
    after_step(q, out)
    size, total = 0.5 * size[0] + 0.5 * counts, 0.5 * total[0] + 0.5 * sums
    n = size.sum()
    assert torch.allclose(cb.embed[0], total / ((size + 1e-5) / (n + 6e-5) * n).unsqueeze(1), atol=1e-6)


def test_the_terms_are_the_commitment_and_for_a_learnt_codebook_the_codebook_loss():
    torch.manual_seed(4)
    for ema in (True, False):
        q = quantiser("vq", codebook_size=5, ema=ema)
        out = q(torch.randn(7, 8))
        z_q = q.codebooks[0].lookup(out.params["codes"])[:, 0]  # [7, 8]
        expected = (out.params["z_e"] - z_q).pow(2).sum(-1)
        assert torch.allclose(out.terms["commit"], expected, atol=1e-6)
        assert ("codebook" in out.terms) is (not ema)
        assert torch.allclose(out.mean, z_q, atol=1e-6)  # the value passed on is the entry


def test_an_entry_unused_for_dead_after_steps_restarts_at_a_vector_of_the_batch():
    torch.manual_seed(5)
    q = quantiser("vq", codebook_size=4, dead_after=2)
    cb = q.codebooks[0]
    cb.embed[0, 3] = cb.embed_sum[0, 3] = 100.0  # never the nearest (its average stays there)
    x = torch.randn(16, 8)
    for step in range(2):
        out = q(x)
        assert (out.params["codes"] != 3).all()
        after_step(q, out, step)
    inputs = out.params["inputs"]  # the vectors it may restart at [16, 8]
    assert torch.cdist(cb.embed[0, 3:4], inputs).min() < 1e-5 and int(cb.idle[0, 3]) == 0
    assert float(cb.cluster_size[0, 3]) == 1.0


def test_the_rotation_trick_passes_the_entry_on_and_rotates_the_gradient():
    torch.manual_seed(6)
    z, z_q = torch.randn(5, 4, dtype=torch.float64, requires_grad=True), torch.randn(5, 4, dtype=torch.float64)
    out = straight_through(z, z_q, "rotation")
    assert torch.allclose(out, z_q)
    g = torch.randn(5, 4, dtype=torch.float64)
    (grad,) = torch.autograd.grad((out * g).sum(), z)
    for i in range(5):
        e, q = z[i].detach() / z[i].detach().norm(), z_q[i] / z_q[i].norm()
        r = (e + q) / (e + q).norm()
        rotation = torch.eye(4, dtype=torch.float64) - 2 * torch.outer(r, r) + 2 * torch.outer(q, e)
        assert torch.allclose(rotation @ rotation.t(), torch.eye(4, dtype=torch.float64))  # a rotation
        assert torch.allclose(rotation @ e, q)
        assert torch.allclose(grad[i], z_q[i].norm() / z[i].detach().norm() * rotation.t() @ g[i])
    (grad,) = torch.autograd.grad((straight_through(z, z_q) * g).sum(), z)
    assert torch.equal(grad, g)  # straight through: the identity


def test_fsq_rounds_each_coordinate_to_its_levels_and_codes_round_trip():
    q = quantiser("fsq", dim=3, levels=(4, 3, 5))
    z = torch.randn(4000, 3) * 3
    out = q.quantize(z)
    for i, levels in enumerate((4, 3, 5)):
        values = torch.unique(out.z[:, i])
        assert len(values) == levels and values.abs().max() <= 1  # every level reached, symmetric in [-1, 1]
    assert torch.unique(out.codes).numel() == 60 and int(out.codes.max()) < 60
    assert torch.allclose(q.lookup(out.codes), out.z)
    z = torch.randn(100, 3).requires_grad_()
    grad = torch.autograd.grad(q.quantize(z).z.sum(), z)[0]
    assert (grad > 0).all()  # the straight-through gradient of round, through tanh's


def test_residual_fsq_refines_and_decodes_its_codes():
    torch.manual_seed(7)
    z = torch.rand(500, 4) * 1.6 - 0.8
    errors = []
    for stages in (1, 2, 3):
        q = quantiser("fsq", dim=4, levels=(5, 5, 5, 5), stages=stages, normalise=False)
        with torch.no_grad():
            q.proj_in.weight.copy_(torch.eye(4))
            q.proj_in.bias.zero_()
        out = q(z)
        errors.append(float((out.mean - z).abs().max().detach()))  # each stage a finer grid on what is left
        assert torch.allclose(q.decode_codes(out.params["codes"]), out.mean, atol=1e-6)
    assert errors[0] > errors[1] > errors[2]


def test_lfq_entropy_matches_the_softmax_over_every_code():
    """p(c|z) = softmax_c(-||z - c||^2 / T) over all 2^b codes, computed directly, against the factorised form."""
    torch.manual_seed(8)
    for spherical in (False, True):
        q = quantiser("lfq", dim=5, bits=5, temperature=0.7, diversity=0.8, spherical=spherical,
                      entropy_group_bits=5)
        z = torch.randn(64, 5, dtype=torch.float64)
        u = torch.nn.functional.normalize(z, dim=-1) if spherical else z
        codes = torch.tensor([[(c >> i) & 1 for i in range(5)] for c in range(32)], dtype=torch.float64)
        c = (2 * codes - 1) * q.scale  # [32, 5]
        p = torch.softmax(-torch.cdist(u, c).pow(2) / 0.7, -1)  # [64, 32]
        per_sample = -(p * p.log()).sum(-1).mean()
        p_bar = p.mean(0)
        expected = per_sample - 0.8 * -(p_bar * p_bar.log()).sum()
        out = q.quantize(z.float())
        assert float(out.batch_terms["entropy"]) == pytest.approx(float(expected), abs=1e-4)
        assert torch.equal(out.codes[:, 0], ((u > 0).long() * 2 ** torch.arange(5)).sum(-1))
        assert torch.allclose(q.lookup(out.codes), out.z.detach(), atol=1e-6)
        if spherical:
            assert torch.allclose(out.z.norm(dim=-1), torch.ones(64), atol=1e-6)


def test_the_codebook_entropy_is_the_same_in_chunks_and_its_gradient_too():
    torch.manual_seed(9)
    logits = torch.randn(50, 7, dtype=torch.float64, requires_grad=True)
    whole = mean_code_entropy(logits, 1 << 20)
    chunked = mean_code_entropy(logits, 50 * 3)  # 3 codes a chunk
    assert float(whole.detach()) == pytest.approx(float(chunked.detach()))
    g1, g2 = (torch.autograd.grad(v, logits)[0] for v in (whole, mean_code_entropy(logits, 150)))
    assert torch.allclose(g1, g2)


def test_residual_vq_codes_decode_to_its_output_and_dropout_spares_every_codebook():
    torch.manual_seed(10)
    q = quantiser("rvq", stages=3, codebook_size=16, kmeans_iters=0)
    x = torch.randn(40, 8)
    out = q(x)
    assert out.params["codes"].shape == (40, 3)
    assert torch.allclose(q.decode_codes(out.params["codes"]), out.mean, atol=1e-5)
    q.init_codebooks(out.params["z_e"].detach(), torch.Generator().manual_seed(0))
    codes = q(x).params["codes"]
    errors = [float((q.proj_in(x) - _prefix(q, codes, s)).pow(2).mean()) for s in (1, 2, 3)]
    assert errors[0] > errors[1] > errors[2]  # each stage quantises what the ones before left
    q.quantizer_dropout = 1.0
    q.train()
    torch.manual_seed(0)
    dropped = q(x)
    assert dropped.params["inputs"].shape == (40, 3 * 8)  # every stage's input, used or not


def _prefix(q, codes, stages):
    parts = codes.view(len(codes), q.stages, q.heads)
    return sum(q.codebooks[s].lookup(parts[:, s]) for s in range(stages)).flatten(1)


@pytest.mark.parametrize("name,settings", [("vq", {"codebook_size": 64}), ("fsq", {"levels": (8, 8, 8, 5)}),
                                           ("rvq", {"codebook_size": 32, "stages": 2}), ("lfq", {"bits": 8})])
def test_codes_under_bf16_autocast_are_those_of_float32(name, settings):
    torch.manual_seed(11)
    q = quantiser(name, dim=8, grid=(3, 3), **settings)
    h = torch.randn(32, 3, 3, 8) * 2
    fp32 = q(h).params["codes"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = q(h).params["codes"]
    assert torch.equal(fp32, bf16)


@pytest.mark.parametrize("name,settings,message", [
    ("vq", {"codebook_size": 1}, "at least 2 entries"),
    ("rvq", {"stages": 0}, "stages=0"),
    ("vq", {"heads": 3}, "does not split"),
    ("vq", {"gradient": "magic"}, "gradient='magic'"),
    ("fsq", {"levels": (8, 1)}, "at least 2 levels"),
    ("lfq", {"bits": 63}, "int64"),
    ("lfq", {"temperature": 0}, "temperature=0"),
])
def test_bad_settings_say_what_is_wrong(name, settings, message):
    with pytest.raises(ConfigError, match=message):
        quantiser(name, **settings)


def test_codes_outside_the_codebook_are_refused():
    q = quantiser("vq", codebook_size=4)
    with pytest.raises(ConfigError, match="outside the codebook"):
        q.decode_codes(torch.tensor([[4]]))
    with pytest.raises(ConfigError, match="codes of shape"):
        q.decode_codes(torch.tensor([[1, 2]]))


def test_simvq_learns_one_map_that_moves_every_entry_of_a_frozen_basis():
    torch.manual_seed(13)
    q = quantiser("simvq", codebook_size=12)
    book = q.codebooks[0]
    assert "codebooks.0.embed" in dict(q.named_buffers()) and "codebooks.0.map" in dict(q.named_parameters())
    out = q(torch.randn(20, 8))
    assert torch.allclose(book.lookup(out.params["codes"]), (book.embed @ book.map)[0][out.params["codes"]])
    out.terms["codebook"].sum().backward()
    assert book.map.grad.abs().sum() > 0  # the codebook term reaches W ...
    with torch.no_grad():
        book.map -= 0.1 * book.map.grad
    moved = (book.entries() - book.embed).norm(dim=-1)[0]
    assert (moved > 0).all()  # ... and through it every entry, chosen or not
    assert len(out.params["codes"].unique()) < 12


def test_latent_quantisation_snaps_each_coordinate_to_its_own_learnt_values():
    torch.manual_seed(14)
    q = quantiser("latent-quantize", dim=3, values=4)
    with torch.no_grad():
        q.values.copy_(torch.tensor([[-2.0, -0.1, 0.0, 3.0], [-1.0, 0.0, 0.5, 0.6], [0.0, 1.0, 2.0, 9.0]]))
    z = torch.randn(50, 3) * 2
    out = q.quantize(z)
    expected = (z.unsqueeze(-1) - q.values.detach()).abs().argmin(-1)
    assert torch.equal(out.codes, expected)  # found among the learnt values, not a uniform grid
    assert torch.allclose(out.z.detach(), q.values.detach().gather(1, expected.t()).t(), atol=1e-6)
    assert torch.allclose(out.terms["commit"], (z - out.z.detach()).pow(2).sum(-1))
    with pytest.raises(ConfigError, match="at least 2 values"):
        quantiser("latent-quantize", values=1)


def test_multiscale_vq_quantises_coarse_to_fine_and_decodes_its_tokens():
    torch.manual_seed(15)
    q = quantiser("msvq", dim=4, grid=(5, 5), codebook_size=16, kmeans_iters=0)
    assert q.sides == [(1, 1), (2, 2), (4, 4), (5, 5)] and q.code_shape == (1 + 4 + 16 + 25, 1)
    h = torch.randn(3, 5, 5, 4)
    out = q(h)
    assert out.params["codes"].shape == (3, 46, 1) and out.params["inputs"].shape == (3 * 46, 4)
    assert torch.allclose(q.decode_codes(out.params["codes"]), out.mean, atol=1e-5)
    coarse = out.params["codes"][:, 0, 0]  # the 1 x 1 scale: the nearest entry to each grid's mean
    z_e = out.params["z_e"].detach()
    assert torch.equal(coarse, torch.cdist(z_e.mean((1, 2)), q.codebooks[0].embed[0]).argmin(-1))
    with pytest.raises(ConfigError, match="grid of latents"):
        quantiser("msvq", dim=4)


def test_residual_lfq_halves_its_scale_per_stage_and_decodes_its_codes():
    torch.manual_seed(16)
    q = quantiser("lfq", dim=6, bits=6, stages=3)
    out = q.quantize(torch.randn(40, 6))
    assert out.codes.shape == (40, 3) and q.codebook_sizes == [64] * 3
    values = torch.unique(out.z.detach().abs())
    assert torch.allclose(values, torch.tensor([0.25, 0.75, 1.25, 1.75]))  # 1 +- 1/2 +- 1/4
    assert torch.allclose(q.lookup(out.codes), out.z.detach(), atol=1e-6)
    with pytest.raises(ConfigError, match="spherical"):
        quantiser("lfq", spherical=True, stages=2)


def test_the_random_projection_quantiser_is_frozen_and_codes_by_cosine():
    q = quantiser("random-projection", dim=6, codebook_size=32, heads=2, codebook_dim=3)
    assert not any(p.requires_grad for p in q.parameters())
    h = torch.randn(50, 6)
    out = q(h)
    z = q.proj_in(h).view(50, 2, 3)
    e = q.codebook.embed
    for head in range(2):
        unit = torch.nn.functional.normalize
        similarity = unit(z[:, head], dim=-1) @ unit(e[head], dim=-1).t()
        assert torch.equal(out.params["codes"][:, head], similarity.argmax(-1))
    assert torch.allclose(out.mean.view(50, 2, 3).norm(dim=-1), torch.ones(50, 2))
    again = quantiser("random-projection", dim=6, codebook_size=32, heads=2, codebook_dim=3)
    assert torch.equal(again(h).params["codes"], out.params["codes"])  # the same seed, the same tokeniser


def test_fsq_standardises_its_inputs_over_the_batch_so_no_coordinate_sits_in_the_flat_tail():
    torch.manual_seed(17)
    q = quantiser("fsq", dim=4, levels=(8, 5, 5, 5))
    with torch.no_grad():
        q.proj_in.weight.copy_(torch.eye(4))
        q.proj_in.bias.zero_()
    h = torch.randn(500, 4) * torch.tensor([0.1, 1.0, 30.0, 1.0]) + torch.tensor([0.0, 12.0, 0.0, -5.0])
    out = q(h)
    used = [len(out.params["z_e"][:, i].detach().round().unique()) > 1 for i in range(4)]
    z_e = out.params["z_e"].detach()
    assert torch.allclose(z_e.mean(0), torch.zeros(4), atol=1e-4)
    assert torch.allclose(z_e.std(0), torch.ones(4), atol=1e-2)
    levels = [len(torch.unique(q.lookup(out.params["codes"].view(-1, 1))[:, i])) for i in range(4)]
    assert levels == [8, 5, 5, 5] and all(used)  # unscaled, three of them would sit on one level
    q.eval()
    assert torch.allclose(q(h[:3]).params["z_e"], q.norm_in(q.proj_in(h[:3])), atol=1e-5)  # running statistics


def test_the_orthogonal_regulariser_by_hand_and_only_on_a_learnt_codebook():
    torch.manual_seed(18)
    q = quantiser("vq", codebook_size=6, ema=False, orthogonal=True, kmeans_iters=0)
    out = q.quantize(torch.randn(40, 8))
    used = torch.unique(out.codes[:, 0])
    e = torch.nn.functional.normalize(q.codebooks[0].embed[0, used], dim=-1)
    expected = ((e @ e.t() - torch.eye(len(e))) ** 2).sum() / len(e) ** 2
    assert float(out.batch_terms["orthogonal"]) == pytest.approx(float(expected), rel=1e-5)
    out.batch_terms["orthogonal"].backward()
    assert q.codebooks[0].embed.grad[0, used].abs().sum() > 0  # it reaches the entries
    with pytest.raises(ConfigError, match="ema=false"):
        quantiser("vq", orthogonal=True)
