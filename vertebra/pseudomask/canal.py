"""Spinal canal detection, one axial slice at a time (the first stage of the paper's §2.1 tool).

The canal is a pocket of low density (CSF and cord, roughly -20..90 HU) that is *enclosed by bone*
in the slices through a vertebra: the body in front, the pedicles at the sides and the lamina
behind. In every axial slice we threshold bone, fill the holes of the bone mask, and keep the holes
whose size and density fit a canal. Each candidate gets the direction from its centre to the heaviest
bone mass around it (the vertebral body, anterior); no assumption is made about which side of the
image is posterior, so prone scans (spine at the top of the axial image) work as supine ones do.

Slices through discs, through metal or outside the spine give no candidate or a wrong one; the
centreline stage (`centreline.py`) chooses among candidates and bridges the gaps.

Coordinates: arrays are numpy (z, y, x); positions are returned in voxel indices (z, y, x).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..image import Volume

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CanalConfig:
    """What a spinal canal looks like in an axial slice (adult lumbar/thoracic anatomy)."""

    #: bone thresholds (HU) after light smoothing, each tried: a thin or blurred arch (thick slices,
    #: low density) encloses the canal only at the lower one
    bone_hu_levels: tuple[float, ...] = (200.0, 140.0)
    #: canal content: CSF and cord
    content_hu: tuple[float, float] = (-60.0, 90.0)
    #: cross-sectional area of the canal, mm² (thoracic ~150, lumbar ~300; generous both ways)
    area_mm2: tuple[float, float] = (50.0, 700.0)
    #: smoothing before thresholding (Gaussian sigma, mm, in-plane)
    smooth_mm: float = 1.0
    #: radius (mm) around a candidate in which bone is weighed to find the body
    search_mm: float = 50.0
    #: number of directions tried for the body, and the largest angle (degrees) between the body
    #: direction and the image's y axis (axial rotation of the patient and the vertebrae)
    n_directions: int = 24
    max_tilt_deg: float = 35.0
    #: the patient is what is denser than this (HU); the canal lies within ~`midline_sigma_mm` of its
    #: left-right middle
    body_hu: float = -400.0
    midline_sigma_mm: float = 35.0


@dataclass
class CanalCandidates:
    """Canal candidates of a scan: one row per candidate.

    `zyx` (N, 3) voxel index of the hole centroid; `area_mm2`, `mean_hu`; `anterior_yx` (N, 2) unit
    vector in mm (y, x) from the canal towards the vertebral body; `score` (higher is more canal-like).
    """

    zyx: np.ndarray
    area_mm2: np.ndarray
    mean_hu: np.ndarray
    anterior_yx: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.score)

    def in_slice(self, z: int) -> np.ndarray:
        return np.flatnonzero(np.round(self.zyx[:, 0]).astype(int) == z)


def smooth_in_plane(image: Volume, sigma_mm: float) -> np.ndarray:
    """Float32 (z, y, x) array smoothed with a Gaussian of `sigma_mm` in each axial plane."""
    sz, sy, sx = image.spacing_zyx
    return ndimage.gaussian_filter(image.array.astype(np.float32), (0.0, sigma_mm / sy, sigma_mm / sx))


def bone_weight(hu: np.ndarray, soft_hu: float = 60.0, cap_hu: float = 300.0) -> np.ndarray:
    """How much bone a voxel holds, 0 (soft tissue and below) .. 1 (`cap_hu` above soft tissue).

    Graded rather than thresholded: a trabecular core at 150 HU inside a thin, blurred cortex counts,
    where a binary bone mask would see only the cortex."""
    return np.clip((hu - soft_hu) / cap_hu, 0.0, 1.0)


def _body_direction(weight: np.ndarray, centre_yx: np.ndarray, spacing_yx, cfg: CanalConfig):
    """Unit (y, x) mm vector from the canal centre to the heaviest bone wedge, and its one-sidedness."""
    angles = np.linspace(0, 2 * np.pi, cfg.n_directions, endpoint=False)
    radii_mm = np.arange(6.0, cfg.search_mm, min(spacing_yx))
    dy, dx = np.sin(angles)[:, None] * radii_mm, np.cos(angles)[:, None] * radii_mm
    iy = np.round(centre_yx[0] + dy / spacing_yx[0]).astype(int)
    ix = np.round(centre_yx[1] + dx / spacing_yx[1]).astype(int)
    inside = (iy >= 0) & (iy < weight.shape[0]) & (ix >= 0) & (ix < weight.shape[1])
    hits = np.zeros(iy.shape)
    hits[inside] = weight[iy[inside], ix[inside]]
    per_ray = hits.sum(axis=1)
    # a wedge of +-30 degrees: the body is wide, a spinous process or a rib is thin
    k = max(1, cfg.n_directions // 12)
    wedge = sum(np.roll(per_ray, s) for s in range(-k, k + 1))
    # the body lies in front of the canal or, in a scan whose header has the patient upside down,
    # behind it: only directions within `max_tilt_deg` of the image's y axis are considered, so that
    # a contrast-filled aorta or a rib to the side cannot win
    near_y = np.abs(np.sin(angles)) >= np.cos(np.deg2rad(cfg.max_tilt_deg))
    best = int(np.flatnonzero(near_y)[np.argmax(wedge[near_y])])
    opposite = (best + cfg.n_directions // 2) % cfg.n_directions
    # one-sidedness: a canal has the body in front and only a thin arch behind; a hole inside a ring of
    # bone (pelvis, a trabecular core) has bone all round
    contrast = (wedge[best] - wedge[opposite]) / (len(radii_mm) * (2 * k + 1))
    return np.array([np.sin(angles[best]), np.cos(angles[best])]), max(contrast, 0.0)


def _body_midline_x(sm: np.ndarray, cfg: CanalConfig) -> np.ndarray:
    """Per slice, the mean x index of the patient (voxels above `body_hu`); the image centre if none."""
    body = sm > cfg.body_hu
    count = body.sum(axis=(1, 2))
    x = np.arange(sm.shape[2])
    total = (body.sum(axis=1) * x).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), (sm.shape[2] - 1) / 2)


def detect_canal(image: Volume, config: CanalConfig = CanalConfig(),
                 smoothed: np.ndarray | None = None) -> CanalCandidates:
    """Canal candidates in every axial slice of `image` (HU).

    A candidate is a hole of a bone mask (bone > each of `bone_hu_levels`) with canal-like area and
    content, near the left-right middle of the patient.
    Its score grows with the bone weighed in the body direction and falls with content density.
    """
    cfg = config
    sm = smoothed if smoothed is not None else smooth_in_plane(image, cfg.smooth_mm)
    parts = [_candidates_at(sm, image.spacing_zyx, hu, cfg) for hu in cfg.bone_hu_levels]
    centres, area, mean, anterior, score = (np.concatenate([p[k] for p in parts]) for k in range(5))
    keep = np.isfinite(score)
    log.info("canal: %d candidates in %d of %d slices", len(score),
             len(np.unique(np.round(centres[:, 0]))) if len(score) else 0, sm.shape[0])
    return CanalCandidates(centres[keep], area[keep], mean[keep], anterior[keep], score[keep])


def _candidates_at(sm: np.ndarray, spacing_zyx, bone_hu: float, cfg: CanalConfig):
    """(centres, area_mm2, mean_hu, anterior, score) of the canal-like holes of the mask sm > bone_hu."""
    sz, sy, sx = spacing_zyx
    pixel_mm2 = sy * sx
    bone = sm > bone_hu
    plane = np.zeros((3, 3, 3), bool)
    plane[1] = ndimage.generate_binary_structure(2, 1)
    filled = ndimage.binary_fill_holes(bone, structure=plane)
    holes = filled & ~bone
    labels, n = ndimage.label(holes, structure=plane)
    if n == 0:
        return np.zeros((0, 3)), np.zeros(0), np.zeros(0), np.zeros((0, 2)), np.zeros(0)
    # per-hole statistics by bincount over the hole voxels only (fast with many small holes)
    where = np.nonzero(labels)
    lab = labels[where]
    count = np.bincount(lab, minlength=n + 1)[1:].astype(float)
    area = count * pixel_mm2
    mean = np.bincount(lab, weights=sm[where], minlength=n + 1)[1:] / count
    keep = ((area >= cfg.area_mm2[0]) & (area <= cfg.area_mm2[1])
            & (mean >= cfg.content_hu[0]) & (mean <= cfg.content_hu[1]))
    if not keep.any():
        return np.zeros((0, 3)), np.zeros(0), np.zeros(0), np.zeros((0, 2)), np.zeros(0)
    centres = np.column_stack([np.bincount(lab, weights=w, minlength=n + 1)[1:][keep] / count[keep]
                               for w in where])
    # the spine runs near the left-right middle of the body (scoliosis moves it a few cm at most);
    # a femoral or humeral shaft (marrow inside a cortical tube) lies far to the side
    body_x = _body_midline_x(sm, cfg)
    zc = np.clip(np.round(centres[:, 0]).astype(int), 0, sm.shape[0] - 1)
    lateral_mm = (centres[:, 2] - body_x[zc]) * sx
    midline = np.exp(-0.5 * (lateral_mm / cfg.midline_sigma_mm) ** 2)
    near = midline > 0.05                       # far-lateral holes: not worth weighing
    centres, midline, zc = centres[near], midline[near], zc[near]
    area, mean = area[keep][near], mean[keep][near]
    anterior = np.zeros((len(centres), 2))
    weight = np.zeros(len(centres))
    slice_weight = {}
    for i, c in enumerate(centres):
        if zc[i] not in slice_weight:
            slice_weight[zc[i]] = bone_weight(sm[zc[i]])
        anterior[i], weight[i] = _body_direction(slice_weight[zc[i]], c[1:], (sy, sx), cfg)
    darkness = np.clip((cfg.content_hu[1] - mean) / (cfg.content_hu[1] - cfg.content_hu[0]), 0, 1)
    size = np.exp(-0.5 * (np.log(area / 200.0) / 0.8) ** 2)
    score = weight * (0.5 + 0.5 * darkness) * size * midline
    return centres, area, mean, anterior, score
