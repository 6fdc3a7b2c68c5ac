"""The instance U-Net of the iterative spine segmentation (§2.3, Fig. 1 right of the paper).

Input: two channels, the image patch (HU clipped to −100..2000 and scaled to 0..1) and the *instance
memory* (1 where a vertebra was already segmented, 0 elsewhere). Outputs:

* ``segmentation``: logits (B, 1, D, H, W) of the next vertebra (one generic class);
* ``level``: (B,) regressed level of that vertebra (L1 = 20, 0 for an empty patch), from a global-average
  pooled bottleneck through a small fully connected head;
* ``completeness`` (only when ``completeness_head=True``, fix (c)): (B,) logit that the vertebra lies
  wholly inside the patch, Lessmann et al. 2019's third branch, which the paper left out.

The encoder/decoder are the direct U-Net's blocks (`vertebra.models.unet`: conv → GroupNorm → dropout →
leaky ReLU, four levels); patches must have edges divisible by 16 (paper 128³, quick 64³).

>>> net = InstanceUNet(InstanceUNetConfig(features=4, completeness_head=True))
>>> out = net(torch.zeros(2, 2, 32, 32, 32))
>>> tuple(out["segmentation"].shape), tuple(out["level"].shape), tuple(out["completeness"].shape)
((2, 1, 32, 32, 32), (2,), (2,))
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .unet import EncoderDecoder


@dataclass(frozen=True)
class InstanceUNetConfig:
    """Architecture of the instance U-Net; defaults are the paper's (16 features, dropout 0.3, GN 16)."""

    in_channels: int = 2  # image + instance memory
    features: int = 16
    dropout: float = 0.3
    group_size: int = 16
    negative_slope: float = 0.01
    #: hidden units of the level (and completeness) head after global average pooling
    head_hidden: int = 64
    completeness_head: bool = False
    #: the level output is ``level_offset + level_scale * head``: an untrained net starts near the middle
    #: of the spine, and the head works in units of about a third of the spine, so that Adam (whose
    #: steps are about one learning rate per parameter) can reach levels 0..25 within a short run.
    #: With scale 1 the head stayed at the median level for 1,500 steps at the quick scale (MAE 6-7).
    level_offset: float = 12.0
    level_scale: float = 8.0

    def __post_init__(self):
        if self.features < 1 or not 0 <= self.dropout < 1 or self.in_channels != 2:
            raise ValueError(f"bad features={self.features}, dropout={self.dropout} or "
                             f"in_channels={self.in_channels} (must be 2: image + memory)")

    @classmethod
    def for_scale(cls, scale, completeness_head: bool = False) -> "InstanceUNetConfig":
        """The preset of a `vertebra.experiments.Scale` (paper 16 features; quick 8; smoke 4).

        Below 16 features the channel dropout falls from 0.3 to 0.1: dropping 30% of the channels of
        an 8-channel layer stalled training in the short runs of the quick scale (measured on toy
        spines: no usable segmentation after 150 steps at 0.3, vertebrae found at 0.0-0.1)."""
        return cls(features=scale.instance_features, completeness_head=completeness_head,
                   head_hidden=max(16, 4 * scale.instance_features),
                   dropout=0.3 if scale.instance_features >= 16 else 0.1)

    def to_dict(self) -> dict:
        return asdict(self)


class PooledHead(nn.Sequential):
    """Global average pool of the bottleneck → linear → leaky ReLU → linear → (B,)."""

    def __init__(self, channels: int, hidden: int, slope: float):
        super().__init__(nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(channels, hidden),
                         nn.LeakyReLU(slope, inplace=True), nn.Linear(hidden, 1), nn.Flatten(0))


class InstanceUNet(EncoderDecoder):
    """(B, 2, D, H, W) image + memory → {"segmentation", "level", ["completeness"]}."""

    def __init__(self, config: InstanceUNetConfig = InstanceUNetConfig()):
        super().__init__(config.in_channels, config)
        self.config = config
        f = config.features
        self.final_conv = nn.Conv3d(f, 1, 1)
        self.level_head = PooledHead(16 * f, config.head_hidden, config.negative_slope)
        self.completeness = (PooledHead(16 * f, config.head_hidden, config.negative_slope)
                             if config.completeness_head else None)

    def forward(self, x: torch.Tensor) -> dict:
        assert x.shape[1] == 2, f"expected 2 channels (image, memory), got {x.shape[1]}"
        u0, x4 = self.encode_decode(x)              # x4: the bottleneck, which also feeds the heads
        out = {"segmentation": self.final_conv(u0),  # (B, 1, D, H, W) logits
               "level": self.config.level_offset + self.config.level_scale * self.level_head(x4)}  # (B,)
        out["completeness"] = self.completeness(x4) if self.completeness is not None else None
        return out
