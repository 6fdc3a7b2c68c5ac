"""Scanner sites: what the machine, the reconstruction and the local patient population add.

A `Site` holds ranges; `sample_site` draws one scan's settings from them. The training sites resemble
the paper's sources (a CTC site, the lymph-node CT collection, spine CT as in VerSe). The test site,
like the paper's 40 test scans from another hospital, lies outside every training site's range in four
ways: thicker slices, more noise, more tagged fluid and denser tagging. The training sites' noise
reaches down to 5 HU (generator version 2): a modern scanner's image measured 8.5 HU in fat at the
cohort's 2 mm voxels (the book's real-scan chapter), below version 1's floor of 10-15 HU.

Rendering at a cohort spacing S: in-plane voxels are S mm and slices max(S, slice thickness) mm; the
site's own in-plane spacing is recorded, not rendered. Blur is the scanner's point spread (in-plane
FWHM) and the slice profile (FWHM = slice thickness).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Site:
    name: str
    inplane_spacing_mm: tuple[float, float] = (0.6, 0.9)
    slice_thickness_mm: tuple[float, float] = (1.0, 1.25)
    psf_fwhm_mm: tuple[float, float] = (0.9, 1.3)
    noise_hu: tuple[float, float] = (12.0, 30.0)
    tagged_fill: tuple[float, float] = (0.05, 0.3)
    tagged_hu: tuple[float, float] = (300.0, 800.0)
    fat_mm: tuple[float, float] = (8.0, 35.0)
    fov_margin_mm: tuple[float, float] = (15.0, 50.0)


SITES: dict[str, Site] = {
    # CT colonography, training (the paper's Naval Medical Center scans)
    "ctc_train": Site("ctc_train", slice_thickness_mm=(1.0, 1.25), noise_hu=(5.0, 30.0)),
    # chest-abdomen-pelvis with IV contrast (the TCIA lymph-node collection)
    "cap_train": Site("cap_train", slice_thickness_mm=(1.0, 2.0), noise_hu=(5.0, 25.0),
                      tagged_fill=(0.0, 0.0), tagged_hu=(0.0, 0.0)),
    # spine CT (VerSe-like, several scanners)
    "spine_train": Site("spine_train", inplane_spacing_mm=(0.3, 0.9), slice_thickness_mm=(0.75, 3.0),
                        psf_fwhm_mm=(0.7, 1.2), noise_hu=(5.0, 30.0), tagged_fill=(0.0, 0.0),
                        tagged_hu=(0.0, 0.0)),
    # CTC from another hospital: outside the training ranges in slice thickness, noise and tagging
    "ctc_test": Site("ctc_test", inplane_spacing_mm=(0.7, 0.9), slice_thickness_mm=(3.2, 5.0),
                     psf_fwhm_mm=(1.2, 1.6), noise_hu=(35.0, 50.0), tagged_fill=(0.32, 0.6),
                     tagged_hu=(820.0, 1200.0), fat_mm=(10.0, 45.0)),
}
TRAINING_SITES = ("ctc_train", "cap_train", "spine_train")


def sample_site(site: Site, rng: np.random.Generator) -> dict:
    """One scan's settings drawn uniformly from the site's ranges (recorded in the case's meta)."""
    draw = lambda lo_hi: float(rng.uniform(*lo_hi))  # noqa: E731
    return {"name": site.name, "inplane_spacing_mm": draw(site.inplane_spacing_mm),
            "slice_thickness_mm": draw(site.slice_thickness_mm), "psf_fwhm_mm": draw(site.psf_fwhm_mm),
            "noise_hu": draw(site.noise_hu), "tagged_fill": draw(site.tagged_fill),
            "tagged_hu": draw(site.tagged_hu), "fat_mm": draw(site.fat_mm),
            "fov_margin_mm": draw(site.fov_margin_mm)}


def outside_training(site: Site) -> list[str]:
    """Settings in which `site` lies entirely outside the union of the training sites' ranges."""
    out = []
    for key, value in asdict(site).items():
        if key == "name":
            continue
        lo = min(asdict(SITES[s])[key][0] for s in TRAINING_SITES)
        hi = max(asdict(SITES[s])[key][1] for s in TRAINING_SITES)
        if value[0] > hi or value[1] < lo:
            out.append(key)
    return out
