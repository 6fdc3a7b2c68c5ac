"""Acquisition protocols: field of view, patient position, contrast and bowel preparation.

- ``ctc`` (CT colonography): the scan starts between T9 and L1 (mostly T10-T12, so T1 is never seen
  and counting from the top is impossible) and ends below the pubic symphysis; supine or prone; colon
  distended with gas, residual fluid tagged; no IV contrast.
- ``cap`` (chest-abdomen-pelvis, the lymph-node CT): from about C6-T1 to below the symphysis, IV
  contrast, lungs in view; supine.
- ``spine`` (VerSe-like): a narrow field of view centred on the spine, an arbitrary span of levels,
  sometimes lumbar only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import Anatomy
from .pelvis import PelvisLandmarks
from .spine_curve import SpinePose

PROTOCOLS = ("ctc", "cap", "spine")
#: CTC scan tops: vertebra and probability (T9..L1, mostly T10-T12)
CTC_TOP = ((16, 0.08), (17, 0.27), (18, 0.30), (19, 0.27), (20, 0.08))


@dataclass(frozen=True)
class FieldOfView:
    """Scan span in anatomical z (mm) and the square in-plane field (side and centre, anatomical)."""

    z_lo: float
    z_hi: float
    side_mm: float
    centre_xy: tuple[float, float]
    top_label: int
    lumbar_only: bool = False


def _within(spine: SpinePose, anatomy: Anatomy, label: int, rng, lo=-1.0, hi=1.0) -> float:
    """A height inside vertebra `label`'s body: centre + u * half-height, u uniform in [lo, hi]."""
    v = spine.vertebrae[label]
    return float(v.centre[2] + rng.uniform(lo, hi) * anatomy.height_mm[label] / 2)


def choose_fov(protocol: str, anatomy: Anatomy, spine: SpinePose, lm: PelvisLandmarks,
               rng: np.random.Generator, margin_mm: float, lumbar_only: bool = False) -> FieldOfView:
    """Draw the scanned span and field of view for one scan of `protocol`."""
    f = anatomy.body_scale
    bottom = float(lm.symphysis[2] - rng.uniform(15, 60))
    if protocol == "ctc":
        labels, p = zip(*CTC_TOP)
        top_label = int(rng.choice(labels, p=np.array(p) / sum(p)))
        if top_label == 19 and 28 in anatomy.labels:
            top_label = int(rng.choice([19, 28]))
        # a scan that starts in L1 still shows at least its lower half
        top = _within(spine, anatomy, top_label, rng, 0.1 if top_label == 20 else -1.0, 1.0)
        half_width = 175 * f
    elif protocol == "cap":
        top_label = int(rng.choice([6, 7, 8]))
        top = _within(spine, anatomy, top_label, rng)
        half_width = 165 * f
    elif protocol == "spine":
        if lumbar_only:
            top_label = int(rng.choice([19, 20]))
            top = _within(spine, anatomy, top_label, rng)
            bottom = float(lm.s1_top[2] - rng.uniform(30, 70))
        else:
            top_label = int(rng.choice(np.arange(8, 18)))
            top = _within(spine, anatomy, top_label, rng)
            low = [lab for lab in anatomy.labels if lab >= 21]
            end = int(rng.choice(low + [26]))
            bottom = (float(lm.s1_top[2] - rng.uniform(20, 70)) if end == 26 else
                      float(spine.vertebrae[end].centre[2] - rng.uniform(0, 20)))
        zc = 0.5 * (top + bottom)
        sx, sy = spine.centre_at(zc)
        side = float(rng.uniform(120, 200))
        centre = (float(sx + rng.normal(0, 8)), float(sy + 25 + rng.normal(0, 8)))
        return FieldOfView(bottom, top, side, centre, top_label, lumbar_only)
    else:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
    zc = 0.5 * (top + bottom)
    sx, sy = spine.centre_at(zc)
    side = float(np.clip(2 * (half_width + margin_mm), 320, 500))
    centre = (float(sx + rng.normal(0, 8)), float(sy - 40 * f + rng.normal(0, 10)))
    return FieldOfView(bottom, top, side, centre, top_label)
