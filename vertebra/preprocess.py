"""Resampling in physical space and intensity windows: what the scan goes through before a network.

Two grids, from the paper:

- the direct method (§2.2) resamples the *whole* scan to a fixed grid of 128x128x192 voxels
  (x, y, z; numpy shape (192, 128, 128)) and clips to 100..1000 HU before normalising;
- the instance method (§2.3) resamples to 1 mm isotropic voxels and clips to -100..2000 HU.

Every function takes and returns a `Volume`, so geometry travels with the array; resampling is done by
SimpleITK in world coordinates (direction included), never by zooming a bare numpy array. Intensity
images use linear interpolation and are filled with air (-1024 HU) outside the scan; label maps use
nearest neighbour and are filled with 0. Spacing is always passed explicitly, in mm.

>>> import numpy as np
>>> from vertebra.image import Geometry, Volume
>>> vol = Volume(np.zeros((10, 8, 8), np.int16), Geometry(spacing_mm=(0.5, 0.5, 2.0)))
>>> resample_isotropic(vol, 1.0).array.shape    # 4 mm x 4 mm x 20 mm at 1 mm
(20, 4, 4)
>>> resample_to_shape(vol, (4, 4, 4)).geometry.spacing_mm
(1.0, 1.0, 5.0)
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .image import Geometry, Volume

#: HU window of the direct L1 U-Net (paper §2.2)
DIRECT_WINDOW_HU = (100.0, 1000.0)
#: HU window of the iterative instance segmentation (paper §2.3)
INSTANCE_WINDOW_HU = (-100.0, 2000.0)
#: fixed grid of the direct method, numpy order (z, y, x): 128x128x192 (x, y, z) in the paper
DIRECT_SHAPE_ZYX = (192, 128, 128)
#: voxel size of the instance method (paper §2.3)
INSTANCE_SPACING_MM = 1.0
AIR_HU = -1024.0

_INTERPOLATORS = {"nearest": sitk.sitkNearestNeighbor, "linear": sitk.sitkLinear,
                  "bspline": sitk.sitkBSpline, "lanczos": sitk.sitkLanczosWindowedSinc}


def _resample(volume: Volume, geometry: Geometry, shape_xyz, interpolator: str, default_hu: float) -> Volume:
    if interpolator not in _INTERPOLATORS:
        raise ValueError(f"interpolator must be one of {sorted(_INTERPOLATORS)}, got {interpolator!r}")
    image = volume.to_sitk()
    if interpolator != "nearest" and image.GetPixelID() != sitk.sitkFloat32:
        image = sitk.Cast(image, sitk.sitkFloat32)   # interpolate in float, not in int16
    out = sitk.Resample(image, [int(n) for n in shape_xyz], sitk.Transform(), _INTERPOLATORS[interpolator],
                        geometry.origin_mm, geometry.spacing_mm, geometry.direction, float(default_hu),
                        image.GetPixelID())
    return Volume(sitk.GetArrayFromImage(out), geometry)


def resample_isotropic(volume: Volume, spacing_mm: float, interpolator: str = "linear",
                       default_hu: float = AIR_HU) -> Volume:
    """Resample onto voxels of `spacing_mm` on each side, covering the same physical box.

    The first voxel centre stays at the volume's origin and the axes keep their direction; the number of
    voxels along each axis is the extent (size x spacing) divided by `spacing_mm`, rounded. Intensities
    come back as float32; with ``interpolator="nearest"`` (label maps, pass ``default_hu=0``) the dtype
    is kept."""
    if not spacing_mm > 0:
        raise ValueError(f"spacing_mm must be positive, got {spacing_mm}")
    g = volume.geometry
    extent = np.asarray(volume.shape_xyz) * np.asarray(g.spacing_mm)
    shape_xyz = np.maximum(1, np.round(extent / spacing_mm)).astype(int)
    target = Geometry((spacing_mm,) * 3, g.origin_mm, g.direction)
    return _resample(volume, target, shape_xyz, interpolator, default_hu)


def grid_covering(volume: Volume, shape_zyx) -> Geometry:
    """The geometry of a `shape_zyx` grid whose voxels tile exactly the box the volume's voxels tile
    (voxel edges, not centres, coincide), along the volume's own axes."""
    g = volume.geometry
    shape_xyz = np.asarray(shape_zyx[::-1], float)
    extent = np.asarray(volume.shape_xyz) * np.asarray(g.spacing_mm)
    spacing = extent / shape_xyz
    corner = np.asarray(g.origin_mm) - g.direction_matrix @ (np.asarray(g.spacing_mm) / 2)
    origin = corner + g.direction_matrix @ (spacing / 2)
    return Geometry(spacing, origin, g.direction)


def resample_to_shape(volume: Volume, shape_zyx=DIRECT_SHAPE_ZYX, interpolator: str = "linear",
                      default_hu: float = AIR_HU, antialias: bool = False) -> Volume:
    """Resample the whole scan onto a fixed `shape_zyx` grid (anisotropic voxels), as the direct method
    does (paper §2.2: 128x128x192). Make the volume canonical first (`vertebra.io.to_canonical`) so
    that the last numpy axis is x (L) and the first is z (S).

    With ``antialias=True`` intensities are first smoothed with a Gaussian of sigma = half the new
    spacing along every axis that shrinks by more than 1.5x, so that thin bright structures (cortical
    bone, tagged fluid) do not alias into speckle on a coarse grid."""
    if len(shape_zyx) != 3 or min(shape_zyx) < 1:
        raise ValueError(f"shape_zyx must be three positive sizes, got {shape_zyx}")
    grid = grid_covering(volume, shape_zyx)
    if antialias and interpolator != "nearest":
        sigma = [0.5 * new if new > 1.5 * old else 0.0
                 for new, old in zip(grid.spacing_mm, volume.geometry.spacing_mm)]
        if max(sigma) > 0:
            image = sitk.SmoothingRecursiveGaussian(sitk.Cast(volume.to_sitk(), sitk.sitkFloat32),
                                                    [max(s, 1e-3) for s in sigma])
            volume = Volume.from_sitk(image)
    return _resample(volume, grid, shape_zyx[::-1], interpolator, default_hu)


def resample_like(volume: Volume, reference: Volume, interpolator: str = "linear",
                  default_hu: float = AIR_HU) -> Volume:
    """Resample `volume` onto `reference`'s grid (shape, spacing, origin, direction): the inverse of the
    two functions above, e.g. a predicted mask (``interpolator="nearest", default_hu=0``) back onto the
    input scan."""
    return _resample(volume, reference.geometry, reference.shape_xyz, interpolator, default_hu)


def window(array: np.ndarray, hu_min: float, hu_max: float, normalise: str = "unit") -> np.ndarray:
    """Clip to [hu_min, hu_max] HU, then normalise (float32).

    ``normalise="unit"`` (the default) maps the window linearly onto [0, 1]; ``"zero_mean"`` subtracts
    the clipped array's mean and divides by its standard deviation; ``"none"`` only clips. The paper
    states the windows (§2.2, §2.3) but not the normalisation, so unit scaling is our choice.

    >>> window(np.array([-500, 100, 550, 1000, 3000]), *DIRECT_WINDOW_HU)
    array([0. , 0. , 0.5, 1. , 1. ], dtype=float32)
    >>> np.round(window(np.array([0., 1., 2., 3.]), 0, 3, normalise="zero_mean"), 3)
    array([-1.342, -0.447,  0.447,  1.342], dtype=float32)
    """
    if not hu_max > hu_min:
        raise ValueError(f"hu_max ({hu_max}) must exceed hu_min ({hu_min})")
    clipped = np.clip(np.asarray(array, dtype=np.float32), hu_min, hu_max)
    if normalise == "unit":
        return (clipped - np.float32(hu_min)) / np.float32(hu_max - hu_min)
    if normalise == "zero_mean":
        std = float(clipped.std())
        return ((clipped - clipped.mean()) / (std if std > 0 else 1.0)).astype(np.float32)
    if normalise == "none":
        return clipped
    raise ValueError(f"normalise must be 'unit', 'zero_mean' or 'none', got {normalise!r}")
