"""The 3D U-Net that segments L1 directly from the whole scan (§2.2, Fig. 1 left of the paper).

Every convolution is followed by group normalisation, dropout (rate 0.3; none in the light presets,
see `Scale.direct_dropout`) and a leaky ReLU, as §2.2
describes. Group size: the paper says "group size = 16"; we read it as 16 *channels* per group, so a layer
with C channels has ``C // min(16, C)`` groups (one group when C <= 16, e.g. at the quick scale's 8 base
features). Four max-pool steps down, four transposed-convolution steps up with skip concatenation; the
last 1x1x1 convolution gives background + 1..3 foreground classes (L1; L1, T12; L1, T12, rib).

Tensors are (B, C, D, H, W) with D, H, W = z, y, x of the resampled scan (paper: 192 x 128 x 128).

>>> net = UNet3D(UNetConfig(num_classes=2, features=4))
>>> net(torch.zeros(1, 1, 32, 16, 16)).shape
torch.Size([1, 3, 32, 16, 16])
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of the direct U-Net; defaults are the paper's (§2.2)."""

    in_channels: int = 1
    num_classes: int = 1  # foreground classes; the output has num_classes + 1 channels (background first)
    features: int = 16  # channels at full resolution, doubled at each of the 4 levels down
    dropout: float = 0.3
    group_size: int = 16  # channels per GroupNorm group
    negative_slope: float = 0.01  # leaky ReLU

    def __post_init__(self):
        if not 1 <= self.num_classes <= 3:
            raise ValueError(f"num_classes must be 1-3 foreground classes, got {self.num_classes}")
        if self.features < 1 or not 0 <= self.dropout < 1:
            raise ValueError(f"bad features={self.features} or dropout={self.dropout}")

    @property
    def out_channels(self) -> int:
        return self.num_classes + 1

    @classmethod
    def for_scale(cls, scale, num_classes: int = 1) -> "UNetConfig":
        """The preset of a `vertebra.experiments.Scale` (paper: 16 features; quick: 8; smoke: 4)."""
        return cls(num_classes=num_classes, features=scale.direct_features, dropout=scale.direct_dropout)

    def to_dict(self) -> dict:
        return asdict(self)


def group_count(channels: int, group_size: int = 16) -> int:
    """Number of GroupNorm groups for ``channels`` when each group holds ``min(group_size, channels)``."""
    size = min(group_size, channels)
    assert channels % size == 0, f"{channels} channels do not split into groups of {size}"
    return channels // size


class ConvBlock(nn.Sequential):
    """(conv 3x3x3 → GroupNorm → dropout → leaky ReLU) twice."""

    def __init__(self, in_ch: int, out_ch: int, cfg: UNetConfig):
        layers = []
        for c_in in (in_ch, out_ch):
            layers += [nn.Conv3d(c_in, out_ch, 3, padding=1, bias=False),
                       nn.GroupNorm(group_count(out_ch, cfg.group_size), out_ch),
                       nn.Dropout3d(cfg.dropout),
                       nn.LeakyReLU(cfg.negative_slope, inplace=True)]
        super().__init__(*layers)


class Down(nn.Sequential):
    """Max-pool by 2, then a conv block: (B, C, D, H, W) → (B, C', D/2, H/2, W/2)."""

    def __init__(self, in_ch: int, out_ch: int, cfg: UNetConfig):
        super().__init__(nn.MaxPool3d(2), ConvBlock(in_ch, out_ch, cfg))


class UpCat(nn.Module):
    """Transposed conv up by 2, concatenate the skip connection, conv block."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, cfg: UNetConfig):
        super().__init__()
        self.up = nn.ConvTranspose3d(in_ch, skip_ch, 2, stride=2)
        self.conv = ConvBlock(2 * skip_ch, out_ch, cfg)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))


class EncoderDecoder(nn.Module):
    """The U-Net's four levels down and up, shared by the direct and the instance U-Net: ``in_channels``
    → ``cfg.features`` channels at full resolution, doubled at each level down. `encode_decode` returns the
    last decoder features (B, f, D, H, W) and the bottleneck (B, 16f, D/16, H/16, W/16)."""

    def __init__(self, in_channels: int, cfg):
        super().__init__()
        f = cfg.features
        self.conv_0 = ConvBlock(in_channels, f, cfg)
        self.down_1 = Down(f, 2 * f, cfg)
        self.down_2 = Down(2 * f, 4 * f, cfg)
        self.down_3 = Down(4 * f, 8 * f, cfg)
        self.down_4 = Down(8 * f, 16 * f, cfg)
        self.upcat_4 = UpCat(16 * f, 8 * f, 8 * f, cfg)
        self.upcat_3 = UpCat(8 * f, 4 * f, 4 * f, cfg)
        self.upcat_2 = UpCat(4 * f, 2 * f, 2 * f, cfg)
        self.upcat_1 = UpCat(2 * f, f, f, cfg)

    def encode_decode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert all(s % 16 == 0 for s in x.shape[2:]), f"spatial shape {tuple(x.shape[2:])} not divisible by 16"
        x0 = self.conv_0(x)  # (B, f, D, H, W)
        x1 = self.down_1(x0)  # (B, 2f, D/2, H/2, W/2)
        x2 = self.down_2(x1)  # (B, 4f, D/4, ...)
        x3 = self.down_3(x2)  # (B, 8f, D/8, ...)
        x4 = self.down_4(x3)  # (B, 16f, D/16, ...): the bottleneck
        u3 = self.upcat_4(x4, x3)
        u2 = self.upcat_3(u3, x2)
        u1 = self.upcat_2(u2, x1)
        return self.upcat_1(u1, x0), x4  # (B, f, D, H, W), bottleneck


class UNet3D(EncoderDecoder):
    """Direct L1 U-Net. Input (B, 1, D, H, W) with D, H, W divisible by 16 → logits (B, classes + 1, D, H, W)."""

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__(config.in_channels, config)
        self.config = config
        self.final_conv = nn.Conv3d(config.features, config.out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u0, _ = self.encode_decode(x)
        return self.final_conv(u0)  # (B, classes + 1, D, H, W) logits


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
