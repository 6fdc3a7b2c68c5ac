"""``vertebra label-spine SCAN --out DIR``: label every vertebra with the iterative instance method.

Writes ``DIR/spine_mask.nii.gz`` (VerSe labels on the input scan's grid) and ``DIR/levels.json``: per
vertebra, top to bottom, its label and name, centroid (world mm, x y z, LPS), craniocaudal range (world z,
mm), regressed level, and for L1 the confidence of the labelling under the bundle's ordering rule: the
log-likelihood margin of the L1 decision (Eq. 2: over the runner-up ordering; fix (e): over the best
labelling with L1 elsewhere) and the labelling's posterior share.

``--sacrum-log-prior LOGP`` (fix (e)'s monotone rule only, as in the packaged weights) adds the sacrum
state of `vertebra.instance.sacrum`: the walk's last pieces may be the top of the sacrum, labelled 26
("S") instead of being merged into L5. Off by default: it helps the plain walk's row and slightly hurts
fix (b)'s, whose weights are packaged (`results/instance_sacrum_summary.csv`).
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..errors import InputError
from ..io import read_scan, write_image
from ..results import write_json_atomic
from .pipeline import label_spine
from .sacrum import SACRUM_LOG_PRIOR, SacrumOrdering
from .weights import DEFAULT_WEIGHTS, load_bundle

log = logging.getLogger(__name__)


def cli_label_spine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scan", type=Path, help="CT scan: NIfTI/NRRD/MHA file, DICOM folder or VerSe case folder")
    parser.add_argument("--series-uid", default=None, help="which series, when a DICOM folder holds several")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--weights", type=Path, default=None,
                        help=f"instance model bundle (default: the packaged {DEFAULT_WEIGHTS.name})")
    parser.add_argument("--threshold", type=float, default=None, help="override the tuned output threshold")
    parser.add_argument("--mask-floor-hu", default=None, metavar="HU",
                        help="override the tuned density floor of the masks (HU; 'none': keep every voxel the "
                             "network segments, e.g. for vertebrae whose spongy bone lies below the floor)")
    parser.add_argument("--sacrum-log-prior", default="none", metavar="LOGP",
                        help="with a monotone-rule bundle (fix (e)), the log-prior (<= 0) of calling one of the "
                             f"walk's last pieces the sacrum (label 26), e.g. {SACRUM_LOG_PRIOR}; 'none' (default) "
                             "merges such a piece into L5, as the Table 2 rows do")


def cli_label_spine(args: argparse.Namespace) -> int:
    if args.threshold is not None and not 0 < args.threshold < 1:
        raise InputError(f"--threshold must lie strictly between 0 and 1, got {args.threshold}")
    floor = _mask_floor(args.mask_floor_hu)
    sacrum = _sacrum_log_prior(args.sacrum_log_prior)
    image = read_scan(args.scan, series_uid=args.series_uid)
    bundle = load_bundle(args.weights)
    if sacrum is not None and bundle.ordering.rule == "monotone":
        bundle.ordering = SacrumOrdering(bundle.ordering, sacrum)
    if args.mask_floor_hu is not None:
        bundle.mask_floor_hu = floor
    if args.threshold is not None:
        from dataclasses import replace
        bundle.traversal = replace(bundle.traversal, threshold=args.threshold)
    result = label_spine(bundle, image)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_image(result.mask, out / "spine_mask.nii.gz")
    write_json_atomic(out / "levels.json", {
        "scan": str(args.scan), "levels": result.levels,
        "l1": result.l1, "ordering": {"confidence_log_likelihood_margin": result.ordering.confidence
                                      if result.ordering.confidence != float("inf") else None,
                                      "posterior": result.ordering.posterior,
                                      "rule": bundle.ordering.to_dict()},
        "mask_floor_hu": bundle.mask_floor_hu,
        "network_passes": result.passes, "seconds": round(result.seconds, 2),
        "model": bundle.params})
    log.info("%d vertebrae labelled (L1 %s); wrote %s", len(result.levels),
             "found" if result.l1 else "not found", out)
    return 0


def _number_or_none(value: str | None, option: str, what: str) -> float | None:
    """An option that takes a number or "none" (None); anything else is bad input naming ``option``."""
    if value is None or value.strip().lower() == "none":
        return None
    try:
        return float(value)
    except ValueError:
        raise InputError(f"{option} must be {what} or 'none', got {value!r}") from None


def _mask_floor(value: str | None) -> float | None:
    """``--mask-floor-hu``: a number of HU, or "none"."""
    return _number_or_none(value, "--mask-floor-hu", "a number of HU")


def _sacrum_log_prior(value: str | None) -> float | None:
    """``--sacrum-log-prior``: a log-prior <= 0, or "none"."""
    prior = _number_or_none(value, "--sacrum-log-prior", "a number <= 0")
    if prior is not None and not prior <= 0:
        raise InputError(f"--sacrum-log-prior must be <= 0 (a log-probability), got {value!r}")
    return prior
