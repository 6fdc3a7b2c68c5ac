"""An image array that always carries its geometry.

Arrays are numpy (z, y, x), as SimpleITK's `GetArrayFromImage` returns them. Geometry is in ITK's
(x, y, z) order and in world millimetres, LPS (as DICOM and ITK): `spacing_mm` and `origin_mm` are
(x, y, z), `direction` is the 3x3 matrix whose columns are the world directions of the x, y, z index
axes. A voxel index (i, j, k) = (x, y, z) maps to world as ``origin + direction @ (spacing * index)``.

>>> import numpy as np
>>> vol = Volume(np.zeros((4, 3, 2), np.int16), Geometry(spacing_mm=(1.0, 2.0, 3.0)))
>>> vol.index_to_world([[0, 0, 1]])       # (z, y, x) index → world (x, y, z) mm
array([[1., 0., 0.]])
>>> vol.shape_xyz
(2, 3, 4)
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import SimpleITK as sitk


@dataclass(frozen=True)
class Geometry:
    """Where an array lies in the world: spacing and origin in mm (x, y, z), direction cosines."""

    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    def __post_init__(self):
        object.__setattr__(self, "spacing_mm", tuple(float(s) for s in self.spacing_mm))
        object.__setattr__(self, "origin_mm", tuple(float(o) for o in self.origin_mm))
        object.__setattr__(self, "direction", tuple(float(d) for d in np.ravel(self.direction)))
        if len(self.spacing_mm) != 3 or len(self.origin_mm) != 3 or len(self.direction) != 9:
            raise ValueError("Geometry needs 3 spacings, 3 origin coordinates and 9 direction cosines")
        if not all(np.isfinite(self.spacing_mm)) or min(self.spacing_mm) <= 0:
            raise ValueError(f"spacing must be positive and finite, got {self.spacing_mm} mm")

    @property
    def direction_matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    @classmethod
    def from_sitk(cls, image: sitk.Image) -> "Geometry":
        return cls(image.GetSpacing(), image.GetOrigin(), image.GetDirection())

    def apply_to(self, image: sitk.Image) -> sitk.Image:
        image.SetSpacing(self.spacing_mm)
        image.SetOrigin(self.origin_mm)
        image.SetDirection(self.direction)
        return image

    def to_dict(self) -> dict:
        return {"spacing_mm": list(self.spacing_mm), "origin_mm": list(self.origin_mm),
                "direction": list(self.direction)}

    @classmethod
    def from_dict(cls, d: dict) -> "Geometry":
        return cls(d["spacing_mm"], d["origin_mm"], d["direction"])


@dataclass
class Volume:
    """A (z, y, x) numpy array and the `Geometry` that places it in world mm (LPS)."""

    array: np.ndarray
    geometry: Geometry = field(default_factory=Geometry)

    def __post_init__(self):
        if self.array.ndim != 3:
            raise ValueError(f"a Volume is 3D (z, y, x); got an array of shape {self.array.shape}")

    @property
    def shape_xyz(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.array.shape[::-1])

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        return tuple(self.geometry.spacing_mm[::-1])

    def with_array(self, array: np.ndarray) -> "Volume":
        """The same geometry around another array of the same shape."""
        if array.shape != self.array.shape:
            raise ValueError(f"shape {array.shape} differs from {self.array.shape}")
        return replace(self, array=array)

    def index_to_world(self, index_zyx) -> np.ndarray:
        """(N, 3) continuous voxel indices in (z, y, x) → (N, 3) world points (x, y, z) in mm."""
        idx = np.atleast_2d(np.asarray(index_zyx, dtype=float))[:, ::-1]
        g = self.geometry
        return np.asarray(g.origin_mm) + (idx * np.asarray(g.spacing_mm)) @ g.direction_matrix.T

    def world_to_index(self, points_xyz) -> np.ndarray:
        """(N, 3) world points (x, y, z) in mm → (N, 3) continuous voxel indices (z, y, x)."""
        pts = np.atleast_2d(np.asarray(points_xyz, dtype=float))
        g = self.geometry
        idx = ((pts - np.asarray(g.origin_mm)) @ g.direction_matrix) / np.asarray(g.spacing_mm)
        return idx[:, ::-1]

    def to_sitk(self) -> sitk.Image:
        return self.geometry.apply_to(sitk.GetImageFromArray(np.ascontiguousarray(self.array)))

    @classmethod
    def from_sitk(cls, image: sitk.Image) -> "Volume":
        if image.GetDimension() != 3:
            raise ValueError(f"expected a 3D image, got {image.GetDimension()}D")
        return cls(sitk.GetArrayFromImage(image), Geometry.from_sitk(image))
