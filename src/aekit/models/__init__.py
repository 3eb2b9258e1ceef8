"""Built-in models; importing this package registers them."""

from aekit.models.aae import AAE, AAEConfig
from aekit.models.ae import AE, AEConfig, DAEConfig
from aekit.models.base import Autoencoder, AutoencoderConfig, AutoencoderOutput, Model
from aekit.models.cevae import CEVAE, CEVAEConfig
from aekit.models.classifier import Classifier, ClassifierConfig
from aekit.models.cvae import CVAE, CVAEConfig
from aekit.models.gae import GAE, GAEConfig
from aekit.models.graphmae import GraphMAE, GraphMAEConfig
from aekit.models.iwae import IWAEBound, IWAEConfig
from aekit.models.mae import MAE, MAEConfig
from aekit.models.sae import SAE, SAEConfig
from aekit.models.spark import SparK, SparKConfig
from aekit.models.vae import VAE, BetaVAEConfig, VAEConfig

__all__ = [
    "AAE", "AAEConfig", "AE", "AEConfig", "Autoencoder", "AutoencoderConfig", "AutoencoderOutput", "BetaVAEConfig",
    "CEVAE", "CEVAEConfig", "CVAE", "CVAEConfig", "Classifier", "ClassifierConfig", "DAEConfig", "GAE", "GAEConfig",
    "GraphMAE", "GraphMAEConfig", "Model",
    "IWAEBound", "IWAEConfig", "MAE", "MAEConfig", "SAE", "SAEConfig", "SparK", "SparKConfig", "VAE", "VAEConfig",
]
