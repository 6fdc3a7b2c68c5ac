"""Soft tissue: body contour, fat, muscles, lungs, abdominal organs and vessels.

HU values are textbook ones: fat -100, muscle 40-60, unenhanced liver 55, kidneys 30, blood 40; the
lungs' density is the patient's (`Anatomy.lung_hu`, -900 to -820). With IV contrast (the chest-abdomen-pelvis protocol) the aorta reaches 150-300 HU and the organs
enhance. The body is an ellipse per slice whose size follows the landmarks of the spine (neck, chest,
abdomen, hips) and splits into two thighs below the crotch; bowel loops and mesenteric fat come from a
smooth random field so that no two abdomens look alike.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import Anatomy
from .pelvis import PelvisLandmarks
from .render import Canvas
from .ribs import cage_half_axes
from .spine_curve import SpinePose

FAT_HU, MUSCLE_HU, BLOOD_HU = -100.0, 50.0, 40.0


@dataclass(frozen=True)
class TissueOptions:
    """What the protocol changes in soft tissue."""

    contrast: bool = False          # IV contrast (cap)
    aorta_hu: float = 40.0
    fat_mm: float = 20.0            # subcutaneous fat thickness


def _landmark_z(spine: SpinePose, lm: PelvisLandmarks, label: int, fallback: float) -> float:
    v = spine.vertebrae.get(label)
    return float(v.centre[2]) if v is not None else fallback


def body_profile(anatomy: Anatomy, spine: SpinePose, lm: PelvisLandmarks, z: np.ndarray, fat_mm: float):
    """Per-slice body ellipse: (half-width, half-depth, centre y, spine x, spine y), arrays like z."""
    f = anatomy.body_scale
    hip_z = lm.hip_centres[0][2]
    zs = [hip_z - 45 * f, hip_z, lm.s1_top[2], _landmark_z(spine, lm, 22, 0), _landmark_z(spine, lm, 17, 0),
          _landmark_z(spine, lm, 13, 0), _landmark_z(spine, lm, 8, 0), _landmark_z(spine, lm, 6, 0)]
    a_ref = [160, 165, 150, 138, 145, 140, 122, 62]
    b_ref = [95, 100, 100, 100, 110, 105, 85, 58]
    order = np.argsort(zs)
    a = np.interp(z, np.take(zs, order), np.take(a_ref, order)) * f + fat_mm
    b = np.interp(z, np.take(zs, order), np.take(b_ref, order)) * f + fat_mm * 1.2
    sx, sy = spine.centre_at(z)
    low = z < lm.s1_top[2]   # below S1 the body follows the pelvis, not the sacrum
    sy = np.where(low, lm.s1_top[1] + (sy - lm.s1_top[1]) * 0.3, sy)
    y_post = sy + 68.0 * f + 0.7 * fat_mm
    return a, b, y_post - b, sx, sy


def paint_body(canvas: Canvas, anatomy: Anatomy, spine: SpinePose, lm: PelvisLandmarks,
               opts: TissueOptions, rng: np.random.Generator) -> None:
    """Skin contour, subcutaneous fat, muscle wall, and the abdominal cavity's bowel-and-fat mix.

    Evaluated slice by slice on 2D arrays (the patient's in-plane rotation is the same in every slice,
    only the shear shifts it), which keeps the whole-volume layers cheap."""
    f = anatomy.body_scale
    grid = canvas.grid
    zz = grid.axis(0).astype(float)
    a_all, b_all, cy_all, sx_all, sy_all = body_profile(anatomy, spine, lm, zz, opts.fat_mm)
    hip = lm.hip_centres[1]
    texture = SmoothNoise(grid.shape_zyx, grid.spacing_zyx, 9.0, rng)
    y2 = grid.axis(1)[:, None]
    x2 = grid.axis(2)[None, :]
    thigh_r = 78 * f + opts.fat_mm
    for k, z in enumerate(zz):
        x, y = canvas.pose.to_anatomical(x2, y2, np.float32(z))
        a, b, cy, sx, sy = a_all[k], b_all[k], cy_all[k], sx_all[k], sy_all[k]
        tex = texture.slice(k)
        if z < hip[2] - 45 * f:      # below the crotch: two thighs
            r = np.hypot(np.abs(x) - 88 * f, (y - hip[1] - 8 * f) * 1.1) / thigh_r
            fat_r, wall_r = 1 - opts.fat_mm / thigh_r, 0.0
        else:
            r = np.sqrt(((x - sx) / a) ** 2 + ((y - cy) / b) ** 2)
            fat_r = 1.0 - opts.fat_mm / a
            wall_r = fat_r - 12.0 * f / a
        inside = r <= 1.0
        if not inside.any():
            continue
        hu = np.where(inside, FAT_HU + 12.0 * tex, canvas.hu[k])
        muscle = r < fat_r
        hu = np.where(muscle, MUSCLE_HU + 5.0 * tex, hu)
        cavity = r < wall_r
        visceral = FAT_HU + (35.0 - FAT_HU) * np.clip(0.5 + 1.2 * tex, 0, 1)
        visceral = np.where(tex > 1.45, -900.0, visceral)          # bowel gas
        hu = np.where(cavity, visceral, hu)
        # paraspinal muscles behind the spine, and gluteal muscles behind the hips
        para = ((np.abs(x - sx) - 32 * f) / (26 * f)) ** 2 + ((y - sy - 52 * f) / (24 * f)) ** 2 < 1
        if hip[2] - 60 * f < z < lm.s1_top[2]:
            para |= ((np.abs(x) - 85 * f) / (50 * f)) ** 2 + ((y - hip[1] - 55 * f) / (35 * f)) ** 2 < 1
        hu = np.where(para & inside, MUSCLE_HU + 5.0 * tex, hu)
        canvas.hu[k] = hu


class SmoothNoise:
    """Unit-variance-ish smooth random field with features of about `feature_mm`, served slice by slice:
    a coarse random grid interpolated linearly (two-tap blends along each axis, no BLAS)."""

    def __init__(self, shape, spacing_zyx, feature_mm: float, rng: np.random.Generator):
        self.coarse = rng.standard_normal([max(2, int(np.ceil(n * s / feature_mm)) + 1)
                                           for n, s in zip(shape, spacing_zyx)]).astype(np.float32)
        self.taps = [self._taps(n, m) for n, m in zip(shape, self.coarse.shape)]

    @staticmethod
    def _taps(n: int, m: int):
        pos = np.linspace(0, m - 1, n)
        i0 = np.minimum(np.floor(pos).astype(int), m - 2)
        w1 = (pos - i0).astype(np.float32)
        return i0, w1

    def slice(self, k: int) -> np.ndarray:
        (iz, wz), (iy, wy), (ix, wx) = self.taps
        c = (1 - wz[k]) * self.coarse[iz[k]] + wz[k] * self.coarse[iz[k] + 1]
        c = (1 - wy)[:, None] * c[iy] + wy[:, None] * c[iy + 1]
        c = (1 - wx)[None, :] * c[:, ix] + wx[None, :] * c[:, ix + 1]
        return c * np.float32(1.6)   # linear interpolation loses variance


def _ellipsoid(canvas: Canvas, centre, radii, hu: float, texture: float = 0.0):
    c, r = np.asarray(centre, float), np.asarray(radii, float)

    def field(x, y, z):
        q = ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2
        m = q <= 1
        return m, np.float32(hu) + np.float32(texture) * (q - 0.5).astype(np.float32)

    canvas.paint_field(c - r, c + r, field)


def paint_chest(canvas: Canvas, anatomy: Anatomy, spine: SpinePose, opts: TissueOptions) -> float:
    """Lungs above the diaphragm domes, mediastinum and heart. Returns the dome height (mm)."""
    f = anatomy.body_scale
    if 17 not in spine.vertebrae:
        return -np.inf
    dome = float(spine.vertebrae[17].centre[2])      # dome top at about T10
    top = float(spine.vertebrae[8].centre[2]) + 30.0  # lung apices above T1
    labels = [lab for lab in anatomy.rib_labels]
    zs = np.array([spine.vertebrae[lab].centre[2] for lab in labels])
    A = np.array([cage_half_axes(anatomy.rib_number(lab), f)[0] for lab in labels])
    B = np.array([cage_half_axes(anatomy.rib_number(lab), f)[1] for lab in labels])
    order = np.argsort(zs)
    blood = 130.0 if opts.contrast else BLOOD_HU
    zc = 0.5 * (dome - 110 + top)
    cx, cyc = (float(v) for v in spine.centre_at(zc))
    box = canvas.scanner_box((cx - 170 * f, cyc - 260 * f, dome - 110), (cx + 170 * f, cyc + 120 * f, top))
    if box is None:
        return dome
    y2 = canvas.grid.axis(1)[box[1]][:, None]
    x2 = canvas.grid.axis(2)[box[2]][None, :]
    zz = canvas.grid.axis(0)[box[0]].astype(float)
    sx_all, sy_all = spine.centre_at(zz)
    a_all = np.interp(zz, zs[order], A[order]) - 8
    b_all = np.interp(zz, zs[order], B[order]) - 6
    for n, z in enumerate(zz):
        x, y = canvas.pose.to_anatomical(x2, y2, np.float32(z))
        sx, sy, b = sx_all[n], sy_all[n], b_all[n]
        a = a_all[n] * np.clip((top - z) / 60.0, 0.35, 1.0)          # narrow apices
        cy = sy + 20 * f - b
        cage = ((x - sx) / a) ** 2 + ((y - cy) / b) ** 2 < 1
        if not cage.any():
            continue
        dome_z = dome + np.where(x < sx, 12.0, 0.0) - ((np.abs(x - sx) - 55 * f) ** 2 + (y - cy) ** 2) / 300.0
        lung = cage & (z > dome_z)
        # mediastinum: narrow at the top, between the lungs in front of the spine
        half = (14.0 + 18.0 * np.clip((top - 40 - z) / 120.0, 0, 1)) * f
        medi = (np.abs(x - sx - 6) < half * (1 - ((y - cy) / b) ** 2 * 0.5)) & (y < sy + 8)
        heart = ((x - sx - 25 * f) / (62 * f)) ** 2 + ((y - cy + 15 * f) / (50 * f)) ** 2 + \
            ((z - dome - 45 * f) / (55 * f)) ** 2 < 1
        tissue = lung & (medi | heart)
        k = box[0].start + n
        region = canvas.hu[k, box[1], box[2]]
        region[lung] = anatomy.lung_hu
        region[tissue] = np.where(heart, blood, 20.0)[tissue]
    return dome


def paint_abdomen(canvas: Canvas, anatomy: Anatomy, spine: SpinePose, lm: PelvisLandmarks,
                  opts: TissueOptions, dome_z: float) -> None:
    """Liver, spleen, kidneys, stomach, bladder, psoas, aorta and vena cava."""
    f = anatomy.body_scale
    if not np.isfinite(dome_z):
        dome_z = float(spine.vertebrae[17].centre[2]) if 17 in spine.vertebrae else lm.s1_top[2] + 250
    sx, sy = (float(v) for v in spine.centre_at(dome_z - 60))
    c = opts.contrast
    _ellipsoid(canvas, (sx - 75 * f, sy - 55 * f, dome_z - 70 * f), (85 * f, 80 * f, 85 * f),
               100.0 if c else 58.0, 6.0)
    _ellipsoid(canvas, (sx + 85 * f, sy + 10 * f, dome_z - 45 * f), (30 * f, 45 * f, 50 * f),
               110.0 if c else 48.0, 6.0)
    _ellipsoid(canvas, (sx + 45 * f, sy - 85 * f, dome_z - 40 * f), (45 * f, 35 * f, 40 * f), 10.0, 0.0)
    for side, drop in ((-1.0, 18.0), (1.0, 0.0)):
        kz = float(spine.vertebrae[21].centre[2]) - drop if 21 in spine.vertebrae else dome_z - 150
        kx, ky = spine.centre_at(kz)
        _ellipsoid(canvas, (kx + side * 62 * f, ky + 8 * f, kz), (28 * f, 24 * f, 52 * f),
                   160.0 if c else 32.0, 8.0)
    hip = lm.hip_centres[1]
    _ellipsoid(canvas, (0.0, hip[1] - 35 * f, hip[2] + 10 * f), (42 * f, 35 * f, 35 * f), 8.0)
    # psoas: from T12 to the lesser trochanter, thickening downwards
    lumbar = [lab for lab in anatomy.labels if lab >= 20]
    for side in (-1.0, 1.0):
        pts, rad = [], []
        for i, lab in enumerate(lumbar):
            p = spine.vertebrae[lab].centre
            pts.append(p + np.array([side * (anatomy.width_mm[lab] / 2 + 8 + 3 * i), 2 - 3 * i, 0]))
            rad.append(8.0 + 4.0 * i)
        hip_s = lm.hip_centres[0 if side < 0 else 1]
        pts.append(hip_s + np.array([side * -15, -25, 10]) * f)
        rad.append(18.0)
        pts.append(hip_s + np.array([side * 5, -10, -60]) * f)
        rad.append(14.0)
        flat, dist, _, _ = canvas.tube_voxels(np.array(pts), np.array(rad) * f)
        canvas.paint_flat(flat, MUSCLE_HU)
    # aorta and inferior vena cava in front of the spine; the aorta splits at L4 into the iliacs
    top_lab = 10 if 10 in spine.vertebrae else anatomy.labels[0]
    labs = [lab for lab in anatomy.labels if anatomy.labels.index(lab) >= anatomy.labels.index(top_lab)
            and lab not in (24, 25)]
    aorta = [spine.vertebrae[lab].centre + np.array([14, -anatomy.depth_mm[lab] / 2 - 16, 0]) for lab in labs]
    ivc = [spine.vertebrae[lab].centre + np.array([-24, -anatomy.depth_mm[lab] / 2 - 14, 0])
           for lab in labs if spine.vertebrae[lab].centre[2] < dome_z + 20]
    flat, _, _, _ = canvas.tube_voxels(np.array(aorta), 12.0 * f)
    canvas.paint_flat(flat, opts.aorta_hu)
    if len(ivc) > 1:
        flat, _, _, _ = canvas.tube_voxels(np.array(ivc), 11.0 * f)
        canvas.paint_flat(flat, 110.0 if c else BLOOD_HU)
    for side in (-1.0, 1.0):
        hip_s = lm.hip_centres[0 if side < 0 else 1]
        iliac = np.stack([aorta[-1], hip_s + np.array([side * -20, -35, 15]) * f,
                          hip_s + np.array([side * -5, -40, -40]) * f])
        flat, _, _, _ = canvas.tube_voxels(iliac, 6.0 * f)
        canvas.paint_flat(flat, opts.aorta_hu)
