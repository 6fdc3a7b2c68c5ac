"""Fix (d), beyond the paper: each found vertebra's level read from a wide, coarse view around it.

The instance U-Net regresses the level from its own patch (quick: 96 mm; paper: 128 mm), from the
same features that segment the vertebra. At the quick scale that head learns nothing: on training
patches its mean error (3.45 levels) equals that of always answering the median level (3.50), and a
least-squares probe of its bottleneck features does no better on validation scans (3.1-3.3 against
3.6; ``scripts/instance_level_probe.py``). Eq. 2 then has nothing to order.

Fix (d) gives the level its own small network (`vertebra.models.context_net.ContextNet`) with what
identifies a level on a CT: a box of 256 mm craniocaudally and 128 mm across at 4 mm voxels, centred on
the vertebra, so that it sees where the ribs end, how large the bodies are and where the sacrum and
pelvis begin. After the walk, every piece it found is looked at once, at its centroid:

* the context level replaces the instance head's level in Eq. 2 (the ordering itself is unchanged);
* a piece whose centre the network does not call a vertebra (probability < ``min_vertebra_probability``)
  leaves the labelling and the mask: the walk goes on past the spine into the sacrum and pelvis, and
  every such piece would otherwise take a level in the consecutive ordering and push the labels.

The level it reads is calibrated on the validation scans (`calibrate_levels`): a straight line fitted by
least squares from the network's level to the true one at every validation vertebra's centroid. The
network, like any regressor trained on an L1 loss with few samples at the ends, pulls its answers
towards the middle of the spine: on the quick validation scans it reads the lumbar vertebrae 0.2-0.3
levels too high up (too small a level), and half a level decides which start Eq. 2 picks.

Training samples (`ContextSampler`): the box centred on a random target vertebra's centroid, moved by
up to ``jitter_mm_zyx`` (8 mm craniocaudally, 10 mm across: a piece of the walk seldom has the true
centroid), with that vertebra's level and "vertebra" = 1; or, for a ``negative_fraction``, centred on
a bright voxel (> 200 HU) outside the target vertebrae (sacrum, pelvis, ribs, table, tagged fluid) or
anywhere in the scan, with "vertebra" = 0 and no level term, unless that centre falls inside a
vertebra (then it is a positive of that vertebra). Augmentation: left-right and front-back flips (a
prone scan is a supine one turned about z), and, each with probability ½, thicker slices (a running
mean over two voxels along z) and noise (up to ``max_noise_hu``): the test site's scans are thicker
and noisier than any training site's.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ..image import Volume
from ..models.context_net import ContextNet
from .patches import bright_outside_vertebrae, crop
from .scan import HU_MAX, HU_MIN, PreparedScan, prepare_scan, to_network


@dataclass(frozen=True)
class ContextConfig:
    """The view and the samples of fix (d). The box must hold a multiple of 16 voxels on every edge."""

    spacing_mm: float = 4.0
    box_mm_zyx: tuple[float, float, float] = (256.0, 128.0, 128.0)
    #: share of training boxes centred off the vertebrae (half on bright voxels, half anywhere)
    negative_fraction: float = 0.25
    #: uniform jitter (mm, z y x) of a positive box's centre around the vertebra's centroid
    jitter_mm_zyx: tuple[float, float, float] = (8.0, 10.0, 10.0)
    #: standard deviation (HU) of the added noise is drawn uniformly up to this
    max_noise_hu: float = 40.0
    #: weight of the level's absolute error (levels) against the binary cross-entropy of "vertebra"
    level_weight: float = 1.0
    #: pieces of the walk below this probability of lying on a vertebra are not labelled
    min_vertebra_probability: float = 0.5

    def __post_init__(self):
        if any(int(n) % 16 for n in self.box_zyx):
            raise ValueError(f"box {self.box_mm_zyx} mm at {self.spacing_mm} mm is {self.box_zyx} voxels; "
                             "each edge must be a multiple of 16")
        if not 0 <= self.negative_fraction <= 1:
            raise ValueError("negative_fraction must lie in [0, 1]")

    @property
    def box_zyx(self) -> tuple[int, int, int]:
        return tuple(int(round(m / self.spacing_mm)) for m in self.box_mm_zyx)

    def to_dict(self) -> dict:
        return asdict(self)


def context_box(scan: PreparedScan, centre_zyx, box_zyx) -> np.ndarray:
    """The (1, Z, Y, X) network input of the box centred on voxel ``centre_zyx`` of ``scan`` (outside
    the scan: −100 HU, the window's floor)."""
    return to_network(crop(scan.image_hu, centre_zyx, box_zyx, HU_MIN)[0])[None]


class ContextSampler:
    """``sampler(step)`` → {"image": (B, 1, Z, Y, X), "level": (B,), "vertebra": (B,)}, a pure function of
    (seed, step); scans prepared at ``config.spacing_mm`` with labels."""

    def __init__(self, scans: list[PreparedScan], config: ContextConfig, batch_size: int, seed: int = 0):
        self.scans, self.config, self.batch_size, self.seed = scans, config, batch_size, seed
        self.levels = [s.target_levels() for s in scans]
        self.centroids = []                                # per scan: (labels, (n, 3) centroids)
        for scan, levels in zip(scans, self.levels):
            labels = sorted(levels)
            centres = ndimage.center_of_mass(np.ones(scan.shape, np.uint8), scan.labels, labels) if labels else []
            self.centroids.append((labels, np.asarray(centres, float).reshape(-1, 3)))
        if not any(labels for labels, _ in self.centroids):
            raise ValueError("none of the scans contains a target vertebra")
        self.bright = [bright_outside_vertebrae(s, seed) for s in scans]

    def __call__(self, step: int) -> dict:
        rng = np.random.default_rng(np.random.SeedSequence([int(self.seed), int(step), 4]))
        samples = [self.sample(rng) for _ in range(self.batch_size)]
        return {k: torch.from_numpy(np.stack([s[k] for s in samples])) for k in samples[0]}

    def sample(self, rng: np.random.Generator) -> dict:
        cfg = self.config
        i = int(rng.integers(len(self.scans)))
        while not self.centroids[i][0]:
            i = int(rng.integers(len(self.scans)))
        scan, (labels, centroids) = self.scans[i], self.centroids[i]
        u, v = rng.random(), rng.random()
        if u < cfg.negative_fraction:
            if v < 0.5 and len(self.bright[i]):
                centre = self.bright[i][int(rng.integers(len(self.bright[i])))]
            else:
                centre = rng.uniform(0, 1, 3) * (np.asarray(scan.shape) - 1)
            at = tuple(np.clip(np.round(centre).astype(int), 0, np.asarray(scan.shape) - 1))
            level = self.levels[i].get(int(scan.labels[at]), 0)      # a centre inside a vertebra is one
        else:
            k = int(rng.integers(len(labels)))
            centre = centroids[k] + rng.uniform(-1, 1, 3) * np.asarray(cfg.jitter_mm_zyx) / cfg.spacing_mm
            level = self.levels[i][labels[k]]
        image = context_box(scan, centre, cfg.box_zyx)
        for axis in (2, 3):                                   # y, x of (1, z, y, x)
            if rng.random() < 0.5:
                image = np.flip(image, axis)
        if rng.random() < 0.5:                                # thicker slices
            image = ndimage.uniform_filter1d(image, 2, axis=1)
        if rng.random() < 0.5:                                # more noise (HU → the [0, 1] window)
            sigma = rng.uniform(0, cfg.max_noise_hu) / (HU_MAX - HU_MIN)
            image = np.clip(image + rng.normal(0, sigma, image.shape).astype(np.float32), 0.0, 1.0)
        return {"image": np.ascontiguousarray(image), "level": np.float32(level),
                "vertebra": np.float32(level > 0)}


def context_loss(outputs: dict, batch: dict, config: ContextConfig) -> tuple[torch.Tensor, dict]:
    """level_weight · mean |level error| over the boxes centred on a vertebra + BCE of "vertebra"."""
    on = batch["vertebra"].to(outputs["level"].dtype)
    error = (outputs["level"] - batch["level"].to(outputs["level"].dtype)).abs()
    level_term = (error * on).sum() / on.sum().clamp(min=1.0)
    bce = F.binary_cross_entropy_with_logits(outputs["vertebra"], on)
    loss = config.level_weight * level_term + bce
    return loss, {"level_abs_err": float(level_term.detach()), "vertebra_bce": float(bce.detach())}


#: boxes read at once by `ContextModel.read` (the first box's search reads a few hundred)
READ_BATCH = 64


@dataclass
class ContextModel:
    """A trained `ContextNet` with the view it was trained on."""

    net: ContextNet
    config: ContextConfig
    #: the level read is ``level_scale · network level + level_offset`` (`calibrate_levels`; 1, 0: none)
    level_scale: float = 1.0
    level_offset: float = 0.0

    def prepare(self, image: Volume) -> PreparedScan:
        """The scan on the context grid (canonical, isotropic ``config.spacing_mm``, −100..2000 HU)."""
        return prepare_scan(image, spacing_mm=self.config.spacing_mm)

    def read(self, scan: PreparedScan, centres_mm) -> tuple[np.ndarray, np.ndarray]:
        """(levels, probability of lying on a vertebra) at each world point (x, y, z mm) of ``centres_mm``."""
        centres_mm = np.asarray(centres_mm, float).reshape(-1, 3)
        if not len(centres_mm):
            return np.zeros(0), np.zeros(0)
        index = scan.volume(scan.image_hu).world_to_index(centres_mm)
        device = next(self.net.parameters()).device
        levels, vertebra = [], []
        was_training = self.net.training
        self.net.eval()
        try:
            for start in range(0, len(index), READ_BATCH):      # boxes in batches: memory stays bounded
                x = torch.from_numpy(np.stack([context_box(scan, c, self.config.box_zyx)
                                               for c in index[start:start + READ_BATCH]]))
                with torch.no_grad():
                    out = self.net(x.to(device))
                levels.append(out["level"].cpu().numpy().astype(float))
                vertebra.append(torch.sigmoid(out["vertebra"]).cpu().numpy().astype(float))
        finally:
            self.net.train(was_training)
        return np.concatenate(levels) * self.level_scale + self.level_offset, np.concatenate(vertebra)


def read_at_centroids(model: ContextModel, scans: list[PreparedScan]) -> tuple[np.ndarray, np.ndarray]:
    """(levels read, true levels) at the centroid of every target vertebra of ``scans`` (context grid)."""
    read, true = [], []
    for scan in scans:
        levels = scan.target_levels()
        if not levels:
            continue
        labels = list(levels)
        centres = ndimage.center_of_mass(np.ones(scan.shape), scan.labels, labels)
        world = scan.volume(scan.image_hu).index_to_world(centres)
        read += list(model.read(scan, world)[0])
        true += [levels[lab] for lab in labels]
    return np.asarray(read, float), np.asarray(true, float)


def level_errors(model: ContextModel, scans: list[PreparedScan]) -> np.ndarray:
    """|context level − true level| at the centroid of every target vertebra of ``scans`` (context grid)."""
    read, true = read_at_centroids(model, scans)
    return np.abs(read - true)


def calibrate_levels(model: ContextModel, scans: list[PreparedScan]) -> ContextModel:
    """``model`` with its level calibrated on held-out ``scans``: the least-squares line from the level
    it reads now to the true level over their vertebrae, composed with the calibration it already has
    (returned unchanged when fewer than 3 vertebrae or a single level)."""
    read, true = read_at_centroids(model, scans)
    if read.size < 3 or np.ptp(read) == 0:
        return model
    scale, offset = np.polyfit(read, true, 1)
    return ContextModel(model.net, model.config, float(scale * model.level_scale),
                        float(scale * model.level_offset + offset))
