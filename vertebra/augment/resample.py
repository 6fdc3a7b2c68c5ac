"""Resampling a volume through a spatial transform, in physical space.

Every spatial augmentation (rotation, B-spline) is an ITK transform that maps a point of the *output*
grid to the point of the *input* image whose value it takes, both in world millimetres (x, y, z), LPS.
The output grid is the input's own grid (same shape, spacing, origin and direction), so geometry is
preserved by construction. Images are interpolated linearly, labels by nearest neighbour (so that no
new label value can appear); points that fall outside the input take a fill value.

Several transforms given at once are composed into one `sitk.CompositeTransform` and so cost one
resampling: faster, and less blur than resampling after each transform.

Evaluating a B-spline transform at every voxel is what makes elastic augmentation slow (about 0.4 µs a
voxel). The deformation is smooth on the scale of its control grid (tens of mm), so
`displacement_field` evaluates the whole chain once, on a grid `step_voxels` coarser than the image,
and resampling then interpolates that field linearly. A rotation's displacement is affine, so linear
interpolation reproduces it exactly; the B-spline part differs by hundredths of a millimetre (see the
tests). Image and labels share the one field.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from ..image import Volume

#: a chain with a B-spline is evaluated every this many voxels and interpolated in between
DEFAULT_FIELD_STEP_VOXELS = 4


def physical_centre_mm(volume: Volume) -> np.ndarray:
    """World point (x, y, z) mm of the centre of the voxel grid (midway between the corner voxels)."""
    centre_zyx = (np.asarray(volume.array.shape, dtype=float) - 1.0) / 2.0
    return volume.index_to_world(centre_zyx)[0]


def chain(transforms: Sequence[sitk.Transform]) -> sitk.Transform:
    """One transform that equals resampling through `transforms[0]`, then `transforms[1]`, ...

    Resampling image I through A gives I(A(p)); resampling that through B gives I(A(B(p))). ITK's
    `CompositeTransform` applies the transform added last first, so adding A then B gives A(B(p)).
    """
    if len(transforms) == 1:
        return transforms[0]
    composite = sitk.CompositeTransform(3)
    for transform in transforms:
        composite.AddTransform(transform)
    return composite


def displacement_field(transform: sitk.Transform, reference: Volume,
                       step_voxels: int) -> sitk.DisplacementFieldTransform:
    """`transform` sampled about every `step_voxels` voxels over `reference`'s grid, as a displacement
    field (world mm) that ITK interpolates linearly in between.

    The field's first and last points sit on the first and last voxel centres of each axis: ITK's
    B-spline is the identity outside its domain, so a field point beyond the image would be wrong.
    """
    if int(step_voxels) < 1:
        raise ValueError(f"step_voxels must be a positive integer, got {step_voxels}")
    g = reference.geometry
    extent_voxels = np.asarray(reference.shape_xyz, dtype=float) - 1.0
    size_xyz = [int(n) for n in np.ceil(extent_voxels / int(step_voxels)) + 1]
    spacing_mm = [s * max(e, 1.0) / max(n - 1, 1) for s, e, n in zip(g.spacing_mm, extent_voxels,
                                                                      size_xyz)]
    field = sitk.TransformToDisplacementField(transform, sitk.sitkVectorFloat64, size_xyz,
                                              g.origin_mm, spacing_mm, g.direction)
    return sitk.DisplacementFieldTransform(field)


def resample(volume: Volume, transform: sitk.Transform, *, is_label: bool,
             fill_value: float | None = None) -> Volume:
    """Resample `volume` through `transform` onto its own grid; the dtype is kept.

    Images are resampled in float32 with linear interpolation and rounded back when integer;
    `fill_value` (default: the image minimum, i.e. air for a CT) fills points outside the input.
    Labels use nearest neighbour and fill 0 (background).
    """
    array = volume.array
    if is_label:
        interpolator, fill = sitk.sitkNearestNeighbor, 0.0
        image = sitk.GetImageFromArray(np.ascontiguousarray(array))
        pixel_type = image.GetPixelID()
    else:
        interpolator = sitk.sitkLinear
        fill = float(array.min()) if fill_value is None else float(fill_value)
        image = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.float32))
        pixel_type = sitk.sitkFloat32
    volume.geometry.apply_to(image)
    out = sitk.Resample(image, image, transform, interpolator, fill, pixel_type)
    out_array = sitk.GetArrayFromImage(out)
    if out_array.dtype != array.dtype:
        if np.issubdtype(array.dtype, np.integer):
            info = np.iinfo(array.dtype)
            out_array = np.clip(np.rint(out_array), info.min, info.max)
        out_array = out_array.astype(array.dtype)
    return volume.with_array(out_array)


def resample_pair(image: Volume, labels: Volume | None, transform: sitk.Transform, *,
                  fill_value: float | None = None) -> tuple[Volume, Volume | None]:
    """Resample an image and (optionally) its label map through the same transform."""
    if labels is not None and labels.array.shape != image.array.shape:
        raise ValueError(f"labels of shape {labels.array.shape} do not match the image's "
                         f"{image.array.shape}")
    out_image = resample(image, transform, is_label=False, fill_value=fill_value)
    out_labels = None if labels is None else resample(labels, transform, is_label=True)
    return out_image, out_labels
