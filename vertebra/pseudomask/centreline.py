"""A smooth spinal-canal centreline through the per-slice candidates (paper §2.1, "spinal cord
centerline").

The canal runs roughly along the scanner axis, so the centreline is a function of the slice index:
(y(z), x(z)) and the in-plane direction towards the vertebral body a(z). A lateral (scoliotic) or
sagittal (lordotic) curve is still a function of z; only a spine lying in the axial plane is not,
and no CT of the trunk shows one.

Robustness, in order: per slice keep the candidate nearest a running median path (discards holes
in the pelvis, tagged bowel or metal artefacts); reject points far from a smooth fit (3 x MAD);
bridge gaps (disc levels, missing slices, metal) by interpolation; extend a short way beyond the
first and last detection (the canal narrows and ends in the sacrum).

Coordinates: slice index z and in-plane voxel indices (y, x); `points_mm` is (z, y, x) in mm along
the array axes (not world; `to_world` gives world (x, y, z) mm, LPS).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..image import Volume
from .canal import CanalCandidates

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CentrelineConfig:
    #: half-width (mm) of the running median used to pick one candidate per slice
    median_window_mm: float = 30.0
    #: a candidate farther than this (mm, in-plane) from the median path is not the canal
    max_offset_mm: float = 15.0
    #: Gaussian smoothing of the path along z (sigma, mm)
    smooth_mm: float = 8.0
    #: extrapolation beyond the first / last detection (mm along z)
    extend_mm: float = 30.0
    #: candidates scoring below this fraction of the 90th-percentile score do not shape the rough path
    min_relative_score: float = 0.4
    #: consecutive detections further apart in-plane than max_jump_mm + max_slope * (z gap) break the chain
    max_jump_mm: float = 12.0
    max_slope: float = 1.0
    #: fewest detected slices for a usable centreline
    min_detections: int = 5


@dataclass
class Centreline:
    """The canal path: one in-plane point and body direction per slice z in `z_index`."""

    z_index: np.ndarray          # (M,) int slice indices, consecutive
    yx_index: np.ndarray         # (M, 2) float voxel indices (y, x)
    anterior_yx: np.ndarray      # (M, 2) unit vectors (mm, y and x components) towards the bodies
    detected: np.ndarray         # (M,) bool: a canal candidate was accepted in this slice
    spacing_zyx: tuple[float, float, float]

    def points_mm(self) -> np.ndarray:
        """(M, 3) centreline points (z, y, x) in mm along the array axes."""
        idx = np.column_stack([self.z_index, self.yx_index])
        return idx * np.asarray(self.spacing_zyx)

    def arclength_mm(self) -> np.ndarray:
        steps = np.linalg.norm(np.diff(self.points_mm(), axis=0), axis=1)
        return np.concatenate([[0.0], np.cumsum(steps)])

    def to_world(self, volume: Volume) -> np.ndarray:
        """(M, 3) centreline points in world (x, y, z) mm."""
        return volume.index_to_world(np.column_stack([self.z_index, self.yx_index]))


def _running_median(z: np.ndarray, values: np.ndarray, half_window: float) -> np.ndarray:
    out = np.empty_like(values)
    for i, zi in enumerate(z):
        near = np.abs(z - zi) <= half_window
        out[i] = np.median(values[near], axis=0)
    return out


def _pick_per_slice(cand: CanalCandidates, path_z, path_yx, spacing_yx, max_offset_mm):
    """For each slice, the candidate closest to the path (if within `max_offset_mm`)."""
    zc = np.round(cand.zyx[:, 0]).astype(int)
    ref = np.column_stack([np.interp(zc, path_z, path_yx[:, 0]), np.interp(zc, path_z, path_yx[:, 1])])
    dist = np.linalg.norm((cand.zyx[:, 1:] - ref) * spacing_yx, axis=1)
    chosen = {}
    for i in np.argsort(dist):
        if dist[i] <= max_offset_mm and zc[i] not in chosen:
            chosen[zc[i]] = i
    return np.array(sorted(chosen.values()), dtype=int)


def fit_centreline(cand: CanalCandidates, shape_zyx, spacing_zyx,
                   config: CentrelineConfig = CentrelineConfig()) -> Centreline:
    """A smooth, gap-free centreline through the canal candidates (see the module docstring)."""
    cfg = config
    sz, sy, sx = spacing_zyx
    spacing_yx = np.array([sy, sx])
    if len(cand) < cfg.min_detections:
        raise InputError(f"the spinal canal was found in only {len(cand)} slices; is this a CT of the spine?")
    # 1. the best-scoring candidate per slice, among the clearly canal-like ones (bone on one side
    #    only), then a running median of those: the rough path
    zc = np.round(cand.zyx[:, 0]).astype(int)
    strong = cand.score >= cfg.min_relative_score * np.percentile(cand.score, 90)
    best = {}
    for i in np.argsort(-cand.score):
        if strong[i]:
            best.setdefault(zc[i], i)
    first = np.array(sorted(best.values()))
    rough = _running_median(zc[first], cand.zyx[first, 1:], cfg.median_window_mm / sz)
    path_z = zc[first]
    # 2. twice: pick the candidate nearest the path, refit a median path through the picks
    for _ in range(2):
        picked = _pick_per_slice(cand, path_z, rough, spacing_yx, cfg.max_offset_mm)
        if len(picked) < cfg.min_detections:
            raise InputError(f"no consistent spinal canal: {len(picked)} slices agree")
        path_z = zc[picked]
        rough = _running_median(path_z, cand.zyx[picked, 1:], cfg.median_window_mm / sz)
    # 3. outlier rejection against the median path (3 x MAD, at least 3 mm)
    resid = np.linalg.norm((cand.zyx[picked, 1:] - rough) * spacing_yx, axis=1)
    mad = np.median(np.abs(resid - np.median(resid))) + 1e-6
    good = resid <= max(3.0, np.median(resid) + 3 * 1.4826 * mad)
    picked = picked[good]
    # 4. the spine is one continuous chain of detections: break where the path jumps sideways
    #    (pelvic holes, bowel) and keep the chain with the largest total score
    picked = picked[np.argsort(zc[picked])]
    step = np.linalg.norm(np.diff(cand.zyx[picked, 1:], axis=0) * spacing_yx, axis=1)
    gap_mm = np.diff(zc[picked]) * sz
    breaks = np.flatnonzero(step > cfg.max_jump_mm + cfg.max_slope * gap_mm) + 1
    chains = np.split(picked, breaks)
    picked = max(chains, key=lambda ch: cand.score[ch].sum())
    if len(picked) < cfg.min_detections:
        raise InputError(f"no consistent spinal canal: the longest chain has {len(picked)} slices")
    z_det = zc[picked]
    # 5. a gap-free path from the first to the last detection, extended a little, then smoothed
    ext = int(round(cfg.extend_mm / sz))
    z_all = np.arange(max(0, z_det.min() - ext), min(shape_zyx[0], z_det.max() + ext + 1))
    yx = np.column_stack([np.interp(z_all, z_det, cand.zyx[picked, 1 + k]) for k in range(2)])
    # the body direction: the scan's median direction; a slice that disagrees by more than 45 degrees
    # (a spinous process or a rib outweighed a thin body) takes the median instead
    det_ant = cand.anterior_yx[picked].copy()
    mean_dir = np.median(det_ant, axis=0)
    mean_dir /= np.linalg.norm(mean_dir) + 1e-9
    det_ant[det_ant @ mean_dir < np.cos(np.pi / 4)] = mean_dir
    ant = np.column_stack([np.interp(z_all, z_det, det_ant[:, k]) for k in range(2)])
    sigma = cfg.smooth_mm / sz
    yx = ndimage.gaussian_filter1d(yx, sigma, axis=0, mode="nearest")
    ant = ndimage.gaussian_filter1d(ant, 2 * sigma, axis=0, mode="nearest")
    ant /= np.linalg.norm(ant, axis=1, keepdims=True) + 1e-9
    detected = np.isin(z_all, z_det)
    log.info("centreline: %d slices (%d detected), z %d..%d", len(z_all), detected.sum(), z_all[0], z_all[-1])
    return Centreline(z_all, yx, ant, detected, tuple(spacing_zyx))
