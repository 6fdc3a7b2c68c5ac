"""Random elastic deformation by a cubic B-spline (paper §2.2: "elastic deformations using the
B-spline deformation function in SITK").

A coarse grid of control points is laid over the volume by `sitk.BSplineTransformInitializer`; each
control point carries a displacement in world millimetres (x, y, z). The dense deformation is the
cubic B-spline interpolation of those displacements, evaluated by ITK while resampling. The paper does
not give the grid or the amplitude; the defaults (7 control points an axis, at most 7.5 mm, two locked
border layers) are TorchIO's, which follows the same SimpleITK route.

Displacement arrays are (nx, ny, nz, 3): control-point index in ITK (x, y, z) order, then the world
component. SimpleITK's parameter vector holds all x components (x index fastest), then all y, then
all z: that is the Fortran-order flattening of this array.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..image import Volume
from .resample import DEFAULT_FIELD_STEP_VOXELS, displacement_field, resample_pair

#: order of the B-spline (cubic); a grid of n control points spans a mesh of n - 3 cells
SPLINE_ORDER = 3


def _triple(value, what: str, kind=float) -> tuple:
    values = np.broadcast_to(np.asarray(value, dtype=float), (3,))
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what} must be finite, got {value}")
    return tuple(kind(v) for v in values)


@dataclass(frozen=True, eq=False)
class ElasticDeformation:
    """Deform by the cubic B-spline through `control_point_displacements_mm` (nx, ny, nz, 3)."""

    control_point_displacements_mm: np.ndarray

    def __post_init__(self):
        field = np.array(self.control_point_displacements_mm, dtype=float)
        if field.ndim != 4 or field.shape[3] != 3 or min(field.shape[:3]) <= SPLINE_ORDER:
            raise ValueError("ElasticDeformation: control_point_displacements_mm must have shape "
                             f"(nx, ny, nz, 3) with n > {SPLINE_ORDER}, got {field.shape}")
        if not np.all(np.isfinite(field)):
            raise ValueError("ElasticDeformation: control_point_displacements_mm holds a non-finite value")
        field.flags.writeable = False
        object.__setattr__(self, "control_point_displacements_mm", field)

    @property
    def is_identity(self) -> bool:
        return not np.any(self.control_point_displacements_mm)

    def sitk_transform(self, reference: Volume) -> sitk.Transform:
        """The B-spline transform over `reference`'s physical extent, parameters set to the grid."""
        field = self.control_point_displacements_mm
        mesh_size = [int(n) - SPLINE_ORDER for n in field.shape[:3]]
        grid = reference.geometry.apply_to(sitk.Image(list(reference.shape_xyz), sitk.sitkUInt8))
        transform = sitk.BSplineTransformInitializer(grid, mesh_size, SPLINE_ORDER)
        transform.SetParameters(field.ravel(order="F").tolist())
        return transform

    def apply(self, image: Volume, labels: Volume | None = None, *, fill_value: float | None = None,
              field_step_voxels: int | None = DEFAULT_FIELD_STEP_VOXELS
              ) -> tuple[Volume, Volume | None]:
        """Deform the image (linear) and labels (nearest neighbour) on their own grid; the B-spline is
        evaluated every `field_step_voxels` voxels (None: at every voxel), see `resample`."""
        if self.is_identity:
            return image, labels
        transform = self.sitk_transform(image)
        if field_step_voxels:
            transform = displacement_field(transform, image, field_step_voxels)
        return resample_pair(image, labels, transform, fill_value=fill_value)

    def to_dict(self) -> dict:
        return {"name": "ElasticDeformation",
                "control_point_displacements_mm": self.control_point_displacements_mm.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "ElasticDeformation":
        return cls(control_point_displacements_mm=np.asarray(d["control_point_displacements_mm"]))


class RandomElasticDeformation:
    """Sample an `ElasticDeformation`: each control-point component uniform in ±`max_displacement_mm`.

    The `locked_borders` outermost layers of control points on every face stay still, so the
    deformation fades out towards the edge of the volume.

    >>> d = RandomElasticDeformation().sample(np.random.default_rng(0))
    >>> d.control_point_displacements_mm.shape
    (7, 7, 7, 3)
    """

    def __init__(self, *, num_control_points=7, max_displacement_mm=7.5, locked_borders: int = 2):
        points = _triple(num_control_points, "RandomElasticDeformation: num_control_points")
        if any(p != int(p) or p <= SPLINE_ORDER for p in points):
            raise ValueError("RandomElasticDeformation: num_control_points must be integers > "
                             f"{SPLINE_ORDER}, got {num_control_points}")
        self.num_control_points = tuple(int(p) for p in points)
        self.max_displacement_mm = _triple(max_displacement_mm,
                                           "RandomElasticDeformation: max_displacement_mm")
        if min(self.max_displacement_mm) < 0:
            raise ValueError("RandomElasticDeformation: max_displacement_mm must be >= 0, "
                             f"got {max_displacement_mm}")
        if int(locked_borders) != locked_borders or locked_borders < 0 \
                or min(self.num_control_points) - 2 * int(locked_borders) < 1:
            raise ValueError(f"RandomElasticDeformation: locked_borders={locked_borders} leaves no "
                             f"free control point in a grid of {self.num_control_points}")
        self.locked_borders = int(locked_borders)

    def sample(self, rng: np.random.Generator) -> ElasticDeformation:
        shape = (*self.num_control_points, 3)
        field = rng.uniform(-1.0, 1.0, size=shape) * np.asarray(self.max_displacement_mm)
        b = self.locked_borders
        if b:
            field[:b], field[-b:] = 0.0, 0.0
            field[:, :b], field[:, -b:] = 0.0, 0.0
            field[:, :, :b], field[:, :, -b:] = 0.0, 0.0
        return ElasticDeformation(control_point_displacements_mm=field)

    def __repr__(self) -> str:
        return (f"RandomElasticDeformation(num_control_points={self.num_control_points}, "
                f"max_displacement_mm={self.max_displacement_mm}, "
                f"locked_borders={self.locked_borders})")
