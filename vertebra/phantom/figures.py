"""Figures of synthetic scans: axial, sagittal and coronal views through a chosen vertebra.

Display conventions are the radiological ones: axial images seen from the feet (patient's right on the
left of the image, anterior up for a supine scan; a prone scan shows the spine at the top as stored),
sagittal with anterior on the left, coronal with the patient's right on the left, head up.
Soft-tissue window W400/L40 unless a bone window is asked for.
"""
from __future__ import annotations

import numpy as np

from .. import labels as L
from .case import PhantomCase

SOFT_WINDOW = (-160.0, 240.0)
BONE_WINDOW = (-450.0, 1050.0)


def _through(case: PhantomCase, label: int) -> tuple[int, int, int]:
    present = sorted(case.centroids_mm, key=L.rank)
    if label not in case.centroids_mm:
        label = present[len(present) // 2]
    k, j, i = np.round(case.image.world_to_index([case.centroids_mm[label]])[0]).astype(int)
    shape = case.image.array.shape
    return (int(np.clip(k, 0, shape[0] - 1)), int(np.clip(j, 0, shape[1] - 1)), int(np.clip(i, 0, shape[2] - 1)))


def three_views(case: PhantomCase, axes, label: int = L.L1, window=SOFT_WINDOW, outline: bool = True,
                title: str | None = None) -> None:
    """Draw axial (through `label`), sagittal and coronal views of `case` on three matplotlib axes;
    with `outline`, the true L1 is outlined in the sagittal and coronal views."""
    ct, vert = case.image.array, case.vertebrae.array
    sz, sy, sx = case.image.spacing_zyx
    k, j, i = _through(case, label)
    flip_lr = case.image.geometry.direction[0] > 0      # show the patient's right on the left
    views = [
        (ct[k], vert[k] == L.L1, 1.0, "axial", False),
        (ct[:, :, i], vert[:, :, i] == L.L1, sz / sy, "sagittal", True),
        (ct[:, j, :], vert[:, j, :] == L.L1, sz / sx, "coronal", True),
    ]
    for ax, (img, l1, aspect, name, lower) in zip(axes, views):
        if name == "coronal" and not flip_lr:
            img, l1 = img[:, ::-1], l1[:, ::-1]
        if name == "sagittal" and case.image.geometry.direction[4] < 0:
            img, l1 = img[:, ::-1], l1[:, ::-1]      # anterior on the left for prone scans too
        ax.imshow(img, cmap="gray", vmin=window[0], vmax=window[1], aspect=aspect,
                  origin="lower" if lower else "upper", interpolation="bilinear")
        if outline and lower and l1.any():
            ax.contour(l1, levels=[0.5], colors="orange", linewidths=0.8, origin="lower")
        ax.set_axis_off()
        ax.set_title(name if title is None else f"{title}: {name}", fontsize=9)
