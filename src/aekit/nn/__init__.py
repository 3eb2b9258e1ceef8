"""Reusable parts: backbones, bottlenecks, likelihoods, corruptions."""

from aekit.nn.backbones import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, make_backbone
from aekit.nn.bottlenecks import BottleneckOutput, Deterministic, DiagonalGaussian, StandardNormal
from aekit.nn.corruptions import GaussianNoise, MaskingNoise, SaltAndPepper, make_corruption
from aekit.nn.likelihoods import Bernoulli, DiscretizedLogistic, Gaussian, make_likelihood

__all__ = [
    "Bernoulli", "BottleneckOutput", "ConvDecoder", "ConvEncoder", "Deterministic", "DiagonalGaussian",
    "DiscretizedLogistic", "Gaussian", "GaussianNoise", "MLPDecoder", "MLPEncoder", "MaskingNoise",
    "SaltAndPepper", "StandardNormal", "make_backbone", "make_corruption", "make_likelihood",
]
