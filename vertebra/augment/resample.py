"""Resampling a volume through a spatial transform, in physical space.

Every spatial augmentation (rotation, B-spline) is an ITK transform that maps a point of the *output*
grid to the point of the *input* image whose value it takes, both in world millimetres (x, y, z), LPS.
The output grid is the input's own grid (same shape, spacing, origin and direction), so geometry is
preserved by construction. Images are interpolated linearly, labels by nearest neighbour (so that no
new label value can appear); points that fall outside the input take a fill value.

Several transforms given at once are composed into one `sitk.CompositeTransform` and so cost one
resampling: faster, and less blur than resampling after each transform.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from ..image import Volume

#: Hounsfield value of air: the default fill outside the field of view of a CT image
AIR_HU = -1024.0


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
