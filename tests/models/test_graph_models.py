"""Graph models: one conformance suite over every graph model, and each model's own math checked by hand."""

import pytest
import torch
import torch.nn.functional as F

import aekit
from aekit.data.graphs import Adjacency, GraphBatch, graph_splits, stochastic_block_graph
from aekit.errors import ConfigError, DataError
from aekit.models.graphmae import scaled_cosine_error
from aekit.nn.graph import GATLayer, edge_softmax
from aekit.registry import list_models

GRAPH_MODELS = [e.name for e in list_models() if getattr(e.model_class, "data_kind", "") == "graph"]
TINY = {"graphmae": {"hidden": 8, "heads": 2}}


@pytest.fixture(scope="module")
def graph():
    return stochastic_block_graph(nodes=120, classes=3, features=12, seed=0)


def tiny(name, features=12, **kw):
    if name == "graphmae":
        return aekit.build_model(name, data_shape=(features,), **TINY[name], **kw)
    return aekit.build_model(name, data_shape=(features,), hidden=(8,) * (4 if name == "resvgae" else 1),
                             latent_dim=4, **kw)


def test_every_graph_model_is_in_the_suite():
    assert set(GRAPH_MODELS) == {"gae", "vgae", "arga", "argva", "resvgae", "graphmae"}


@pytest.mark.parametrize("name", GRAPH_MODELS)
@pytest.mark.parametrize("task", ["link", "node"])
def test_shapes_losses_and_gradients(name, task, graph):
    torch.manual_seed(0)
    model = tiny(name)
    splits = graph_splits(graph, task, seed=0)
    b = splits.train.batch()
    out = model(b)
    assert out.terms and all(t.dim() == 0 and torch.isfinite(t) for t in out.terms.values())
    loss = model.objective()(out, step=0, batch=b)
    assert set(loss.losses) == set(model.parameter_groups())
    sum(loss.losses.values()).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    model.eval()
    z = model.embed(b)
    assert z.shape[0] == graph.num_nodes and z.dim() == 2
    if task == "link" and name != "graphmae":
        val = model(splits.val.batch())
        assert 0 <= float(val.stats["auc"]) <= 1 and 0 <= float(val.stats["ap"]) <= 1
        p = model.predict_links(graph, torch.tensor([[0, 1], [2, 3]]))
        assert p.shape == (2,) and ((p > 0) & (p < 1)).all()
        from_splits = model.predict_links(splits, torch.tensor([[0, 1], [2, 3]]))  # as load_data gives them
        assert torch.equal(from_splits, model.predict_links(splits.train, torch.tensor([[0, 1], [2, 3]])))


@pytest.mark.parametrize("name", GRAPH_MODELS)
def test_save_load_round_trip_and_determinism(name, graph, tmp_path):
    torch.manual_seed(1)
    model = tiny(name)
    b = graph_splits(graph, "link").train.batch()
    loaded = aekit.load(aekit.save_model(model, tmp_path / "m"))
    assert loaded.config == model.config and type(loaded) is type(model)
    for m in (model, loaded):
        m.train()
    torch.manual_seed(0)
    first = model(b).terms
    torch.manual_seed(0)
    again = loaded(b).terms
    assert all(torch.equal(again[k], v) for k, v in first.items())


@pytest.mark.parametrize("name", GRAPH_MODELS)
def test_wrong_inputs_are_clear_errors(name, graph):
    model = tiny(name, features=5)
    with pytest.raises(DataError, match="node features of width 12 do not fit"):
        model(graph_splits(graph, "link").train.batch())
    with pytest.raises(DataError, match="takes a graph"):
        model(aekit.Batch(torch.rand(4, 5)))
    with pytest.raises(DataError, match="trains on a graph"):
        aekit.train(name, data="digits", out=None, steps=1)


@pytest.mark.parametrize("name", ["gae", "vgae", "arga", "argva", "resvgae"])
def test_link_models_learn_the_generated_graph(name):
    result = aekit.train(name, data="sbm", out=None, steps=60, progress=False, threads=1, hidden=(16,) * (
        4 if name == "resvgae" else 1))
    assert result.metrics["test/auc"] > 0.6, result.metrics  # chance is 0.5; a block model caps it near 0.8
    assert result.metrics["test/node_acc"] > 0.8  # 4 classes: chance 0.25


def test_graphmae_learns_the_generated_graph():
    result = aekit.train("graphmae", data="sbm", out=None, steps=60, hidden=32, heads=2, progress=False, threads=1)
    assert result.metrics["test/node_acc"] > 0.8, result.metrics


def test_dense_reconstruction_is_kipf_and_wellings_weighted_cross_entropy(graph):
    model = tiny("gae")
    b = graph_splits(graph, "link").train.batch()
    z = torch.randn(graph.num_nodes, 4)
    n = graph.num_nodes
    target = torch.eye(n)
    target[b.graph.edge_index[0], b.graph.edge_index[1]] = 1
    e = b.graph.edge_index.shape[1]
    expected = n * n / (2 * (n * n - e)) * F.binary_cross_entropy_with_logits(
        z @ z.t(), target, pos_weight=torch.tensor((n * n - e) / e))
    assert torch.allclose(model.dense_recon_loss(z, b.graph), expected, atol=1e-6)
    dense = tiny("gae", recon="dense")
    out = dense(b)
    assert torch.allclose(out.terms["recon"], dense.dense_recon_loss(out.z, b.graph))


def test_sampled_reconstruction_with_given_non_edges(graph):
    model = tiny("gae", recon="sampled")
    b = graph_splits(graph, "link").train.batch()
    neg = torch.tensor([[0, 1], [5, 7]])
    eps_free = model(b, neg_edges=neg)
    z = eps_free.z
    expected = F.softplus(-(z[b.pos_edges[0]] * z[b.pos_edges[1]]).sum(-1)).mean() + \
        F.softplus((z[neg[0]] * z[neg[1]]).sum(-1)).mean()
    assert torch.allclose(eps_free.terms["recon"], expected)


def test_vgae_kl_is_the_mean_node_kl_over_n(graph):
    model = tiny("vgae")
    b = graph_splits(graph, "link").train.batch()
    out = model(b, eps=torch.zeros(graph.num_nodes, 4))
    mu, logvar = out.latent.params["mu"], out.latent.params["logvar"]
    kl_nodes = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)
    assert torch.allclose(out.terms["kl"], kl_nodes.mean() / graph.num_nodes)
    assert torch.equal(out.z, mu)  # eps = 0: the posterior mean


def test_arga_discriminator_has_its_own_optimiser(graph):
    model = tiny("arga")
    groups = model.parameter_groups()
    assert set(groups) == {"model", "discriminator"}
    assert all(n.startswith("discriminator.") for n, _ in groups["discriminator"])
    b = graph_splits(graph, "link").train.batch()
    loss = model.objective()(model(b, z_prior=torch.zeros(graph.num_nodes, 4)), 0, b)
    disc_params = [p for _, p in groups["discriminator"]]
    grads = torch.autograd.grad(loss.losses["model"], disc_params, allow_unused=True)
    assert all(g is None or float(g.abs().sum()) > 0 for g in grads)
    enc = [p for _, p in groups["model"]]
    grads = torch.autograd.grad(loss.losses["discriminator"], enc, allow_unused=True)
    assert all(g is None or float(g.abs().sum()) == 0 for g in grads)  # z is detached on the discriminator's side
    assert "kl" in tiny("argva").objective()(tiny("argva")(b), 0, b).logs


def test_graphmae_masks_replaces_and_remasks(graph):
    torch.manual_seed(0)
    model = tiny("graphmae", mask_rate=0.5, replace_rate=0.2)
    model.mask_token.data.fill_(7.0)  # a token no feature row equals (it starts at zero)
    x = graph.x
    noise = torch.rand(graph.num_nodes)
    x_tilde, mask = model.mask_nodes(x, noise)
    hidden = mask.bool()
    assert int(hidden.sum()) == graph.num_nodes - int(graph.num_nodes * 0.5)
    assert torch.equal(hidden, noise >= noise.sort().values[60])  # the masker keeps the lowest noise
    token_rows = (x_tilde == model.mask_token).all(1)
    assert int(token_rows.sum()) == 60 - int(0.2 * 60) and not token_rows[~hidden].any()
    assert torch.equal(x_tilde[~hidden], x[~hidden])  # visible nodes keep their features
    h = torch.randn(graph.num_nodes, 8)
    seen = {}
    model.decoder.register_forward_hook(lambda m, args, out: seen.setdefault("rep", args[0]))
    model.decode(h, mask, Adjacency(graph.edge_index, graph.num_nodes))
    assert (seen["rep"][hidden] == 0).all() and (seen["rep"][~hidden] != 0).any()


def test_scaled_cosine_error_by_hand():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    z = torch.tensor([[1.0, 1.0], [0.0, 5.0]])
    expected = ((1 - 2 ** -0.5) ** 3 + 0.0) / 2
    assert torch.allclose(scaled_cosine_error(x, z, 3.0), torch.tensor(expected))


@pytest.mark.parametrize("key,value,match", [
    ("mask_rate", 0.0, r"mask_rate=0.0 must lie in \(0, 1\)"),
    ("mask_rate", 1.0, r"mask_rate=1.0 must lie in \(0, 1\)"),
    ("replace_rate", 1.5, "replace_rate"),
    ("decoder", "mlp", "decoder='mlp' is unknown"),
])
def test_graphmae_bad_settings(key, value, match):
    with pytest.raises(ConfigError, match=match):
        aekit.make_config("graphmae", **{key: value})


def test_gae_bad_settings():
    with pytest.raises(ConfigError, match="recon='full' is unknown"):
        aekit.make_config("gae", recon="full")
    with pytest.raises(ConfigError, match="encoder='gin' is unknown"):
        aekit.make_config("gae", encoder="gin")


def test_edge_softmax_sums_to_one_per_target():
    dst = torch.tensor([0, 0, 1, 2, 2, 2])
    scores = torch.randn(6, 3)
    alpha = edge_softmax(scores, dst, 3)
    assert torch.allclose(torch.zeros(3, 3).index_add_(0, dst, alpha), torch.ones(3, 3))


@pytest.mark.parametrize("in_f,out_f,heads", [(6, 4, 3), (6, 200, 1), (6, 130, 2), (300, 256, 1)])
def test_gat_layer_matches_the_message_passing_formula(in_f, out_f, heads, graph):
    torch.manual_seed(0)
    g = stochastic_block_graph(nodes=30, features=in_f, seed=2)
    adj = Adjacency(g.edge_index, g.num_nodes)
    layer = GATLayer(in_f, out_f, heads).double()
    x = torch.randn(g.num_nodes, in_f, dtype=torch.float64, requires_grad=True)

    def reference(x):
        src, dst = adj.with_self_loops()
        wh = layer.fc(x).view(-1, heads, out_f)
        e = F.leaky_relu((wh * layer.attn_src).sum(-1)[src] + (wh * layer.attn_dst).sum(-1)[dst], 0.2)
        w = torch.exp(e)
        alpha = w / torch.zeros(g.num_nodes, heads, dtype=x.dtype).index_add(0, dst, w)[dst]
        return torch.zeros_like(wh).index_add(0, dst, wh[src] * alpha[..., None]).reshape(g.num_nodes, -1) + layer.bias

    out, expected = layer(x, adj), reference(x)
    assert torch.allclose(out, expected)
    weights = torch.randn_like(out)
    grads = torch.autograd.grad((out * weights).sum(), [x, *layer.parameters()])
    expected_grads = torch.autograd.grad((expected * weights).sum(), [x, *layer.parameters()])
    assert all(torch.allclose(a, b) for a, b in zip(grads, expected_grads, strict=True))  # the custom backward
    rows = torch.tensor([0, 4, 9])
    assert torch.allclose(layer(x, adj, rows), reference(x)[rows])
    if in_f * out_f * heads < 1000:
        assert torch.autograd.gradcheck(lambda x: layer(x, adj), (x,), fast_mode=True)


def test_graph_batch_refuses_to_be_sharded(graph):
    with pytest.raises(DataError, match="one batch on one device"):
        graph_splits(graph, "link").train.batch().select(slice(0, 2))
    assert isinstance(graph_splits(graph, "link").train.batch().to("cpu"), GraphBatch)


def test_trains_on_a_pyg_data_and_on_a_graph_in_memory():
    pytest.importorskip("torch_geometric")
    g = stochastic_block_graph(nodes=100, classes=2, features=8, seed=3)
    result = aekit.train("gae", data=g.to_pyg(), out=None, steps=5, progress=False, threads=1)
    assert 0 <= result.metrics["test/auc"] <= 1 and result.model.config.data_shape == (8,)
    result = aekit.train("graphmae", data=g, out=None, steps=3, hidden=8, heads=2, progress=False, threads=1)
    assert "test/node_acc" in result.metrics


def test_dense_reconstruction_is_refused_on_a_large_graph_before_training(monkeypatch, graph):
    import aekit.models.gae as gae

    monkeypatch.setattr(gae, "DENSE_LIMIT", 100)
    with pytest.raises(DataError, match=r"recon=dense scores all 600\^2 node pairs.*use recon=sampled"):
        aekit.train("vgae", data="sbm", out=None, recon="dense", progress=False)
    with pytest.raises(DataError, match=r"recon=dense scores all 120\^2"):
        tiny("vgae", recon="dense")(graph_splits(graph, "link").train.batch())


def test_the_dense_softplus_sum_and_its_gradient_are_autograd_s_through_every_pair():
    from aekit.nn.graph import InnerProductDecoder

    z = torch.randn(11, 3, dtype=torch.float64, requires_grad=True)
    decoder = InnerProductDecoder()
    assert torch.allclose(decoder.softplus_sum(z, block=4), F.softplus(z @ z.t()).sum())
    assert torch.autograd.gradcheck(lambda v: decoder.softplus_sum(v, block=4), (z,))


def test_recon_auto_is_the_dense_loss_on_a_small_graph_and_sampled_on_a_large_one(graph, monkeypatch):
    import aekit.models.gae as gae

    b = graph_splits(graph, "link").train.batch()
    auto, dense = tiny("vgae"), tiny("vgae", recon="dense")
    dense.load_state_dict(auto.state_dict())
    eps = torch.randn(graph.num_nodes, 4)
    assert auto.config.recon == "auto"
    assert torch.equal(auto(b, eps=eps).terms["recon"], dense(b, eps=eps).terms["recon"])
    _, notes = gae.GAE.fit_to_data({}, graph_splits(graph, "link"))
    assert notes == ["recon=auto takes the dense loss over every node pair (Kipf & Welling's): the graph has 120 "
                     "nodes, at most 5,000; recon=sampled is faster"]
    monkeypatch.setattr(gae, "DENSE_AUTO", 100)  # now the graph is large: non-edges are drawn
    sampled = tiny("vgae", recon="sampled")
    sampled.load_state_dict(auto.state_dict())
    neg = torch.randint(0, graph.num_nodes, (2, b.pos_edges.shape[1]))
    recon = [m(b, eps=eps, neg_edges=neg).terms["recon"] for m in (auto, sampled)]
    assert torch.equal(*recon)
    _, notes = gae.GAE.fit_to_data({}, graph_splits(graph, "link"))
    assert "takes the sampled loss (non-edges drawn each step): the graph has 120 nodes, over the 100" in notes[0]
    assert gae.GAE.fit_to_data({"recon": "sampled"}, graph_splits(graph, "link"))[1] == []  # chosen: no note


def _planetoid_folder(folder, name):
    """A small Planetoid set named ``name`` (the files' prefix), from a generated graph."""
    import pickle

    import numpy as np
    import scipy.sparse as sp

    g = stochastic_block_graph(nodes=60, classes=2, features=6, seed=1)
    x, y = sp.csr_matrix(g.x.numpy()), np.eye(2)[g.y.numpy()]
    adjacency = {i: [] for i in range(60)}
    for a, b in g.edge_index.t().tolist():
        adjacency[a].append(b)
    test = list(range(40, 60))
    for key, value in {"x": x[:10], "allx": x[:40], "tx": x[40:], "y": y[:10], "ally": y[:40], "ty": y[40:],
                       "graph": adjacency}.items():
        with open(folder / f"ind.{name}.{key}", "wb") as f:
            pickle.dump(value, f, protocol=2)
    (folder / f"ind.{name}.test.index").write_text("\n".join(map(str, test)) + "\n")
    return folder


def test_graphmae_takes_the_papers_recipe_for_a_known_graph_and_says_which(tmp_path, capsys):
    import yaml

    from aekit.models.graphmae import GraphMAE
    from aekit.run_config import resolve_run

    folder = _planetoid_folder(tmp_path, "citeseer")
    run, _ = resolve_run("graphmae", str(folder), None, False, None, {"probe_epochs": 20})
    assert "aekit: graphmae: the recipe for citeseer" in capsys.readouterr().err
    recipe = GraphMAE.data_recipes["citeseer"]
    assert run["model"]["heads"] == 2 and run["model"]["gamma"] == 1.0 and run["train"]["steps"] == 300
    assert run["model"]["probe_epochs"] == 20  # the user's settings stay on top
    assert all(run["model"][k] == v for k, v in recipe["model"].items() if k != "probe_epochs")
    run, _ = resolve_run("graphmae", "sbm", None, False, None, {})
    assert "no recipe is known for this data; the one for cora (known: cora, citeseer, pubmed)" in \
        capsys.readouterr().err
    assert run["model"]["heads"] == 4 and run["train"]["steps"] == 1500  # the defaults: Cora's
    # the recipe files say the same as the table
    for name in ("citeseer", "pubmed"):
        path = __import__("pathlib").Path(__file__).parents[2] / "configs" / f"graphmae-{name}.yaml"
        recipe, written = GraphMAE.data_recipes[name], yaml.safe_load(path.read_text())
        assert all(written["model"][k] == v for k, v in recipe["model"].items()), name
        assert all(written["train"][k] == v for k, v in recipe["train"].items()), name
