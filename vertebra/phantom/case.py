"""One synthetic scan in memory: anatomy → field of view → painted volume → scanner effects → truth.

`generate_case` is the single entry point that the cohort writer and the tests use. All randomness
comes from the `rng` argument, split into independent streams (anatomy, site, field of view, texture,
noise), so the anatomy of a case does not change when, say, the noise model does.

Geometry of the written image: arrays (z, y, x); the header is LPS with direction identity for a supine
scan and diag(-1, -1, 1) for a prone one (as prone DICOM series are stored), so the array of a prone scan
shows the spine at the top of each axial image while world coordinates stay patient-based. The
patient's own small rotation and tilt are not in the header (the scanner does not know about them).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import labels as L
from ..image import Geometry, Volume
from . import scanner
from .anatomy import Anatomy, sample_anatomy
from .colon import ColonOptions, paint_colon
from .implants import paint_implants
from .pelvis import landmarks, paint_pelvis
from .protocols import choose_fov
from .render import Canvas, Grid, Pose
from .ribs import paint_ribs, paint_sternum
from .sites import SITES, sample_site
from .soft_tissue import TissueOptions, paint_abdomen, paint_body, paint_chest
from .spine_curve import spine_pose
from .vertebra_shape import paint_disc_and_canal, paint_vertebra

GENERATOR_VERSION = "3"
TABLE_HU, FOAM_HU = 250.0, -850.0


@dataclass
class PhantomCase:
    """A generated scan: CT (int16 HU), vertebra labels, rib labels (all on one grid), centroids
    (world mm, x y z, LPS) and the generator's record of what it decided."""

    case_id: str
    image: Volume
    vertebrae: Volume
    ribs: Volume
    centroids_mm: dict[int, np.ndarray]
    meta: dict
    anatomy: Anatomy
    fluid: Volume | None = None      # tagged colonic fluid (1), for the bone-threshold baseline


def _paint_table(canvas: Canvas) -> None:
    """A curved carbon-fibre table under the patient (scanner +y is down)."""
    body = (canvas.hu > -500).any(axis=0)
    rows = np.flatnonzero(body.any(axis=1))
    if len(rows) == 0:
        return
    sy, sx = canvas.grid.spacing_zyx[1:]
    ny, nx = body.shape
    top = rows.max() + 1
    cols = np.flatnonzero(body.any(axis=0))
    xc = 0.5 * (cols.min() + cols.max()) * sx
    x = np.arange(nx) * sx
    y = np.arange(ny)[:, None] * sy
    lift = 25.0 * ((x - xc) / 230.0) ** 2
    d = y - (top * sy - lift)[None, :]
    inside = (np.abs(x - xc) < 230.0)[None, :]
    plate = inside & (((d >= 0) & (d < 3.0)) | ((d >= 20.0) & (d < 23.0)))
    foam = inside & (d >= 3.0) & (d < 20.0)
    air = canvas.hu < -900
    for mask, hu in ((foam, FOAM_HU), (plate, TABLE_HU)):
        m = air & mask[None]
        canvas.hu[m] = hu


def generate_case(rng: np.random.Generator, *, protocol: str = "ctc", site: str = "ctc_train",
                  spacing_mm: float = 2.0, anomalies: tuple[str, ...] | None = None,
                  position: str | None = None, lumbar_only: bool = False, case_id: str = "phantom",
                  cohort: str = "", seed=None) -> PhantomCase:
    """Generate one scan. `anomalies`: None draws them at the paper's incidences; a tuple forces
    exactly those. `spacing_mm`: in-plane voxel size; slices are max(spacing, slice thickness)."""
    if spacing_mm <= 0:
        raise ValueError(f"spacing_mm must be positive, got {spacing_mm}")
    r_anat, r_site, r_fov, r_tex, r_noise = rng.spawn(5)
    anatomy = sample_anatomy(r_anat, force=anomalies)
    settings = sample_site(SITES[site], r_site)
    spine = spine_pose(anatomy)
    lm = landmarks(anatomy, spine)
    if position is None:
        position = str(r_fov.choice(["supine", "prone"])) if protocol == "ctc" else "supine"
    fov = choose_fov(protocol, anatomy, spine, lm, r_fov, settings["fov_margin_mm"], lumbar_only)

    dz = max(spacing_mm, settings["slice_thickness_mm"])
    nz = int(np.ceil((fov.z_hi - fov.z_lo) / dz)) + 1
    nxy = int(round(fov.side_mm / spacing_mm))
    zc = 0.5 * (fov.z_lo + fov.z_hi)
    pose = Pose(anatomy.rotation_deg, anatomy.tilt_deg, anatomy.pitch_deg, position == "prone", zc)
    centre = pose.to_scanner(np.array([fov.centre_xy[0], fov.centre_xy[1], zc]))[0]
    half = (nxy - 1) / 2 * spacing_mm
    grid = Grid((nz, nxy, nxy), (dz, spacing_mm, spacing_mm), (centre[0] - half, centre[1] - half, fov.z_lo))
    canvas = Canvas(grid, pose)

    gravity = pose.direction_to_anatomical((0.0, 1.0, 0.0))
    contrast = protocol == "cap"
    tissue = TissueOptions(contrast=contrast, fat_mm=settings["fat_mm"] * anatomy.body_scale,
                           aorta_hu=float(r_tex.uniform(150, 300)) if contrast else 40.0)
    paint_body(canvas, anatomy, spine, lm, tissue, r_tex)
    dome = paint_chest(canvas, anatomy, spine, tissue)
    paint_abdomen(canvas, anatomy, spine, lm, tissue, dome)
    colon = ColonOptions(distended=protocol == "ctc", fill_fraction=settings["tagged_fill"],
                         tagged_hu=settings["tagged_hu"] if protocol == "ctc" else 0.0,
                         gravity=tuple(gravity))
    paint_colon(canvas, anatomy, spine, lm, colon, r_tex)
    tagged = np.float32(colon.tagged_hu)
    paint_pelvis(canvas, anatomy, spine, lm)
    for label in anatomy.labels:
        paint_disc_and_canal(canvas, anatomy, spine.vertebrae[label])
    for label in anatomy.labels:
        paint_vertebra(canvas, anatomy, spine.vertebrae[label])
    rib_vertebra = paint_ribs(canvas, anatomy, spine)
    paint_sternum(canvas, anatomy, spine)
    paint_implants(canvas, anatomy, spine, lm)
    if protocol != "spine":
        _paint_table(canvas)

    hu = canvas.hu
    fluid = (hu == tagged) if colon.tagged_hu > 0 else np.zeros(hu.shape, bool)
    scanner.blur(hu, grid.spacing_zyx, settings["psf_fwhm_mm"], settings["slice_thickness_mm"])
    streak_slices = scanner.metal_streaks(hu, grid.spacing_zyx, r_noise) if anatomy.metal_kind else 0
    scanner.add_noise(hu, settings["noise_hu"], r_noise)
    ct = scanner.to_int16_hu(hu)

    flip = -1.0 if position == "prone" else 1.0
    table_offset = float(np.round(r_fov.uniform(-400, 400), 1))
    geometry = Geometry(spacing_mm=(spacing_mm, spacing_mm, dz),
                        origin_mm=(flip * grid.origin_xyz[0], flip * grid.origin_xyz[1],
                                   grid.origin_xyz[2] + table_offset),
                        direction=(flip, 0, 0, 0, flip, 0, 0, 0, 1))
    image = Volume(ct, geometry)
    vert = Volume(canvas.vert, geometry)
    ribs = Volume(canvas.rib, geometry)
    centroids = label_centroids(vert)
    meta = _meta(anatomy, protocol, position, settings, fov, vert, centroids, rib_vertebra, case_id,
                 cohort, seed, spacing_mm, dz, streak_slices)
    meta["tagged_fluid_ml"] = round(float(fluid.sum()) * spacing_mm ** 2 * dz / 1000.0, 2)
    return PhantomCase(case_id, image, vert, ribs, centroids, meta, anatomy,
                       Volume(fluid.astype(np.uint8), geometry))


def label_centroids(labels: Volume) -> dict[int, np.ndarray]:
    """World (x, y, z) mm centroid of every label in a label map."""
    flat = np.flatnonzero(labels.array)
    if len(flat) == 0:
        return {}
    values = labels.array.reshape(-1)[flat].astype(np.int64)
    k, j, i = np.unravel_index(flat, labels.array.shape)
    count = np.bincount(values)
    present = np.flatnonzero(count)
    idx = np.stack([np.bincount(values, weights=c)[present] / count[present] for c in (k, j, i)], axis=1)
    world = labels.index_to_world(idx)
    return {int(lab): world[n] for n, lab in enumerate(present)}


def _meta(anatomy, protocol, position, settings, fov, vert: Volume, centroids, rib_vertebra, case_id,
          cohort, seed, spacing_mm, dz, streak_slices) -> dict:
    present = sorted(centroids, key=L.rank)
    l1_range = None
    if L.L1 in centroids:
        ks = np.flatnonzero((vert.array == L.L1).any(axis=(1, 2)))
        z0 = vert.index_to_world([[ks.min(), 0, 0]])[0][2]
        z1 = vert.index_to_world([[ks.max(), 0, 0]])[0][2]
        l1_range = [round(float(min(z0, z1) - dz / 2), 3), round(float(max(z0, z1) + dz / 2), 3)]
    return {
        "case_id": case_id, "cohort": cohort, "protocol": protocol, "position": position,
        "site": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in settings.items()},
        "anomalies": list(anatomy.anomalies), "seed": seed, "generator_version": GENERATOR_VERSION,
        "spacing_mm": [spacing_mm, spacing_mm, dz],
        "l1_label": L.L1, "l1_z_range_mm": l1_range,
        "l1_centroid_mm": [round(float(c), 3) for c in centroids[L.L1]] if L.L1 in centroids else None,
        "rib_rule_l1_label": anatomy.rib_rule_l1_label, "labels_present": [int(k) for k in present],
        "vertebrae_in_spine": [int(k) for k in anatomy.labels] + [L.SACRUM],
        "rib_vertebra": {int(k): int(v) for k, v in rib_vertebra.items()},
        "rib_length_mm": {int(k): [round(float(a), 1) for a in v] for k, v in anatomy.rib_length_mm.items()},
        "trabecular_hu": {int(k): round(float(v), 1) for k, v in anatomy.trabecular_hu.items()},
        "rib_scale": round(anatomy.rib_scale, 4), "lung_hu": round(anatomy.lung_hu, 1),
        "age_years": round(anatomy.age_years, 1), "top_label": fov.top_label, "lumbar_only": fov.lumbar_only,
        "fracture": ({"label": anatomy.fracture_label, "height_loss": round(anatomy.fracture_loss, 3),
                      "kind": anatomy.fracture_kind} if anatomy.fracture_label else None),
        "metal": ({"kind": anatomy.metal_kind, "levels": list(anatomy.metal_labels),
                   "streak_slices": int(streak_slices)} if anatomy.metal_kind else None),
        "sacralization_sides": list(anatomy.sacralization_sides),
        "curvature_deg": {"kyphosis": round(anatomy.kyphosis_deg, 1), "lordosis": round(anatomy.lordosis_deg, 1),
                          "scoliosis_cobb": round(anatomy.scoliosis_cobb_deg, 1)},
        "patient_pose_deg": {"rotation": round(anatomy.rotation_deg, 2), "tilt": round(anatomy.tilt_deg, 2),
                             "pitch": round(anatomy.pitch_deg, 2)},
    }
