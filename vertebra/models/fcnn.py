"""The 6-layer fully convolutional baseline of §3.1: regress the craniocaudal distance (mm) to L1.

The paper tried a 6-layer FCNN that looks at a subvolume and regresses how far (mm, along z) it lies
from the L1 level; its validation error plateaued near 30 mm, and the authors moved on to segmenting L1
directly. Five 3x3x3 convolutions (the first four with stride 2) with GroupNorm and leaky ReLU, then a
1x1x1 convolution to one channel, averaged over space: the output is a signed distance in units of
``distance_scale_mm`` (positive: L1 lies caudal to, i.e. below, the subvolume's centre).

>>> net = FCNN(FCNNConfig(features=4))
>>> net(torch.zeros(2, 1, 32, 32, 32)).shape
torch.Size([2])
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .unet import group_count


@dataclass(frozen=True)
class FCNNConfig:
    in_channels: int = 1
    features: int = 16
    group_size: int = 16
    negative_slope: float = 0.01
    #: the network predicts distance / distance_scale_mm, so that its outputs stay near 1
    distance_scale_mm: float = 100.0

    def to_dict(self) -> dict:
        return asdict(self)


class FCNN(nn.Module):
    """(B, 1, D, H, W) subvolume → (B,) signed craniocaudal distance to L1 in mm."""

    def __init__(self, config: FCNNConfig = FCNNConfig()):
        super().__init__()
        self.config = config
        f = config.features
        widths = [config.in_channels, f, 2 * f, 4 * f, 8 * f, 8 * f]
        layers = []
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):  # layers 1-5
            layers += [nn.Conv3d(c_in, c_out, 3, stride=2 if i < 4 else 1, padding=1, bias=False),
                       nn.GroupNorm(group_count(c_out, config.group_size), c_out),
                       nn.LeakyReLU(config.negative_slope, inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv3d(widths[-1], 1, 1)  # layer 6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        per_voxel = self.head(self.features(x))  # (B, 1, D/16, H/16, W/16)
        return per_voxel.mean(dim=(1, 2, 3, 4)) * self.config.distance_scale_mm  # (B,) mm
