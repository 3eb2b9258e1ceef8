"""Built-in models; importing this package registers them."""

from aekit.models.aae import AAE, AAEConfig
from aekit.models.ae import AE, AEConfig, DAEConfig
from aekit.models.autogen import AutoGen, AutoGenConfig
from aekit.models.base import Autoencoder, AutoencoderConfig, AutoencoderOutput, Model
from aekit.models.beta_tcvae import BetaTCVAE, BetaTCVAEConfig
from aekit.models.cevae import CEVAE, CEVAEConfig
from aekit.models.ciwae import CIWAE, CIWAEBounds, CIWAEConfig
from aekit.models.classifier import Classifier, ClassifierConfig
from aekit.models.code_prior import CodePrior, CodePriorConfig
from aekit.models.contractive import ContractiveAE, ContractiveAEConfig
from aekit.models.coupled_vae import CoupledTerms, CoupledVAE, CoupledVAEConfig, OTCoupling
from aekit.models.cvae import CVAE, CVAEConfig
from aekit.models.dip_vae import DIPVAE, DIPVAEConfig
from aekit.models.factor_vae import FactorVAE, FactorVAEConfig
from aekit.models.flow_vae import FlowVAEConfig, IAFVAEConfig
from aekit.models.gae import GAE, GAEConfig
from aekit.models.graphmae import GraphMAE, GraphMAEConfig
from aekit.models.hierarchical_vae import HierarchicalIWAEConfig, HierarchicalVAEConfig, LadderVAEConfig
from aekit.models.hvae import HVAEConfig
from aekit.models.info_vae import InfoVAE, InfoVAEConfig
from aekit.models.ivae import IVAE, IVAEConfig
from aekit.models.iwae import IWAEBound, IWAEConfig
from aekit.models.joint_vae import JointVAE, JointVAEConfig
from aekit.models.lorae import LoRAE, LoRAEConfig
from aekit.models.mae import MAE, MAEConfig
from aekit.models.miwae import MIWAEBound, MIWAEConfig
from aekit.models.msp import MSP, MSPConfig
from aekit.models.perceptual_vae import DFCVAE, MSSSIMVAE, DFCVAEConfig, MSSSIMVAEConfig
from aekit.models.piwae import PIWAEBounds, PIWAEConfig
from aekit.models.poincare_vae import PoincareVAEConfig
from aekit.models.rae import RAE, RAEConfig
from aekit.models.sae import SAE, SAEConfig
from aekit.models.spark import SparK, SparKConfig
from aekit.models.svae import SVAEConfig
from aekit.models.swae import SWAE, SWAEConfig
from aekit.models.unscented_ae import UnscentedAE, UnscentedAEConfig, UnscentedTerms
from aekit.models.vae import VAE, BetaVAE, BetaVAEConfig, VAEConfig
from aekit.models.vae_gan import VAEGAN, VAEGANConfig, VAEGANUpdates
from aekit.models.vamp_vae import VampVAEConfig
from aekit.models.vis import VISConfig, VISTerms
from aekit.models.vq_vae import (
    QLAE,
    FSQAEConfig,
    LFQAEConfig,
    QLAEConfig,
    QuantisedAutoencoder,
    RVQVAEConfig,
    VQVAEConfig,
)
from aekit.models.wae import WAE, WAEGAN, WAEGANConfig, WAEMMDConfig

__all__ = [
    "AAE", "AAEConfig", "AE", "AEConfig", "Autoencoder", "AutoencoderConfig", "AutoencoderOutput", "BetaVAEConfig",
    "CEVAE", "CEVAEConfig", "CIWAE", "CIWAEBounds", "CIWAEConfig", "Classifier", "ClassifierConfig",
    "ContractiveAE", "ContractiveAEConfig", "CVAE", "CVAEConfig", "DAEConfig", "GAE", "GAEConfig", "GraphMAE",
    "GraphMAEConfig", "InfoVAE", "InfoVAEConfig", "IWAEBound", "IWAEConfig", "LoRAE", "LoRAEConfig", "MAE",
    "MAEConfig", "MIWAEBound", "MIWAEConfig", "Model", "PIWAEBounds", "PIWAEConfig", "RAE", "RAEConfig", "SAE",
    "SAEConfig", "SparK", "SparKConfig", "SWAE", "SWAEConfig", "VAE", "VAEConfig", "WAE", "WAEGAN", "WAEGANConfig",
    "WAEMMDConfig",
    "AutoGen", "AutoGenConfig", "UnscentedAE", "UnscentedAEConfig", "UnscentedTerms",
    "HierarchicalIWAEConfig", "HierarchicalVAEConfig", "LadderVAEConfig", "FlowVAEConfig", "IAFVAEConfig",
    "CoupledTerms", "CoupledVAE", "CoupledVAEConfig", "OTCoupling", "VISConfig", "VISTerms",
    "CodePrior", "CodePriorConfig", "VampVAEConfig",
    "FSQAEConfig", "LFQAEConfig", "QLAE", "QLAEConfig", "QuantisedAutoencoder", "RVQVAEConfig", "VQVAEConfig",
    "BetaVAE", "BetaTCVAE", "BetaTCVAEConfig", "DIPVAE", "DIPVAEConfig", "FactorVAE", "FactorVAEConfig",
    "SVAEConfig", "HVAEConfig", "PoincareVAEConfig",
    "JointVAE", "JointVAEConfig", "IVAE", "IVAEConfig", "MSP", "MSPConfig",
    "DFCVAE", "DFCVAEConfig", "MSSSIMVAE", "MSSSIMVAEConfig", "VAEGAN", "VAEGANConfig", "VAEGANUpdates",
]
