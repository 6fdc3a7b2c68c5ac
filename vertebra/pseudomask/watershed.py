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
    #: behind u = `spinous_u_mm` (mm) only |v| <= `spinous_half_width_mm` is kept (the spinous process)
    spinous_u_mm: float = -25.0
    spinous_half_width_mm: float = 15.0
    #: soft tissue (HU), the range of the adaptive low threshold (HU) and its 3D smoothing (mm)
    soft_tissue_hu: float = 50.0
    low_hu_range: tuple[float, float] = (90.0, 180.0)
    low_smooth_mm: float = 1.5
    #: the canal's front wall (mm in front of the canal centre) and the margin past a body's front (mm)
    canal_wall_u_mm: float = 8.0
    front_margin_mm: float = 4.0
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


def spine_bone(smoothed: np.ndarray, frame: CurvedFrame, s_range_mm, cfg: WatershedConfig,
               trabecular_hu: float = float("nan"), body_front_mm=None):
    """Bone near the centreline: (bool mask of the box, the box's slices, (N, 3) voxel indices in the box,
    (N, 3) their (s, u, v) in mm).

    Dense bone (> `bone_hu`, slice holes filled, canal left out) together with whatever is clearly
    denser than soft tissue after 3D smoothing: the threshold sits halfway between soft tissue and
    the scan's trabecular bone (read at the body centres), so a 150 HU core in a thin cortex counts."""
    spacing = np.asarray(frame.spacing_zyx)
    reach = max(cfg.posterior_mm, cfg.anterior_mm, cfg.lateral_mm) + 5.0
    idx = frame.point_mm / spacing
    lo = np.maximum(np.floor(idx.min(axis=0) - reach / spacing).astype(int), 0)
    hi = np.minimum(np.ceil(idx.max(axis=0) + reach / spacing).astype(int) + 1, smoothed.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    sm = smoothed[box]
    bone = ndimage.binary_closing(sm > cfg.bone_hu, structure=_plane_structure())  # bridge thin-shell gaps
    filled = ndimage.binary_fill_holes(bone, structure=_plane_structure())
    holes, _ = ndimage.label(filled & ~bone, structure=_plane_structure())
    # the canal is the hole under the centreline in each slice: leave it out
    c = np.round(idx).astype(int) - lo
    c = c[np.all((c >= 0) & (c < np.array(sm.shape)), axis=1)]
    canal = np.unique(holes[c[:, 0], c[:, 1], c[:, 2]])
    filled &= ~np.isin(holes, canal[canal > 0])
    if np.isfinite(trabecular_hu):
        low_hu = float(np.clip(0.5 * (trabecular_hu + cfg.soft_tissue_hu), cfg.low_hu_range[0], cfg.low_hu_range[1]))
        soft = ndimage.gaussian_filter(sm, cfg.low_smooth_mm / spacing)
        low = ndimage.binary_opening(soft > low_hu)
        canal_zone = np.zeros_like(low)
        canal_zone[c[:, 0], c[:, 1], c[:, 2]] = True
        canal_zone = ndimage.binary_dilation(canal_zone, iterations=2) & (sm < low_hu)
        filled |= low & ~canal_zone
    zyx = np.argwhere(filled)
    suv = frame.project(zyx + lo)
    # behind the arch only the spinous process (narrow) belongs to the vertebra; wider is rib
    half_width = np.where(suv[:, 1] < cfg.spinous_u_mm, cfg.spinous_half_width_mm, cfg.lateral_mm)
    front = cfg.anterior_mm if body_front_mm is None else np.minimum(body_front_mm(suv[:, 0]), cfg.anterior_mm)
    near = ((suv[:, 1] >= -cfg.posterior_mm) & (suv[:, 1] <= front)
            & (np.abs(suv[:, 2]) <= half_width)
            & (suv[:, 0] >= s_range_mm[0]) & (suv[:, 0] <= s_range_mm[1]))
    mask = np.zeros_like(filled)
    mask[tuple(zyx[near].T)] = True
    return mask, box, zyx[near], suv[near]


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
    # the front of each body: as far in front of its centre as the centre is in front of the canal
    # wall, plus a margin; what lies further (aorta, bowel) is not vertebra
    mids = profile.intervals_mm.mean(axis=1)
    fronts = 2 * profile.body_u_mm - cfg.canal_wall_u_mm + cfg.front_margin_mm
    mask, box, zyx, suv = spine_bone(smoothed, frame, s_range, cfg, profile.trabecular_hu,
                                     lambda s: np.interp(s, mids, fronts))
    if len(zyx) == 0:
        return WatershedResult(empty, empty.astype(np.uint8))
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
    # a large piece that no vertebra seed reached and that merged into nothing is not spine
    # (a contrast-filled aorta, tagged bowel, the pelvis): dropped
    lut[lut > n] = 0
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
