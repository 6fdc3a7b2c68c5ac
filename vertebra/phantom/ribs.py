"""Ribs: curved tubes from each rib-bearing vertebra around the trunk, and the sternum.

A rib starts at the costovertebral joint on the side of its body, passes the tip of the transverse
process and then follows an ellipse around the thoracic cage, sloping down as it goes forward, until
its arc length (drawn in `anatomy`) is used up. Only the bony rib is drawn: ribs 1-7 end in front short of
the sternum, where costal cartilage (not drawn) would continue; 11 and 12 float and end in
the flank (the 12th is 5-15 cm long); a rudimentary 12th rib is a stub under 4 cm, an absent one is not
drawn. The rib map labels left rib k as k and right rib k as 100 + k, k counted from T1.
"""
from __future__ import annotations

import numpy as np

from .anatomy import Anatomy
from .render import Canvas
from .spine_curve import SpinePose

RIB_HU_CORE, RIB_HU_CORTEX = 180.0, 800.0
#: rib cortex (mm); with partial volume a 2 mm voxel shows it diluted, as a real scan does
RIB_CORTEX_MM = 1.2


def cage_half_axes(number: int, scale: float) -> tuple[float, float]:
    """Half-width and half-depth (mm) of the rib cage ellipse for rib `number` (1 = top)."""
    k = min(number, 12)
    return (scale * float(np.interp(k, [1, 3, 6, 9, 12], [58, 98, 125, 135, 132])),
            scale * float(np.interp(k, [1, 3, 6, 9, 12], [42, 68, 88, 95, 95])))


def rib_centre_line(anatomy: Anatomy, spine: SpinePose, label: int, side: float,
                    length_mm: float) -> np.ndarray:
    """(N, 3) anatomical points of one rib from its head to its tip; side +1 = left (+x)."""
    pose = spine.vertebrae[label]
    number = anatomy.rib_number(label)
    w, d, h = anatomy.width_mm[label], anatomy.depth_mm[label], anatomy.height_mm[label]
    R, c = pose.frame, pose.centre
    head = c + R @ np.array([side * 0.45 * w, 0.3 * d, 0.25 * h])
    tubercle = c + R @ np.array([side * (w / 2 + anatomy.transverse_mm[label] * 0.8),
                                 0.5 * d + 16.0, 0.0])
    first = np.linalg.norm(tubercle - head)
    if length_mm <= first:
        return np.stack([head, head + (tubercle - head) * length_mm / first])
    A, B = cage_half_axes(number, anatomy.body_scale)
    rel_x = abs(tubercle[0] - c[0])
    A = max(A, rel_x + 5.0)
    phi0 = np.arcsin(min(rel_x / A, 0.95))
    centre_y = tubercle[1] - B * np.cos(phi0)
    phi = np.linspace(phi0, np.pi * 0.93, 400)
    xs = c[0] + side * A * np.sin(phi)
    ys = centre_y + B * np.cos(phi)
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(xs), np.diff(ys)))])
    keep = arc <= length_mm - first
    slope = 0.15 if number <= 2 else (0.38 if number >= 11 else 0.26)
    zs = tubercle[2] - slope * arc
    pts = np.stack([xs, ys, zs], axis=1)[keep]
    return np.concatenate([head[None], tubercle[None], pts], axis=0)


def paint_ribs(canvas: Canvas, anatomy: Anatomy, spine: SpinePose) -> dict[int, int]:
    """Rasterise all ribs; returns {rib number: vertebra label} for the ribs that were drawn."""
    drawn = {}
    for label in anatomy.rib_labels:
        number = anatomy.rib_number(label)
        for side, length in zip((-1.0, 1.0), anatomy.rib_length_mm[label]):
            if length <= 0:
                continue
            pts = rib_centre_line(anatomy, spine, label, side, length)
            radius = 4.5 if number > 1 else 5.5
            if length < 40:
                radius = 3.5
            flat, dist, _, _ = canvas.tube_voxels(pts, radius)
            if len(flat) == 0:
                continue
            canvas.paint_bone_flat(flat, radius - dist, RIB_HU_CORE, RIB_HU_CORTEX, RIB_CORTEX_MM,
                                   rib=number if side > 0 else 100 + number)
            drawn[number] = label
    return dict(sorted(drawn.items()))


def paint_sternum(canvas: Canvas, anatomy: Anatomy, spine: SpinePose) -> None:
    """Manubrium and body of the sternum, in front of the cage from about T2 to T9."""
    if 9 not in spine.vertebrae or 16 not in spine.vertebrae:
        return
    top, bottom = spine.vertebrae[9].centre, spine.vertebrae[16].centre
    _, b_top = cage_half_axes(2, anatomy.body_scale)
    _, b_bot = cage_half_axes(7, anatomy.body_scale)
    a = np.array([0.0, top[1] - 2 * b_top + 10, top[2] - 25])
    b = np.array([0.0, bottom[1] - 2 * b_bot + 5, bottom[2] - 35])
    pts = np.stack([a + (b - a) * t for t in np.linspace(0, 1, 20)])
    flat, dist, _, _ = canvas.tube_voxels(pts, 8.0)
    canvas.paint_bone_flat(flat, 8.0 - dist, 200.0, 700.0, 1.5)
