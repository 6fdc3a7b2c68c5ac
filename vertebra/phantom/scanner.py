"""What the scanner does to the ideal image: point spread, metal streaks, noise, integer HU.

Order as in a real acquisition: the object is blurred by the point spread function and the slice
profile, metal adds streaks along the projection lines through it (dark and bright bands radiating
from the implant in each axial slice), and quantum noise, mildly correlated as after a standard
reconstruction kernel, is added last. The result is clipped to the usual stored range -1024..3071 HU.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

METAL_HU = 3000.0
HU_RANGE = (-1024, 3071)


def blur(hu: np.ndarray, spacing_zyx, inplane_fwhm_mm: float, slice_thickness_mm: float) -> np.ndarray:
    """Gaussian PSF in-plane and a Gaussian slice profile (FWHM = thickness) along z, in place."""
    fwhm = (slice_thickness_mm, inplane_fwhm_mm, inplane_fwhm_mm)
    for axis, (f, s) in enumerate(zip(fwhm, spacing_zyx)):
        # the render grid already averages over one voxel; blur only the remainder
        sigma = np.sqrt(max(f ** 2 - (0.6 * s) ** 2, 0.0)) / 2.3548 / s
        if sigma > 0.25:
            ndimage.gaussian_filter1d(hu, sigma, axis=axis, output=hu, mode="nearest", truncate=3.0)
    return hu


def metal_streaks(hu: np.ndarray, spacing_zyx, rng: np.random.Generator, threshold_hu: float = 2500.0,
                  n_lines: int = 14) -> int:
    """Add streaks in every axial slice that holds metal; returns the number of such slices."""
    slices = np.flatnonzero((hu >= threshold_hu).any(axis=(1, 2)))
    if len(slices) == 0:
        return 0
    ny, nx = hu.shape[1:]
    sy, sx = spacing_zyx[1], spacing_zyx[2]
    yy = (np.arange(ny, dtype=np.float32) * sy)[:, None]
    xx = (np.arange(nx, dtype=np.float32) * sx)[None, :]
    angles = rng.uniform(0, np.pi, n_lines)
    signs = np.where(rng.random(n_lines) < 0.65, -1.0, 1.0)
    for k in slices:
        j, i = np.nonzero(hu[k] >= threshold_hu)
        cy, cx = j.mean() * sy, i.mean() * sx
        amount = min(1.0, len(j) * sx * sy / 150.0)          # more metal, stronger streaks
        streak = np.zeros((ny, nx), np.float32)
        for a, s in zip(angles, signs):
            perp = (xx - cx) * np.sin(a) - (yy - cy) * np.cos(a)
            along = np.hypot(xx - cx, yy - cy)
            streak += s * 450.0 * amount * np.exp(-perp ** 2 / 8.0) * np.exp(-along / 120.0)
        hu[k] += streak
    return len(slices)


def add_noise(hu: np.ndarray, sigma_hu: float, rng: np.random.Generator) -> np.ndarray:
    """Add noise of standard deviation `sigma_hu`, correlated in-plane over about a voxel, in place."""
    noise = rng.standard_normal(hu.shape, dtype=np.float32)
    for axis in (1, 2):
        ndimage.uniform_filter1d(noise, 2, axis=axis, output=noise, mode="nearest")
    hu += noise * np.float32(sigma_hu * 2.0)    # two box passes of width 2 halve the std
    return hu


def to_int16_hu(hu: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(hu), *HU_RANGE).astype(np.int16)
