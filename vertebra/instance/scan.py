"""A scan made ready for the instance method: canonical axes, isotropic voxels, HU window (§2.1, §2.3).

The paper resamples every image to 1 mm isotropic voxels and clips it to −100..2000 HU. Here the scan is
first permuted to canonical LPS axes (`vertebra.io.to_canonical`, exact, no interpolation), so that the
numpy array is (z, y, x) with the z index increasing towards the head: "top" is the *last* slice.
It is then resampled (`vertebra.preprocess.resample_isotropic`) and clipped; the HU stay as int16 to keep
62 training scans in memory. The label map, when there is one, follows with nearest neighbour.

`to_network` scales the clipped HU linearly onto [0, 1], the U-Net's image channel.

>>> from vertebra.image import Geometry, Volume
>>> vol = Volume(np.full((10, 8, 8), 3000, np.int16), Geometry(spacing_mm=(1.0, 1.0, 2.0)))
>>> s = prepare_scan(vol, spacing_mm=2.0)
>>> s.image_hu.shape, int(s.image_hu.max()), float(to_network(s.image_hu).max())
((10, 4, 4), 2000, 1.0)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..image import Geometry, Volume
from ..io import to_canonical
from ..preprocess import INSTANCE_WINDOW_HU, resample_isotropic, resample_like, window
from .levels import levels_of

HU_MIN, HU_MAX = INSTANCE_WINDOW_HU


@dataclass
class PreparedScan:
    """Canonical, isotropic, windowed scan (z up = head) with optional VerSe labels on the same grid."""

    image_hu: np.ndarray                 # (z, y, x) int16, clipped to −100..2000 HU
    geometry: Geometry                   # isotropic spacing, canonical (LPS) direction
    labels: np.ndarray | None = None     # (z, y, x) uint8 VerSe labels, or None
    case_id: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def spacing_mm(self) -> float:
        return float(self.geometry.spacing_mm[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.image_hu.shape)

    def volume(self, array: np.ndarray) -> Volume:
        return Volume(array, self.geometry)

    def target_levels(self) -> dict[int, int]:
        """{VerSe label: aligned level} of the vertebrae in the label map (the sacrum excluded)."""
        if self.labels is None:
            return {}
        present = [int(v) for v in np.unique(self.labels) if v]
        return levels_of(present)


def prepare_scan(image: Volume, labels: Volume | None = None, spacing_mm: float = 1.0,
                 case_id: str = "", meta: dict | None = None) -> PreparedScan:
    """Canonical axes → isotropic ``spacing_mm`` voxels → HU clipped to −100..2000 (int16)."""
    canonical, _ = to_canonical(image)
    iso = resample_isotropic(canonical, spacing_mm)
    hu = np.rint(window(iso.array, HU_MIN, HU_MAX, normalise="none")).astype(np.int16)
    lab = None
    if labels is not None:
        lab_canonical, _ = to_canonical(labels)
        lab = resample_like(lab_canonical, iso, interpolator="nearest", default_hu=0).array.astype(np.uint8)
    return PreparedScan(hu, iso.geometry, lab, case_id, dict(meta or {}))


def prepare_case(case, spacing_mm: float) -> PreparedScan:
    """`prepare_scan` of a `vertebra.io.VerseCase` (image, vertebra labels, meta)."""
    return prepare_scan(case.image, case.vertebrae, spacing_mm, case.case_id, case.meta)


def to_network(image_hu: np.ndarray) -> np.ndarray:
    """Clipped HU → float32 in [0, 1] (the image channel of the instance U-Net)."""
    return window(image_hu, HU_MIN, HU_MAX, normalise="unit")


def back_to_input(labels: np.ndarray, prepared: PreparedScan, reference: Volume) -> Volume:
    """A label map on the prepared grid → the input scan's grid (nearest neighbour, world space)."""
    return resample_like(prepared.volume(labels), reference, interpolator="nearest", default_hu=0)
