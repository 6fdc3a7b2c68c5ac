"""Watershed of the spine's bone, seeded per vertebra, and the directed graph that merges
oversegments (paper §2.1, "watershed ... combined with directed graph search").

1. Bone: smoothed HU above a threshold, with the holes of each axial slice filled (the trabecular
   core of a low-density body is below the threshold but enclosed by its cortex), the canal itself
   left out, and only what lies near the centreline (the straightened frame's box in s, u, v).
2. Seeds: one per vertebra interval of the density profile, in the body and behind the canal (lamina),
   both with the vertebra's label; every bone component without a seed gets its own label.
3. Watershed of the negated distance map (vertebrae meet where the bone is thinnest: discs, facets).
4. Directed graph: segments ordered craniocaudally by their mean arc length, edges weighted by the
   number of touching voxel faces. Walking down the spine, a segment too small to be a vertebra
   (volume or craniocaudal extent) is merged into the neighbour it shares the largest boundary with;
   then the segments are renumbered 1..N from the top.

Arrays are (z, y, x); the labels returned have the input's grid.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed

from .reformat import CurvedFrame
from .profile import DensityProfile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatershedConfig:
    bone_hu: float = 180.0
    #: box around the centreline: posterior, anterior, lateral half-width (mm)
    posterior_mm: float = 60.0
    anterior_mm: float = 50.0
    lateral_mm: float = 45.0
    #: seed radius (mm) and the lamina seed's distance behind the canal centre (mm)
    seed_radius_mm: float = 5.0
    lamina_u_mm: float = -14.0
    #: a segment smaller than this fraction of the median vertebra, or shorter (mm along s), is merged
    min_volume_fraction: float = 0.3
    min_extent_mm: float = 10.0
    #: bone pieces farther than this from any segment are dropped (mm)
    touch_mm: float = 6.0


@dataclass
class WatershedResult:
    before: np.ndarray            # (z, y, x) int32 labels straight from the watershed
    after: np.ndarray             # (z, y, x) uint8 labels 1..N, craniocaudal
    merges: list = field(default_factory=list)   # (merged label, into label) in `before` numbering
    n_seeded: int = 0


def _plane_structure() -> np.ndarray:
    st = np.zeros((3, 3, 3), bool)
    st[1] = ndimage.generate_binary_structure(2, 1)
    return st


def spine_bone(smoothed: np.ndarray, frame: CurvedFrame, s_range_mm, cfg: WatershedConfig):
    """Bone near the centreline (bool (z, y, x)) and each bone voxel's (s, u, v) in mm."""
    bone = ndimage.binary_closing(smoothed > cfg.bone_hu, structure=_plane_structure())  # bridge thin-shell gaps
    filled = ndimage.binary_fill_holes(bone, structure=_plane_structure())
    holes, _ = ndimage.label(filled & ~bone, structure=_plane_structure())
    # the canal is the hole under the centreline in each slice: leave it out
    idx = np.round(frame.point_mm / np.asarray(frame.spacing_zyx)).astype(int)
    idx = idx[np.all((idx >= 0) & (idx < np.array(bone.shape)), axis=1)]
    canal = np.unique(holes[idx[:, 0], idx[:, 1], idx[:, 2]])
    filled &= ~np.isin(holes, canal[canal > 0])
    zyx = np.argwhere(filled)
    suv = frame.project(zyx)
    near = ((suv[:, 1] >= -cfg.posterior_mm) & (suv[:, 1] <= cfg.anterior_mm)
            & (np.abs(suv[:, 2]) <= cfg.lateral_mm)
            & (suv[:, 0] >= s_range_mm[0]) & (suv[:, 0] <= s_range_mm[1]))
    mask = np.zeros_like(filled)
    mask[tuple(zyx[near].T)] = True
    return mask, zyx[near], suv[near]


def _boundaries(labels: np.ndarray) -> dict:
    """{(a, b): number of touching voxel faces} for labels a < b (background 0 excluded)."""
    counts: dict = {}
    for axis in range(3):
        a = np.moveaxis(labels, axis, 0)
        x, y = a[:-1].ravel(), a[1:].ravel()
        m = (x != y) & (x > 0) & (y > 0)
        pairs = np.sort(np.column_stack([x[m], y[m]]), axis=1)
        uniq, n = np.unique(pairs, axis=0, return_counts=True)
        for (p, q), c in zip(uniq, n):
            counts[(int(p), int(q))] = counts.get((int(p), int(q)), 0) + int(c)
    return counts


def merge_oversegments(labels: np.ndarray, s_of_voxel: np.ndarray, voxel_mm3: float,
                       cfg: WatershedConfig = WatershedConfig(), contact: np.ndarray | None = None):
    """The directed-graph merge (step 4 of the module docstring), on a graph built once.

    `contact`: the labels whose touching faces weigh the edges (default `labels`; pass labels grown
    into the background so that pieces a few mm apart are neighbours). Returns (lookup table old label → new label, list of (merged, into) pairs). A small segment with
    no neighbour at all is dropped (label 0)."""
    ids = np.unique(labels[labels > 0])
    lut = np.arange(int(labels.max()) + 1)
    if len(ids) < 2:
        return lut, []
    flat, s = labels[labels > 0], s_of_voxel[labels > 0]
    volume = dict(zip(ids.tolist(), ndimage.sum_labels(np.ones_like(s), flat, ids) * voxel_mm3))
    s_sum = dict(zip(ids.tolist(), ndimage.sum_labels(s, flat, ids)))
    s_min = dict(zip(ids.tolist(), ndimage.minimum(s, flat, ids)))
    s_max = dict(zip(ids.tolist(), ndimage.maximum(s, flat, ids)))
    graph: dict = {int(i): {} for i in ids}
    for (p, q), c in _boundaries(labels if contact is None else contact).items():
        graph[p][q] = graph[q].get(p, 0) + c
        graph[q][p] = graph[p][q]
    vmin = cfg.min_volume_fraction * float(np.median(list(volume.values())))

    def small(a):
        return volume[a] < vmin or s_max[a] - s_min[a] < cfg.min_extent_mm

    merges = []
    changed = True
    while changed:
        changed = False
        order = sorted(graph, key=lambda a: s_sum[a] / volume[a])     # craniocaudal walk
        for a in order:
            if a not in graph or not small(a) or not graph[a]:
                continue
            into = max(graph[a], key=graph[a].get)
            for b, c in graph.pop(a).items():
                graph[b].pop(a, None)
                if b != into:
                    graph[into][b] = graph[into].get(b, 0) + c
                    graph[b][into] = graph[into][b]
            volume[into] += volume[a]
            s_sum[into] += s_sum[a]
            s_min[into], s_max[into] = min(s_min[into], s_min[a]), max(s_max[into], s_max[a])
            lut[lut == a] = into
            merges.append((int(a), int(into)))
            changed = True
    for a in list(graph):
        if small(a) and not graph[a]:
            lut[lut == a] = 0                    # isolated crumbs: not part of the spine
            del graph[a]
    return lut, merges


def segment_vertebrae(smoothed: np.ndarray, frame: CurvedFrame, profile: DensityProfile,
                      config: WatershedConfig = WatershedConfig()) -> WatershedResult:
    """Seeded watershed of the spine's bone and the oversegment merge; labels 1..N from the top."""
    cfg = config
    shape = smoothed.shape
    spacing = np.asarray(frame.spacing_zyx)
    empty = np.zeros(shape, np.int32)
    if len(profile.intervals_mm) == 0:
        return WatershedResult(empty, empty.astype(np.uint8))
    s_range = (profile.intervals_mm[0, 0] - 5.0, profile.intervals_mm[-1, 1] + 5.0)
    mask_full, zyx, suv = spine_bone(smoothed, frame, s_range, cfg)
    if len(zyx) == 0:
        return WatershedResult(empty, empty.astype(np.uint8))
    # work in the bone's bounding box (plus the bridging margin)
    pad = np.ceil(cfg.touch_mm / spacing).astype(int) + 1
    lo = np.maximum(zyx.min(axis=0) - pad, 0)
    hi = np.minimum(zyx.max(axis=0) + pad + 1, shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    mask, zyx = mask_full[box], zyx - lo
    markers = np.zeros(mask.shape, np.int32)
    n = len(profile.intervals_mm)
    for k, ((s0, s1), u_body) in enumerate(zip(profile.intervals_mm, profile.body_u_mm)):
        s_mid = 0.5 * (s0 + s1)
        r = min(cfg.seed_radius_mm, 0.25 * (s1 - s0))
        for u in (u_body, cfg.lamina_u_mm):
            near = (np.abs(suv[:, 0] - s_mid) <= r) & (np.abs(suv[:, 1] - u) <= r) & (np.abs(suv[:, 2]) <= r)
            markers[tuple(zyx[near].T)] = k + 1
    # bone components no seed reaches get a label of their own (oversegments, merged below)
    comps, n_comp = ndimage.label(mask)
    extra = np.setdiff1d(np.arange(1, n_comp + 1), np.unique(comps[markers > 0]))
    lut = np.zeros(n_comp + 1, np.int32)
    lut[extra] = n + 1 + np.arange(len(extra))
    markers = np.where(lut[comps] > 0, lut[comps], markers)
    distance = ndimage.distance_transform_edt(mask, sampling=spacing)
    before = watershed(-distance, markers, mask=mask).astype(np.int32)
    s_map = np.zeros(mask.shape, np.float32)
    s_map[tuple(zyx.T)] = suv[:, 0]
    # nearby pieces should touch in the graph: grow every segment by `touch_mm` into the background
    dist, nearest = ndimage.distance_transform_edt(before == 0, sampling=spacing, return_indices=True)
    bridged = np.where(dist <= cfg.touch_mm, before[tuple(nearest)], 0)
    lut, merges = merge_oversegments(before, s_map, float(np.prod(spacing)), cfg, contact=bridged)
    merged = lut[before]
    ids = np.unique(merged[merged > 0])
    s_mean = ndimage.mean(s_map, merged, ids) if len(ids) else np.zeros(0)
    order = np.zeros(int(merged.max()) + 1, np.uint8)
    order[ids[np.argsort(s_mean)]] = np.arange(1, len(ids) + 1)
    before_full, after_full = empty.copy(), np.zeros(shape, np.uint8)
    before_full[box], after_full[box] = before, order[merged]
    log.info("watershed: %d seeded vertebrae, %d extra pieces, %d merges, %d segments", n, len(extra),
             len(merges), len(ids))
    return WatershedResult(before_full, after_full, merges, n)
