"""Numbering the tool's segments in VerSe labels from one manually read level (paper §2.1: "The L1
level was identified manually in each case").

The tool numbers its segments 1..N from the top and knows nothing of anatomy. A person then points
at L1; here the case's meta `l1_centroid_mm` stands in for that reading. The segment whose centroid
lies closest to the point becomes 20 (L1); the others are counted away from it in the numbering of a
typical spine (…, T11 = 18, T12 = 19, L1 = 20, …, L5 = 24, then the sacrum 26). A segment that
would fall outside C1..sacrum is dropped. The typical numbering is wrong above L1 on a spine with a
13th thoracic vertebra and below L5 on a lumbarised one, exactly as a reader counting from L1 would be.

>>> import numpy as np
>>> from vertebra.image import Volume
>>> seg = np.zeros((9, 2, 2), np.uint8); seg[0:3], seg[3:6], seg[6:9] = 1, 2, 3
>>> aligned = align_to_l1(Volume(seg), l1_world_mm=(0.5, 0.5, 4.0))
>>> np.unique(aligned.array).tolist()
[19, 20, 21]
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .. import labels as verse
from ..image import Volume

#: VerSe labels of a typical spine, top to bottom (no T13, no L6)
TYPICAL_SPINE = tuple(lab for lab in verse.CRANIOCAUDAL if lab not in (verse.T13, verse.L6))


def segment_centroids_mm(labels: Volume) -> dict[int, np.ndarray]:
    """{segment: world centroid (x, y, z) mm} of every label > 0."""
    ids = [int(i) for i in np.unique(labels.array) if i > 0]
    if not ids:
        return {}
    centres = np.array(ndimage.center_of_mass(labels.array > 0, labels.array, ids)).reshape(-1, 3)
    return dict(zip(ids, labels.index_to_world(centres)))


def l1_segment(labels: Volume, l1_world_mm) -> tuple[int, float]:
    """The segment whose centroid is closest to the L1 point, and that distance (mm)."""
    centroids = segment_centroids_mm(labels)
    if not centroids:
        raise ValueError("no segments to align")
    ids = list(centroids)
    dist = np.linalg.norm(np.array([centroids[i] for i in ids]) - np.asarray(l1_world_mm, float), axis=1)
    k = int(np.argmin(dist))
    return ids[k], float(dist[k])


def align_to_l1(labels: Volume, l1_world_mm) -> Volume:
    """Relabel segments numbered 1..N craniocaudally into VerSe labels with 20 at the L1 point."""
    anchor, _ = l1_segment(labels, l1_world_mm)
    lut = np.zeros(int(labels.array.max()) + 1, np.uint8)
    l1_pos = TYPICAL_SPINE.index(verse.L1)
    for seg in range(1, len(lut)):
        pos = l1_pos + seg - anchor
        if 0 <= pos < len(TYPICAL_SPINE):
            lut[seg] = TYPICAL_SPINE[pos]
    return labels.with_array(lut[labels.array])
