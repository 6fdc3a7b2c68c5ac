"""Training patches for the instance U-Net (§2.1 and §2.3 of the paper).

Each sample is a cube of ``patch_voxels`` edge at ``spacing_mm`` (paper: 128 at 1 mm; quick: 48 at 2 mm, 96 mm)
cut from a `PreparedScan` (z index increasing towards the head), as four arrays:

* ``image``: the windowed HU scaled to [0, 1];
* ``memory``: the *instance memory*, the vertebrae already segmented. Top-down mode: all vertebrae above
  the target; bottom-up: all below; bidirectional: one of the two at random, per patch;
* ``target``: the target vertebra (1) — the paper's labels '2' and '3' for the vertebrae above and below
  become the memory channel of the chosen direction;
* ``level``: the target's aligned level (L1 = 20, `vertebra.instance.levels`), 0 for an empty patch;
* ``complete``: 1 when the target lies wholly inside the patch and the scan (fix (c)'s completeness
  label): at least ``complete_min_share`` of its voxels in the scan fall in the patch, and the scan's
  first or last slice does not cut through it.

Kinds of patch:

* *vertebra* patches: centred on a vertebra's centroid with uniform ±``jitter_mm`` (paper ±2 cm);
* *empty* patches (``empty_fraction``, paper 30%): every visible vertebra is put into the memory, so that
  nothing is left to segment and the level is 0 — what the traversal meets at the end of the spine, or on
  tagged fluid and hip bone. They are placed anywhere in the scan. Optionally (``empty_on_bone_share``,
  default 0) a share of them is centred on a random voxel brighter than ``BONE_HU`` outside the vertebrae
  (ribs, sternum, sacrum, pelvis, femora, tagged fluid): the "contrast or hip bone" the paper wants the
  network to ignore. In a quick-scale trial (fix (b), 12 test scans) half of them placed so made the
  walk start on fewer scans (6 of 12 against 12) and cover fewer vertebrae (15 against 38 of 102);
  it is off;
* *edge* patches (fix (b), ``edge_fraction``): the scan is cut just above (top-down) or below (bottom-up)
  the target, the patch's edge lies at the cut, and the memory is empty — the first step of a traversal,
  which the paper found the network handled badly (§3.2).

Augmentation (`vertebra.augment`): random x/y flips (never z: that would reverse the spine), B-spline
deformation and rotation, applied to the cut patch. A batch is a pure function of (seed, step).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..augment import Compose, RandomElasticDeformation, RandomFlip, RandomRotation
from ..image import Geometry, Volume
from ..labels import rank
from .levels import EMPTY_LEVEL
from .scan import HU_MIN, PreparedScan, to_network

MODES = ("top-down", "bottom-up", "bidirectional")
#: HU above which a voxel outside the vertebrae may centre an empty patch (bone, tagged fluid)
BONE_HU = 200
#: bright voxels kept per scan as candidate centres of empty patches
BONE_CANDIDATES = 4096


@dataclass(frozen=True)
class PatchConfig:
    """How training patches are drawn. Defaults are the paper's (128³ at 1 mm, ±2 cm, 30% empty)."""

    patch_voxels: int = 128
    spacing_mm: float = 1.0
    mode: str = "top-down"
    jitter_mm: float = 20.0
    empty_fraction: float = 0.3
    edge_fraction: float = 0.0      # fix (b); run.py uses EDGE_FRACTION when the fix is on
    #: how much of an edge patch's target the cut may remove (share of its height): a scan can start
    #: anywhere in a vertebra, down to a thin slice of it
    edge_cut_max_share: float = 0.25
    #: how far the patch may reach past the cut, as a share of the patch (blank there, as the
    #: traversal's first boxes reach past the end of the scan)
    edge_blank_max_share: float = 0.1
    #: share of the empty patches centred on bright voxels outside the vertebrae (the paper does not say
    #: how its empty patches were placed; off: it hurt in a quick-scale trial, see the module docstring)
    empty_on_bone_share: float = 0.0
    #: a target counts as complete when this share of its voxels in the scan lies in the patch
    complete_min_share: float = 0.95
    augment: bool = True
    max_rotation_deg: float = 10.0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.patch_voxels % 16:
            raise ValueError(f"patch_voxels must be divisible by 16, got {self.patch_voxels}")
        if not 0 <= self.empty_fraction + self.edge_fraction <= 1:
            raise ValueError("empty_fraction + edge_fraction must lie in [0, 1]")

    def to_dict(self) -> dict:
        return asdict(self)


def crop(array: np.ndarray, centre_zyx, size, fill) -> tuple[np.ndarray, np.ndarray]:
    """The box of ``array`` centred at ``centre_zyx`` (voxels), filled outside; and its corner. ``size``:
    the edge of a cube, or the (z, y, x) edges of a box.

    >>> a = np.arange(27).reshape(3, 3, 3)
    >>> p, corner = crop(a, (0, 0, 0), 2, -1)
    >>> corner.tolist(), int(p[1, 1, 1]), int(p[0, 0, 0])
    ([-1, -1, -1], 0, -1)
    >>> crop(a, (1, 1, 1), (3, 1, 1), -1)[0].ravel().tolist()
    [4, 13, 22]
    """
    size = np.broadcast_to(np.asarray(size, int), (3,))
    corner = np.round(np.asarray(centre_zyx, float)).astype(int) - size // 2
    out = np.full(tuple(size), fill, dtype=array.dtype)
    src_lo = np.maximum(corner, 0)
    src_hi = np.minimum(corner + size, array.shape)
    if np.all(src_hi > src_lo):
        dst_lo = src_lo - corner
        dst_hi = dst_lo + (src_hi - src_lo)
        out[tuple(slice(a, b) for a, b in zip(dst_lo, dst_hi))] = \
            array[tuple(slice(a, b) for a, b in zip(src_lo, src_hi))]
    return out, corner


@dataclass
class VertebraStats:
    """What sampling needs to know about one vertebra of a prepared scan (voxel units, z up)."""

    label: int
    level: int
    centroid_zyx: np.ndarray
    z_min: int
    z_max: int
    voxels: int
    #: the scan's first or last slice cuts through it: never complete
    cut_by_scan: bool = False


def vertebra_stats(scan: PreparedScan) -> list[VertebraStats]:
    """Centroid, z extent and size of every target vertebra of ``scan`` (labels required)."""
    if scan.labels is None:
        raise ValueError(f"scan {scan.case_id!r} has no label map to draw training patches from")
    out = []
    for lab, level in sorted(scan.target_levels().items(), key=lambda kv: rank(kv[0])):
        idx = np.argwhere(scan.labels == lab)
        z_lo, z_hi = int(idx[:, 0].min()), int(idx[:, 0].max())
        out.append(VertebraStats(lab, level, idx.mean(0), z_lo, z_hi, len(idx),
                                 cut_by_scan=z_lo == 0 or z_hi == scan.shape[0] - 1))
    return out


def bright_outside_vertebrae(scan: PreparedScan, seed: int = 0, n: int = BONE_CANDIDATES) -> np.ndarray:
    """Up to ``n`` voxels (z, y, x) brighter than ``BONE_HU`` that belong to no target vertebra, drawn
    with a fixed generator: the centres of the empty patches that hold bone or contrast."""
    targets = list(scan.target_levels())
    idx = np.argwhere((scan.image_hu > BONE_HU) & ~np.isin(scan.labels, targets))
    if len(idx) > n:
        idx = idx[np.sort(np.random.default_rng(seed).choice(len(idx), n, replace=False))]
    return idx.astype(np.float64)


class PatchSampler:
    """``sample_batch(step)`` for `vertebra.train.train`: a batch that depends only on (seed, step)."""

    def __init__(self, scans: list[PreparedScan], config: PatchConfig, batch_size: int, seed: int = 0):
        if not scans:
            raise ValueError("PatchSampler needs at least one labelled scan")
        self.scans, self.config, self.batch_size, self.seed = scans, config, batch_size, seed
        self.stats = [vertebra_stats(s) for s in scans]
        empty = np.zeros((0, 3))
        self.bright_outside = [bright_outside_vertebrae(s, seed) if config.empty_on_bone_share > 0 else empty
                               for s in scans]
        if not any(self.stats):
            raise ValueError("none of the scans contains a target vertebra")
        self.augment = Compose([RandomFlip(axes=("x", "y")), RandomElasticDeformation(),
                                RandomRotation(max_degrees=config.max_rotation_deg)])

    def __call__(self, step: int) -> dict:
        rng = np.random.default_rng(np.random.SeedSequence([int(self.seed), int(step)]))
        samples = [self.sample(rng) for _ in range(self.batch_size)]
        batch = {k: torch.from_numpy(np.stack([s[k] for s in samples])) for k in samples[0]}
        return batch

    def sample(self, rng: np.random.Generator) -> dict:
        """One patch: {"image", "memory", "target"} (1, P, P, P) float32, "level", "complete" float32."""
        cfg = self.config
        i = int(rng.integers(len(self.scans)))
        while not self.stats[i]:
            i = int(rng.integers(len(self.scans)))
        scan, stats = self.scans[i], self.stats[i]
        down = cfg.mode == "top-down" or (cfg.mode == "bidirectional" and rng.random() < 0.5)
        u = rng.random()
        size, half = cfg.patch_voxels, cfg.patch_voxels // 2
        jitter = rng.uniform(-1, 1, 3) * cfg.jitter_mm / cfg.spacing_mm
        image, labels = scan.image_hu, scan.labels
        target = None
        if u < cfg.empty_fraction:
            bright = self.bright_outside[i]
            if rng.random() < cfg.empty_on_bone_share and len(bright):     # one draw either way
                centre = bright[int(rng.integers(len(bright)))] + jitter
            else:
                centre = rng.uniform(0, 1, 3) * (np.asarray(scan.shape) - 1)
            kind = "empty"
        else:
            target = stats[int(rng.integers(len(stats)))]
            centre = target.centroid_zyx + jitter
            kind = "edge" if u < cfg.empty_fraction + cfg.edge_fraction else "vertebra"
        cut = None
        if kind == "edge":  # the scan ends at the target's top (top-down) or bottom (bottom-up) edge
            height = target.z_max - target.z_min + 1
            if down:
                cut = target.z_max - rng.uniform(0, cfg.edge_cut_max_share) * height
                centre[0] = cut + 1 - half + rng.uniform(0, cfg.edge_blank_max_share) * size
            else:
                cut = target.z_min + rng.uniform(0, cfg.edge_cut_max_share) * height
                centre[0] = cut + half - rng.uniform(0, cfg.edge_blank_max_share) * size
        img, corner = crop(image, centre, size, HU_MIN)
        lab, _ = crop(labels, centre, size, 0)
        if cut is not None:
            z = int(round(cut)) - corner[0]
            cut_away = slice(max(z + 1, 0), None) if down else slice(0, max(z, 0))
            img[cut_away], lab[cut_away] = HU_MIN, 0
        inside = int((lab == target.label).sum()) if target is not None else 0   # before augmentation
        if cfg.augment:
            params = self.augment.sample(rng)
            geom = Geometry((cfg.spacing_mm,) * 3)
            img_v, lab_v = params.apply(Volume(img, geom), Volume(lab, geom), fill_value=HU_MIN)
            img, lab = img_v.array, lab_v.array
        levels = {s.label: s.level for s in stats}
        if target is None:
            tgt = np.zeros(lab.shape, bool)
            memory = np.isin(lab, list(levels))
            level, complete = EMPTY_LEVEL, 0.0
        else:
            tgt = lab == target.label
            if kind == "edge":
                memory = np.zeros(lab.shape, bool)
            else:
                side = [s.label for s in stats if (s.level < target.level) == down and s.label != target.label]
                memory = np.isin(lab, side)
            level = target.level
            complete = float(inside >= cfg.complete_min_share * target.voxels and not target.cut_by_scan)
        return {"image": to_network(img)[None], "memory": memory[None].astype(np.float32),
                "target": tgt[None].astype(np.float32), "level": np.float32(level),
                "complete": np.float32(complete)}


def network_input(batch: dict) -> torch.Tensor:
    """(B, 2, P, P, P): image and instance memory stacked as the U-Net's two input channels."""
    return torch.cat([batch["image"], batch["memory"]], dim=1)
