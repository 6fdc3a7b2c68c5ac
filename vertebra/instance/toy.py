"""A toy spine: a column of box-shaped vertebrae, for tests and documentation examples.

Not the phantom (`vertebra.phantom` makes realistic scans): just enough bone, discs and soft tissue for
the instance method's code paths to be exercised in a fraction of a second. Arrays are (z, y, x) in
canonical LPS axes, z up: the first label (most cranial) is at the top, i.e. the highest z index.

>>> image, labels = toy_spine(np.random.default_rng(0), first_label=18, count=4)
>>> sorted(int(v) for v in np.unique(labels.array) if v)
[18, 19, 20, 21]
"""
from __future__ import annotations

import numpy as np

from ..image import Geometry, Volume


def toy_spine(rng: np.random.Generator, first_label: int = 17, count: int = 6, spacing_mm: float = 4.0,
              body_height_mm: float = 24.0, disc_mm: float = 8.0, width_mm: float = 40.0,
              margin_mm: float = 48.0, noise_hu: float = 20.0) -> tuple[Volume, Volume]:
    """A CT-like image (int16 HU) and VerSe label map of ``count`` vertebrae from ``first_label`` down."""
    pitch = body_height_mm + disc_mm
    nz = int(np.ceil((count * pitch + 2 * margin_mm) / spacing_mm))
    nyx = int(np.ceil((width_mm + 2 * margin_mm) / spacing_mm))
    labels = np.zeros((nz, nyx, nyx), np.uint8)
    image = np.full(labels.shape, 40.0)                       # soft tissue
    lo, hi = int(margin_mm / spacing_mm), int((margin_mm + width_mm) / spacing_mm)
    for k in range(count):
        top = nz - 1 - int((margin_mm + k * pitch) / spacing_mm)   # z up: first vertebra at the top
        bottom = top - int(body_height_mm / spacing_mm) + 1
        shift = int(rng.integers(-1, 2))
        labels[bottom:top + 1, lo + shift:hi + shift, lo:hi] = first_label + k
    image[labels > 0] = 250.0                                 # trabecular bone
    image[:, :2], image[:, -2:] = -1000.0, -1000.0            # air in front of and behind the body
    image += rng.normal(0, noise_hu, image.shape)
    geometry = Geometry(spacing_mm=(spacing_mm,) * 3)
    return Volume(np.rint(image).astype(np.int16), geometry), Volume(labels, geometry)


def write_toy_cases(root, n: int, rng: np.random.Generator, spacing_mm: float = 4.0) -> list:
    """``n`` toy spines as VerSe case folders under ``root`` (centroids and a minimal meta included)."""
    from ..io import write_verse_case
    cases = []
    for i in range(n):
        first = int(rng.integers(15, 19))
        image, labels = toy_spine(rng, first_label=first, count=5, spacing_mm=spacing_mm)
        centroids = {}
        for lab in np.unique(labels.array):
            if lab:
                centroids[int(lab)] = labels.index_to_world(np.argwhere(labels.array == lab).mean(0))[0]
        meta = {"case_id": f"toy{i:02d}", "protocol": "spine", "anomalies": [] if i % 2 else ["t13"]}
        cases.append(write_verse_case(root, f"toy{i:02d}", image, vertebrae=labels, centroids_mm=centroids,
                                      meta=meta))
    return cases
