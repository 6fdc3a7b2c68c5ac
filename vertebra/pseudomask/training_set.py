"""The `pseudo` training set: every scan of a cohort through the tool, aligned so that 20 = L1
(paper §2.1: 257 scans, 225 CTC + 32 lymph-node CT), cached outside git.

`training_labels(case_dir)` is what a training loop calls: the aligned label map of one case,
computed on first use and then read from ``cache_dir()/pseudomask/v<TOOL_VERSION>/``. The cache key
is a hash of the CT file and of the L1 point, so a regenerated scan is never served stale labels.
`build_training_set` runs a whole cohort (resumable: finished cases are skipped) and writes a
manifest (JSON) with one entry per case.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..cache import cache_dir
from ..errors import InputError
from ..image import Volume
from ..io import read_image, write_image
from .alignment import align_to_l1, l1_segment
from .bmd import trabecular_bmd_hu
from .cases import case_id_of, case_meta, ct_path
from .pipeline import TOOL_VERSION, segment_spine

log = logging.getLogger(__name__)


def _cache_paths(case_dir: Path, cache) -> tuple[Path, Path, list]:
    ct = ct_path(case_dir)
    meta = case_meta(case_dir)
    l1 = meta.get("l1_centroid_mm")
    if l1 is None:
        raise InputError("meta has no 'l1_centroid_mm' (the L1 level the alignment needs)", case_dir)
    digest = hashlib.sha1(ct.read_bytes())
    digest.update(json.dumps([round(float(c), 3) for c in l1]).encode())
    root = cache_dir(cache) / "pseudomask" / f"v{TOOL_VERSION}"
    stem = f"{case_id_of(ct)}-{digest.hexdigest()[:12]}"
    return root / f"{stem}_pseudo-vert_msk.nii.gz", root / f"{stem}_pseudomask.json", l1


def pseudo_case(case_dir: str | Path, cache=None) -> tuple[Volume, dict]:
    """The aligned label map of one case and its summary (tool timings, segments, L1 match)."""
    case_dir = Path(case_dir)
    labels_path, summary_path, l1 = _cache_paths(case_dir, cache)
    if labels_path.exists() and summary_path.exists():
        return read_image(labels_path, kind="labels"), json.loads(summary_path.read_text(encoding="utf-8"))
    from ..results import write_json_atomic
    image = read_image(ct_path(case_dir), kind="ct")
    started = time.perf_counter()
    result = segment_spine(image)
    seconds = time.perf_counter() - started
    bmd, bmd_voxels = float("nan"), 0
    if result.n_vertebrae == 0:
        aligned, anchor, dist = result.labels, None, None
    else:
        anchor, dist = l1_segment(result.labels, l1)
        aligned = align_to_l1(result.labels, l1)
        bmd, bmd_voxels = trabecular_bmd_hu(result.canonical.array, result.watershed.after == anchor,
                                            result.straightened.frame)
    write_image(aligned, labels_path)
    summary = {"case_id": case_id_of(ct_path(case_dir)), "case_dir": str(case_dir), "seconds": round(seconds, 3),
               "n_segments": result.n_vertebrae, "l1_segment": anchor,
               "l1_distance_mm": None if dist is None else round(dist, 2),
               "bmd_estimate_hu": None if np.isnan(bmd) else round(bmd, 1), "bmd_voxels": bmd_voxels,
               "timings_s": result.timings_s, "tool_version": TOOL_VERSION,
               "labels": str(labels_path.name)}
    write_json_atomic(summary_path, summary)
    return aligned, summary


def training_labels(case_dir: str | Path, cache=None) -> Volume:
    """The pseudo-mask label map of a case in VerSe numbering (20 = L1), cached after the first call."""
    return pseudo_case(case_dir, cache)[0]


def build_training_set(cohort: str = "pseudo", spacing_mm: float = 2.0, n: int | None = None,
                       cache=None, seed: int = 0) -> Path:
    """Run the tool on every case of `cohort` (generated into the cache if missing); returns the
    manifest path. Cases already done are read back, not recomputed."""
    from ..phantom import cohort as make_cohort
    from ..results import write_json_atomic
    cases = make_cohort(cohort, spacing_mm=spacing_mm, n=n, seed=seed, cache=cache)
    entries = []
    for case_dir in tqdm(cases, desc=f"pseudo-masks ({cohort})", unit="scan"):
        try:
            aligned, summary = pseudo_case(case_dir, cache)
            entries.append({**summary, "labels_present": sorted(int(v) for v in np.unique(aligned.array) if v)})
        except InputError as exc:
            log.warning("%s: %s", case_dir, exc)
            entries.append({"case_dir": str(case_dir), "error": str(exc)})
    manifest = cache_dir(cache) / "pseudomask" / f"v{TOOL_VERSION}" / f"{cohort}_{spacing_mm:g}mm_manifest.json"
    write_json_atomic(manifest, {"cohort": cohort, "spacing_mm": spacing_mm, "n": len(cases), "seed": seed,
                                 "tool_version": TOOL_VERSION, "cases": entries})
    return manifest
