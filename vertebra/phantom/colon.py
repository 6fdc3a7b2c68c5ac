"""The large bowel: a tube from the caecum to the rectum, air-distended with tagged fluid for CTC.

For CT colonography the colon is inflated with gas and the residual fluid is tagged with oral contrast
(300-1200 HU, as bright as bone); the fluid pools on the dependent side, which is posterior when the
patient lies supine and anterior when prone. This is what makes a plain bone threshold fail. Without
preparation (the other protocols) the colon is narrower and holds faeces with a few gas bubbles.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import Anatomy
from .pelvis import PelvisLandmarks
from .render import Canvas
from .spine_curve import SpinePose

WALL_HU, FAECES_HU = 40.0, 20.0


@dataclass(frozen=True)
class ColonOptions:
    distended: bool = False      # CTC preparation: gas inflation
    fill_fraction: float = 0.0   # share of each segment's diameter under tagged fluid
    tagged_hu: float = 0.0       # fluid density; 0 = no tagging
    gravity: tuple[float, float, float] = (0.0, 1.0, 0.0)  # anatomical direction of "down"


def colon_path(anatomy: Anatomy, spine: SpinePose, lm: PelvisLandmarks) -> tuple[np.ndarray, np.ndarray]:
    """Control points (N, 3) and radii (mm) of the colon, anatomical frame."""
    f = anatomy.body_scale
    s1, crest = lm.s1_top, lm.crest_z
    hip = lm.hip_centres[1]
    z_l1 = spine.vertebrae[20].centre[2]
    sy = float(spine.centre_at(z_l1)[1])
    pts = np.array([
        (-70, sy - 45, crest - 15),      # caecum
        (-78, sy - 30, z_l1 - 30),       # ascending
        (-72, sy - 55, z_l1 + 15),       # hepatic flexure
        (-20, sy - 110, z_l1 - 25),      # transverse sags forward and down
        (40, sy - 100, z_l1 - 10),
        (82, sy - 15, z_l1 + 40),        # splenic flexure
        (88, sy - 10, crest),            # descending
        (70, sy - 40, hip[2] + 55),
        (25, hip[1] - 60, hip[2] + 40),  # sigmoid loop
        (-15, hip[1] - 35, hip[2] + 60),
        (0, s1[1] + 5, hip[2] + 30),     # rectum in front of the sacrum
        (0, s1[1] - 20, hip[2] - 40),
    ], float) * np.array([f, 1, 1])
    radii = np.array([32, 26, 25, 24, 24, 23, 21, 20, 19, 19, 24, 15], float) * f
    return pts, radii


def paint_colon(canvas: Canvas, anatomy: Anatomy, spine: SpinePose, lm: PelvisLandmarks,
                opts: ColonOptions, rng: np.random.Generator) -> None:
    pts, radii = colon_path(anatomy, spine, lm)
    pts = pts + rng.normal(0, 6, pts.shape)
    if not opts.distended:
        radii = radii * 0.6
    flat, dist, r, centre = canvas.tube_voxels(pts, radii)
    if len(flat) == 0:
        return
    wall = dist > r - 3.0
    hu = np.full(len(flat), WALL_HU, np.float32)
    lumen = ~wall
    if opts.distended:
        hu[lumen] = -1000.0
        if opts.tagged_hu > 0 and opts.fill_fraction > 0:
            p = canvas.flat_to_anatomical(flat[lumen])
            g = np.asarray(opts.gravity, float)
            depth = (p - centre[lumen]) @ g                    # + towards the dependent side
            level = r[lumen] * (1.0 - 2.0 * opts.fill_fraction)
            fluid = depth > level
            hu_l = hu[lumen]
            hu_l[fluid] = opts.tagged_hu
            hu[lumen] = hu_l
    else:
        # faeces with gas bubbles, where a smooth random pattern along the tube runs high
        p = centre[lumen]
        phase = rng.uniform(0, 2 * np.pi, 3)
        wave = np.sin(p[:, 0] / 9 + phase[0]) + np.sin(p[:, 1] / 7 + phase[1]) + np.sin(p[:, 2] / 11 + phase[2])
        hu[lumen] = np.where(wave > 1.6, -950.0, FAECES_HU)
    canvas.paint_flat(flat, hu)
