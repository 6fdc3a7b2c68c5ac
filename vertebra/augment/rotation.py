"""Random rotations about a random axis through the volume's centre (paper §2.2: "random rotations
between -20 and 20 degrees around a random axis").

The axis is a unit vector in world coordinates (x, y, z), LPS; the rotation turns the image content
by `angle_deg` about that axis (right-hand rule) around the physical centre of the voxel grid. The
output keeps the input's grid, so corners rotated out of view are lost and corners rotated into view
take the fill value (air).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..image import Volume
from .resample import physical_centre_mm, resample_pair


def rotation_matrix(axis_xyz, angle_deg: float) -> np.ndarray:
    """3x3 matrix turning points by `angle_deg` about the unit vector `axis_xyz` (Rodrigues).

    >>> np.round(rotation_matrix((0, 0, 1), 90) @ [1, 0, 0], 6)
    array([0., 1., 0.])
    """
    k = np.asarray(axis_xyz, dtype=float)
    k = k / np.linalg.norm(k)
    theta = np.deg2rad(angle_deg)
    cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(theta) * cross + (1.0 - np.cos(theta)) * (cross @ cross)


@dataclass(frozen=True)
class Rotation:
    """Turn the image by `angle_deg` about the world axis `axis` (x, y, z) through its centre."""

    axis: tuple[float, float, float] = (0.0, 0.0, 1.0)
    angle_deg: float = 0.0

    def __post_init__(self):
        axis = np.asarray(self.axis, dtype=float).ravel()
        if axis.shape != (3,) or not np.all(np.isfinite(axis)) or np.linalg.norm(axis) == 0:
            raise ValueError(f"Rotation: axis must be a non-zero 3-vector, got {self.axis}")
        if not np.isfinite(self.angle_deg):
            raise ValueError(f"Rotation: angle_deg must be finite, got {self.angle_deg}")
        norm = np.linalg.norm(axis)
        if abs(norm - 1.0) > 1e-12:  # already-unit axes are kept bit for bit, so replay is exact
            axis = axis / norm
        object.__setattr__(self, "axis", tuple(float(a) for a in axis))
        object.__setattr__(self, "angle_deg", float(self.angle_deg))

    @property
    def is_identity(self) -> bool:
        return self.angle_deg % 360.0 == 0.0

    def sitk_transform(self, reference: Volume) -> sitk.Transform:
        """Output point p → input point R⁻¹ (p − c) + c, with c the physical centre of `reference`."""
        transform = sitk.AffineTransform(3)
        transform.SetMatrix(rotation_matrix(self.axis, self.angle_deg).T.ravel().tolist())
        transform.SetCenter(physical_centre_mm(reference).tolist())
        return transform

    def apply(self, image: Volume, labels: Volume | None = None, *,
              fill_value: float | None = None) -> tuple[Volume, Volume | None]:
        """Rotate the image (linear) and labels (nearest neighbour) on their own grid."""
        if self.is_identity:
            return image, labels
        return resample_pair(image, labels, self.sitk_transform(image), fill_value=fill_value)

    def to_dict(self) -> dict:
        return {"name": "Rotation", "axis": list(self.axis), "angle_deg": self.angle_deg}

    @classmethod
    def from_dict(cls, d: dict) -> "Rotation":
        return cls(axis=tuple(d["axis"]), angle_deg=d["angle_deg"])


class RandomRotation:
    """Sample a `Rotation`: axis uniform on the unit sphere, angle uniform in ±`max_degrees`.

    >>> r = RandomRotation(max_degrees=20).sample(np.random.default_rng(0))
    >>> bool(abs(r.angle_deg) <= 20 and np.isclose(np.linalg.norm(r.axis), 1.0))
    True
    """

    def __init__(self, *, max_degrees: float = 20.0):
        if not np.isfinite(max_degrees) or not 0.0 <= float(max_degrees) <= 180.0:
            raise ValueError(f"RandomRotation: max_degrees must lie in [0, 180], got {max_degrees}")
        self.max_degrees = float(max_degrees)

    def sample(self, rng: np.random.Generator) -> Rotation:
        axis = rng.standard_normal(3)
        while np.linalg.norm(axis) < 1e-8:  # a direction uniform on the sphere
            axis = rng.standard_normal(3)
        angle = rng.uniform(-self.max_degrees, self.max_degrees)
        return Rotation(axis=tuple(axis), angle_deg=angle)

    def __repr__(self) -> str:
        return f"RandomRotation(max_degrees={self.max_degrees})"
