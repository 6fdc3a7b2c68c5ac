"""Rasterising analytic shapes into HU and label maps on a voxel grid.

Arrays are (z, y, x). The grid lives in the *scanner* frame (table coordinates, mm); the anatomy is
built in the *anatomical* frame of `spine_curve`. `Pose` maps between them: the patient lies rotated by
a few degrees about the craniocaudal axis, tilted by a small shear, and turned over for a prone scan.

Every shape is evaluated only on its own bounding box (never on the whole grid), so a scan at 2 mm
costs a few million voxel evaluations. Painting is in order: a later shape overwrites an earlier one
where its mask is set, like layers of paint (soft tissue first, bone last).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Pose:
    """Anatomical (x, y, z) → scanner (x, y, z), mm: rotation about z (prone adds 180 deg), then a
    shear of x and y with height about `z_ref` (small lateral tilt and sagittal pitch)."""

    rotation_deg: float = 0.0
    tilt_deg: float = 0.0
    pitch_deg: float = 0.0
    prone: bool = False
    z_ref: float = 0.0

    def _rot(self) -> tuple[float, float]:
        a = np.deg2rad(self.rotation_deg + (180.0 if self.prone else 0.0))
        return float(np.cos(a)), float(np.sin(a))

    def _shear(self, z):
        return (np.tan(np.deg2rad(self.tilt_deg)) * (z - self.z_ref),
                np.tan(np.deg2rad(self.pitch_deg)) * (z - self.z_ref))

    def to_scanner(self, p: np.ndarray) -> np.ndarray:
        p = np.atleast_2d(p)
        c, s = self._rot()
        shx, shy = self._shear(p[:, 2])
        return np.stack([c * p[:, 0] - s * p[:, 1] + shx, s * p[:, 0] + c * p[:, 1] + shy, p[:, 2]], axis=1)

    def to_anatomical(self, xs, ys, zs):
        """Scanner coordinates (broadcastable arrays) → anatomical x, y (z is unchanged)."""
        c, s = self._rot()
        shx, shy = self._shear(zs)
        u, v = xs - shx, ys - shy
        return c * u + s * v, -s * u + c * v

    def direction_to_anatomical(self, v_scanner) -> np.ndarray:
        """A scanner direction (e.g. gravity) in the anatomical frame (shear ignored)."""
        c, s = self._rot()
        x, y, z = v_scanner
        return np.array([c * x + s * y, -s * x + c * y, z])


@dataclass(frozen=True)
class Grid:
    """Voxel centres at origin + spacing * index, in the scanner frame; shapes and spacings (z, y, x)."""

    shape_zyx: tuple[int, int, int]
    spacing_zyx: tuple[float, float, float]
    origin_xyz: tuple[float, float, float]

    def axis(self, dim: int) -> np.ndarray:
        """World coordinates (mm) of the voxel centres along array dimension 0=z, 1=y, 2=x."""
        o = self.origin_xyz[2 - dim]
        return (o + self.spacing_zyx[dim] * np.arange(self.shape_zyx[dim])).astype(np.float32)

    def box(self, lo_xyz, hi_xyz) -> tuple[slice, slice, slice] | None:
        """Index slices (z, y, x) of the voxels inside a scanner-frame box, or None when it misses."""
        out = []
        for dim in range(3):
            o, sp, n = self.origin_xyz[2 - dim], self.spacing_zyx[dim], self.shape_zyx[dim]
            a = int(np.floor((lo_xyz[2 - dim] - o) / sp))
            b = int(np.ceil((hi_xyz[2 - dim] - o) / sp)) + 1
            a, b = max(a, 0), min(b, n)
            if a >= b:
                return None
            out.append(slice(a, b))
        return tuple(out)


class Canvas:
    """HU image and label maps being painted, with the patient `Pose` used to place shapes."""

    def __init__(self, grid: Grid, pose: Pose, background_hu: float = -1000.0):
        self.grid, self.pose = grid, pose
        self.hu = np.full(grid.shape_zyx, background_hu, np.float32)
        self.vert = np.zeros(grid.shape_zyx, np.uint8)
        self.rib = np.zeros(grid.shape_zyx, np.uint8)
        self._axes = [grid.axis(d) for d in range(3)]

    def scanner_box(self, lo_anat, hi_anat) -> tuple[slice, slice, slice] | None:
        """Voxel slices covering an anatomical-frame box (its 8 corners mapped to the scanner)."""
        corners = np.array([[x, y, z] for x in (lo_anat[0], hi_anat[0]) for y in (lo_anat[1], hi_anat[1])
                            for z in (lo_anat[2], hi_anat[2])], float)
        sc = self.pose.to_scanner(corners)
        return self.grid.box(sc.min(axis=0), sc.max(axis=0))

    def coords(self, box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Anatomical (x, y, z) of the voxel centres in `box`: x, y full 3D, z shaped (nz, 1, 1)."""
        z = self._axes[0][box[0]][:, None, None]
        y = self._axes[1][box[1]][None, :, None]
        x = self._axes[2][box[2]][None, None, :]
        ax, ay = self.pose.to_anatomical(x, y, z)
        return ax.astype(np.float32, copy=False), ay.astype(np.float32, copy=False), z

    def paint(self, box, mask: np.ndarray, hu, vert: int | np.ndarray | None = None,
              rib: int | None = None) -> None:
        """Set HU (scalar or array of the box's shape) and labels where `mask` is true."""
        region = self.hu[box]
        region[mask] = hu[mask] if isinstance(hu, np.ndarray) else hu
        if vert is not None:
            self.vert[box][mask] = vert[mask] if isinstance(vert, np.ndarray) else vert
        if rib is not None:
            self.rib[box][mask] = rib

    def paint_field(self, lo_anat, hi_anat, field: Callable, with_hu: bool = False) -> None:
        """`field(x, y, z)` (anatomical mm) returns (mask, hu[, vert]) on the box; painted if any.
        With `with_hu`, the field is called as `field(x, y, z, hu)`, `hu` the box's HU painted so far
        (for partial volume at the shape's surface)."""
        self.paint_in(self.scanner_box(lo_anat, hi_anat), field, with_hu)

    def paint_in(self, box, field: Callable, with_hu: bool = False) -> None:
        """Like `paint_field`, on a box of voxel slices (None paints nothing)."""
        if box is None:
            return
        out = field(*self.coords(box), self.hu[box]) if with_hu else field(*self.coords(box))
        if out is not None and out[0].any():
            self.paint(box, *out)

    def box_of_points(self, points_anat: np.ndarray, pad_mm: float = 0.0):
        """Voxel slices covering anatomical points (N, 3), padded by `pad_mm`; None when outside."""
        sc = self.pose.to_scanner(np.asarray(points_anat, float))
        return self.grid.box(sc.min(axis=0) - pad_mm, sc.max(axis=0) + pad_mm)

    def tube_voxels(self, points: np.ndarray, radius_mm: np.ndarray | float, max_segment_mm: float = 12.0):
        """Voxels within the (linearly varying) radius of a polyline of anatomical points (N, 3).

        The polyline is split into short segments, each evaluated exactly on its own bounding box.
        Returns (flat voxel indices, distance mm to the centre line, local radius mm, nearest centre-line
        point (N, 3)); each voxel appears once, with its nearest segment."""
        points = np.asarray(points, float)
        radius = np.broadcast_to(np.asarray(radius_mm, float), (len(points),)).astype(float)
        seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
        s = np.concatenate([[0.0], np.cumsum(seg)])
        n = max(1, int(np.ceil(s[-1] / max(max_segment_mm, 1.5 * radius.min()))))
        t = np.linspace(0, s[-1], n + 1)
        pts = np.stack([np.interp(t, s, points[:, d]) for d in range(3)], axis=1)
        rad = np.interp(t, s, radius)
        out = [[], [], [], []]
        for a, b, ra, rb in zip(pts[:-1], pts[1:], rad[:-1], rad[1:]):
            box = self.box_of_points(np.stack([a, b]), max(ra, rb) + 0.5 * max(self.grid.spacing_zyx))
            if box is None:
                continue
            x, y, z = self.coords(box)
            ab = (b - a).astype(np.float32)
            ll = max(float(ab @ ab), 1e-9)
            u = np.clip(((x - a[0]) * ab[0] + (y - a[1]) * ab[1] + (z - a[2]) * ab[2]) / ll, 0, 1)
            dist = np.sqrt((x - a[0] - u * ab[0]) ** 2 + (y - a[1] - u * ab[1]) ** 2 + (z - a[2] - u * ab[2]) ** 2)
            r = ra + u * (rb - ra)
            inside = dist <= r
            if not inside.any():
                continue
            kk, jj, ii = np.nonzero(inside)
            flat = np.ravel_multi_index((kk + box[0].start, jj + box[1].start, ii + box[2].start),
                                        self.grid.shape_zyx)
            uu = u[inside]
            out[0].append(flat)
            out[1].append(dist[inside].astype(np.float32))
            out[2].append(r[inside].astype(np.float32))
            out[3].append(a[None] + uu[:, None] * ab[None].astype(float))
        if not out[0]:
            return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros((0, 3))
        flat, dist, r, centre = (np.concatenate(o) for o in out)
        order = np.lexsort((dist, flat))
        flat = flat[order]
        first = np.concatenate([[True], flat[1:] != flat[:-1]])
        keep = order[first]
        return flat[first], dist[keep], r[keep], centre[keep]

    @property
    def voxel_mm(self) -> float:
        """Edge of the cube with a voxel's volume, mm: the slab width of `partial_volume_bone_hu`."""
        return float(np.prod(self.grid.spacing_zyx)) ** (1.0 / 3.0)

    def paint_bone_flat(self, flat: np.ndarray, depth_mm: np.ndarray, trabecular_hu, cortical_hu: float,
                        cortex_mm: float, **labels) -> None:
        """Paint bone on flat voxel indices from each voxel's depth below the surface, with partial
        volume against the HU painted there before (`partial_volume_bone_hu`)."""
        hu = partial_volume_bone_hu(depth_mm, trabecular_hu, self.hu.reshape(-1)[flat], cortical_hu,
                                    cortex_mm, self.voxel_mm)
        self.paint_flat(flat, hu, **labels)

    def paint_flat(self, flat: np.ndarray, hu, vert: int | None = None, rib: int | None = None) -> None:
        self.hu.reshape(-1)[flat] = hu
        if vert is not None:
            self.vert.reshape(-1)[flat] = vert
        if rib is not None:
            self.rib.reshape(-1)[flat] = rib

    def flat_to_anatomical(self, flat: np.ndarray) -> np.ndarray:
        """(N, 3) anatomical coordinates of flat voxel indices."""
        k, j, i = np.unravel_index(flat, self.grid.shape_zyx)
        z, y, x = self._axes[0][k], self._axes[1][j], self._axes[2][i]
        ax, ay = self.pose.to_anatomical(x, y, z)
        return np.stack([ax, ay, z], axis=1)


def partial_volume_bone_hu(depth_mm: np.ndarray, trabecular_hu, outside_hu, cortical_hu,
                           cortex_mm, voxel_mm: float) -> np.ndarray:
    """HU of voxels whose centres lie `depth_mm` (>= 0) below a bone surface, each the average over the
    voxel of what it holds: tissue outside the bone (`outside_hu`), a cortical shell `cortex_mm` thick
    and the trabecular core beneath it.

    The voxel is taken as a slab `voxel_mm` wide across the surface (one dimension, along the surface
    normal), so a shell thinner than a voxel is diluted by its neighbours instead of filling the voxel:
    a 1 mm shell at 2 mm voxels shows at most half its own HU. Every argument but `voxel_mm` may be an
    array of the depths' shape: `outside_hu` is usually the HU already painted there (disc, muscle).

    >>> partial_volume_bone_hu(np.array([1.0, 3.0]), 200.0, 0.0, 1000.0, 1.0, 2.0).tolist()
    [600.0, 200.0]
    """
    half = 0.5 * voxel_mm
    lo, hi = depth_mm - half, depth_mm + half
    outside = np.clip(-lo, 0.0, voxel_mm) / voxel_mm
    shell = (np.clip(hi, 0.0, cortex_mm) - np.clip(lo, 0.0, cortex_mm)) / voxel_mm
    core = 1.0 - outside - shell
    return (outside * outside_hu + shell * cortical_hu + core * trabecular_hu).astype(np.float32)
