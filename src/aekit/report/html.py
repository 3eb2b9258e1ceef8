"""One self-contained HTML page per run: title, metrics, resolved config and figures.

The page has no external links or scripts: figures are embedded as base64 ``data:`` URIs and the CSS is
inline, so ``report.html`` can be mailed or archived on its own. Every string read from the run's files is
HTML-escaped. A run directory holds::

    config.json      {"model": {"name": ...}, "data": {"name": ...}, "train": {...}}
    metrics.json     a flat dict, keys grouped by their prefix: {"test/nll": 89.9, "train/steps": 1000}
    figures/*.png    reconstructions.png, samples.png, latent_map.png, training_curves.png, any others
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any

from aekit.errors import DataError
from aekit.files import write_atomically

__all__ = ["FIGURE_CAPTIONS", "METRIC_EXPLANATIONS", "explain_metric", "metric_direction", "write_report"]

# The figures every run may have, in the order the report shows them; other PNGs follow, by name.
FIGURE_CAPTIONS = {
    "reconstructions.png": "Inputs (top) and reconstructions (bottom)",
    "masked.png": "Originals, the masker's masks (hidden patches grey), and reconstructions from the visible patches",
    "samples.png": "Samples from the prior",
    "samples_per_class.png": "Samples from the prior, one row per class",
    "latent_density.png": "How often each latent fires: log10 of its share of the test rows",
    "latent_map.png": "Latent means, coloured by label",
    "code_usage.png": "How often each code is used over the test rows (a grid's positions as rows), per code column, "
                      "most used first",
    "latent_traversals.png": "Latent traversals: for each of three test inputs, each row moves one unit of its code "
                             "from -3 to +3 (in prior standard deviations under a standard normal prior, else the "
                             "unit's standard deviation over the test codes), the others held, and decodes; the "
                             "units with the most KL (or spread) first",
    "unit_kl.png": "KL(q(z_d|x) || p(z_d)) of each latent unit, averaged over the test examples; below 0.01 nats a "
                   "unit is collapsed (the posterior is the prior)",
    "factor_information.png": "What each unit tells of each ground-truth factor: I(z_d; v_k) / H(v_k), the codes "
                              "of at most 2,000 test examples cut into 20 bins; a disentangled code has one bright "
                              "cell per row and per column",
    "node_embeddings.png": "Node embeddings, coloured by class",
    "training_curves.png": "Training curves (the terms that change; a constant weight is left out)",
}
SAMPLER_CAPTION = ("Samples decoded from the ex-post sampler {0}, fitted to the training latents after training "
                  "(`aekit sample RUN --sampler {0}`); its precision and recall against test images in the title")
FAILED_FIGURES = "failed.json"  # in figures/: {figure name: why it was not drawn}, written by the run
# Figures of `aekit detect`, captioned in its report but never listed there as missing from a training run's.
DETECTION_CAPTIONS = {
    "scores.png": "Anomaly score of each row (over time for a series), the threshold dashed, labelled rows shaded",
    "score_histograms.png": "Scores of the normal and of the anomalous rows",
    "roc_pr.png": "ROC and precision-recall curves of the scores against the labels",
    "explanations.png": "The highest-scoring images, their reconstructions, and where each score comes from: the "
                        "reconstruction error, the ceVAE's combined map (error times score gradient) where the model "
                        "has a posterior, and the integrated-gradients attribution of the score",
    "attributions.png": "The highest-scoring rows: each feature's (a series: each step of the window's) share of the "
                        "score, by integrated gradients from the training mean (summing to the score's rise) and by "
                        "its own reconstruction error",
}
# What each metric of metrics.json measures, and its unit; whether lower or higher is better is added from
# metric_direction. Keys of other evaluation splits (val/nll) borrow the test/ entry of the same name.
METRIC_EXPLANATIONS = {
    "test/recon": "-log p(x|z) for z from the encoder, the reconstruction term; nats per example",
    "test/mse": "squared error of the reconstruction, averaged over data values; squared data units",
    "test/psnr": "peak signal-to-noise ratio of the reconstruction, 10 log10(1 / mse); dB",
    "test/bce": "binary cross-entropy of the reconstruction, summed over data values; nats per example",
    "test/elbo": "evidence lower bound on log p(x), -(recon + kl); nats per example",
    "test/kl": "KL(q(z|x) || p(z)), the rate of the code; nats per example",
    "test/kl_per_dim": "KL of each latent dimension (each channel of a grid, averaged over its positions; a "
                        "hierarchy's layers one after another, bottom first), averaged over the examples; nats",
    "test/batch_terms_batch_size": "examples per batch behind the whole-batch terms (an MMD), whose value depends "
                                   "on the batch: each is averaged over full batches of this size; count",
    "test/adv": "-log D(z) for the encoder's codes: how well they fool the latent discriminator; nats per example",
    "test/disc": "the latent discriminator's cross-entropy, prior draws against codes; nats per example",
    "test/disc_accuracy": "share of prior draws and codes the latent discriminator tells apart; fraction",
    "test/ce": "cross-entropy (the classifier's, or the ceVAE's inpainting -log p(x | z of the masked x)); nats "
               "per example",
    "test/correct": "share of examples whose most probable class is the label; fraction",
    "test/accuracy": "share of test examples whose most probable class is the label; fraction",
    "test/masked_mse": "squared error of the predicted hidden patches, in pixels (norm_pix_loss undone), averaged "
                       "over their values; squared data units",
    "test/visible_mse": "squared error of the prediction on the visible patches, which the loss does not score; "
                        "squared data units",
    "test/mask_ratio": "share of the patches hidden from the encoder; fraction",
    "test/nll": "-log p(x) by importance sampling; nats per example",
    "test/nll_stderr": "standard error of test/nll over the examples scored; nats",
    "test/nll_samples": "importance samples per example behind test/nll; count",
    "test/bits_per_dim": "test/nll / (D ln 2), a code length; bits per data dimension",
    "test/active_units": "latent dimensions whose posterior mean varies over the data (Cov > 0.01); count",
    "test/collapsed_units": "latent dimensions whose mean KL to the prior is below 0.01 nats: their posterior is the "
                            "prior whatever the input (posterior collapse); count",
    "test/mutual_information": "I_q(x; z), what the codes tell of the examples (He et al. 2019's estimator; at most "
                               "log of mi_examples); nats",
    "test/mi_examples": "test examples the mutual information was estimated from; count",
    "test/mean_sample_gap": "the largest, over the latent units, of how much more a unit correlates with another in "
                            "its posterior means than in its samples (near 1: a passive unit, Bonheme & Grzes "
                            "2023); fraction",
    "test/aggregate_mmd": "MMD^2 (unbiased, IMQ kernel summed over widths 0.1 to 10 times 2d) between one posterior "
                          "sample per example (the first mi_examples) and as many draws from the prior: near 0 when "
                          "the codes fill the prior as it is, larger where they leave holes in it; squared kernel "
                          "units",
    "test/l0": "latents that are not zero, per example: the L0 of a sparse code (a TopK code has at most k); count",
    "test/fvu": "fraction of variance unexplained: sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over the split (0 is "
                "perfect, 1 no better than the mean); fraction",
    "test/explained_variance": "1 - test/fvu; fraction",
    "test/dead_latents": "latents that fire on none of the split's examples; count",
    "test/dead_fraction": "share of the latents that fire on none of the split's examples; fraction",
    "test/dense_fraction": "share of the latents that fire on more than 10 % of the split's examples; fraction",
    "test/dead_in_training": "share of the latents that had not fired in the last dead_tokens training tokens when "
                             "training ended (Gao et al. 2024); fraction",
    "test/auxk": "AuxK: half the squared error of the reconstruction's residual rebuilt from the dead latents alone "
                 "(0 while none is dead); squared data units per example",
    "test/sparsity": "the sparsity penalty (L1, the gate's L1 or L0, by the model), in the units of the "
                     "reconstruction for data of unit mean squared norm; per example",
    "test/gate_recon": "-log p(x | the gate's activations through the frozen decoder): the gated code's auxiliary "
                       "reconstruction; nats per example",
    "test/commit": "commitment: ||z_e - sg(z_q)||^2, how far the encoder's vectors lie from their codes, summed "
                   "over an example's positions; squared latent units per example",
    "test/codebook": "codebook term ||sg(z_e) - z_q||^2 that moves entries learnt by gradient; squared latent units "
                     "per example",
    "test/entropy": "LFQ's entropy term: the mean per-vector code entropy minus diversity times the batch's code "
                    "entropy (lower: confident codes, spread over the codebook); nats per example",
    "test/orthogonal": "the orthogonal regulariser ||E E^T - I||_F^2 / n^2 over the unit vectors of the entries a "
                       "batch used (0: mutually orthogonal); per batch",
    "test/perplexity": "exp of the entropy of one batch's code use, the mean over code columns (K for uniform use, 1 "
                       "for one code); codes",
    "test/code_usage": "share of the codebook one batch used, the mean over code columns; fraction",
    "test/dead_codes": "entries unused for the restart period (dead_after steps) when training ended; count",
    "test/beta_vae": "BetaVAE score (Higgins et al. 2017): accuracy of a linear classifier naming the factor held "
                     "fixed from the mean |z1 - z2| of 64 pairs; fraction (chance 1/K)",
    "test/factor_vae": "FactorVAE score (Kim & Mnih 2018): accuracy of the majority-vote classifier naming the fixed "
                       "factor from the unit of least normalised variance; fraction",
    "test/mig": "mutual information gap (Chen et al. 2018): per factor, the gap between its two most informative "
                "units as a share of its entropy, averaged; 0 to 1",
    "test/sap": "SAP (Kumar et al. 2018): per factor, the gap between its two most predictive units, averaged; 0 to 1",
    "test/dci_disentanglement": "DCI disentanglement (Eastwood & Williams 2018): 1 - entropy of each unit's "
                                "importance over the factors, weighted by importance; 0 to 1",
    "test/dci_completeness": "DCI completeness: 1 - entropy of each factor's importance over the units; 0 to 1",
    "test/dci_informativeness": "DCI informativeness: held-out accuracy of predicting the factors from the codes "
                                "with the regressor of dci_regressor; fraction",
    "test/modularity": "modularity (Ridgeway & Mozer 2018): how much each unit's information goes to one factor; "
                       "0 to 1",
    "test/explicitness": "explicitness (Ridgeway & Mozer 2018): ROC AUC of a linear classifier of each factor value "
                         "from the codes, averaged; 0.5 to 1",
    "test/infom": "InfoM (Hsu et al. 2023): modularity from the normalised mutual information of units and factors; "
                  "0 to 1",
    "test/infoc": "InfoC (Hsu et al. 2023): compactness, how each factor's information concentrates in one unit; "
                  "0 to 1",
    "test/infoe": "InfoE (Hsu et al. 2023): explicitness, the factors' information a linear predictor recovers; 0 to 1",
    "test/total_correlation_mean": "Gaussian total correlation of the posterior means, KL(q(z) || prod_d q(z_d)) "
                                   "for a Gaussian fitted to them; nats",
    "test/total_correlation_sampled": "the same of one code drawn from each posterior; nats",
    "test/metric_examples": "test examples the disentanglement metrics were computed on; count",
    "test/codebook_usage": "share of each code column's entries used at least once over the split, their mean; "
                           "fraction",
    "test/codebook_perplexity": "exp of the entropy of the split's code distribution, the mean over code columns "
                                "(K for uniform use, 1 for a collapsed codebook); codes",
    "test/unused_codes": "entries never used over the split, summed over code columns; count",
    "test/code_entropy_bits": "entropy of the split's codes without context, summed over code columns: what a "
                              "grid position costs without a prior; bits per position",
    "test/code_capacity_bits": "sum over code columns of log2 of the codebook size; bits per position",
    "test/bits_per_code": "-log2 p(k) of the test codes under the prior, per token (the masked prior's along one "
                          "random order); bits per code",
    "test/unigram_bits_per_code": "entropy of the test codes without context, per token: what bits_per_code "
                                  "improves on; bits per code",
    "test/bits_per_code_examples": "test examples behind bits_per_code; count",
    "test/linear_probe_acc": "accuracy of a logistic regression on the latent means, fit on train; fraction",
    "test/knn_acc": "accuracy of 5 nearest neighbours in latent-mean space, fit on train; fraction",
    "test/auc": "ROC-AUC of the held-out edges against as many sampled non-edges; fraction",
    "test/ap": "average precision of the held-out edges against as many sampled non-edges; fraction",
    "test/edges": "held-out edges scored (as many non-edges besides); count",
    "test/node_acc": "test-node accuracy of a linear probe on the frozen node embeddings, the probe's epoch "
                     "chosen on the validation nodes; mean over probe seeds, fraction",
    "test/node_acc_std": "standard deviation of test/node_acc over the probe seeds; fraction",
    "test/node_val_acc": "validation-node accuracy of that probe; fraction",
    "test/node_acc_last": "test-node accuracy of the probe after its last epoch; mean over probe seeds, fraction",
    "test/node_accs": "test/node_acc of each probe seed",
    "train/best_val_auc": "highest validation ROC-AUC of the run (the epoch whose weights are kept); fraction",
    "test/examples": "test examples scored (a graph: its nodes); count",
    "test/subset_of": "test examples in the split, of which a fixed random subset of test/examples was scored (a "
                      "quick evaluation); count",
    "test/protocol": "full: the whole evaluation protocol of the run's settings; quick: a share of it in proportion "
                     "to the training (aekit evaluate RUN takes the whole)",
    "test/nll_examples": "test examples behind test/nll; count",
    "test/probe_examples": "training examples the probes were fit on; count",
    "train/examples": "training examples passed through the model, over all steps; count",
    "detect/nll_samples": "posterior samples per row behind an nll or elbo score; count",
    "detect/steps": "optimiser steps the detector trained for; count",
    "train/steps": "optimiser steps taken; count",
    "train/stop_reason": "why training ended",
    "train/skipped_steps": "batches skipped for a NaN or Inf loss (on_nan=skip); count",
    "train/wall_time_s": "time spent in the training loop; seconds",
    "train/samples_per_s": "training examples per second of the loop; examples/s",
    "train/best_val_loss": "lowest validation loss of the run; nats per example",
    "detect/threshold": "anomaly score above which a row is flagged: the 1 - contamination quantile of the "
                        "training rows' scores",
    "detect/rows": "rows scored; count",
    "detect/train_rows": "rows the detector trained on (a series: its first ones); count",
    "detect/flagged_share": "share of the rows scored above the threshold; fraction",
    "detect/roc_auc": "ROC-AUC of the scores against the labels; fraction",
    "detect/average_precision": "average precision of the scores against the labels; fraction",
}
# Where a family gives a term another meaning, its own words (by the suite that marks the family).
SUITE_EXPLANATIONS = {
    "masked": {
        "test/recon": "the training loss: squared error of the predicted hidden patches against the target "
                      "(pixels, each patch normalised when norm_pix_loss, or a teacher's features), averaged over "
                      "their values; target units",
    },
    "code-prior": {"test/nll": "the prior's training loss on the test codes: -log p(k) for the autoregressive prior, "
                               "the masked tokens' cross-entropy scaled to the sequence for the masked one; nats "
                               "per example"},
    "link-prediction": {"test/recon": "the adjacency's reconstruction loss: binary cross-entropy of the edges and of "
                                      "non-edges (sampled, or every pair with recon=dense); nats per pair"},
}
# The metrics a reader looks at first, by the suite that makes them, in the order shown; a run shows those it has.
HEADLINES = {
    "detect": ("detect/roc_auc", "detect/average_precision", "detect/flagged_share"),
    "disentanglement": ("test/mig", "test/dci_disentanglement", "test/factor_vae"),
    "variational": ("test/nll", "test/elbo", "test/kl", "test/active_units"),
    "sparsity": ("test/fvu", "test/l0", "test/dead_fraction", "test/explained_variance"),
    "masked": ("test/masked_mse", "test/linear_probe_acc", "test/knn_acc"),
    "classification": ("test/accuracy", "test/ce"),
    "link-prediction": ("test/auc", "test/ap"),
    "node-classification": ("test/node_acc",),
    "codebook": ("test/codebook_usage", "test/codebook_perplexity", "test/code_entropy_bits"),
    "code-prior": ("test/bits_per_code", "test/unigram_bits_per_code"),
    "reconstruction": ("test/mse", "test/psnr"),
    "representation": ("test/linear_probe_acc", "test/knn_acc", "test/active_units"),
}
# How a headline value was taken: its companion keys, said beside it.
_TAKEN_WITH = {"test/nll": ("nll_samples", "nll_examples")}
# Metric names (the key after its split prefix) for which one direction is better; others have none. The KL and
# the active units have none: the lowest KL may be a collapsed posterior, the most units a rate bought with recon.
_LOWER_IS_BETTER = {"nll", "recon", "mse", "bce", "bits_per_dim", "best_val_loss", "fvu", "bits_per_code"}
_HIGHER_IS_BETTER = {"elbo", "psnr", "auc", "ap", "node_acc", "best_val_auc", "roc_auc", "average_precision",
                     "explained_variance", "beta_vae", "factor_vae", "mig", "sap", "dci_disentanglement",
                     "dci_completeness", "dci_informativeness", "modularity", "explicitness", "infom", "infoc", "infoe"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CONFIG_SECTIONS = ("model", "data", "train")

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px;
       padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; margin-top: 2rem; }
.subtitle { color: #666; margin-top: 0; }
.tables { display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-start; }
table { border-collapse: collapse; font-size: 0.92rem; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3rem; }
td, th { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
td.number { text-align: right; font-variant-numeric: tabular-nums; font-family: ui-monospace, monospace; }
td code { white-space: pre-wrap; word-break: break-word; }
td.note { color: #555; font-size: 0.85rem; max-width: 28rem; }
td.best { font-weight: 700; background: #e6f4ea; }
figure { margin: 1.5rem 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.92rem; margin-top: 0.3rem; }
.missing { color: #8a6d3b; background: #fcf8e3; padding: 0.5rem 0.8rem; border-radius: 4px; }
pre { background: #f6f8fa; padding: 0.8rem; overflow-x: auto; font-size: 0.85rem; }
svg.bars rect { fill: #4a78b5; }
table.headline th { text-align: left; }
table.headline td.number { font-size: 1.1rem; font-weight: 600; }
"""


def metric_direction(key: str) -> str | None:
    """"lower" or "higher" where that value of ``key`` is better (``test/nll``: lower), else None."""
    name = key.rpartition("/")[2]
    if name in _LOWER_IS_BETTER:
        return "lower"
    if name in _HIGHER_IS_BETTER or name.endswith("_acc"):
        return "higher"
    return None


def explain_metric(key: str, suites: tuple[str, ...] = ()) -> str:
    """A few words on what ``key`` measures, its unit, and which way is better, in the words of the family that
    ``suites`` mark where it has its own (an MAE's ``recon``); "" for an unknown key."""
    split, separator, name = key.partition("/")
    test_key = f"test/{name}" if separator and split != "train" else key
    own = next((SUITE_EXPLANATIONS[s][test_key] for s in suites if test_key in SUITE_EXPLANATIONS.get(s, {})), None)
    text = own or METRIC_EXPLANATIONS.get(key)
    if text is None and separator and split != "train":
        text = METRIC_EXPLANATIONS.get(f"test/{name}")
    layer = re.fullmatch(r"kl_layer(\d+)", name or key)
    if text is None and layer:
        text = (f"KL of stochastic layer {layer[1]} (1: next to the data) from its prior given the layer above "
                "(the top: N(0, I)), a share of the kl term; nats per example")
    stage = re.fullmatch(r"stage(\d+)_usage", name or key)
    if text is None and stage:
        text = f"share of residual stage {stage[1]}'s codebook used over the split (0: the first stage); fraction"
    if text is None:
        return ""
    direction = metric_direction(key)
    return f"{text}, {direction} is better" if direction else text


def write_report(run_dir: str | os.PathLike[str]) -> Path:
    """Write ``run_dir/report.html`` from the run's config, metrics and figures; return its path.

    Missing or unreadable files are reported in their section instead of failing, so the report can be
    written at any point of a run. The file is replaced atomically.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"run directory {run_dir} does not exist; pass the folder a training run wrote")

    config, config_problem = _read_json(run_dir / "config.json")
    metrics, metrics_problem = _read_json(run_dir / "metrics.json")
    title = _title(config, run_dir)
    suites, data_kind = run_suites(config)
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="subtitle">Run <code>{escape(run_dir.resolve().name)}</code>{_activations_note(run_dir)}</p>',
        _headline_section(metrics, suites),
        "<h2>Metrics</h2>",
        _metrics_section(metrics, metrics_problem, suites),
        "<h2>Figures</h2>",
        _figures_section(run_dir / "figures"),
        "<h2>Configuration</h2>",
        _config_section(config, config_problem, data_kind),
    ]
    return write_page(run_dir / "report.html", title, body)


def write_page(path: Path, title: str, body: list[str]) -> Path:
    """One self-contained HTML page with the report's style, written atomically."""
    page = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}</title>",
            f"<style>{_CSS}</style>",
            "</head>",
            "<body>",
            *body,
            "</body>",
            "</html>",
            "",
        ]
    )
    return write_atomically(path, lambda file: file.write(page.encode("utf-8")))


# ----------------------------------------------------------------------------------------------------------
# Sections


def _title(config: Any, run_dir: Path) -> str:
    if not isinstance(config, dict):
        return f"Run {run_dir.resolve().name}"
    model = _section_name(config.get("model"))
    data = _section_name(config.get("data"))
    if model and data:
        return f"{model} on {data}"
    return model or data or f"Run {run_dir.resolve().name}"


def _activations_note(run_dir: Path) -> str:
    """What a model trained on an activation store learnt from, as its saved ``config.json`` names it."""
    saved, _ = _read_json(run_dir / "model" / "config.json")
    source = saved.get("activations") if isinstance(saved, dict) else None
    if not isinstance(source, dict):
        return ""
    return escape(f": activations of layer {source.get('layer')} ({source.get('hook')}) of {source.get('model')}, "
                  f"{source.get('tokens')} tokens of width {source.get('width')}")


def _section_name(section: Any) -> str:
    if isinstance(section, dict) and section.get("name") is not None:
        return str(section["name"])
    return ""


def run_suites(config: Any) -> tuple[tuple[str, ...], str]:
    """``(suites, data_kind)`` of the run's model, from its registered class: its evaluation suites
    (``("detect",)`` for a detector's run) and the kind of data it trains on; ``((), "")`` for a model that is
    not registered (a user's), which gets the generic page."""
    if not isinstance(config, dict):
        return (), ""
    section = config.get("model")
    try:
        from types import SimpleNamespace

        from aekit.registry import make_config, model_entry

        name = _section_name(section)
        model_class = model_entry(name).model_class
        suites = model_class.suites
        if isinstance(suites, property):  # the suites follow the config (an MAE with a feature target)
            settings = {k: v for k, v in section.items() if k != "name"}
            suites = suites.fget(SimpleNamespace(config=make_config(name, **settings)))
        facts = tuple(suites), model_class.data_kind
    except Exception:  # an unregistered or user model
        facts = (), ""
    return (("detect",), facts[1]) if isinstance(config.get("detect"), dict) else facts


def _headline_section(metrics: Any, suites: tuple[str, ...]) -> str:
    """The few metrics of the model's family first: value, meaning with unit, and how each was taken."""
    if not isinstance(metrics, dict):
        return ""
    if "test/mig" in metrics:  # a run on a factor dataset: scored by the disentanglement suite as well
        suites = (*suites, "disentanglement")
    chosen = [suite for suite in HEADLINES if suite in suites] or ["reconstruction"]  # the family's suite first
    keys = list(dict.fromkeys(k for suite in chosen for k in HEADLINES[suite]
                              if isinstance(metrics.get(k), (int, float)) and not isinstance(metrics.get(k), bool)))
    if not keys:
        return ""
    rows = []
    for key in keys[:5]:
        how = _how_taken(key, metrics)
        rows.append(f"<tr><th>{escape(key)}</th>{value_cell(metrics[key], _format_metric)}"
                    f'<td class="note">{escape(explain_metric(key, suites))}{escape(how)}</td></tr>')
    taken = _evaluation_note(metrics)
    return ('<h2>Headline</h2>\n<table class="headline"><tr><th>metric</th><th>value</th><th>meaning</th></tr>\n'
            + "\n".join(rows) + "\n</table>" + (f'\n<p class="subtitle">{escape(taken)}</p>' if taken else ""))


def _how_taken(key: str, metrics: dict[str, Any]) -> str:
    split = key.partition("/")[0]
    parts = []
    if key.endswith("/nll") and isinstance(metrics.get(f"{split}/nll_samples"), int):
        n = metrics.get(f"{split}/nll_examples")
        parts.append(f"K = {metrics[f'{split}/nll_samples']:,} importance samples"
                     + (f" on {n:,} examples" if isinstance(n, int) else ""))
        if isinstance(metrics.get(f"{split}/nll_stderr"), float):
            parts.append(f"standard error {_format_metric(metrics[f'{split}/nll_stderr'])}")
    return f" ({'; '.join(parts)})" if parts else ""


def _evaluation_note(metrics: dict[str, Any]) -> str:
    """How the test metrics were taken: every example, or a quick share of them."""
    n, of, edges = metrics.get("test/examples"), metrics.get("test/subset_of"), metrics.get("test/edges")
    if not isinstance(n, int):
        return ""
    if isinstance(edges, int):
        return f"Measured on the whole graph: {n:,} nodes, {edges:,} held-out edges and as many non-edges."
    if isinstance(of, int):
        return (f"Measured on a fixed subset of {n:,} of the {of:,} test examples (a quick evaluation, in proportion "
                "to the training); `aekit evaluate RUN` takes them all.")
    return f"Measured on all {n:,} test examples."


def _metrics_section(metrics: Any, problem: str | None, suites: tuple[str, ...] = ()) -> str:
    if problem is not None:
        return _missing(f"No metrics: {problem}.")
    if not isinstance(metrics, dict):
        return _missing(f"metrics.json holds a {type(metrics).__name__}, not a dict of metric values.")
    if not metrics:
        return _missing("metrics.json is empty: no metrics recorded yet.")
    groups: dict[str, list[tuple[str, Any]]] = {}
    for key, value in _flatten(metrics, "/").items():
        prefix, separator, name = key.partition("/")
        if not separator:
            prefix, name = "other", key
        groups.setdefault(prefix, []).append((name, value))
    tables = [
        _table(prefix, ("metric", "value"), rows, _format_metric,
               note=lambda name, prefix=prefix: explain_metric(f"{prefix}/{name}" if prefix != "other" else name,
                                                               suites))
        for prefix, rows in groups.items()
    ]
    return '<div class="tables">\n' + "\n".join(tables) + "\n</div>"


# Data keys that serve one kind of data only: shown for the models that train on it.
_DATA_KEYS_OF = {"graph": ("graph_task", "edge_split", "row_normalize"),
                 "array": ("inputs", "labels", "memmap", "image_size", "augment", "crop_scale")}


def _applies(section: str, key: str, data_kind: str) -> bool:
    """Whether a config key does anything for a model that trains on ``data_kind`` data ("" when unknown)."""
    if section != "data" or not data_kind:
        return True
    return not any(key in keys for kind, keys in _DATA_KEYS_OF.items() if kind != data_kind)


def _config_section(config: Any, problem: str | None, data_kind: str = "") -> str:
    if problem is not None:
        return _missing(f"No configuration: {problem}.")
    if not isinstance(config, dict):
        return f"<pre>{escape(json.dumps(config, indent=2))}</pre>"
    ordered = [key for key in _CONFIG_SECTIONS if key in config] + [
        k for k in config if k not in _CONFIG_SECTIONS
    ]
    sections = [key for key in ordered if isinstance(config[key], dict) and config[key]]
    loose = {key: value for key, value in config.items() if key not in sections}
    tables = [
        _table(key, ("key", "value"), [(k, v) for k, v in _flatten(config[key], ".").items()
                                        if _applies(key, k, data_kind)], _format_config)
        for key in sections
    ]
    if loose:
        tables.append(_table("other", ("key", "value"), list(_flatten(loose, ".").items()), _format_config))
    return (
        '<div class="tables">\n'
        + "\n".join(tables)
        + "\n</div>\n<details><summary>config.json</summary>\n"
        + f"<pre>{escape(json.dumps(config, indent=2))}</pre>\n</details>"
    )


def _figures_section(figures_dir: Path) -> str:
    if not figures_dir.is_dir():
        return _missing("No figures: the run has no figures/ folder yet.")
    present = {path.name: path for path in figures_dir.glob("*.png") if path.is_file()}
    if not present and not (figures_dir / FAILED_FIGURES).is_file():
        return _missing("No figures: figures/ holds no PNG files yet.")
    captions = {**FIGURE_CAPTIONS, **DETECTION_CAPTIONS}
    known = [name for name in captions if name in present]
    others = sorted(name for name in present if name not in captions)
    parts = []
    for name in known + others:
        sampler = re.fullmatch(r"sampler_(.+)\.png", name)  # written by `aekit sample RUN --sampler NAME`
        caption = captions.get(name) or (SAMPLER_CAPTION.format(sampler[1]) if sampler else
                                         Path(name).stem.replace("_", " ").capitalize())
        data = present[name].read_bytes()
        if not data.startswith(_PNG_SIGNATURE):
            parts.append(_missing(f"{name} is not a valid PNG file; skipped."))
            continue
        parts.append(embedded_figure(data, caption, name))
    failed, _ = _read_json(figures_dir / FAILED_FIGURES)  # the figures the model's suites make that failed
    if isinstance(failed, dict) and failed:
        parts.append(_missing("Not produced: " + "; ".join(f"{name} ({why})" for name, why in failed.items()) + "."))
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------------------
# Pieces


def embedded_figure(png: bytes, caption: str, name: str) -> str:
    """A ``<figure>`` holding the PNG bytes as a base64 data URI, so the page needs no other file."""
    encoded = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{encoded}" alt="{escape(caption)}">'
        f"<figcaption>{escape(caption)} <code>({escape(name)})</code></figcaption></figure>"
    )


def _read_json(path: Path) -> tuple[Any, str | None]:
    """The parsed file, or None and a sentence saying why it could not be read."""
    if not path.is_file():
        return None, f"{path.name} not found"
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return None, f"{path.name} could not be read ({error})"


def _flatten(values: dict[str, Any], separator: str, prefix: str = "") -> dict[str, Any]:
    """Nested dicts become one level: ``{"a": {"b": 1}}`` -> ``{"a<separator>b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{separator}{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, separator, name))
        else:
            flat[name] = value
    return flat


def _table(
    caption: str,
    header: tuple[str, str],
    rows: list[tuple[str, Any]],
    show: Callable[[Any], str],
    note: Callable[[str], str] | None = None,
) -> str:
    """A two-column table; ``note`` adds a third column of words about each key (a metric's meaning)."""
    note_header = "<th>meaning</th>" if note else ""
    lines = [
        f"<table><caption>{escape(caption)}</caption>",
        f"<tr><th>{escape(header[0])}</th><th>{escape(header[1])}</th>{note_header}</tr>",
    ]
    for key, value in rows:
        note_cell = f'<td class="note">{escape(note(str(key)))}</td>' if note else ""
        lines.append(f"<tr><td>{escape(str(key))}</td>{value_cell(value, show)}{note_cell}</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def value_cell(value: Any, show: Callable[[Any], str], css_class: str = "") -> str:
    """One ``<td>``: numbers right-aligned; a list of numbers (one per latent unit, one per seed) as a small bar
    chart with the values a click away; other lists and dicts as code."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    classes = " ".join(name for name in ("number" if is_number else "", css_class) if name)
    shown = escape(show(value))
    if _numbers_list(value):
        shown = (f"{bar_chart(value)}<details><summary>{len(value)} values</summary><code>{shown}</code>"
                 "</details>")
    elif isinstance(value, (list, dict)):
        shown = f"<code>{shown}</code>"
    return f'<td class="{classes}">{shown}</td>' if classes else f"<td>{shown}</td>"


def _numbers_list(value: Any) -> bool:
    return (isinstance(value, list) and len(value) > 1
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value))


def bar_chart(values: list[float], width: int = 240, height: int = 48) -> str:
    """An inline SVG bar per value, from zero, each bar's tooltip its index and value: a per-unit metric read at
    a glance (which latent dimensions carry information)."""
    top = max(max(values), 0.0)
    low = min(min(values), 0.0)
    span = (top - low) or 1.0
    step = width / len(values)
    zero = height * top / span
    bars = []
    for i, v in enumerate(values):
        h = abs(v) * height / span
        y = zero - h if v >= 0 else zero
        bars.append(f'<rect x="{i * step:.1f}" y="{y:.1f}" width="{max(step - 1, 0.5):.1f}" height="{max(h, 0.5):.1f}">'
                    f"<title>{i}: {_format_metric(v)}</title></rect>")
    label = f"{len(values)} values from {_format_metric(min(values))} to {_format_metric(max(values))}"
    return (f'<svg class="bars" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(label)}">{"".join(bars)}</svg>')


def _format_config(value: Any) -> str:
    """A config value exactly as in config.json, so it can be copied back."""
    return value if isinstance(value, str) else json.dumps(value)


def _format_metric(value: Any) -> str:
    """A metric as a person reads it: 1,000 steps, 89.91 nats, 0.9312 accuracy, 1.235e-04."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        magnitude = abs(value)
        if magnitude >= 1e6 or 0 < magnitude < 1e-3:
            return f"{value:.3e}"
        if magnitude >= 1000:
            return f"{value:,.1f}"
        return f"{value:.4g}"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _missing(sentence: str) -> str:
    return f'<p class="missing">{escape(sentence)}</p>'
