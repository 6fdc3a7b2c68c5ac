"""How good are the pseudo-masks? The tool's output against the phantom's exact truth.

Only this module reads the truth masks. Per scan: Dice of every true vertebra with the found segment
that overlaps it most, the L1 Dice after alignment (found 20 vs true 20), over-segmentation (a true
vertebra split between segments) and under-segmentation (a segment spanning two true vertebrae),
the number found vs the number visible, the L1 trabecular BMD estimate vs the phantom's value, and
the seconds the tool took. `summarise` groups the rows by protocol and by anomaly.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import read_image
from ..parallel import parallel_map
from .cases import case_meta
from .training_set import pseudo_case

log = logging.getLogger(__name__)

#: columns of results/pseudomask_quality.csv
COLUMNS = ("case_id", "protocol", "anomalies", "vertebrae_found", "vertebrae_true", "mean_dice", "l1_dice",
           "bmd_estimate_hu", "bmd_truth_hu", "seconds", "over_segmented", "under_segmented",
           "count_error", "l1_distance_mm", "position")

#: a piece counts in a split or a merge when it holds at least this fraction of the other's voxels
SHARE = 0.15


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    denom = a.sum() + b.sum()
    return float(2 * (a & b).sum() / denom) if denom else float("nan")


def compare_labels(found: np.ndarray, truth: np.ndarray, share: float = SHARE) -> dict:
    """Overlap statistics of two label maps on one grid (0 = background).

    >>> t = np.zeros((8, 2, 2), int); t[:4], t[4:] = 1, 2
    >>> compare_labels(t.copy(), t)["mean_dice"], compare_labels((t > 0).astype(int), t)["under_segmented"]
    (1.0, 1)
    """
    true_ids = [int(v) for v in np.unique(truth) if v]
    found_ids = [int(v) for v in np.unique(found) if v]
    pairs, counts = np.unique(np.stack([truth[(truth > 0) | (found > 0)], found[(truth > 0) | (found > 0)]]),
                              axis=1, return_counts=True)
    overlap = {(int(t), int(f)): int(c) for (t, f), c in zip(pairs.T, counts) if t and f}
    size_t = {i: int((truth == i).sum()) for i in true_ids}
    size_f = {j: int((found == j).sum()) for j in found_ids}
    dices, over = [], 0
    for i in true_ids:
        parts = {f: c for (t, f), c in overlap.items() if t == i}
        if not parts:
            dices.append(0.0)
            continue
        best = max(parts, key=parts.get)
        dices.append(2 * parts[best] / (size_t[i] + size_f[best]))
        over += sum(c >= share * size_t[i] for c in parts.values()) >= 2
    under = 0
    for j in found_ids:
        parts = [c for (t, f), c in overlap.items() if f == j]
        under += sum(c >= share * size_f[j] for c in parts) >= 2
    return {"vertebrae_true": len(true_ids), "vertebrae_found": len(found_ids),
            "mean_dice": float(np.mean(dices)) if dices else float("nan"),
            "over_segmented": int(over), "under_segmented": int(under)}


def evaluate_case(case_dir: str | Path, cache=None) -> dict:
    """One row of the quality table (see `COLUMNS`)."""
    case_dir = Path(case_dir)
    aligned, summary = pseudo_case(case_dir, cache)           # the tool: CT only
    meta = case_meta(case_dir)
    truth_path = next(iter(sorted(case_dir.glob("*_seg-vert_msk.nii.gz"))), None)
    if truth_path is None:
        raise FileNotFoundError(f"{case_dir}: no truth mask to compare with")
    truth = read_image(truth_path, kind="labels").array
    found = aligned.array
    row = {"case_id": meta.get("case_id", summary["case_id"]), "protocol": meta.get("protocol", ""),
           "anomalies": ";".join(meta.get("anomalies", [])), "position": meta.get("position", "")}
    row.update(compare_labels(found, truth))
    row["count_error"] = row["vertebrae_found"] - row["vertebrae_true"]
    row["l1_dice"] = _dice(found == 20, truth == 20)
    trab = meta.get("trabecular_hu", {})
    truth_hu = trab.get("20", trab.get(20))
    row["bmd_estimate_hu"] = summary.get("bmd_estimate_hu")
    row["bmd_truth_hu"] = None if truth_hu is None else float(truth_hu)
    row["seconds"] = summary["seconds"]
    row["l1_distance_mm"] = summary.get("l1_distance_mm")
    return {k: row.get(k) for k in COLUMNS}


def _quality_row(task: tuple) -> dict:
    case_dir, cache = task
    try:
        return evaluate_case(case_dir, cache)
    except Exception as exc:              # a failed scan is a result too: report it, keep going
        log.warning("%s: %s", case_dir, exc)
        meta = case_meta(case_dir)
        return {"case_id": meta.get("case_id", Path(case_dir).name), "protocol": meta.get("protocol"),
                "anomalies": ";".join(meta.get("anomalies", [])), "vertebrae_found": 0,
                "mean_dice": 0.0, "l1_dice": 0.0, "position": meta.get("position")}


def quality_table(cases, cache=None, jobs: int = 1) -> pd.DataFrame:
    """Rows for every case folder in `cases` (the tool runs where its cache is missing), in ``jobs``
    processes (`vertebra.parallel`; the tool is deterministic, so the table is the same)."""
    rows = parallel_map(_quality_row, [(c, cache) for c in cases], jobs=jobs, desc="pseudo-mask quality")
    return pd.DataFrame(rows, columns=list(COLUMNS))


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Means by protocol, by anomaly (a scan with two anomalies counts in both) and overall."""
    t = table.assign(bmd_error_hu=table["bmd_estimate_hu"].astype(float) - table["bmd_truth_hu"].astype(float),
                     count_off=table["count_error"].abs() > 1)
    cols = ["mean_dice", "l1_dice", "over_segmented", "under_segmented", "count_off", "bmd_error_hu", "seconds"]
    groups = [("all", t)]
    groups += [(f"protocol={p}", g) for p, g in t.groupby("protocol")]
    anomalies = t["anomalies"].fillna("").str.split(";")
    for a in sorted({x for xs in anomalies for x in xs if x}):
        groups.append((f"anomaly={a}", t[anomalies.apply(lambda xs: a in xs)]))
    groups.append(("anomaly=none", t[anomalies.apply(lambda xs: xs == [""])]))
    out = pd.DataFrame([{"group": name, "n": len(g), **g[cols].astype(float).mean().round(3).to_dict(),
                         "bmd_abs_error_hu": float(g["bmd_error_hu"].abs().mean().round(1))}
                        for name, g in groups if len(g)])
    return out.rename(columns={"count_off": "count_off_by_2plus"})


def write_quality_csv(table: pd.DataFrame, path: str | Path = "results/pseudomask_quality.csv") -> Path:
    from ..results import write_text_atomic
    return write_text_atomic(path, table.to_csv(index=False, float_format="%.4g"))


def quality_report(cohort: str = "pseudo", n: int | None = None, spacing_mm: float = 2.0, seed: int = 0,
                   cache=None, out_csv: str | Path | None = "results/pseudomask_quality.csv",
                   jobs: int = 1) -> pd.DataFrame:
    """The quality table over a phantom cohort, written to `out_csv` (None: not written)."""
    from ..phantom import cohort as make_cohort
    cases = make_cohort(cohort, spacing_mm=spacing_mm, n=n, seed=seed, cache=cache, jobs=jobs)
    table = quality_table(cases, cache, jobs=jobs)
    if out_csv is not None:
        write_quality_csv(table, out_csv)
    return table
