"""Metrics: plain functions, outside the models, each citing its definition."""

from aekit.metrics.latent import active_units, kl_per_dimension
from aekit.metrics.likelihood import elbo_terms, importance_sampled_log_likelihood
from aekit.metrics.probes import knn_accuracy, linear_probe_accuracy
from aekit.metrics.reconstruction import bce, mse, psnr

__all__ = [
    "active_units", "bce", "elbo_terms", "importance_sampled_log_likelihood", "kl_per_dimension",
    "knn_accuracy", "linear_probe_accuracy", "mse", "psnr",
]
