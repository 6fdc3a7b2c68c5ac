"""The experiments as data: the scales (smoke / quick / paper) and the rows of Table 2.

A *scale* fixes every size that depends on the compute at hand; a *row* fixes what the paper varied
(classes, number of training scans, augmented copies, label source). A run is one row at one scale
with one seed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Scale:
    """Sizes that depend on the compute at hand. The `paper` scale holds the paper's values."""

    name: str
    #: voxel size at which the cohorts are generated (mm, isotropic in-plane; slices may be thicker)
    phantom_spacing_mm: float
    #: cohort name → number of scans (the paper's counts at quick and paper scale)
    cohort_sizes: dict = field(default_factory=dict)
    #: direct U-Net input grid (z, y, x) voxels; the paper resamples the whole scan to 192x128x128
    direct_shape_zyx: tuple[int, int, int] = (192, 128, 128)
    direct_features: int = 16
    direct_iterations: int = 100_000
    direct_batch: int = 4
    #: instance segmentation: isotropic spacing (mm) and cubic patch edge (voxels)
    instance_spacing_mm: float = 1.0
    instance_patch: int = 128
    instance_features: int = 16
    instance_iterations: int = 50_000
    instance_batch: int = 6
    #: stride (voxels) of the x-y search when the first box holds too little bone (paper: 64)
    instance_scan_stride: int = 64

    def to_dict(self) -> dict:
        return asdict(self)


_PAPER_COHORTS = {"hand": 52, "pseudo": 257, "instance": 62, "ctc_test": 40, "anomaly_test": 8}

SCALES: dict[str, Scale] = {
    "smoke": Scale(
        name="smoke", phantom_spacing_mm=4.0,
        cohort_sizes={"hand": 6, "pseudo": 6, "instance": 4, "ctc_test": 4, "anomaly_test": 1},
        direct_shape_zyx=(48, 32, 32), direct_features=4, direct_iterations=6, direct_batch=2,
        instance_spacing_mm=4.0, instance_patch=32, instance_features=4, instance_iterations=6,
        instance_batch=2, instance_scan_stride=16),
    "quick": Scale(
        name="quick", phantom_spacing_mm=2.0, cohort_sizes=dict(_PAPER_COHORTS),
        direct_shape_zyx=(96, 64, 64), direct_features=8, direct_iterations=600, direct_batch=2,
        instance_spacing_mm=2.0, instance_patch=64, instance_features=8, instance_iterations=800,
        instance_batch=2, instance_scan_stride=32),
    "paper": Scale(
        name="paper", phantom_spacing_mm=1.0, cohort_sizes=dict(_PAPER_COHORTS)),
}


def get_scale(name: str) -> Scale:
    try:
        return SCALES[name]
    except KeyError:
        raise ValueError(f"unknown scale {name!r}; choose one of {sorted(SCALES)}") from None
