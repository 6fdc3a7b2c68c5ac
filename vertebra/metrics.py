"""How a predicted L1 (or a labelled spine) is scored: the measures of Table 2 and of VerSe.

Points are world coordinates (x, y, z) in mm, LPS; craniocaudal is world z. Truth centroids are
``{VerSe label: (x, y, z)}`` as `vertebra.io.read_verse_case` returns them.

* ``dice`` — the DICE_val column of Table 2 (overlap of two masks).
* ``l1_correct`` — the "L1 acc." column: is the predicted L1 nearer to the true L1 than to any other vertebra?
* ``craniocaudal_error_mm`` — the "avg/med err" columns: |Δz| between predicted and true L1 centroids.
* ``shift`` — the failure modes of §3.1: L1 "shifted up" to T12 (-1) or "down" to L2 (+1).
* ``identification_rate`` — the VerSe challenge's id rate for a whole labelled spine (instance method).

>>> truth = {19: (0, 0, 40.0), 20: (0, 0, 0.0), 21: (0, 0, -35.0)}
>>> l1_correct((1, 2, 5.0), truth), shift((0, 0, 30.0), truth), craniocaudal_error_mm((0, 0, 5.0), truth[20])
(True, -1, 5.0)
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from .labels import L1, rank

Point = Sequence[float]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient 2|A∩B| / (|A|+|B|) of two masks (non-zero = inside); 1.0 when both are empty."""
    a, b = np.asarray(a) != 0, np.asarray(b) != 0
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} vs {b.shape}")
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def closest_label(point_mm: Point, centroids_mm: dict) -> int:
    """The label whose centroid is nearest (Euclidean, mm) to ``point_mm``; ties go to the smaller label."""
    if not centroids_mm:
        raise ValueError("no centroids to compare with")
    p = np.asarray(point_mm, dtype=float)
    return min(sorted(centroids_mm), key=lambda lab: float(np.linalg.norm(np.asarray(centroids_mm[lab]) - p)))


def l1_correct(pred_centroid_mm: Point | None, truth_centroids_mm: dict) -> bool:
    """Whether the predicted L1 is the true L1.

    Definition: the prediction is correct when, among all true vertebra centroids, the one closest to
    the predicted L1 centroid is L1 (label 20). A scan in which no L1 was found (``None``) is wrong.
    """
    if pred_centroid_mm is None or L1 not in truth_centroids_mm:
        return False
    return closest_label(pred_centroid_mm, truth_centroids_mm) == L1


def craniocaudal_error_mm(pred_centroid_mm: Point | None, truth_l1_centroid_mm: Point) -> float:
    """|z_pred - z_true| in world mm (the paper's "error" of Table 2); NaN when no L1 was found."""
    if pred_centroid_mm is None:
        return math.nan
    return abs(float(pred_centroid_mm[2]) - float(truth_l1_centroid_mm[2]))


def shift(pred_centroid_mm: Point | None, truth_centroids_mm: dict) -> int | str:
    """Which vertebra the prediction landed on, relative to L1 along the spine (§3.1).

    0 = L1; -1 = one vertebra up (T12, or T13 when present: "shifted up"); +1 = one down (L2,
    "shifted down"); "other" for anything further away or when no L1 was found.
    """
    if pred_centroid_mm is None or L1 not in truth_centroids_mm:
        return "other"
    present = sorted(truth_centroids_mm, key=rank)
    offset = present.index(closest_label(pred_centroid_mm, truth_centroids_mm)) - present.index(L1)
    return offset if offset in (-1, 0, 1) else "other"


def identification_rate(pred_centroids_mm: dict, truth_centroids_mm: dict, max_dist_mm: float = 20.0) -> float:
    """VerSe identification rate: correctly identified vertebrae / true vertebrae.

    A predicted vertebra is correctly identified when the true centroid closest to it carries the same
    label and lies less than ``max_dist_mm`` away (VerSe uses 20 mm). NaN when the truth is empty.
    """
    if not truth_centroids_mm:
        return math.nan
    hits = 0
    for lab, p in pred_centroids_mm.items():
        near = closest_label(p, truth_centroids_mm)
        if near == lab and np.linalg.norm(np.asarray(truth_centroids_mm[near], float) - np.asarray(p, float)) \
                < max_dist_mm:
            hits += 1
    return hits / len(truth_centroids_mm)


def score_l1(case_id: str, pred_centroid_mm: Point | None, truth_centroids_mm: dict) -> dict:
    """One per-case record for `summarise`: found, correct, error (mm), shift, closest true label."""
    found = pred_centroid_mm is not None
    return {"case_id": case_id, "l1_found": found,
            "l1_correct": l1_correct(pred_centroid_mm, truth_centroids_mm),
            "cc_error_mm": craniocaudal_error_mm(pred_centroid_mm, truth_centroids_mm[L1])
            if L1 in truth_centroids_mm else math.nan,
            "shift": shift(pred_centroid_mm, truth_centroids_mm),
            "closest_label": closest_label(pred_centroid_mm, truth_centroids_mm) if found else None}


def summarise(records: Iterable[dict]) -> dict:
    """Table 2 numbers from per-case records (as `score_l1` makes them).

    Accuracy counts scans without a found L1 as wrong; the errors (mean, median, mm) are over the scans
    where an L1 was found, and the scans without one are listed in ``missing_cases``.
    """
    records = list(records)
    n = len(records)
    errors = np.array([r["cc_error_mm"] for r in records
                       if r.get("l1_found") and not math.isnan(r["cc_error_mm"])])
    shifts = [r.get("shift", "other") for r in records]
    out = {
        "n": n,
        "l1_acc": sum(bool(r["l1_correct"]) for r in records) / n if n else math.nan,
        "avg_err_mm": float(errors.mean()) if errors.size else math.nan,
        "med_err_mm": float(np.median(errors)) if errors.size else math.nan,
        "shift_up_rate": shifts.count(-1) / n if n else math.nan,
        "shift_down_rate": shifts.count(1) / n if n else math.nan,
        "other_rate": shifts.count("other") / n if n else math.nan,
        "missing_cases": [r["case_id"] for r in records if not r.get("l1_found")],
        "wrong_cases": [r["case_id"] for r in records if r.get("l1_found") and not r["l1_correct"]],
    }
    dices = [r["dice"] for r in records if "dice" in r and not math.isnan(r["dice"])]
    if dices:
        out["dice"] = float(np.mean(dices))
    return out
