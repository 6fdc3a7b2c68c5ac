"""Curved planar reformation along the canal centreline (paper §2.1, "curved reformation").

The straightened volume has axes (s, u, v): s is arc length along the centreline (mm, growing with
the slice index), u the distance towards the vertebral body (mm; negative = posterior, towards the
spinous process), v the lateral distance (mm, right-handed with s and u). Each s-plane is orthogonal
to the centreline, so a tilted disc (lordosis) lies across one s, not across several.

`CurvedFrame` keeps the mapping both ways: `to_index` sends (s, u, v) to voxel indices of the input,
`project` sends voxel indices to (s, u, v). Positions are voxel-aligned mm (z, y, x); use
`Volume.index_to_world` for world coordinates.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from .centreline import Centreline


@dataclass(frozen=True)
class ReformatConfig:
    #: step along the centreline and in the cross-section (mm); None: the smallest voxel spacing
    step_mm: float | None = None
    #: extent of the cross-section: posterior, anterior and lateral half-width (mm)
    posterior_mm: float = 60.0
    anterior_mm: float = 70.0
    lateral_mm: float = 50.0


@dataclass
class CurvedFrame:
    """Centreline samples at equal arc length with an orthonormal frame (all (z, y, x) in mm)."""

    s_mm: np.ndarray        # (S,)
    point_mm: np.ndarray    # (S, 3)
    tangent: np.ndarray     # (S, 3)
    anterior: np.ndarray    # (S, 3)
    lateral: np.ndarray     # (S, 3)
    spacing_zyx: tuple[float, float, float]

    def to_index(self, s_mm, u_mm, v_mm) -> np.ndarray:
        """Voxel indices (..., 3) (z, y, x) of the points (s, u, v) mm (broadcast)."""
        s, u, v = np.broadcast_arrays(*(np.asarray(a, float) for a in (s_mm, u_mm, v_mm)))
        k = np.clip(np.interp(s, self.s_mm, np.arange(len(self.s_mm))).round().astype(int), 0, len(self.s_mm) - 1)
        ds = (s - self.s_mm[k])[..., None]
        p = self.point_mm[k] + ds * self.tangent[k] + u[..., None] * self.anterior[k] + v[..., None] * self.lateral[k]
        return p / np.asarray(self.spacing_zyx)

    def project(self, index_zyx) -> np.ndarray:
        """(N, 3) voxel indices → (N, 3) (s, u, v) mm relative to the nearest centreline sample."""
        q = np.atleast_2d(np.asarray(index_zyx, float)) * np.asarray(self.spacing_zyx)
        _, k = cKDTree(self.point_mm).query(q)
        d = q - self.point_mm[k]
        return np.column_stack([self.s_mm[k] + np.einsum("ij,ij->i", d, self.tangent[k]),
                                np.einsum("ij,ij->i", d, self.anterior[k]),
                                np.einsum("ij,ij->i", d, self.lateral[k])])


def curved_frame(centreline: Centreline, step_mm: float) -> CurvedFrame:
    """Resample the centreline at equal arc length and attach a (tangent, anterior, lateral) frame."""
    pts = centreline.points_mm()
    arc = centreline.arclength_mm()
    s = np.arange(0.0, arc[-1] + 1e-9, step_mm)
    point = np.column_stack([np.interp(s, arc, pts[:, k]) for k in range(3)])
    tangent = np.gradient(point, axis=0) if len(s) > 1 else np.array([[1.0, 0, 0]])
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True) + 1e-9
    ant_yx = np.column_stack([np.interp(s, arc, centreline.anterior_yx[:, k]) for k in range(2)])
    anterior = np.column_stack([np.zeros(len(s)), ant_yx])
    anterior -= np.einsum("ij,ij->i", anterior, tangent)[:, None] * tangent   # Gram-Schmidt
    anterior /= np.linalg.norm(anterior, axis=1, keepdims=True) + 1e-9
    lateral = np.cross(tangent, anterior)
    return CurvedFrame(s, point, tangent, anterior, lateral, centreline.spacing_zyx)


@dataclass
class Straightened:
    """The straightened image, (s, u, v) array in HU, with its axes in mm and its `frame`."""

    array: np.ndarray
    u_mm: np.ndarray
    v_mm: np.ndarray
    frame: CurvedFrame

    @property
    def s_mm(self) -> np.ndarray:
        return self.frame.s_mm


def straighten(image_zyx: np.ndarray, centreline: Centreline,
               config: ReformatConfig = ReformatConfig(), fill_hu: float = -1000.0) -> Straightened:
    """Curved planar reformation of a (z, y, x) array along `centreline` (linear interpolation)."""
    step = config.step_mm or float(min(centreline.spacing_zyx))
    frame = curved_frame(centreline, step)
    u = np.arange(-config.posterior_mm, config.anterior_mm + 1e-9, step)
    v = np.arange(-config.lateral_mm, config.lateral_mm + 1e-9, step)
    idx = frame.to_index(frame.s_mm[:, None, None], u[None, :, None], v[None, None, :])
    out = ndimage.map_coordinates(image_zyx, np.moveaxis(idx, -1, 0), order=1, cval=fill_hu,
                                  output=np.float32)
    return Straightened(out, u, v, frame)
