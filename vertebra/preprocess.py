"""Resampling in physical space and intensity windows: what the scan goes through before a network.

Two grids, from the paper:

- the direct method (§2.2) resamples the *whole* scan to a fixed grid of 128x128x192 voxels
  (x, y, z; numpy shape (192, 128, 128)) and clips to 100..1000 HU before normalising;
- the instance method (§2.3) resamples to 1 mm isotropic voxels and clips to -100..2000 HU.

Every function takes and returns a `Volume`, so geometry travels with the array; resampling is done by
SimpleITK in world coordinates (direction included), never by zooming a bare numpy array. Intensity
images use linear interpolation and are filled with air (-1024 HU) outside the scan; label maps use
nearest neighbour and are filled with 0. Spacing is always passed explicitly, in mm.

The one exception is the direct method's fixed grid (`resample_to_shape`, linear): its voxels tile the
scan's own box along the scan's own axes, so each axis maps to itself and the whole resampling (the
optional anti-aliasing Gaussian, then linear interpolation) is one small matrix per axis, applied as
three matrix products. The matrices are built from SimpleITK's own filters, so the result is what
``sitk.SmoothingRecursiveGaussian`` followed by ``sitk.Resample`` gives, up to float32 rounding (about
1e-3 HU), at a fraction of the time; `mask_from_shape` maps a mask on that grid back the same way.

>>> import numpy as np
>>> from vertebra.image import Geometry, Volume
>>> vol = Volume(np.zeros((10, 8, 8), np.int16), Geometry(spacing_mm=(0.5, 0.5, 2.0)))
>>> resample_isotropic(vol, 1.0).array.shape    # 4 mm x 4 mm x 20 mm at 1 mm
(20, 4, 4)
>>> resample_to_shape(vol, (4, 4, 4)).geometry.spacing_mm
(1.0, 1.0, 5.0)
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import SimpleITK as sitk
import torch

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
    bone, tagged fluid) do not alias into speckle on a coarse grid. Linear resampling is computed axis
    by axis (`_axis_matrices`); it needs no fill value, since the grid never leaves the scan."""
    if len(shape_zyx) != 3 or min(shape_zyx) < 1:
        raise ValueError(f"shape_zyx must be three positive sizes, got {shape_zyx}")
    grid = grid_covering(volume, shape_zyx)
    if interpolator != "linear":
        return _resample(volume, grid, shape_zyx[::-1], interpolator, default_hu)
    sigma_mm = [0.0, 0.0, 0.0]
    if antialias:
        sigma_mm = [0.5 * new if new > 1.5 * old else 0.0
                    for new, old in zip(grid.spacing_mm, volume.geometry.spacing_mm)]
        if max(sigma_mm) > 0:   # SimpleITK's filter smooths every axis, at least by 1e-3 mm
            sigma_mm = [max(s, 1e-3) for s in sigma_mm]
    matrices = [_axis_matrix(n_in, n_out, sigma, spacing) for n_in, n_out, sigma, spacing in
                zip(volume.shape_xyz, shape_zyx[::-1], sigma_mm, volume.geometry.spacing_mm)]
    return Volume(_apply_per_axis(volume.array, matrices), grid)


def mask_from_shape(mask_zyx: np.ndarray, shape_zyx, out: np.ndarray | None = None) -> np.ndarray:
    """The inverse of `resample_to_shape` for a binary mask: from the grid that covers a scan back onto
    the scan's `shape_zyx` voxels (linear interpolation, kept where >= 0.5), as ``sitk.Resample`` of the
    mask onto the scan would give. Only the voxels whose interpolation touches the mask's bounding box
    are computed, so the cost follows the mask, not the scan.

    `out`: an all-False bool array of `shape_zyx` (it may be a view, e.g. `vertebra.io.canonical_view`
    of a mask on the source grid) to write the mask into; it is returned."""
    mask_zyx = np.asarray(mask_zyx, bool)
    shape_zyx = tuple(int(n) for n in shape_zyx)
    if out is None:
        out = np.zeros(shape_zyx, bool)
    elif out.shape != shape_zyx or out.dtype != bool:
        raise ValueError(f"out must be a bool array of shape {shape_zyx}, got {out.dtype} {out.shape}")
    if not mask_zyx.any():
        return out
    box = bounding_box(mask_zyx)
    rows, weights = [], []
    for extent, n_scan, n_grid in zip(box, shape_zyx, mask_zyx.shape):
        w = _linear_matrix(n_grid, int(n_scan))[:, extent]            # scan voxels x mask-box voxels
        touched = np.flatnonzero(w.any(axis=1))
        rows.append(slice(touched[0], touched[-1] + 1))
        weights.append(w[touched[0]:touched[-1] + 1])
    values = np.einsum("zk,yj,xi,kji->zyx", *weights, mask_zyx[box].astype(np.float64), optimize=True)
    out[tuple(rows)] = values >= 0.5
    return out


def bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """The smallest box (one slice per axis) holding every True voxel of a non-empty mask.

    >>> bounding_box(np.pad(np.ones((2, 1, 3), bool), 1))
    (slice(1, 3, None), slice(1, 2, None), slice(1, 4, None))
    """
    stored, axes, flipped = memory_order(mask)
    box = [slice(0, 0)] * mask.ndim
    for k, axis in enumerate(axes):       # in memory order, each axis within the slab found so far
        hits = np.flatnonzero(stored.any(axis=tuple(a for a in range(mask.ndim) if a != k)))
        lo, hi = int(hits[0]), int(hits[-1]) + 1
        stored = stored[(slice(None),) * k + (slice(lo, hi),)]
        n = mask.shape[axis]
        box[axis] = slice(n - hi, n - lo) if flipped[axis] else slice(lo, hi)
    return tuple(box)


def memory_order(array: np.ndarray) -> tuple[np.ndarray, tuple[int, ...], tuple[bool, ...]]:
    """(view, axes, flipped): the same elements with the axes permuted and flipped so that the view
    walks memory forwards, largest stride first (C order for a transposed or flipped C-contiguous
    array). ``view`` axis k is `array` axis ``axes[k]``, reversed where ``flipped[axes[k]]``."""
    flipped = tuple(stride < 0 for stride in array.strides)
    flips = tuple(a for a in range(array.ndim) if flipped[a])
    forwards = np.flip(array, flips) if flips else array
    axes = tuple(sorted(range(array.ndim), key=lambda a: -forwards.strides[a]))
    return forwards.transpose(axes), axes, flipped


def _linear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of linear interpolation at the centres of `n_out` voxels that tile the same
    segment as `n_in` voxels (continuous index (k + 0.5) n_in / n_out - 0.5), edges clamped as ITK does."""
    position = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    left = np.floor(position).astype(int)
    frac = position - left
    weights = np.zeros((n_out, n_in))
    np.add.at(weights, (np.arange(n_out), np.clip(left, 0, n_in - 1)), 1.0 - frac)
    np.add.at(weights, (np.arange(n_out), np.clip(left + 1, 0, n_in - 1)), frac)
    return weights


def _smoothing_matrix(n: int, sigma_mm: float, spacing_mm: float) -> np.ndarray:
    """(n, n): SimpleITK's recursive Gaussian (the filter inside ``SmoothingRecursiveGaussian``, borders
    included) along one axis of `n` voxels `spacing_mm` apart, read off by filtering the identity."""
    if sigma_mm == 0:
        return np.eye(n)
    identity = sitk.GetImageFromArray(np.eye(n, dtype=np.float32))     # filtered along its x axis
    identity.SetSpacing((float(spacing_mm), 1.0))
    response = sitk.RecursiveGaussian(identity, float(sigma_mm), False,
                                      sitk.RecursiveGaussianImageFilter.ZeroOrder, 0)
    return sitk.GetArrayFromImage(response).astype(np.float64).T


@lru_cache(maxsize=64)
def _axis_matrix(n_in: int, n_out: int, sigma_mm: float, spacing_mm: float) -> torch.Tensor:
    """(n_out, n_in) float32: smoothing then linear interpolation along one axis. Weights below 1e-9
    (the Gaussian's far tails, < 1e-5 HU in all) are set to 0: as float32 denormals they would make the
    products ten times slower."""
    matrix = _linear_matrix(int(n_in), int(n_out)) @ _smoothing_matrix(int(n_in), sigma_mm, spacing_mm)
    matrix[np.abs(matrix) < 1e-9] = 0.0
    return torch.from_numpy(matrix.astype(np.float32))


def _apply_per_axis(array_zyx: np.ndarray, matrices_xyz) -> np.ndarray:
    """float32 (z, y, x) array times one matrix per axis (x first: the largest reduction comes first)."""
    mx, my, mz = matrices_xyz
    nz, ny, nx = array_zyx.shape
    x = torch.from_numpy(np.ascontiguousarray(array_zyx, dtype=np.float32))
    x = torch.mm(x.reshape(nz * ny, nx), mx.T).reshape(nz, ny, -1)          # (z, y, x')
    x = torch.matmul(my, x)                                                  # (z, y', x')
    x = torch.mm(mz, x.reshape(nz, -1))                                      # (z', y' x')
    return x.reshape(mz.shape[0], my.shape[0], mx.shape[0]).numpy()


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
