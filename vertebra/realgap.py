"""How far the synthetic CT is from a real one: the same measurements on a phantom and on a real scan.

Everything is measured on the canonical grid (`vertebra.io.to_canonical`: numpy axes (z, y, x), index
x → patient left, y → posterior, z → superior, i.e. world LPS). Bone is measured inside the vertebra
label maps; soft tissue has no labels in the phantom files, so it is found with the *same* HU
thresholds and positions relative to the spine on both images (`TissueRules`):

* **trabecular bone**: vertebra voxels at least 3 mm inside the mask, in the body (the largest
  connected part of that core); median HU per level.
* **cortical bone**: the 95th HU percentile of each vertebra's mask (depends on voxel size: a thin
  shell is averaged with what lies beside it).
* **disc**: unlabelled voxels within 3 mm of the midpoint between two consecutive body centres.
* **subcutaneous fat**: inside the body, within 25 mm of the skin, -190..-30 HU.
* **paraspinal muscle**: -29..150 HU in boxes 15-70 mm left and right of the body centre and
  30-90 mm behind it, within 5 mm of each body centre's height.
* **liver**: 0..250 HU, deeper than 25 mm under the skin, on the patient's right (30 mm or more from
  the spine), in front of the vertebral bodies, between the T11 and L1 body centres; the largest
  connected part after a 4 mm opening.
* **lung**: below -500 HU inside the body outline (holes of each axial slice filled), parts over 50 ml.
* **noise**: the median over subcutaneous fat (or the air outside the body) of the standard deviation
  in 5 x 5 in-plane windows that lie entirely in that tissue.

The same file measures the bodies (height, width and depth through the body centre, mm), the spacing
of consecutive vertebra centroids and the rib lengths (geodesic, along the rib from its end nearest its
vertebra). `gap_table` puts a real case and phantoms side by side. The real-scan chapter of the book
explains what the numbers mean.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from . import labels as verse
from .image import Volume
from .io import to_canonical

log = logging.getLogger(__name__)


#: T1-T12, T13, L1-L5, L6: the levels whose bodies, discs and muscles are measured
THORACOLUMBAR = frozenset(range(8, 26)) | {verse.T13}


@dataclass(frozen=True)
class TissueRules:
    """HU windows (HU) and distances (mm) of the soft-tissue heuristics (see the module docstring)."""

    body_min_hu: float = -500.0
    fat_hu: tuple[float, float] = (-190.0, -30.0)
    muscle_hu: tuple[float, float] = (-29.0, 150.0)
    liver_hu: tuple[float, float] = (0.0, 250.0)
    lung_max_hu: float = -500.0
    subcutaneous_mm: float = 25.0
    trabecular_depth_mm: float = 3.0
    disc_radius_mm: float = 3.0
    noise_window: int = 5
    min_lung_ml: float = 50.0


@dataclass
class CanonicalCase:
    """CT (float32 HU), vertebra labels and ribs on the canonical grid, with world-mm helpers."""

    ct: Volume
    vertebrae: Volume
    ribs: Volume | None
    meta: dict

    @classmethod
    def of(cls, case) -> "CanonicalCase":
        """From a `VerseCase` or `PhantomCase` (anything with image, vertebrae, ribs, meta)."""
        ct = to_canonical(case.image)[0]
        ct = ct.with_array(ct.array.astype(np.float32))
        ribs = to_canonical(case.ribs)[0] if case.ribs is not None else None
        return cls(ct, to_canonical(case.vertebrae)[0], ribs, dict(case.meta))

    @property
    def spacing_zyx(self) -> np.ndarray:
        return np.asarray(self.ct.spacing_zyx, float)

    def world(self, index_zyx) -> np.ndarray:
        return self.ct.index_to_world(np.atleast_2d(index_zyx))

    def levels(self) -> list[int]:
        """Vertebra labels present (sacrum excluded), top to bottom."""
        present = [int(v) for v in np.unique(self.vertebrae.array) if v and v != verse.SACRUM]
        return sorted(present, key=verse.rank)


def _run_length_mm(line: np.ndarray, centre: int, spacing: float) -> float:
    """Length (mm) of the run of True in a 1-D mask that contains `centre` (0 when it is False)."""
    if not line[centre]:
        return 0.0
    lo = centre
    while lo > 0 and line[lo - 1]:
        lo -= 1
    hi = centre
    while hi < len(line) - 1 and line[hi + 1]:
        hi += 1
    return float(hi - lo + 1) * spacing


def vertebral_bodies(case: CanonicalCase, rules: TissueRules = TissueRules()) -> list[dict]:
    """Per level, top to bottom: body centre (world mm, x y z), height / width / depth through it (mm),
    trabecular HU (median of the body core), cortical HU (95th percentile of the mask), mask centroid."""
    out = []
    sp = case.spacing_zyx
    for lab in case.levels():
        mask = case.vertebrae.array == lab
        tight = ndi.find_objects(mask.astype(np.uint8))[0]
        box = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in tight)
        m = mask[box]
        corner = np.array([s.start for s in box])
        depth = ndi.distance_transform_edt(m, sampling=sp)
        core = depth >= rules.trabecular_depth_mm
        if not core.any():
            core = depth >= depth.max() * 0.5
        parts, n = ndi.label(core)
        body = parts == (np.argmax(np.bincount(parts.ravel())[1:]) + 1) if n else core
        core_idx = np.argwhere(body)
        centre = core_idx[np.argmin(np.linalg.norm((core_idx - core_idx.mean(0)) * sp, axis=1))]
        k, j, i = centre
        hu = case.ct.array[box]
        out.append({
            "label": lab, "name": verse.name(lab),
            "body_centre_mm": case.world(centre + corner)[0].round(2).tolist(),
            "centroid_mm": case.world(np.argwhere(m).mean(0) + corner)[0].round(2).tolist(),
            "height_mm": _run_length_mm(m[:, j, i], k, sp[0]),
            "depth_mm": _run_length_mm(m[k, :, i], j, sp[1]),
            "width_mm": _run_length_mm(m[k, j, :], i, sp[2]),
            "trabecular_hu": float(np.median(hu[body])),
            "cortical_hu": float(np.percentile(hu[m], 95)),
            # cut by the first or last slice of the scan: sizes and centroid are not the whole vertebra
            "complete": bool(tight[0].start > 0 and tight[0].stop < mask.shape[0]),
        })
    return out


def level_spacing(bodies: list[dict]) -> list[dict]:
    """Distance (mm) between consecutive vertebra centroids and their craniocaudal difference."""
    out = []
    for upper, lower in zip(bodies, bodies[1:]):
        between = verse.CRANIOCAUDAL[verse.rank(upper["label"]) + 1:verse.rank(lower["label"])]
        if any(lab not in (verse.T13, verse.L6) for lab in between) or not (upper["complete"] and lower["complete"]):
            continue  # a level is missing in between, or one of the two is cut by the scan's end
        a, b = np.asarray(upper["centroid_mm"]), np.asarray(lower["centroid_mm"])
        out.append({"pair": f"{upper['name']}-{lower['name']}", "label": upper["label"],
                    "distance_mm": float(np.linalg.norm(a - b)), "dz_mm": float(a[2] - b[2])})
    return out


def _box_mask(case: CanonicalCase, lo_mm, hi_mm) -> tuple[slice, slice, slice]:
    """Index slices (z, y, x) of the world box [lo, hi] (x, y, z mm), clipped to the grid."""
    a = case.ct.world_to_index([lo_mm])[0]
    b = case.ct.world_to_index([hi_mm])[0]
    lo, hi = np.floor(np.minimum(a, b)).astype(int), np.ceil(np.maximum(a, b)).astype(int) + 1
    shape = case.ct.array.shape
    return tuple(slice(int(np.clip(lo[d], 0, shape[d])), int(np.clip(hi[d], 0, shape[d]))) for d in range(3))


def body_outline(ct: np.ndarray, min_hu: float = -500.0) -> np.ndarray:
    """The largest connected region above `min_hu` with the holes of every axial slice filled."""
    dense = ct > min_hu
    parts, n = ndi.label(dense)
    if n == 0:
        return dense
    body = parts == (np.argmax(np.bincount(parts.ravel())[1:]) + 1)
    return ndi.binary_fill_holes(body, structure=np.array([[[0, 0, 0]] * 3, [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
                                                            [[0, 0, 0]] * 3], bool))


def skin_depth_mm(body: np.ndarray, spacing_zyx) -> np.ndarray:
    """In-plane distance (mm) of every body voxel to the skin, slice by slice (0 outside)."""
    out = np.zeros(body.shape, np.float32)
    for k in range(body.shape[0]):
        if body[k].any():
            out[k] = ndi.distance_transform_edt(body[k], sampling=spacing_zyx[1:])
    return out


def local_std_hu(ct: np.ndarray, region: np.ndarray, window: int = 5) -> float:
    """Median over `region` of the HU standard deviation in `window` x `window` in-plane windows that lie
    entirely inside `region` (NaN when there are none)."""
    size = (1, window, window)
    inside = ndi.minimum_filter(region.astype(np.uint8), size=size).astype(bool)
    if not inside.any():
        return float("nan")
    x = ct.astype(np.float64)
    mean = ndi.uniform_filter(x, size)
    var = ndi.uniform_filter(x * x, size) - mean ** 2
    return float(np.median(np.sqrt(np.clip(var[inside], 0, None))))


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if values.size else float("nan")


def tissue_hu(case: CanonicalCase, bodies: list[dict] | None = None,
              rules: TissueRules = TissueRules()) -> dict:
    """Median HU of each tissue and the noise level (see the module docstring). Keys end in ``_hu``."""
    bodies = bodies if bodies is not None else vertebral_bodies(case, rules)
    ct, sp = case.ct.array, case.spacing_zyx
    body = body_outline(ct, rules.body_min_hu)
    depth = skin_depth_mm(body, sp)
    by_label = {b["label"]: b for b in bodies}
    thoracolumbar = [b for b in bodies if b["label"] in THORACOLUMBAR]
    out = {}
    lumbar_core = [b["trabecular_hu"] for b in bodies if b["label"] in (verse.T12, verse.L1, verse.L1 + 1)]
    out["trabecular_hu"] = float(np.median(lumbar_core)) if lumbar_core else float("nan")
    out["trabecular_all_hu"] = float(np.median([b["trabecular_hu"] for b in thoracolumbar] or [np.nan]))
    out["cortical_hu"] = float(np.median([b["cortical_hu"] for b in thoracolumbar] or [np.nan]))
    # discs: small spheres between consecutive body centres, unlabelled voxels only
    labelled = case.vertebrae.array > 0
    disc = []
    for up, low in zip(thoracolumbar, thoracolumbar[1:]):
        mid = 0.5 * (np.asarray(up["body_centre_mm"]) + np.asarray(low["body_centre_mm"]))
        r = rules.disc_radius_mm
        box = _box_mask(case, mid - r, mid + r)
        idx = np.argwhere(np.ones([s.stop - s.start for s in box], bool)) + [s.start for s in box]
        if not len(idx):
            continue
        near = np.linalg.norm(case.world(idx) - mid, axis=1) <= r
        idx = idx[near]
        keep = ~labelled[tuple(idx.T)]
        disc.extend(ct[tuple(idx[keep].T)].tolist())
    out["disc_hu"] = _median(np.asarray(disc))
    fat = body & (depth > 0) & (depth <= rules.subcutaneous_mm) & (ct >= rules.fat_hu[0]) & (ct <= rules.fat_hu[1])
    out["fat_hu"] = _median(ct[fat])
    # paraspinal muscle beside and behind each body
    muscle = np.zeros(ct.shape, bool)
    for b in thoracolumbar:
        x, y, z = b["body_centre_mm"]
        for side in (-1, 1):
            box = _box_mask(case, (x + side * 15, y + 30, z - 5), (x + side * 70, y + 90, z + 5))
            muscle[box] = True
    muscle &= body & ~labelled & (ct >= rules.muscle_hu[0]) & (ct <= rules.muscle_hu[1])
    out["muscle_hu"] = _median(ct[muscle])
    out["liver_hu"] = _median(ct[liver_region(case, by_label, body, depth, rules)])
    lung = body & (ct < rules.lung_max_hu)
    parts, n = ndi.label(lung)
    voxel_ml = float(np.prod(sp)) / 1000.0
    if n:
        sizes = np.bincount(parts.ravel())
        big = np.flatnonzero(sizes * voxel_ml >= rules.min_lung_ml)
        lung = np.isin(parts, big[big > 0])
    out["lung_hu"] = _median(ct[lung])
    out["lung_ml"] = float(lung.sum() * voxel_ml)
    out["noise_fat_hu"] = local_std_hu(ct, fat, rules.noise_window)
    air = ~ndi.binary_dilation(body, iterations=3) & (ct < -900)
    out["noise_air_hu"] = local_std_hu(ct, air, rules.noise_window)
    return out


def liver_region(case: CanonicalCase, by_label: dict, body: np.ndarray, depth: np.ndarray,
                 rules: TissueRules = TissueRules()) -> np.ndarray:
    """The liver heuristic of the module docstring (an empty mask when T11 or L1 is not in view)."""
    ct = case.ct.array
    out = np.zeros(ct.shape, bool)
    top, bottom = by_label.get(verse.T12 - 1), by_label.get(verse.L1)
    if top is None or bottom is None:
        return out
    x, y, _ = np.asarray(top["body_centre_mm"])
    z_hi, z_lo = top["body_centre_mm"][2], bottom["body_centre_mm"][2]
    box = _box_mask(case, (x - 400, y - 400, z_lo), (x - 30, y + 10, z_hi))
    cand = body[box] & (depth[box] > rules.subcutaneous_mm) & (case.vertebrae.array[box] == 0)
    cand &= (ct[box] >= rules.liver_hu[0]) & (ct[box] <= rules.liver_hu[1])
    radius = np.maximum(1, np.rint(4.0 / case.spacing_zyx)).astype(int)
    zz, yy, xx = np.ogrid[tuple(slice(-r, r + 1) for r in radius)]
    ball = (zz / radius[0]) ** 2 + (yy / radius[1]) ** 2 + (xx / radius[2]) ** 2 <= 1.0
    opened = ndi.binary_opening(cand, structure=ball)
    parts, n = ndi.label(opened)
    if n:
        out[box] = parts == (np.argmax(np.bincount(parts.ravel())[1:]) + 1)
    return out
