"""Where each vertebra sits: the spine's centre line with kyphosis, lordosis and scoliosis.

The anatomical frame (mm) has x to the patient's left, y posterior, z superior (LPS), the top of C1 at
z = 0 and the spine descending to negative z. Vertebral bodies and discs are stacked along the curve by
arc length, so a taller vertebra pushes everything below it down. The sagittal profile is a sum of
half-sine bumps (cervical lordosis, thoracic kyphosis, lumbar lordosis) whose end tangents differ by the
drawn Cobb angles; scoliosis is a lateral bump over the thoracolumbar span with axial rotation of the
vertebrae towards the convex side, as in real curves.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import labels as L
from .anatomy import Anatomy


@dataclass(frozen=True)
class VertebraPose:
    """Centre of the vertebral body (mm, anatomical frame) and its local axes as matrix columns:
    x lateral (left), y posterior, z along the spine (superior)."""

    label: int
    centre: np.ndarray
    frame: np.ndarray


@dataclass(frozen=True)
class SpinePose:
    vertebrae: dict[int, VertebraPose]
    sacrum_top: np.ndarray        # centre of the S1 upper endplate
    sacrum_frame: np.ndarray      # columns: lateral, posterior-ish, superior along the sacral axis
    curve_z: np.ndarray           # the centre line sampled every mm, for soft tissue: z, x, y
    curve_x: np.ndarray
    curve_y: np.ndarray

    def centre_at(self, z_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centre-line (x, y) in mm at heights z (clamped to the sampled span)."""
        return (np.interp(z_mm, self.curve_z, self.curve_x), np.interp(z_mm, self.curve_z, self.curve_y))


def _bump(s: np.ndarray, s0: float, s1: float, cobb_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Half-sine offset over [s0, s1] whose end tangents differ by `cobb_deg`; (offset, derivative)."""
    length = max(s1 - s0, 1.0)
    amp = length * np.tan(np.deg2rad(cobb_deg) / 2) / np.pi
    t = np.clip((s - s0) / length, 0, 1)
    inside = (s >= s0) & (s <= s1)
    return amp * np.sin(np.pi * t), np.where(inside, amp * np.pi / length * np.cos(np.pi * t), 0.0)


def _frame(tangent_up: np.ndarray, axial_rotation_rad: float) -> np.ndarray:
    ez = tangent_up / np.linalg.norm(tangent_up)
    ex = np.array([1.0, 0.0, 0.0]) - ez[0] * ez
    ex /= np.linalg.norm(ex)
    ey = np.cross(ez, ex)
    c, s = np.cos(axial_rotation_rad), np.sin(axial_rotation_rad)
    return np.stack([c * ex + s * ey, -s * ex + c * ey, ez], axis=1)


def spine_pose(anatomy: Anatomy) -> SpinePose:
    """Place every vertebra of `anatomy` along its curved centre line."""
    labels = anatomy.labels
    # arc length of each body's top, centre and bottom, going down from the top of C1
    tops, s = {}, 0.0
    for lab in labels:
        tops[lab] = s
        s += anatomy.height_mm[lab] + anatomy.disc_below_mm[lab]
    s_sacrum = s
    total = s_sacrum + 120.0
    grid = np.arange(0.0, total + 1.0, 1.0)

    last_thoracic = max((lab for lab in labels if 8 <= lab <= 19 or lab == L.T13), key=L.rank)
    first_lumbar = labels[labels.index(last_thoracic) + 1]
    t1_top, l1_top = tops[8], tops[first_lumbar]
    y_off = (-_bump(grid, 0, t1_top, 25.0)[0] + _bump(grid, t1_top, l1_top, anatomy.kyphosis_deg)[0]
             - _bump(grid, l1_top, s_sacrum, anatomy.lordosis_deg)[0])
    sc_lo = tops[12] if 12 in tops else t1_top
    x_off = anatomy.scoliosis_side * _bump(grid, sc_lo, s_sacrum - 20, anatomy.scoliosis_cobb_deg)[0]
    dx, dy = np.gradient(x_off, grid), np.gradient(y_off, grid)
    dz = -np.sqrt(np.clip(1 - dx ** 2 - dy ** 2, 0.2, 1))
    z = np.concatenate([[0.0], np.cumsum(0.5 * (dz[1:] + dz[:-1]))])
    # correct the arc length so that s is true distance along the curve
    seg = np.sqrt(np.diff(x_off) ** 2 + np.diff(y_off) ** 2 + np.diff(z) ** 2)
    true_s = np.concatenate([[0.0], np.cumsum(seg)])

    def at(s_mm: float) -> tuple[np.ndarray, np.ndarray]:
        p = np.array([np.interp(s_mm, true_s, x_off), np.interp(s_mm, true_s, y_off), np.interp(s_mm, true_s, z)])
        tangent_down = np.array([np.interp(s_mm, true_s, dx), np.interp(s_mm, true_s, dy),
                                 np.interp(s_mm, true_s, dz)])
        return p, -tangent_down

    max_dev = np.abs(x_off).max() + 1e-6
    rot_per_mm = np.deg2rad(anatomy.scoliosis_cobb_deg) * 0.5 / max_dev
    poses = {}
    for lab in labels:
        centre, up = at(tops[lab] + anatomy.height_mm[lab] / 2)
        rot = rot_per_mm * float(np.interp(tops[lab], grid, x_off))
        poses[lab] = VertebraPose(lab, centre, _frame(up, rot))
    top, _ = at(s_sacrum)
    slope = np.deg2rad(anatomy.sacral_slope_deg)
    sacral_up = np.array([0.0, -np.sin(slope), np.cos(slope)])  # endplate normal, tipped forward
    sacrum_frame = _frame(sacral_up, 0.0)
    sel = true_s <= s_sacrum
    return SpinePose(poses, top, sacrum_frame, z[sel][::-1].copy(), x_off[sel][::-1].copy(),
                     y_off[sel][::-1].copy())
