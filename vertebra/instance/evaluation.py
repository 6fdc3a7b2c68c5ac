"""Scoring the labelled spine on test scans: the Table 2 measures, the VerSe id rate, per anomaly stratum.

Per case (`evaluate_case`): the L1 decision (`vertebra.metrics.score_l1`: correct, craniocaudal error in
mm, shift), the mean per-vertebra Dice over the true vertebrae (sacrum excluded; a true vertebra with no
predicted counterpart scores 0), the same over the vertebrae the scan shows whole (``dice_complete``:
slivers cut by the scan's first or last slice left out) and, label-free, each whole vertebra against
the piece that matches it best (``match_dice_complete``: how good the masks are, whatever their
labels), the VerSe identification rate, and the cost (network passes per vertebra found, traversal
and network seconds).

Strata (`summarise_by_stratum`): every anomaly named in a case's meta ("lumbarization", "t13",
"rudimentary_12th_rib", ...) is a stratum, plus "none" for cases without any, plus "all"; a case with two
anomalies counts in both.
"""
from __future__ import annotations

import math

import numpy as np

from ..metrics import dice, identification_rate, score_l1, summarise
from .levels import is_target
from .pipeline import SpineLabelling, label_spine
from .weights import InstanceBundle


def complete_labels(truth: np.ndarray, labels=None) -> list[int]:
    """The target labels of ``truth`` (or those of ``labels``) whose mask touches no face of the array:
    the vertebrae the scan shows whole (a vertebra cut by the scan's first or last slice is a sliver the
    walk may merge with its neighbour or leave out)."""
    labels = set(_target_labels(truth, labels))
    for axis in range(truth.ndim):
        for index in (0, -1):
            labels -= set(int(v) for v in np.unique(np.take(truth, index, axis=axis)))
    return sorted(labels)


def _target_labels(truth: np.ndarray, labels) -> list[int]:
    return [int(v) for v in np.unique(truth) if v and is_target(int(v))] if labels is None else list(labels)


def per_vertebra_dice(pred: np.ndarray, truth: np.ndarray, labels=None) -> float:
    """Mean Dice over the target labels of ``truth`` (or the given ``labels``; NaN when there are none)."""
    labels = _target_labels(truth, labels)
    if not labels:
        return math.nan
    return float(np.mean([dice(pred == lab, truth == lab) for lab in labels]))


def best_match_dice(instances: np.ndarray, truth: np.ndarray, labels=None) -> float:
    """Label-free walk quality: each target vertebra of ``truth`` (or each of ``labels``) scored by its
    Dice with the piece of ``instances`` (0 = background, any positive id) that matches it best,
    whatever that piece's label; 0 for a vertebra no piece touches; the mean over the vertebrae (NaN
    when there are none)."""
    labels = _target_labels(truth, labels)
    if not labels:
        return math.nan
    n_pieces = int(instances.max()) + 1
    pair = np.bincount(truth.astype(np.int64).ravel() * n_pieces + instances.astype(np.int64).ravel(),
                       minlength=256 * n_pieces).reshape(256, n_pieces)
    piece_sizes = pair.sum(0)
    scores = []
    for lab in labels:
        overlap = pair[lab, 1:]
        scores.append(float((2 * overlap / (pair[lab].sum() + piece_sizes[1:])).max(initial=0.0)))
    return float(np.mean(scores))


def evaluate_case(bundle: InstanceBundle, case) -> dict:
    """Label one `vertebra.io.VerseCase` and score it against its truth (see module docstring)."""
    return score_labelling(case, label_spine(bundle, case.image))


def score_labelling(case, result: SpineLabelling) -> dict:
    """The per-case record of a `label_spine` result against the truth of ``case`` (a `VerseCase`)."""
    l1 = result.l1
    record = score_l1(case.case_id, None if l1 is None else l1["centroid_mm"], case.centroids_mm)
    truth_targets = {k: v for k, v in case.centroids_mm.items() if is_target(k)}
    n_found = len(result.levels)
    record.update({
        "protocol": case.meta.get("protocol", ""),
        "anomalies": ";".join(case.meta.get("anomalies", [])),
        "n_true": len(truth_targets), "n_found": n_found,
        **_mask_dice(result.mask.array, case.vertebrae),
        "id_rate": identification_rate(result.centroids_mm, truth_targets),
        "passes": result.passes,
        "passes_per_vertebra": result.passes / n_found if n_found else math.nan,
        "seconds": round(result.seconds, 3), "network_seconds": round(result.network_seconds, 3),
        "l1_confidence": None if l1 is None else l1["confidence"]["log_likelihood_margin"],
        "stop": "/".join(t.stop_reason for t in result.traversals),
    })
    return record


def _mask_dice(pred: np.ndarray, truth) -> dict:
    """Dice over every target vertebra (``dice``) and over those the scan shows whole: labelled
    (``dice_complete``) and label-free (``match_dice_complete``, each vertebra against its best-matching
    piece: the masks' own quality)."""
    if truth is None:
        return {"dice": math.nan, "n_complete": 0, "dice_complete": math.nan, "match_dice_complete": math.nan}
    targets = _target_labels(truth.array, None)
    complete = complete_labels(truth.array, targets)
    return {"dice": per_vertebra_dice(pred, truth.array, targets), "n_complete": len(complete),
            "dice_complete": per_vertebra_dice(pred, truth.array, complete),
            "match_dice_complete": best_match_dice(pred, truth.array, complete)}


def _mean(values) -> float:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(vals)) if vals else math.nan


def summarise_instance(records: list[dict]) -> dict:
    """`vertebra.metrics.summarise` plus the instance method's own means (Dice, id rate, passes)."""
    out = summarise(records)
    out.update({"dice": _mean(r["dice"] for r in records), "id_rate": _mean(r["id_rate"] for r in records),
                "dice_complete": _mean(r.get("dice_complete") for r in records),
                "match_dice_complete": _mean(r.get("match_dice_complete") for r in records),
                "passes_per_vertebra": _mean(r["passes_per_vertebra"] for r in records)})
    return out


def summarise_by_stratum(records: list[dict]) -> dict[str, dict]:
    """{stratum: summary} for "all", "none" and every anomaly that occurs (see module docstring)."""
    strata: dict[str, list[dict]] = {"all": list(records)}
    for r in records:
        names = [a for a in r.get("anomalies", "").split(";") if a] or ["none"]
        for a in names:
            strata.setdefault(a, []).append(r)
    return {k: summarise_instance(v) for k, v in strata.items()}
