"""Does the instance U-Net need its memory? Segment each true vertebra with and without it.

    python scripts/instance_memory_probe.py [--rows instance,instance-fix-edge] [--n 6]
                                            [--out results/instance_memory_probe.csv]

For each row's trained weights (``results/runs/<row>/weights.pt``, top-down model) and the first ``n``
scans of the ``ctc_test`` (test site) and ``instance`` (training cohort) cohorts, one network pass is
made at the true centroid of every target vertebra, twice: with the instance memory holding the true
vertebrae above it (what the traversal has after finding them), and with an empty memory (what the
traversal has at its first step). Each pass is scored against that vertebra (Dice, and the predicted
voxels) with the row's tuned output threshold. The per-pass table goes to ``--out``; a summary per row,
cohort and memory is printed. The cohorts come from the cache (generated when missing).
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from instance_rows import ROOT, row_bundles, write_table
from vertebra.experiments import get_scale
from vertebra.instance.levels import is_target
from vertebra.instance.scan import prepare_case
from vertebra.instance.traversal import Traversal
from vertebra.io import read_verse_case
from vertebra.labels import rank
from vertebra.phantom import cohort


def probe(bundle, case) -> list[dict]:
    """One row per (target vertebra, memory kind) of a VerSe case."""
    scan = prepare_case(case, bundle.spacing_mm)
    labels = scan.labels
    present = sorted((int(v) for v in np.unique(labels) if v and is_target(int(v))), key=rank)
    traversal = Traversal(bundle.models["down"], scan, bundle.traversal, "down")
    rows = []
    for i, label in enumerate(present):
        truth = labels == label
        centre = np.argwhere(truth).mean(0)
        for memory in ("vertebrae above", "empty"):
            traversal.memory[:] = np.isin(labels, present[:i]) if memory == "vertebrae above" else False
            mask, corner, level, _ = traversal.segment(centre)
            idx = np.argwhere(mask) + corner
            inside = np.all((idx >= 0) & (idx < np.asarray(labels.shape)), axis=1)
            tp = int(truth[tuple(idx[inside].T)].sum())
            rows.append({"case_id": case.case_id, "label": label, "first_in_scan": i == 0, "memory": memory,
                         "truth_voxels": int(truth.sum()), "predicted_voxels": int(mask.sum()),
                         "dice": 2 * tp / max(int(truth.sum()) + int(mask.sum()), 1),
                         "level_pred": round(level, 2)})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="instance,instance-fix-edge,instance-fix-completeness")
    parser.add_argument("--n", type=int, default=6, help="scans per cohort")
    parser.add_argument("--scale", default="quick")
    parser.add_argument("--out", default=str(ROOT / "results" / "instance_memory_probe.csv"))
    args = parser.parse_args(argv)
    spacing = get_scale(args.scale).phantom_spacing_mm
    records = [{"row": row, "cohort": name, "threshold": bundle.traversal.threshold, **r}
               for row, bundle in row_bundles(args.rows)
               for name in ("ctc_test", "instance")
               for folder in cohort(name, spacing_mm=spacing, n=args.n, progress=False)
               for r in probe(bundle, read_verse_case(folder))]
    table = write_table(records, args.out)
    summary = (table.groupby(["row", "cohort", "memory"])
               .agg(passes=("dice", "size"), mean_dice=("dice", "mean"),
                    found=("predicted_voxels", lambda v: float(np.mean(np.asarray(v) > 0))),
                    predicted_over_truth=("predicted_voxels", "sum"))
               .reset_index())
    truth = table.groupby(["row", "cohort", "memory"])["truth_voxels"].sum().to_numpy()
    summary["predicted_over_truth"] = (summary["predicted_over_truth"] / truth).round(2)
    print(summary.round(3).to_string(index=False))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
