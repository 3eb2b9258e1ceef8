"""Metrics: plain functions, outside the models, each citing its definition."""

from aekit.metrics.latent import (
    active_units,
    aggregate_posterior_mmd,
    collapsed_units,
    kl_per_dimension,
    mean_sample_correlation_gap,
    mutual_information,
)
from aekit.metrics.likelihood import elbo_terms, importance_sampled_log_likelihood
from aekit.metrics.probes import knn_accuracy, linear_probe_accuracy
from aekit.metrics.reconstruction import bce, mse, psnr
from aekit.metrics.sparsity import (
    FiringTracker,
    VarianceAccumulator,
    cross_entropy_recovered,
    explained_variance,
    feature_recovery,
    fraction_of_variance_unexplained,
    l0,
)

__all__ = [
    "FiringTracker", "VarianceAccumulator", "active_units", "aggregate_posterior_mmd", "bce", "collapsed_units",
    "cross_entropy_recovered", "elbo_terms", "explained_variance", "feature_recovery",
    "fraction_of_variance_unexplained", "importance_sampled_log_likelihood", "kl_per_dimension", "knn_accuracy", "l0",
    "linear_probe_accuracy", "mean_sample_correlation_gap", "mse", "mutual_information", "psnr",
]
