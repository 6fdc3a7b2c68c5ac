"""The networks: the direct 3D U-Net (`unet`) and the 6-layer FCNN baseline (`fcnn`), §2.2 and §3.1."""
from .fcnn import FCNN, FCNNConfig
from .unet import UNet3D, UNetConfig

__all__ = ["FCNN", "FCNNConfig", "UNet3D", "UNetConfig"]
