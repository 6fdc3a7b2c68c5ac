"""L1 trabecular bone mineral density in HU: what the in-house tool was originally written for
(paper §2.1, "automated bone mineral density (BMD) code").

The body is the part of the L1 segment in front of the canal (u > `body_u_min_mm` in the curved
frame), eroded by a few mm so that the cortical shell and the endplates (and their partial-volume
blur) drop out; the BMD estimate is the median HU of the original, unsmoothed CT in what is left
(the median, not the mean: where the segment reaches a few mm into a disc, the erosion leaves a rim
of endplate that a mean would count).
Opportunistic screening reads the same number on routine CT (e.g. L1 below ~110 HU suggests
osteoporosis), which is why L1 is the level that matters.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .reformat import CurvedFrame


@dataclass(frozen=True)
class BmdConfig:
    #: the body starts this far in front of the canal centre (mm)
    body_u_min_mm: float = 10.0
    #: erosion of the body mask (mm); shrinks to `min_erosion_mm` when nothing would be left
    erosion_mm: float = 4.0
    min_erosion_mm: float = 2.0
    #: fewest voxels for an estimate
    min_voxels: int = 10


def body_mask(segment_zyx: np.ndarray, frame: CurvedFrame, config: BmdConfig = BmdConfig()) -> np.ndarray:
    """The vertebral body part (bool (z, y, x)) of a segment: the voxels in front of the canal."""
    zyx = np.argwhere(segment_zyx)
    out = np.zeros(segment_zyx.shape, bool)
    if len(zyx):
        u = frame.project(zyx)[:, 1]
        out[tuple(zyx[u > config.body_u_min_mm].T)] = True
    return out


def trabecular_bmd_hu(image_zyx: np.ndarray, segment_zyx: np.ndarray, frame: CurvedFrame,
                      config: BmdConfig = BmdConfig()) -> tuple[float, int]:
    """(median HU in the eroded body of the segment, number of voxels); (nan, 0) when too small."""
    body = body_mask(segment_zyx, frame, config)
    if not body.any():
        return float("nan"), 0
    # the segment may miss parts of a faint core: the body is its filled outline
    plane = np.zeros((3, 3, 3), bool)
    plane[1] = ndimage.generate_binary_structure(2, 1)
    body = ndimage.binary_fill_holes(ndimage.binary_closing(body, structure=plane, iterations=2), structure=plane)
    depth_mm = ndimage.distance_transform_edt(body, sampling=frame.spacing_zyx)
    for erosion in (config.erosion_mm, config.min_erosion_mm):
        core = depth_mm > erosion
        if core.sum() >= config.min_voxels:
            return float(np.median(image_zyx[core])), int(core.sum())
    return float("nan"), 0
