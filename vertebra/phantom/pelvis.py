"""The pelvis in the lower field of view: sacrum (label 26), iliac wings, pubis, ischium, femora.

Positions follow the sacrum: its upper endplate is tipped forward by the sacral slope (30-45 deg) and
its axis runs down and back, curving forward at the tip. The hip joints lie in front of and below S1;
the iliac wings flare from the sacro-iliac joints up to the crest at about the L4-L5 disc. With a
lumbarized S1 the sacrum has four segments instead of five.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import labels as L
from .anatomy import Anatomy
from .render import Canvas, partial_volume_bone_hu
from .spine_curve import SpinePose
from .vertebra_shape import ellipse


@dataclass(frozen=True)
class PelvisLandmarks:
    """Anatomical-frame points (mm) that soft tissue, protocols and metal need."""

    s1_top: np.ndarray
    crest_z: float
    hip_centres: tuple[np.ndarray, np.ndarray]     # right (-x), left (+x) femoral head centres
    head_radius_mm: float
    symphysis: np.ndarray


def landmarks(anatomy: Anatomy, spine: SpinePose) -> PelvisLandmarks:
    f = anatomy.body_scale
    s1 = spine.sacrum_top
    hips = tuple(np.array([side * 92.0 * f, s1[1] - 50.0 * f, s1[2] - 95.0 * f]) for side in (-1.0, 1.0))
    symphysis = np.array([0.0, s1[1] - 105.0 * f, s1[2] - 125.0 * f])
    return PelvisLandmarks(s1, float(s1[2] + 30.0 * f), hips, 23.0 * f, symphysis)


def _sacrum_field(anatomy: Anatomy, spine: SpinePose, lm: PelvisLandmarks, voxel_mm: float):
    f = anatomy.body_scale
    length = (85.0 if "lumbarization" in anatomy.anomalies else 105.0) * f
    R, top = spine.sacrum_frame, lm.s1_top
    hu_core = anatomy.trabecular_hu[L.SACRUM]

    def field(x, y, z, outside_hu):
        dx, dy, dz = x - top[0], y - top[1], z - top[2]
        u = dx * R[0, 0] + dy * R[1, 0] + dz * R[2, 0]
        v = dx * R[0, 1] + dy * R[1, 1] + dz * R[2, 1]
        t = -(dx * R[0, 2] + dy * R[1, 2] + dz * R[2, 2])          # depth below the S1 endplate
        tt = np.clip(t / length, 0, 1)
        half_w = f * (np.interp(tt, [0, 0.25, 0.5, 1.0], [54, 56, 38, 12]))
        thick = f * (np.interp(tt, [0, 0.3, 1.0], [34, 26, 10]))
        vc = -0.0018 * t ** 2 / f + 4.0 * f
        body = ((np.abs(u) / half_w) ** 4 + (np.abs(v - vc) / (thick / 2)) ** 4) ** 0.25
        sdf = np.maximum((body - 1.0) * (thick / 2), np.maximum(-t, t - length))
        canal = ellipse(u, v, 10.0 * f * (1 - 0.6 * tt), 5.0 * f, 0, vc + thick * 0.22)
        sdf = np.maximum(sdf, -canal)
        mask = sdf <= 0
        return mask, partial_volume_bone_hu(-sdf, hu_core, outside_hu, 800.0, 1.5, voxel_mm), L.SACRUM

    r = 80.0 * f
    return top - np.array([r, r, 1.4 * r]), top + np.array([r, r + 30, 20]), field


def _ilium_field(side: float, lm: PelvisLandmarks, f: float, voxel_mm: float):
    s1 = lm.s1_top
    hip = lm.hip_centres[0 if side < 0 else 1]
    z_lo, z_hi = hip[2] + 20.0 * f, lm.crest_z
    cx, cy = side * 35.0 * f, s1[1] - 40.0 * f

    def field(x, y, z, outside_hu):
        hgt = np.clip((z - z_lo) / (z_hi - z_lo), 0, 1)
        radius = (45.0 + 50.0 * hgt) * f
        dx, dy = x - cx, y - cy
        r = np.sqrt(dx * dx + dy * dy)
        psi = np.arctan2(dy, side * dx)
        thick = 4.5 * f + 3.0 * (np.abs(psi) > 1.05)      # thicker at the posterior and anterior rims
        inside = (np.abs(r - radius) < thick) & (psi > -1.2) & (psi < 1.35) & (z >= z_lo) & (z <= z_hi)
        # the crest is rounded: trim towards the top at the lateral part
        inside &= z <= z_hi - 8.0 * f * np.cos(psi) ** 2
        depth = thick - np.abs(r - radius)
        return inside, partial_volume_bone_hu(np.maximum(depth, 0.0), 220.0, outside_hu, 750.0, 1.5, voxel_mm)

    lo = np.array([cx - 110 * f if side < 0 else cx - 20, cy - 110 * f, z_lo - 1])
    hi = np.array([cx + 20 if side < 0 else cx + 110 * f, cy + 100 * f, z_hi + 1])
    return lo, hi, field


def _tubes(side: float, lm: PelvisLandmarks, f: float):
    """(points, radius, marrow HU, cortex mm) of the tubular pelvic and femoral bones on one side."""
    s1 = lm.s1_top
    hip = lm.hip_centres[0 if side < 0 else 1]
    sym = lm.symphysis + np.array([side * 6.0 * f, 0, 0])
    tub = hip + np.array([side * -30.0, 30.0, -50.0]) * f
    troch = hip + np.array([side * 48.0, 8.0, -22.0]) * f
    return [
        (np.stack([s1 + np.array([side * 52, 12, -28]) * f, hip + np.array([side * -8, 5, 20]) * f]), 15 * f, 220, 2),
        (np.stack([hip + np.array([side * -12, -12, -6]) * f, sym]), 9 * f, 200, 2),
        (np.stack([hip + np.array([side * -8, 10, -10]) * f, tub]), 12 * f, 200, 2),
        (np.stack([tub, sym + np.array([0, 8, -18]) * f]), 7 * f, 200, 2),
        (np.stack([hip, troch]), 15 * f, 230, 2.5),
        (np.stack([troch + np.array([side * -8, 0, -10]) * f,
                   troch + np.array([side * -25, 0, -380]) * f]), 14 * f, -20, 4.5),
    ]


def paint_pelvis(canvas: Canvas, anatomy: Anatomy, spine: SpinePose, lm: PelvisLandmarks) -> None:
    """Sacrum (labelled 26), ilia, pubic and ischial rami, femoral heads, necks and shafts."""
    f = anatomy.body_scale
    vox = canvas.voxel_mm
    canvas.paint_field(*_sacrum_field(anatomy, spine, lm, vox), with_hu=True)
    for side in (-1.0, 1.0):
        canvas.paint_field(*_ilium_field(side, lm, f, vox), with_hu=True)
        hip = lm.hip_centres[0 if side < 0 else 1]
        for pts, radius, marrow, cortex in _tubes(side, lm, f):
            flat, dist, _, _ = canvas.tube_voxels(pts, radius)
            canvas.paint_bone_flat(flat, radius - dist, marrow, 1100.0, cortex)
        rh = lm.head_radius_mm

        def head(x, y, z, outside_hu, hip=hip):
            r = np.sqrt((x - hip[0]) ** 2 + (y - hip[1]) ** 2 + (z - hip[2]) ** 2)
            cup = (r > rh + 2.5) & (r < rh + 12) & (z > hip[2] - 0.3 * rh) & (np.abs(x) < np.abs(hip[0]) + 0.4 * rh)
            ball = r <= rh            # the head (inside) or the acetabular cup around it
            depth = np.maximum(np.where(ball, rh, rh + 12) - r, 0.0)
            hu = partial_volume_bone_hu(depth, np.where(ball, 260.0, 250.0), outside_hu,
                                        np.where(ball, 700.0, 800.0), np.where(ball, 1.5, 2.0), vox)
            return ball | cup, hu

        canvas.paint_field(hip - rh - 14, hip + rh + 14, head, with_hu=True)
    # coccyx: a short curved tail below the sacrum
    R = spine.sacrum_frame
    tip = lm.s1_top - R[:, 2] * (85 if "lumbarization" in anatomy.anomalies else 105) * f
    pts = np.stack([tip + R[:, 1] * 2, tip - R[:, 2] * 15 * f - R[:, 1] * 6 * f,
                    tip - R[:, 2] * 28 * f - R[:, 1] * 16 * f])
    flat, dist, _, _ = canvas.tube_voxels(pts, 5.0 * f)
    canvas.paint_bone_flat(flat, 5.0 * f - dist, 200.0, 600.0, 1.5)
