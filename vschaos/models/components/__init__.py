"""Building blocks of the spectral VAE: encoders, decoders, label embeddings, predictors, distributions."""
from vschaos.models.components.decoders import SpectralDecoder
from vschaos.models.components.distributions import (kl_standard_normal, normal_parameters, reparameterise,
                                                      sample_latent)
from vschaos.models.components.embeddings import LearnedEmbedding, OneHotEmbedding, make_embedding
from vschaos.models.components.encoders import MLP, SpectralEncoder
from vschaos.models.components.predictors import MLPPredictor

__all__ = [
    "MLP", "SpectralEncoder", "SpectralDecoder", "OneHotEmbedding", "LearnedEmbedding", "make_embedding",
    "MLPPredictor", "normal_parameters", "reparameterise", "sample_latent", "kl_standard_normal",
]
