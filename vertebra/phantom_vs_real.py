"""Phantom and real scan side by side: one record of measurements per case, and the comparison table.

`measure_case` applies the measurements of `vertebra.realgap` (tissue HU, noise, vertebral bodies,
centroid spacing) plus the rib lengths to any case; `gap_table` lists, for every quantity, the real
scan's value, the phantoms' mean and range, and the difference. `totalseg_tissue_hu` checks the
soft-tissue heuristics on the real scan against its TotalSegmentator organ labels (liver, lungs,
autochthonous back muscles), which the phantom files do not have.

Rib length is geodesic: the longest path inside the rib mask (26-connected voxel steps, mm) from the
rib voxel nearest to the centroid of the vertebra the rib belongs to, plus one voxel.
"""
from __future__ import annotations

import logging
import math

import numpy as np
from scipy import ndimage as ndi

from .image import Volume
from .realgap import CanonicalCase, TissueRules, level_spacing, tissue_hu, vertebral_bodies

log = logging.getLogger(__name__)

#: the levels shown in the comparison table (body sizes and spacing)
TABLE_LEVELS = ("T1", "T6", "T10", "T11", "T12", "L1", "L2")


def geodesic_length_mm(mask: np.ndarray, start_zyx, spacing_zyx) -> float:
    """Longest shortest path (mm) inside `mask` from voxel `start_zyx` (NaN when it is outside)."""
    from skimage.graph import MCP_Geometric

    if not mask[tuple(start_zyx)]:
        return float("nan")
    costs = np.where(mask, 1.0, np.inf)
    cumulative, _ = MCP_Geometric(costs, sampling=tuple(spacing_zyx)).find_costs([tuple(start_zyx)])
    reached = np.isfinite(cumulative) & mask
    return float(cumulative[reached].max() + min(spacing_zyx))


def rib_lengths(case: CanonicalCase, downsample_to_mm: float = 1.5) -> dict[int, float]:
    """Geodesic length (mm) of every rib in the rib map, keyed by rib value (left k, right 100 + k).

    The rib map is first brought to voxels of about `downsample_to_mm` (nearest neighbour on a
    coarser grid) so that fine scans cost no more than the phantoms."""
    if case.ribs is None:
        return {}
    sp = case.spacing_zyx
    step = np.maximum(1, np.floor(downsample_to_mm / sp)).astype(int)
    ribs = case.ribs.array[::step[0], ::step[1], ::step[2]]
    verts = case.vertebrae.array[::step[0], ::step[1], ::step[2]]
    sp_small = sp * step
    rib_vertebra = {int(k): int(v) for k, v in (case.meta.get("rib_vertebra") or {}).items()}
    centres = {lab: np.argwhere(verts == lab).mean(0) for lab in set(rib_vertebra.values()) if (verts == lab).any()}
    out = {}
    for value, box in enumerate(ndi.find_objects(ribs), start=1):
        if box is None:
            continue
        box = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in box)
        mask = ribs[box] == value
        corner = np.array([s.start for s in box])
        idx = np.argwhere(mask)
        owner = rib_vertebra.get(value % 100)
        target = centres.get(owner)
        if target is None:  # its vertebra is not in view: start from the most medial point
            x_mid = verts.shape[2] / 2 if not verts.any() else np.argwhere(verts > 0)[:, 2].mean()
            start = idx[np.argmin(np.abs(idx[:, 2] + corner[2] - x_mid))]
        else:
            start = idx[np.argmin(np.linalg.norm((idx + corner - target) * sp_small, axis=1))]
        out[value] = geodesic_length_mm(mask, start, sp_small)
    return out


def measure_case(case, rules: TissueRules = TissueRules()) -> dict:
    """Every measurement of one case (a `VerseCase` or `PhantomCase`) as a JSON-ready dict."""
    canonical = CanonicalCase.of(case)
    bodies = vertebral_bodies(canonical, rules)
    return {"case_id": getattr(case, "case_id", ""), "protocol": case.meta.get("protocol"),
            "spacing_mm": list(canonical.ct.geometry.spacing_mm),
            "tissue": tissue_hu(canonical, bodies, rules), "bodies": bodies, "spacing": level_spacing(bodies),
            "ribs_mm": {str(k): v for k, v in rib_lengths(canonical).items()},
            "site_noise_hu": (case.meta.get("site") or {}).get("noise_hu")}


def _quantities(m: dict) -> dict[str, float]:
    """Flatten a `measure_case` record into {quantity: value} for the table."""
    q = {f"{k.removesuffix('_hu')} (HU)" if k.endswith("_hu") else k: v for k, v in m["tissue"].items()}
    by_name = {b["name"]: b for b in m["bodies"] if b.get("complete", True)}
    for lvl in TABLE_LEVELS:
        for dim in ("height", "width", "depth"):
            q[f"{lvl} body {dim} (mm)"] = by_name[lvl][f"{dim}_mm"] if lvl in by_name else math.nan
    for s in m["spacing"]:
        if s["pair"].split("-")[0] in TABLE_LEVELS:
            q[f"{s['pair']} centroid spacing (mm)"] = s["distance_mm"]
    ribs = {int(k): v for k, v in m["ribs_mm"].items()}
    for k in range(1, 13):
        pair = [ribs[r] for r in (k, 100 + k) if r in ribs and np.isfinite(ribs[r])]
        q[f"rib {k} length (mm)"] = float(np.mean(pair)) if pair else math.nan
    return q


def gap_table(real: dict, phantoms: list[dict]):
    """pandas DataFrame: quantity, real, phantom mean, phantom min, phantom max, phantom - real."""
    import pandas as pd

    rq = _quantities(real)
    pq = [_quantities(p) for p in phantoms]
    rows = []
    for key in rq:
        vals = np.array([p.get(key, math.nan) for p in pq], float)
        finite = vals[np.isfinite(vals)]
        mean = float(finite.mean()) if finite.size else math.nan
        rows.append({"quantity": key, "real": rq[key], "phantom_mean": mean,
                     "phantom_min": float(finite.min()) if finite.size else math.nan,
                     "phantom_max": float(finite.max()) if finite.size else math.nan,
                     "phantom_minus_real": mean - rq[key]})
    return pd.DataFrame(rows)


#: TotalSegmentator v2 structure names used to check the heuristics on the real scan
TOTALSEG_TISSUES = {"liver": ("liver",), "lung": ("lung_",), "muscle": ("autochthon_",)}


def totalseg_tissue_hu(cache=None) -> dict:
    """Median HU of liver, lungs and autochthonous back muscles in the real scan by its TotalSegmentator
    labels, to compare with the HU-threshold heuristics (`realgap.tissue_hu`) on the same scan."""
    import csv

    from .datasets import real_ct_dir
    from .io import read_image

    folder = real_ct_dir(cache)
    image = read_image(folder / "cxr.nii.gz", kind="ct")
    ct, voxel_ml = image.array, float(np.prod(image.geometry.spacing_mm)) / 1000.0
    mask = read_image(folder / "mask.nii.gz", kind="labels").array
    with open(folder / "structures.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = {}
    for tissue, prefixes in TOTALSEG_TISSUES.items():
        ids = [int(r["id"]) for r in rows if r["structure"].startswith(prefixes)]
        inside = np.isin(mask, ids)
        out[f"{tissue}_hu"] = float(np.median(ct[inside])) if inside.any() else math.nan
        out[f"{tissue}_ml"] = float(inside.sum()) * voxel_ml
    return out


def resample_case(case, spacing_mm: float):
    """A copy of a case on an isotropic in-plane grid of `spacing_mm` (slices kept at least as thick):
    the real scan at the phantom cohort's voxel size, so noise and partial volume compare fairly."""
    import SimpleITK as sitk
    from dataclasses import replace

    g = case.image.geometry
    new_spacing = (spacing_mm, spacing_mm, max(spacing_mm, g.spacing_mm[2]))
    size = [int(round(n * s / t)) for n, s, t in zip(case.image.shape_xyz, g.spacing_mm, new_spacing)]
    ref = sitk.Image(size, sitk.sitkFloat32)
    ref.SetSpacing(new_spacing)
    ref.SetOrigin(g.origin_mm)
    ref.SetDirection(g.direction)
    image = sitk.Cast(case.image.to_sitk(), sitk.sitkFloat32)
    sigma = [0.5 * t if t > 1.5 * s else 0.0 for s, t in zip(g.spacing_mm, new_spacing)]
    if max(sigma) > 0:
        image = sitk.SmoothingRecursiveGaussian(image, [max(s, 1e-3) for s in sigma])
    ct = sitk.Resample(image, ref, sitk.Transform(), sitk.sitkLinear, -1024.0)

    def labels(vol):
        if vol is None:
            return None
        return Volume.from_sitk(sitk.Resample(vol.to_sitk(), ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    return replace(case, image=Volume.from_sitk(ct), vertebrae=labels(case.vertebrae), ribs=labels(case.ribs))
