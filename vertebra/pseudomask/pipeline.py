"""The whole classical tool on one CT: canal → centreline → curved reformation → density profile
→ seeded watershed and oversegment merge (paper §2.1). CT in, numbered vertebra segments out; it
never looks at a label file.

    >>> from vertebra.pseudomask import segment_spine          # doctest: +SKIP
    >>> result = segment_spine(volume)                          # doctest: +SKIP
    >>> result.labels.array.max(), result.timings_s             # doctest: +SKIP

Command line: ``vertebra pseudomask SCAN --out DIR [--l1-mm X Y Z]`` (SCAN: an image file, a DICOM
folder or a VerSe case folder, of which only the CT is read).
"""
from __future__ import annotations

import argparse
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..image import Volume
from ..io import from_canonical, read_image, to_canonical, write_image
from .canal import CanalConfig, CanalCandidates, detect_canal, smooth_in_plane
from .centreline import Centreline, CentrelineConfig, fit_centreline
from .profile import DensityProfile, ProfileConfig, density_profile
from .reformat import ReformatConfig, Straightened, straighten
from .watershed import WatershedConfig, WatershedResult, segment_vertebrae

log = logging.getLogger(__name__)

#: bump when the tool's output changes, so cached pseudo-masks are recomputed
TOOL_VERSION = "4"


@dataclass(frozen=True)
class PseudoMaskConfig:
    canal: CanalConfig = CanalConfig()
    centreline: CentrelineConfig = CentrelineConfig()
    reformat: ReformatConfig = ReformatConfig()
    profile: ProfileConfig = ProfileConfig()
    watershed: WatershedConfig = WatershedConfig()

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PseudoMaskResult:
    """Vertebra segments numbered 1..N craniocaudally on the input's grid, and every stage's output.

    `canonical` is the scan reoriented to LPS (the grid the stages worked on); `centreline`,
    `straightened`, `profile` and `watershed` refer to that grid. World coordinates are (x, y, z) mm.
    """

    labels: Volume
    canonical: Volume
    candidates: CanalCandidates
    centreline: Centreline
    straightened: Straightened
    profile: DensityProfile
    watershed: WatershedResult
    timings_s: dict = field(default_factory=dict)

    @property
    def n_vertebrae(self) -> int:
        return int(self.labels.array.max())

    def centreline_world_mm(self) -> np.ndarray:
        return self.centreline.to_world(self.canonical)

    def discs_world_mm(self) -> np.ndarray:
        """(D, 3) world points where the centreline crosses each disc."""
        f = self.straightened.frame
        idx = f.to_index(self.profile.discs_mm, 0.0, 0.0) / 1.0
        return self.canonical.index_to_world(idx) if len(idx) else np.zeros((0, 3))

    def summary(self) -> dict:
        return {"n_vertebrae": self.n_vertebrae, "timings_s": self.timings_s,
                "centreline_world_mm": self.centreline_world_mm().round(2).tolist(),
                "discs_world_mm": self.discs_world_mm().round(2).tolist(), "tool_version": TOOL_VERSION}


def bridge_missing_slices(array_zyx: np.ndarray, blank_hu: float = -900.0) -> np.ndarray:
    """Replace blank axial slices (missing data: nothing above `blank_hu`) by the nearest real slice,
    so that a gap in the series is not read as a disc. Returns `array_zyx` itself when none is blank."""
    blank = array_zyx.reshape(len(array_zyx), -1).max(axis=1) < blank_hu
    if not blank.any() or blank.all():
        return array_zyx
    real = np.flatnonzero(~blank)
    nearest = real[np.abs(np.arange(len(array_zyx))[:, None] - real[None, :]).argmin(axis=1)]
    log.info("%d blank slices bridged", int(blank.sum()))
    return array_zyx[nearest]


def segment_spine(image: Volume, config: PseudoMaskConfig = PseudoMaskConfig()) -> PseudoMaskResult:
    """Segment and number the vertebrae of a CT (HU) with the classical pipeline (§2.1)."""
    timings = {}
    t0 = time.perf_counter()

    def lap(name):
        nonlocal t0
        now = time.perf_counter()
        timings[name] = round(now - t0, 3)
        t0 = now

    canon, how = to_canonical(image)
    canon = canon.with_array(bridge_missing_slices(canon.array))
    smoothed = smooth_in_plane(canon, config.canal.smooth_mm)
    lap("smooth")
    candidates = detect_canal(canon, config.canal, smoothed)
    lap("canal")
    centreline = fit_centreline(candidates, canon.array.shape, canon.spacing_zyx, config.centreline)
    lap("centreline")
    straight = straighten(smoothed, centreline, config.reformat)
    lap("reformat")
    profile = density_profile(straight, config.profile)
    lap("profile")
    ws = segment_vertebrae(smoothed, straight.frame, profile, config.watershed)
    lap("watershed")
    labels = from_canonical(Volume(ws.after, canon.geometry), how)
    lap("output")
    timings["total"] = round(sum(timings.values()), 3)
    return PseudoMaskResult(labels, canon, candidates, centreline, straight, profile, ws, timings)


def cli_pseudomask_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scan", type=Path, help="CT image file, DICOM folder or VerSe case folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--l1-mm", type=float, nargs=3, metavar=("X", "Y", "Z"),
                        help="world point (mm, LPS) inside L1, read by a person: also write labels "
                             "aligned to VerSe numbering (20 = L1)")


def cli_pseudomask(args: argparse.Namespace) -> int:
    from ..results import write_json_atomic
    from .alignment import align_to_l1
    from .cases import ct_path

    path = ct_path(args.scan)
    image = read_image(path, kind="ct")
    result = segment_spine(image)
    stem = path.name.split(".")[0].removesuffix("_ct")
    out = Path(args.out)
    write_image(result.labels, out / f"{stem}_pseudo-seg_msk.nii.gz")
    summary = result.summary()
    if args.l1_mm is not None:
        aligned = align_to_l1(result.labels, args.l1_mm)
        write_image(aligned, out / f"{stem}_pseudo-vert_msk.nii.gz")
        summary["l1_mm"] = list(args.l1_mm)
    write_json_atomic(out / f"{stem}_pseudomask.json", summary)
    print(f"{result.n_vertebrae} vertebrae in {result.timings_s['total']:.1f} s → {out}")
    return 0
