"""Metal implants: pedicle screws with rods, or a hip prosthesis (3000 HU before streaks).

Screws run through both pedicles of each instrumented lumbar level into the body; rods join the screw
heads on each side. A hip prosthesis replaces one femoral head and neck and sends a stem down the
shaft, with a cup in the acetabulum. The labels of the vertebrae are unchanged.
"""
from __future__ import annotations

import numpy as np

from .anatomy import Anatomy
from .pelvis import PelvisLandmarks
from .render import Canvas
from .scanner import METAL_HU
from .spine_curve import SpinePose


def paint_implants(canvas: Canvas, anatomy: Anatomy, spine: SpinePose, lm: PelvisLandmarks) -> None:
    if anatomy.metal_kind == "screws":
        heads = {-1.0: [], 1.0: []}
        for lab in anatomy.metal_labels:
            v = spine.vertebrae[lab]
            b = anatomy.depth_mm[lab] / 2
            for side in (-1.0, 1.0):
                entry = v.centre + v.frame @ np.array([side * 19.0, b + 22.0, 0.1 * anatomy.height_mm[lab]])
                tip = v.centre + v.frame @ np.array([side * 5.0, -0.55 * b, 0.0])
                flat, _, _, _ = canvas.tube_voxels(np.stack([entry, tip]), 3.2)
                canvas.paint_flat(flat, METAL_HU)
                heads[side].append(entry + v.frame @ np.array([0.0, 4.0, 0.0]))
        for side, pts in heads.items():
            if len(pts) > 1:
                flat, _, _, _ = canvas.tube_voxels(np.array(pts), 3.0)
                canvas.paint_flat(flat, METAL_HU)
    elif anatomy.metal_kind == "hip":
        side = anatomy.metal_side
        hip = lm.hip_centres[0 if side < 0 else 1]
        rh = lm.head_radius_mm
        f = anatomy.body_scale

        def ball_and_cup(x, y, z):
            r = np.sqrt((x - hip[0]) ** 2 + (y - hip[1]) ** 2 + (z - hip[2]) ** 2)
            cup = (r > rh + 1.0) & (r < rh + 4.0) & (z > hip[2] - 0.2 * rh)
            return (r <= rh - 2.0) | cup, METAL_HU

        canvas.paint_field(hip - rh - 5, hip + rh + 5, ball_and_cup)
        stem = np.stack([hip, hip + np.array([side * 40.0, 6.0, -30.0]) * f,
                         hip + np.array([side * 25.0, 8.0, -170.0]) * f])
        flat, _, _, _ = canvas.tube_voxels(stem, 7.0 * f)
        canvas.paint_flat(flat, METAL_HU)
