"""What a person looks at after training: figures from plain arrays, one self-contained HTML report per run,
and one page comparing runs.

The functions take tensors, arrays and paths, never models, so they serve any autoencoder and any script.
matplotlib is imported only when a figure is drawn.
"""

from aekit.report.compare import write_comparison
from aekit.report.figures import (
    plot_code_usage,
    plot_image_rows,
    plot_latent_density,
    plot_latent_map,
    plot_reconstructions,
    plot_samples,
    plot_training_curves,
)
from aekit.report.html import FIGURE_CAPTIONS, METRIC_EXPLANATIONS, explain_metric, write_report
from aekit.report.units import plot_factor_information, plot_latent_traversals, plot_unit_kl

__all__ = [
    "FIGURE_CAPTIONS",
    "METRIC_EXPLANATIONS",
    "explain_metric",
    "plot_code_usage",
    "plot_factor_information",
    "plot_image_rows",
    "plot_latent_density",
    "plot_latent_map",
    "plot_latent_traversals",
    "plot_reconstructions",
    "plot_samples",
    "plot_training_curves",
    "plot_unit_kl",
    "write_comparison",
    "write_report",
]
