"""Reusable parts: backbones, bottlenecks, priors, likelihoods, corruptions."""

from aekit.nn.backbones import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, make_backbone
from aekit.nn.bottlenecks import BottleneckOutput, Deterministic, DiagonalGaussian, make_bottleneck
from aekit.nn.corruptions import GaussianNoise, MaskingNoise, SaltAndPepper, make_corruption
from aekit.nn.likelihoods import Bernoulli, DiscretizedLogistic, Gaussian, make_likelihood
from aekit.nn.priors import Prior, StandardNormal

__all__ = [
    "Bernoulli", "BottleneckOutput", "ConvDecoder", "ConvEncoder", "Deterministic", "DiagonalGaussian",
    "DiscretizedLogistic", "Gaussian", "GaussianNoise", "MLPDecoder", "MLPEncoder", "MaskingNoise",
    "Prior", "SaltAndPepper", "StandardNormal", "make_backbone", "make_bottleneck", "make_corruption",
    "make_likelihood",
]
