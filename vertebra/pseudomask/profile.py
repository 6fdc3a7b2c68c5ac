"""Bone density along the centreline and its partition into vertebrae at the discs (paper §2.1,
"partitions the spine based on the bone density along the centerline").

The profile is read in the straightened volume, in a window in front of the canal where the
vertebral bodies are. Its value at arc length s is the mean graded bone weight in that window (0 at
soft-tissue density and below, 1 at 300 HU above it; see `canal.bone_weight`), so that a trabecular
core inside a thin, blurred cortex counts, and it is normalised by its running maximum so that small
upper thoracic bodies weigh as much as lumbar ones. Discs are the minima. Blank planes (missing
slices) are bridged by interpolation, not read as discs.

Choosing the discs is a shortest path over candidate positions (a dynamic programme, second order):
each disc earns ``profile(s) - reward_level`` (negative in a valley), consecutive spacings pay
``smoothness * log(d_i / d_{i-1})²`` (heights change slowly down the spine) and a spacing outside
the usual centroid spacing (thoracic ~25-30 mm, lumbar ~33-36 mm; cervical shorter) pays a prior.
A missed disc doubles a spacing and a spurious one halves it, so both cost far more than they gain.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .canal import bone_weight
from .reformat import Straightened

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProfileConfig:
    bone_hu: float = 200.0
    #: body window in the straightened volume: u from .. to (mm, anterior of the canal centre), |v| <=
    body_u_mm: tuple[float, float] = (7.0, 45.0)
    body_half_width_mm: float = 10.0
    #: normalisation by the running maximum over this half-window (mm): small T1 bodies count as L5 ones
    normalise_mm: float = 30.0
    #: allowed disc-to-disc spacing (mm) and the prior's comfortable range
    spacing_mm: tuple[float, float] = (14.0, 50.0)
    prior_mm: tuple[float, float] = (20.0, 40.0)
    prior_weight: float = 4.0
    smoothness: float = 0.5
    #: a disc is rewarded where the normalised profile is below this level
    reward_level: float = 0.6
    #: shortest partial vertebra kept at either end of the scan (mm)
    min_partial_mm: float = 8.0


@dataclass
class DensityProfile:
    """The profile, the discs and the vertebra intervals, all in arc length s (mm)."""

    s_mm: np.ndarray
    bone_weight: np.ndarray      # mean graded bone weight in the body window (see canal.bone_weight)
    normalised: np.ndarray
    mean_hu: np.ndarray
    valid: np.ndarray
    discs_mm: np.ndarray
    intervals_mm: np.ndarray     # (N, 2) start, end of each vertebra along s
    body_u_mm: np.ndarray        # (N,) centre of the body in u at the middle of each interval
    trabecular_hu: float = float("nan")   # median HU at the body centres (sets the watershed's threshold)


def _fill_cross_sections(bone_suv: np.ndarray) -> np.ndarray:
    plane = np.zeros((3, 3, 3), bool)
    plane[1] = ndimage.generate_binary_structure(2, 1)
    closed = ndimage.binary_closing(bone_suv, structure=plane)      # bridge gaps in a thin cortex
    return ndimage.binary_fill_holes(closed, structure=plane)


def choose_discs(profile: np.ndarray, step_mm: float, config: ProfileConfig = ProfileConfig()) -> np.ndarray:
    """Indices of the discs in a normalised profile (0 = no bone), by the second-order programme.

    >>> p = np.tile(np.r_[np.ones(12), np.zeros(2)], 6)       # 24 mm bodies, 4 mm discs, 2 mm steps
    >>> choose_discs(p, 2.0).tolist()
    [12, 26, 40, 54, 68, 82]
    """
    cfg = config
    n = len(profile)
    gain = profile - cfg.reward_level
    d = np.arange(max(1, int(np.ceil(cfg.spacing_mm[0] / step_mm))), int(cfg.spacing_mm[1] / step_mm) + 1)
    dmm = d * step_mm
    lo, hi = cfg.prior_mm
    prior = cfg.prior_weight * np.maximum(0, np.maximum(np.log(dmm / hi), np.log(lo / dmm))) ** 2
    ratio = cfg.smoothness * np.log(d[:, None] / d[None, :]) ** 2         # [w, w_prev]
    max_first = int(cfg.spacing_mm[1] / step_mm)
    cost = np.full((n, len(d)), np.inf)
    back = np.full((n, len(d)), -1, int)      # -1: the previous disc was the first one
    for i in range(n):
        j = i - d
        ok = j >= 0
        for w in np.flatnonzero(ok):
            jj = j[w]
            start = gain[jj] if jj <= max_first else np.inf
            chain = cost[jj] + ratio[w]
            wp = int(np.argmin(chain))
            if chain[wp] < start:
                cost[i, w], back[i, w] = chain[wp] + gain[i] + prior[w], wp
            else:
                cost[i, w], back[i, w] = start + gain[i] + prior[w], -1
    last_ok = np.arange(n) >= n - 1 - max_first
    best_single = int(np.argmin(np.where(np.arange(n) <= max_first, gain, np.inf))) if n else -1
    if not np.isfinite(cost[last_ok]).any():
        return np.array([best_single] if n and gain[best_single] < 0 else [], int)
    masked = np.where(last_ok[:, None], cost, np.inf)
    i, w = np.unravel_index(int(np.argmin(masked)), cost.shape)
    if n and gain[best_single] < 0 and gain[best_single] < masked[i, w]:
        return np.array([best_single], int)
    discs = [i]
    while True:
        j = discs[-1] - d[w]
        discs.append(j)
        if back[discs[-2], w] < 0:
            break
        w = back[discs[-2], w]
    return np.array(sorted(discs), int)


def density_profile(straight: Straightened, config: ProfileConfig = ProfileConfig()) -> DensityProfile:
    """Profile along the centreline, discs and vertebra intervals (see the module docstring)."""
    cfg = config
    u, v, s = straight.u_mm, straight.v_mm, straight.s_mm
    step = float(s[1] - s[0]) if len(s) > 1 else 1.0
    win_u = (u >= cfg.body_u_mm[0]) & (u <= cfg.body_u_mm[1])
    win_v = np.abs(v) <= cfg.body_half_width_mm
    arr = straight.array
    filled = _fill_cross_sections(arr > cfg.bone_hu) | (bone_weight(arr) > 0.2)
    window = filled[:, win_u][:, :, win_v]
    fraction = bone_weight(arr[:, win_u][:, :, win_v]).mean(axis=(1, 2))
    mean_hu = arr[:, win_u][:, :, win_v].mean(axis=(1, 2))
    # planes outside the scan, or blank (missing slices, padding at -1000 and below), carry no profile:
    # inside the scan they are bridged by interpolation rather than read as discs
    valid = (arr[:, win_u][:, :, win_v] > -990).mean(axis=(1, 2)) > 0.5
    if valid.any() and not valid.all():
        inner = np.arange(len(s))
        fraction = np.interp(inner, inner[valid], fraction[valid])
        first, last = np.flatnonzero(valid)[[0, -1]]
        valid = (inner >= first) & (inner <= last)
    smooth = ndimage.gaussian_filter1d(fraction, 1.0 / step)
    running_max = ndimage.maximum_filter1d(smooth, int(2 * cfg.normalise_mm / step) + 1)
    normalised = np.where(valid, smooth / np.maximum(running_max, 0.05), 0.0)
    idx_valid = np.flatnonzero(valid)
    if len(idx_valid) == 0:
        return DensityProfile(s, fraction, normalised, mean_hu, valid, np.zeros(0), np.zeros((0, 2)), np.zeros(0))
    a, b = idx_valid[0], idx_valid[-1]
    discs = a + choose_discs(normalised[a:b + 1], step, cfg)
    bounds = np.concatenate([[s[a]], s[discs], [s[b]]])
    intervals = np.column_stack([bounds[:-1], bounds[1:]])
    keep = np.ones(len(intervals), bool)
    for end in (0, -1):
        if intervals[end, 1] - intervals[end, 0] < cfg.min_partial_mm:
            keep[end] = False
    intervals = intervals[keep]
    # the body centre in u at each interval's middle: centroid of filled bone in the body window
    body_u = np.empty(len(intervals))
    for k, (s0, s1) in enumerate(intervals):
        rows = (s >= s0 + 0.3 * (s1 - s0)) & (s <= s1 - 0.3 * (s1 - s0))
        mass = window[rows].sum(axis=(0, 2)).astype(float)
        body_u[k] = (u[win_u] * mass).sum() / mass.sum() if mass.sum() > 0 else np.mean(cfg.body_u_mm) / 1.5
    centres = []
    for (s0, s1), ub in zip(intervals, body_u):
        rows = (s >= s0 + 0.3 * (s1 - s0)) & (s <= s1 - 0.3 * (s1 - s0))
        cols = np.abs(u - ub) <= 5.0
        centres.append(arr[rows][:, cols][:, :, np.abs(v) <= 5.0].ravel())
    trabecular = float(np.median(np.concatenate(centres))) if centres else float("nan")
    log.info("profile: %d discs, %d vertebra intervals, body centres at %.0f HU", len(discs), len(intervals),
             trabecular)
    return DensityProfile(s, fraction, normalised, mean_hu, valid, s[discs], intervals, body_u, trabecular)
