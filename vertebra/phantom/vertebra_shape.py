"""One vertebra as an implicit solid: body, pedicles, laminae, canal and processes.

All parts are signed distance functions (negative inside, mm) in the vertebra's local frame (x lateral
to the left, y posterior, z along the spine, origin at the body centre); the vertebra is their union
minus the spinal canal. The shape depends on the level, since that is the only cue left when the ribs
mislead: thoracic spinous processes slope steeply down and the transverse processes are short and
carry ribs; lumbar spinous processes are horizontal and hatchet-shaped, the transverse processes long
and thin (longest at L3); L5 is a wedge, taller in front.
"""
from __future__ import annotations

import numpy as np

from .. import labels as L
from .anatomy import Anatomy
from .render import Canvas, partial_volume_bone_hu
from .spine_curve import VertebraPose

CSF_HU, CORD_HU, DISC_HU = 10.0, 35.0, 85.0
#: compact bone of the shell and its thickness (mm), rendered with partial volume
CORTICAL_HU, CORTEX_MM = 950.0, 1.0


def capsule(x, y, z, a, b, r):
    """Distance (mm) to the segment a-b minus radius r."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    ab = b - a
    t = ((x - a[0]) * ab[0] + (y - a[1]) * ab[1] + (z - a[2]) * ab[2]) / max(float(ab @ ab), 1e-6)
    t = np.clip(t, 0, 1)
    return np.sqrt((x - a[0] - t * ab[0]) ** 2 + (y - a[1] - t * ab[1]) ** 2 + (z - a[2] - t * ab[2]) ** 2) - r


def box(x, y, z, centre, half):
    """Distance-like field of an axis-aligned box (exact outside the faces, max-norm inside)."""
    return np.maximum(np.maximum(np.abs(x - centre[0]) - half[0], np.abs(y - centre[1]) - half[1]),
                      np.abs(z - centre[2]) - half[2])


def ellipse(x, y, rx, ry, cx=0.0, cy=0.0):
    """Approximate distance (mm) to an ellipse in the x-y plane (a cylinder along z)."""
    return (np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2) - 1.0) * np.minimum(rx, ry)


def level_kind(label: int) -> str:
    if label <= 7:
        return "cervical"
    return "lumbar" if 20 <= label <= 25 else "thoracic"


def vertebra_parts(x, y, z, anatomy: Anatomy, label: int):
    """Signed distances of (body, whole bone, canal) at local coordinates x, y, z (mm)."""
    h, w, d = anatomy.height_mm[label], anatomy.width_mm[label], anatomy.depth_mm[label]
    a, b = w / 2, d / 2
    kind = level_kind(label)
    half_h = np.full_like(y, h / 2)
    if label == anatomy.last_lumbar and label in (24, 25):          # L5 (or L6) wedge, taller in front
        half_h = half_h * (1.0 - 0.12 * np.clip(y / b, -1, 1))
    if label == anatomy.fracture_label and anatomy.fracture_kind == "wedge":
        half_h = half_h * (1.0 - anatomy.fracture_loss * np.clip(0.5 - 0.5 * y / b, 0, 1))
    body = np.maximum(np.maximum(ellipse(x, y, a, b), y - 0.82 * b), np.abs(z) - half_h)

    canal_rx, canal_ry = {"cervical": (11.0, 7.0), "thoracic": (8.0, 7.5), "lumbar": (11.0, 8.0)}[kind]
    cy = 0.82 * b + canal_ry
    canal = ellipse(x, y, canal_rx, canal_ry, 0.0, cy)
    ped_w = {"cervical": 5.0, "thoracic": 6.0, "lumbar": 9.0}[kind]
    lam = {"cervical": 4.0, "thoracic": 5.0, "lumbar": 6.0}[kind]
    px = canal_rx + ped_w / 2 - 1.0
    parts = [body]
    for side in (-1.0, 1.0):
        parts.append(box(x, y, z, (side * px, 0.5 * (0.55 * b + cy), 0.12 * h),
                         (ped_w / 2, 0.5 * (cy - 0.55 * b), 0.3 * h)))
        # articular processes: superior rise above the body, inferior hang below it
        ax = side * (canal_rx + ped_w * 0.7)
        parts.append(capsule(x, y, z, (ax, cy + 1, 0.1 * h), (ax, cy + 3, 0.5 * h + 6), 3.5))
        parts.append(capsule(x, y, z, (ax * 0.85, cy + canal_ry, -0.1 * h), (ax * 0.85, cy + canal_ry + 3,
                                                                               -0.5 * h - 6), 3.5))
        tp = anatomy.transverse_mm[label]
        if kind == "lumbar":
            root = (side * (px + 2), 0.5 * (0.82 * b + cy), 0.1 * h)
            tip = (side * (px + 2 + tp), root[1] + 0.18 * tp, 0.1 * h)
            r = 6.0 if label == anatomy.last_lumbar else 3.5
            parts.append(capsule(x, y, z, root, tip, r))
            if label == anatomy.last_lumbar and side in anatomy.sacralization_sides:
                # a broad, fused transverse process reaching down into the sacral ala
                parts.append(box(x, y, z, (side * (a + 8), 0.3 * b, -0.5 * h - 4),
                                 (a * 0.5 + 8, 0.5 * b + 4, 0.5 * h + 8)))
        else:
            root = (side * (px + 1), cy, 0.05 * h)
            tip = (side * (px + 1 + 0.85 * tp), cy + 0.55 * tp, 0.0)
            parts.append(capsule(x, y, z, root, tip, 4.5 if kind == "thoracic" else 3.0))
    # laminae: the posterior half of a ring around the canal
    ring = np.maximum(np.maximum(ellipse(x, y, canal_rx + lam, canal_ry + lam, 0, cy), -canal),
                      np.maximum(cy - y, np.abs(z - 0.05 * h) - 0.38 * h))
    parts.append(ring)
    y0 = cy + canal_ry + lam * 0.6
    if kind == "lumbar":          # horizontal hatchet: thin, and taller at its free end
        length = 30.0 * anatomy.body_scale
        t = np.clip((y - y0) / length, 0, 1)
        parts.append(np.maximum(np.maximum(np.abs(x) - 3.5, np.abs(y - y0 - length / 2) - length / 2),
                                np.abs(z + 0.05 * h) - (0.25 * h + 5.0 * t)))
    else:                         # sloping down, steepest in the mid-thoracic spine
        length = (22.0 if kind == "cervical" else 40.0) * anatomy.body_scale
        angle = np.deg2rad(15.0 if kind == "cervical" else
                           float(np.interp(label if label != L.T13 else 19.5, [8, 13, 16, 19.5], [30, 62, 55, 25])))
        parts.append(capsule(x, y, z, (0, y0 - 2, 0.0), (0, y0 + length * np.cos(angle),
                                                        -length * np.sin(angle)), 4.0))
    bone = parts[0]
    for p in parts[1:]:
        bone = np.minimum(bone, p)
    bone = np.maximum(bone, -canal)
    return body, bone, canal, (canal_rx, canal_ry, cy)


def _local(x, y, z, pose: VertebraPose):
    c, R = pose.centre.astype(np.float32), pose.frame.astype(np.float32)
    dx, dy, dz = x - c[0], y - c[1], z - c[2]
    return (dx * R[0, 0] + dy * R[1, 0] + dz * R[2, 0], dx * R[0, 1] + dy * R[1, 1] + dz * R[2, 1],
            dx * R[0, 2] + dy * R[1, 2] + dz * R[2, 2])


def local_box(canvas: Canvas, pose: VertebraPose, lo, hi):
    """Voxel slices covering a box given in the vertebra's local frame (mm)."""
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    return canvas.box_of_points(pose.centre + corners @ pose.frame.T)


def _extent(anatomy: Anatomy, label: int):
    """Local-frame bounding box (lo, hi) of a whole vertebra, processes included (mm)."""
    a, b, h = anatomy.width_mm[label] / 2, anatomy.depth_mm[label] / 2, anatomy.height_mm[label]
    lateral = a + anatomy.transverse_mm[label] + 12.0
    if label == anatomy.last_lumbar and anatomy.sacralization_sides:
        lateral = max(lateral, 2 * a + 20)
    back = 0.82 * b + 2 * 8.0 + 8.0 + 45.0 * anatomy.body_scale
    drop = 40.0 * anatomy.body_scale if level_kind(label) == "thoracic" else 0.0
    below = h / 2 + 10.0 + drop + (h + 12 if anatomy.sacralization_sides else 0.0)
    return (-lateral, -b - 3.0, -below), (lateral, back, h / 2 + 10.0)


def paint_disc_and_canal(canvas: Canvas, anatomy: Anatomy, pose: VertebraPose) -> None:
    """Soft tissue that belongs to a level: the disc below the body, and the canal's CSF and cord."""
    lab = pose.label
    h, disc = anatomy.height_mm[lab], anatomy.disc_below_mm[lab]
    a, b = anatomy.width_mm[lab] / 2, anatomy.depth_mm[lab] / 2
    def field(x, y, z):
        lx, ly, lz = _local(x, y, z, pose)
        rx, ry = {"cervical": (11.0, 7.0), "thoracic": (8.0, 7.5), "lumbar": (11.0, 8.0)}[level_kind(lab)]
        cy = 0.82 * b + ry
        span = np.abs(lz + disc / 2) < h / 2 + disc / 2 + 1.0
        canal = (ellipse(lx, ly, rx, ry, 0, cy) < 0) & span
        cord = (ellipse(lx, ly, rx * 0.55, ry * 0.6, 0, cy) < 0) & span
        disc_mask = (ellipse(lx, ly, a * 0.97, b * 0.97) < 0) & (ly < 0.82 * b) & (
            np.abs(lz + h / 2 + disc / 2) < disc / 2 + 1.5)
        mask = canal | disc_mask
        hu = np.where(cord & (lab <= 21), CORD_HU, np.where(canal, CSF_HU, DISC_HU)).astype(np.float32)
        return mask, hu

    cy = 0.82 * b + 16.0
    canvas.paint_in(local_box(canvas, pose, (-a - 2, -b - 2, -h / 2 - disc - 3), (a + 2, cy + 2, h / 2 + 3)),
                    field)


def paint_vertebra(canvas: Canvas, anatomy: Anatomy, pose: VertebraPose, cortex_mm: float = CORTEX_MM,
                   cortical_hu: float = CORTICAL_HU) -> None:
    """Rasterise one vertebra: label `pose.label` in the vertebra map, HU from cortex and trabecular core.

    The cortical shell is rendered with partial volume (`render.partial_volume_bone_hu`): each surface
    voxel holds the share of shell, core and surrounding tissue (already painted) that it covers, the
    voxel's width being the cube root of its volume. So the brightest voxels of a vertebra depend on
    the voxel size as on a real scan (the real-CT chapter measured 709 HU at 0.7 x 0.7 x 2.5 mm and
    579 HU at 2 mm for the 95th percentile)."""
    lab = pose.label
    trabecular = anatomy.trabecular_hu[lab]
    voxel_mm = canvas.voxel_mm
    box = local_box(canvas, pose, *_extent(anatomy, lab))
    if box is None:
        return

    def field(x, y, z, outside_hu):
        lx, ly, lz = _local(x, y, z, pose)
        body, bone, _, _ = vertebra_parts(lx, ly, lz, anatomy, lab)
        mask = bone <= 0
        if not mask.any():
            return None
        # posterior elements are denser than the body's spongy core
        core = np.where(body <= 0, trabecular, trabecular + 120.0).astype(np.float32)
        hu = partial_volume_bone_hu(-bone, core, outside_hu, cortical_hu, cortex_mm, voxel_mm)
        return mask, hu, lab

    canvas.paint_in(box, field, with_hu=True)
