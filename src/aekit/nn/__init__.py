"""Reusable parts: backbones (images, tables, sequences), bottlenecks, priors, likelihoods, corruptions, sparse
dictionaries."""

from aekit.nn.backbones import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, make_backbone
from aekit.nn.bottlenecks import BottleneckOutput, Deterministic, DiagonalGaussian, make_bottleneck
from aekit.nn.code_priors import AutoregressivePrior, MaskedTokenPrior
from aekit.nn.corruptions import GaussianNoise, MaskingNoise, SaltAndPepper, make_corruption
from aekit.nn.flows import NormalisingFlowPosterior
from aekit.nn.hierarchical import BottomUpGaussian, HierarchicalPrior, LadderGaussian
from aekit.nn.likelihoods import Bernoulli, DiscretizedLogistic, Gaussian, make_likelihood
from aekit.nn.maf import MAFPrior
from aekit.nn.priors import GaussianMixture, Prior, StandardNormal
from aekit.nn.quantize import FSQ, LFQ, ResidualVQ, VectorQuantizer
from aekit.nn.sequence import Conv1dEncoder, RNNEncoder, TransformerEncoder
from aekit.nn.sparse import BatchTopK, Dictionary, GradientTopK, Matryoshka, SparseCode, TopK, VectorInput
from aekit.nn.sparse_penalised import Gated, JumpReLU, ReLUL1
from aekit.nn.spherical import SphericalPosterior, UniformSphere
from aekit.nn.vamp import VampPrior

__all__ = [
    "BatchTopK", "Bernoulli", "BottleneckOutput", "Gated", "GradientTopK", "JumpReLU", "Matryoshka", "ReLUL1",
    "BottomUpGaussian", "HierarchicalPrior", "LadderGaussian", "NormalisingFlowPosterior",
    "SparseCode", "Conv1dEncoder", "ConvDecoder", "ConvEncoder", "Dictionary", "RNNEncoder",
    "TransformerEncoder", "Deterministic", "DiagonalGaussian",
    "DiscretizedLogistic", "Gaussian", "GaussianNoise", "MLPDecoder", "MLPEncoder", "MaskingNoise",
    "Prior", "SaltAndPepper", "StandardNormal", "TopK", "VectorInput", "make_backbone", "make_bottleneck",
    "make_corruption", "make_likelihood",
    "AutoregressivePrior", "FSQ", "LFQ", "MaskedTokenPrior", "ResidualVQ", "VectorQuantizer",
    "GaussianMixture", "MAFPrior", "VampPrior",
    "SphericalPosterior", "UniformSphere",
]
