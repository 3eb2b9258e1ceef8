"""Quantising bottlenecks: vector quantisation with learnt codebooks (VQ, residual and grouped VQ, SimVQ,
multi-scale residual VQ) and implicit scalar codebooks (FSQ, residual FSQ, LFQ, BSQ, latent quantisation), on code
vectors and on latent grids."""

from aekit.nn.quantize.base import Quantized, Quantizer, straight_through
from aekit.nn.quantize.codebook import Codebook, kmeans, nearest
from aekit.nn.quantize.multiscale import MultiScaleVQ
from aekit.nn.quantize.scalar import FSQ, LFQ, LatentQuantizer
from aekit.nn.quantize.vq import RandomProjectionQuantizer, ResidualVQ, SimVQ, VectorQuantizer

__all__ = ["Codebook", "FSQ", "LFQ", "LatentQuantizer", "MultiScaleVQ", "Quantized", "Quantizer",
           "RandomProjectionQuantizer", "ResidualVQ", "SimVQ", "VectorQuantizer", "kmeans", "nearest",
           "straight_through"]
