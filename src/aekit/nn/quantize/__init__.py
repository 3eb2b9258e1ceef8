"""Quantising bottlenecks: vector quantisation with learnt codebooks (VQ, residual and grouped VQ) and implicit
scalar codebooks (FSQ, residual FSQ, LFQ, BSQ), on code vectors and on latent grids."""

from aekit.nn.quantize.base import Quantized, Quantizer, straight_through
from aekit.nn.quantize.codebook import Codebook, kmeans, nearest
from aekit.nn.quantize.scalar import FSQ, LFQ
from aekit.nn.quantize.vq import ResidualVQ, VectorQuantizer

__all__ = ["Codebook", "FSQ", "LFQ", "Quantized", "Quantizer", "ResidualVQ", "VectorQuantizer", "kmeans", "nearest",
           "straight_through"]
