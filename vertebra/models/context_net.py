"""A small 3D CNN that reads a vertebra's level from a coarse, wide view around it (fix (d), beyond the paper).

Input: one channel, a box of the scan (HU clipped to −100..2000, scaled to 0..1) at a coarse spacing
(quick and paper: 4 mm), centred on a point; by default 256 mm craniocaudally and 128 mm across, so it
sees the ribs, the sacrum or the pelvis several vertebrae away. Outputs:

* ``level``: (B,) the aligned level (L1 = 20) of the vertebra at the centre of the box;
* ``vertebra``: (B,) logit that the centre lies on a vertebra at all (not on the sacrum, the pelvis,
  a rib, the table or tagged fluid).

Four conv blocks (conv → batch norm → leaky ReLU, twice) with max-pooling, then the flattened last map
(position matters here: *where* the ribs stop or the pelvis starts in the box is the cue) through a
small fully connected head. Box edges must be divisible by 16.

>>> net = ContextNet(ContextNetConfig(features=4), box_zyx=(32, 16, 16))
>>> out = net(torch.zeros(3, 1, 32, 16, 16))
>>> tuple(out["level"].shape), tuple(out["vertebra"].shape)
((3,), (3,))
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn



@dataclass(frozen=True)
class ContextNetConfig:
    """Architecture of the context network (features of the first block; doubled twice)."""

    features: int = 8
    dropout: float = 0.3            # before the fully connected head
    hidden: int = 64
    negative_slope: float = 0.01
    #: level = ``level_offset + level_scale * head``: an untrained net starts at the lower thoracic spine
    #: and the head works in units of a quarter of the spine (as the instance U-Net's level head)
    level_offset: float = 18.0
    level_scale: float = 6.0
    #: the "vertebra" logit is ``vertebra_scale * head``, for the same reason: with Adam's steps of about
    #: one learning rate, an unscaled logit took most of a quick run to reach even the base rate
    vertebra_scale: float = 4.0

    def __post_init__(self):
        if self.features < 1 or not 0 <= self.dropout < 1:
            raise ValueError(f"bad features={self.features} or dropout={self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)


def _block(c_in: int, c_out: int, cfg: ContextNetConfig) -> nn.Sequential:
    layers = []
    for a in (c_in, c_out):
        layers += [nn.Conv3d(a, c_out, 3, padding=1, bias=False), nn.BatchNorm3d(c_out),
                   nn.LeakyReLU(cfg.negative_slope, inplace=True)]
    return nn.Sequential(*layers)


class ContextNet(nn.Module):
    """(B, 1, Z, Y, X) coarse box → {"level": (B,), "vertebra": (B,) logits}."""

    def __init__(self, config: ContextNetConfig = ContextNetConfig(), box_zyx: tuple[int, int, int] = (64, 32, 32)):
        super().__init__()
        if any(int(n) % 16 for n in box_zyx):
            raise ValueError(f"box edges must be divisible by 16, got {tuple(box_zyx)}")
        self.config, self.box_zyx = config, tuple(int(n) for n in box_zyx)
        f = config.features
        widths = (f, 2 * f, 4 * f, 4 * f)
        blocks, c_in = [], 1
        for w in widths:
            blocks += [_block(c_in, w, config), nn.MaxPool3d(2)]
            c_in = w
        self.features = nn.Sequential(*blocks)
        flat = widths[-1] * (self.box_zyx[0] // 16) * (self.box_zyx[1] // 16) * (self.box_zyx[2] // 16)
        self.trunk = nn.Sequential(nn.Flatten(), nn.Dropout(config.dropout), nn.Linear(flat, config.hidden),
                                   nn.LeakyReLU(config.negative_slope, inplace=True))
        self.level_head = nn.Linear(config.hidden, 1)
        self.vertebra_head = nn.Linear(config.hidden, 1)

    def forward(self, x: torch.Tensor) -> dict:
        assert tuple(x.shape[1:]) == (1, *self.box_zyx), f"expected (B, 1, {self.box_zyx}), got {tuple(x.shape)}"
        h = self.trunk(self.features(x))
        return {"level": self.config.level_offset + self.config.level_scale * self.level_head(h)[:, 0],
                "vertebra": self.config.vertebra_scale * self.vertebra_head(h)[:, 0]}
