"""Sampling one patient's anatomy: which vertebrae exist, their sizes, curvature, ribs and anomalies.

Nothing here touches a voxel: an `Anatomy` is a small record that the rasteriser (`render.py` and the
shape modules) turns into an image. The anomalies are drawn independently per scan with the incidences
the paper quotes in its introduction (6 % lumbarization of S1, 4 % sacralization of L5, 1 % a 13th
rib-bearing vertebra, 8 % rudimentary or absent 12th ribs) plus fractures, metal and low bone density,
which the paper lists among the reasons counting goes wrong.

Identity is anatomical, counted from C1: the first lumbar-type vertebra after the last thoracic one is
L1 (label 20). `rib_rule_l1_label` says where the VerSe'20 rule "first vertebra without ribs of at least
4 cm" would put L1 instead; the two differ exactly on the hard cases.

>>> import numpy as np
>>> a = sample_anatomy(np.random.default_rng(0), force=("t13",))
>>> a.labels[18:21], a.rib_rule_l1_label
((19, 28, 20), 28)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import labels as L

#: anomaly names, in the order they are listed in meta files
ANOMALIES = ("lumbarization", "sacralization", "t13", "rudimentary_12th_rib", "absent_12th_rib",
             "fracture", "metal", "low_density")

#: body height (mm) at reference levels, keyed by VerSe label (PHANTOM.md "Anatomy that must vary")
_BODY_HEIGHT_MM = {3: 13.0, 7: 14.0, 8: 14.0, 19: 23.0, 20: 25.0, 22: 27.0, 24: 26.0}
#: body width (mm): narrowest at T4-T6, widening through the lower thorax (generator version 2; version 1
#: ran straight from 28 mm at T1 to 38 mm at T12, too wide mid-thorax against the book's real CT)
_BODY_WIDTH_MM = {3: 17.0, 7: 22.0, 8: 28.0, 10: 25.5, 11: 25.0, 13: 25.0, 14: 26.0, 15: 27.5, 16: 29.5,
                  17: 32.5, 18: 36.0, 19: 39.0, 20: 42.0, 22: 48.0, 24: 52.0}
#: body depth / width by rank along the spine (C1 = 0): heart-shaped mid-thoracic bodies as deep as wide,
#: about 0.8 at T10-T12, lumbar bodies wider than deep
_DEPTH_RATIO = ((0, 0.65), (7, 0.62), (9, 0.85), (12, 1.0), (14, 0.95), (16, 0.84), (18, 0.78), (20, 0.75),
                (22, 0.71), (24, 0.68))
#: nominal arc length (mm) of bony ribs 1..11 before the body and rib scales; the 12th is drawn from
#: 50-150 mm. Version 2 shortened version 1's (130, 190, 235, 265, 285, 300, 305, 295, 275, 240, 175)
#: rib by rib to the real CT's geodesic lengths.
_RIB_LENGTH_MM = (105, 170, 205, 235, 250, 250, 245, 235, 215, 190, 140)
LUNG_HU_RANGE = (-900.0, -820.0)  # lung parenchyma (HU), drawn per patient (inspiration, age)
RIB_RULE_MIN_MM = 40.0  # VerSe'20: a rib shorter than 4 cm does not count


@dataclass(frozen=True)
class AnatomyConfig:
    """Incidences (probability per scan) of the independent anomaly draws; defaults are the paper's."""

    lumbarization: float = 0.06
    sacralization: float = 0.04
    t13: float = 0.01
    short_12th_rib: float = 0.08        # rudimentary (< 4 cm) or absent, split by `rudimentary_share`
    rudimentary_share: float = 0.5
    fracture: float = 0.05
    metal: float = 0.03
    low_density_hu: float = 100.0       # trabecular HU below which a scan counts as low density
    age_range_years: tuple[float, float] = (30.0, 85.0)
    scoliosis: float = 0.25             # share of scans with a visible lateral curve (Cobb 8-30 deg)


@dataclass(frozen=True)
class Anatomy:
    """One patient. Sizes in mm, angles in degrees, densities in HU; dicts are keyed by VerSe label."""

    labels: tuple[int, ...]                  # C1 .. last lumbar-type, craniocaudal (sacrum not included)
    height_mm: dict[int, float]
    width_mm: dict[int, float]
    depth_mm: dict[int, float]
    disc_below_mm: dict[int, float]          # disc between a vertebra and the next one (or the sacrum)
    transverse_mm: dict[int, float]          # transverse process length from the pedicle
    rib_length_mm: dict[int, tuple[float, float]]  # rib-bearing label → (right, left) arc length; 0 = absent
    trabecular_hu: dict[int, float]
    anomalies: tuple[str, ...]
    age_years: float
    kyphosis_deg: float
    lordosis_deg: float
    scoliosis_cobb_deg: float
    scoliosis_side: float                    # +1 convex to the left, -1 to the right
    rotation_deg: float                      # patient rotation about the craniocaudal axis
    tilt_deg: float                          # lateral tilt (coronal plane)
    pitch_deg: float                         # sagittal tilt
    sacral_slope_deg: float
    body_scale: float                        # stature factor for soft tissue and cage
    fracture_label: int | None = None
    fracture_loss: float = 0.0
    fracture_kind: str = ""                  # "wedge" | "crush"
    metal_kind: str = ""                     # "screws" | "hip"
    metal_labels: tuple[int, ...] = ()
    metal_side: float = 1.0
    sacralization_sides: tuple[float, ...] = ()
    rib_scale: float = 1.0                   # length factor of ribs 1-11 on top of body_scale
    lung_hu: float = -850.0                  # lung parenchyma
    extra: dict = field(default_factory=dict)

    @property
    def rib_labels(self) -> tuple[int, ...]:
        """Vertebrae that carry ribs by anatomy (T1..T12 and T13 when present), craniocaudal."""
        return tuple(lab for lab in self.labels if lab in self.rib_length_mm)

    def rib_number(self, label: int) -> int:
        """Rib numbering counts rib-bearing vertebrae from T1 (T13's rib is rib 13)."""
        return self.rib_labels.index(label) + 1

    @property
    def last_lumbar(self) -> int:
        return self.labels[-1]

    @property
    def rib_rule_l1_label(self) -> int:
        """Label of the first vertebra below the last one with a rib of at least 4 cm (VerSe'20 rule)."""
        long_ribs = [lab for lab in self.rib_labels if max(self.rib_length_mm[lab]) >= RIB_RULE_MIN_MM]
        last = self.labels.index(long_ribs[-1])
        return self.labels[last + 1]


def _interp_levels(table: dict[int, float], labels) -> dict[int, float]:
    """Interpolate a reference table along the spine's rank (T13 and L6 sit between neighbours)."""
    ranks = [L.rank(k) for k in table]
    values = list(table.values())
    return {lab: float(np.interp(L.rank(lab) if lab != L.L6 else L.rank(L.L5) + 1, ranks, values))
            for lab in labels}


def _sample_anomalies(rng: np.random.Generator, cfg: AnatomyConfig) -> set[str]:
    draws = rng.random(6)
    found = set()
    if draws[0] < cfg.lumbarization:
        found.add("lumbarization")
    if draws[1] < cfg.sacralization:
        found.add("sacralization")
    if draws[2] < cfg.t13:
        found.add("t13")
    if draws[3] < cfg.short_12th_rib:
        found.add("rudimentary_12th_rib" if draws[3] < cfg.short_12th_rib * cfg.rudimentary_share
                  else "absent_12th_rib")
    if draws[4] < cfg.fracture:
        found.add("fracture")
    if draws[5] < cfg.metal:
        found.add("metal")
    return found


def sample_anatomy(rng: np.random.Generator, force: tuple[str, ...] | None = None,
                   config: AnatomyConfig = AnatomyConfig()) -> Anatomy:
    """Draw one anatomy. With `force`, exactly those anomalies are present (an enriched stratum);
    without it each anomaly is drawn independently with the configured incidence."""
    if force is not None:
        unknown = set(force) - set(ANOMALIES)
        if unknown:
            raise ValueError(f"unknown anomalies {sorted(unknown)}; choose from {ANOMALIES}")
        if {"rudimentary_12th_rib", "absent_12th_rib"} <= set(force):
            raise ValueError("a 12th rib cannot be both rudimentary and absent")
    drawn = _sample_anomalies(rng, config)
    anomalies = set(force) if force is not None else drawn

    labels = list(range(1, 20)) + ([L.T13] if "t13" in anomalies else []) + list(range(20, 25))
    if "lumbarization" in anomalies:
        labels.append(L.L6)
    scale = float(np.clip(rng.normal(1.0, 0.06), 0.85, 1.15))
    jitter = lambda: float(rng.normal(1.0, 0.03))  # noqa: E731 - per-level size variation
    height = {k: v * scale * jitter() for k, v in _interp_levels(_BODY_HEIGHT_MM, labels).items()}
    width = {k: v * scale * jitter() for k, v in _interp_levels(_BODY_WIDTH_MM, labels).items()}
    ratio_rank, ratio = zip(*_DEPTH_RATIO)
    depth = {k: width[k] * float(np.interp(L.rank(k), ratio_rank, ratio)) for k in labels}
    discs = {}
    for k in labels:
        r = L.rank(k)
        base = 5.0 if r < 7 else (4.0 + 2.0 * (r - 7) / 12 if k not in (20, 21, 22, 23, 24, 25) else
                                  8.0 + 1.0 * (k - 20))
        discs[k] = float(base * scale * rng.uniform(0.9, 1.1))
    # transverse processes: thoracic short (carry ribs), lumbar long and thin with L3 the longest
    tp = {}
    for k in labels:
        if k <= 7:
            tp[k] = 10.0
        elif k <= 19 or k == L.T13:
            tp[k] = 16.0
        else:
            tp[k] = {20: 18.0, 21: 24.0, 22: 30.0, 23: 25.0, 24: 20.0, 25: 18.0}[k]
        tp[k] *= scale * rng.uniform(0.9, 1.1)

    ribs = {}
    for number, k in enumerate([lab for lab in labels if 8 <= lab <= 19 or lab == L.T13], start=1):
        if number <= 11:
            base = _RIB_LENGTH_MM[number - 1] * scale
            ribs[k] = (base * rng.uniform(0.93, 1.07), base * rng.uniform(0.93, 1.07))
        elif number == 12:
            ribs[k] = (rng.uniform(50, 150), rng.uniform(50, 150))
        else:  # a 13th rib is a short stub, so the rib rule takes T13 for L1
            ribs[k] = (rng.uniform(15, 35), rng.uniform(15, 35))
    if "rudimentary_12th_rib" in anomalies:
        ribs[19] = (rng.uniform(12, 35), rng.uniform(12, 35))
    if "absent_12th_rib" in anomalies:
        ribs[19] = (0.0, 0.0)

    age = float(rng.uniform(*config.age_range_years))
    if force is not None:  # strata are clean: low density only where forced
        base_hu = rng.uniform(50, 95) if "low_density" in anomalies else rng.uniform(115, 230)
    else:
        base_hu = float(np.clip(rng.normal(235 - 2.3 * (age - 30), 30), 50, 300))
        if base_hu < config.low_density_hu:
            anomalies.add("low_density")
        else:
            anomalies.discard("low_density")
    trabecular = {k: float(np.clip(base_hu * rng.uniform(0.92, 1.08) - (5 if k >= 20 else 0), 40, 320))
                  for k in labels}
    trabecular[L.SACRUM] = float(base_hu * 0.9)

    fracture = {}
    if "fracture" in anomalies:
        candidates = [k for k in labels if k in (17, 18, 19, L.T13, 20, 21, 22, 23)]
        k = int(rng.choice(candidates))
        fracture = dict(fracture_label=k, fracture_loss=float(rng.uniform(0.2, 0.5)),
                        fracture_kind=str(rng.choice(["wedge", "crush"])))
        trabecular[k] += 60.0  # compressed, sclerotic trabeculae
        if fracture["fracture_kind"] == "crush":  # the whole body loses height; a wedge only in front
            height[k] *= 1.0 - fracture["fracture_loss"]
    metal = {}
    if "metal" in anomalies:
        kind = str(rng.choice(["screws", "hip"]))
        lumbar = [k for k in labels if k >= 20 and k != L.T13]
        first = int(rng.integers(0, len(lumbar) - 1))
        n = int(rng.integers(2, 4))
        metal = dict(metal_kind=kind, metal_labels=tuple(lumbar[first:first + n]) if kind == "screws" else (),
                     metal_side=float(rng.choice([-1.0, 1.0])))
    sacral_sides = ()
    if "sacralization" in anomalies:
        sacral_sides = ((-1.0, 1.0), (-1.0,), (1.0,))[int(rng.integers(0, 3))]
        discs[labels[-1]] = float(rng.uniform(1.5, 3.0))  # the fused disc space is narrow

    scoliotic = rng.random() < config.scoliosis
    posture = dict(kyphosis_deg=float(rng.uniform(25, 55)), lordosis_deg=float(rng.uniform(35, 65)),
                   scoliosis_cobb_deg=float(rng.uniform(8, 30) if scoliotic else rng.uniform(0, 4)),
                   scoliosis_side=float(rng.choice([-1.0, 1.0])),
                   rotation_deg=float(rng.normal(0, 2.5)), tilt_deg=float(rng.normal(0, 1.5)),
                   pitch_deg=float(rng.normal(0, 2.0)), sacral_slope_deg=float(rng.uniform(30, 45)))
    # drawn last (generator version 2), so every earlier draw is the same as in version 1
    rib_scale = float(np.clip(rng.normal(1.0, 0.06), 0.85, 1.15))
    lung_hu = float(rng.uniform(*LUNG_HU_RANGE))
    for lab in [lab for lab in labels if 8 <= lab <= 19 or lab == L.T13][:11]:   # ribs 1-11
        ribs[lab] = (ribs[lab][0] * rib_scale, ribs[lab][1] * rib_scale)
    return Anatomy(
        labels=tuple(labels), height_mm=height, width_mm=width, depth_mm=depth, disc_below_mm=discs,
        transverse_mm=tp, rib_length_mm=ribs, trabecular_hu=trabecular,
        anomalies=tuple(a for a in ANOMALIES if a in anomalies), age_years=age, **posture,
        body_scale=scale, sacralization_sides=sacral_sides, rib_scale=rib_scale, lung_hu=lung_hu,
        **fracture, **metal)
