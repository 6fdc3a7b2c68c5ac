"""How good is the instance walk apart from its labels? Label-free measures on the test scans.

    python scripts/instance_walk_quality.py [--rows instance,instance-fix-edge] [--n 40]
                                            [--first-box bone_mean] [--out results/instance_walk_quality.csv]

Table 2 scores a labelled spine: a vertebra segmented well but numbered one level off counts as
missed (Dice 0, L1 wrong). This script separates the two. For each row's trained weights
(``results/runs/<row>/weights.pt``) and the first ``n`` scans of ``ctc_test`` it runs
`vertebra.instance.pipeline.label_spine` as the row's evaluation does, then compares each labelled
piece with the truth on the prepared (isotropic) grid:

* a piece *covers* the true vertebra that holds at least half of its voxels; a piece mostly on the
  sacrum is counted apart, and one mostly outside every vertebra (sternum, ribs, pelvis, tagged
  fluid) is *off the spine*;
* ``best_dice``: each true vertebra's Dice with the piece that matches it best, whatever its label
  (0 when no piece touches it), averaged over the scan's vertebrae;
* ``label_offset``: the median of (label given - true label) over the covering pieces: how far the
  numbering is off, in levels;
* ``first_on_spine``: whether the walk's first piece covers a vertebra;
* ``level_mean``, ``level_sd``: mean and spread of the levels the network regressed for the pieces
  (a level head that tells the vertebrae apart spreads them over the levels it walks past);
* ``below_sacrum``: pieces whose centre lies below the top of the sacrum (the walk went on past the
  lumbar spine).

``--first-box`` replaces the rule each row's traversal was saved with (`TraversalConfig.first_box`: the
paper's ``bone_mean`` or ``bone_peaks``), and ``--first-box-z`` where the first box lies along the spine
(`TraversalConfig.first_box_z`: on the scan's first two slices, the paper's, or its ``edge`` on the
scan's edge), to see what the first box alone changes with the same weights.

One row per (row, scan) goes to ``--out``; a summary per row is printed. Cohorts come from the cache
(generated when missing).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np
from scipy import ndimage

from instance_rows import ALL_ROWS, ROOT, row_bundles, write_table
from vertebra.experiments import get_scale
from vertebra.instance.evaluation import best_match_dice
from vertebra.instance.levels import is_target
from vertebra.instance.pipeline import label_spine
from vertebra.instance.scan import prepare_case
from vertebra.instance.traversal import FIRST_BOX_RULES, FIRST_BOX_Z
from vertebra.io import read_verse_case
from vertebra.labels import SACRUM
from vertebra.phantom import cohort


def walk_quality(bundle, case) -> dict:
    """Label-free measures of one labelled scan (see the module docstring)."""
    result = label_spine(bundle, case.image, map_back=False)
    truth = prepare_case(case, bundle.spacing_mm).labels
    pred = result.labels_prepared
    if truth.shape != pred.shape:
        raise ValueError(f"{case.case_id}: prepared grids differ ({truth.shape} vs {pred.shape})")
    targets = [int(v) for v in np.unique(truth) if v and is_target(int(v))]
    # joint[p, t]: voxels labelled p in the prediction and t in the truth (both uint8)
    joint = np.bincount(pred.ravel().astype(np.int64) * 256 + truth.ravel(), minlength=256 * 256).reshape(256, 256)
    pieces = [p for p in range(1, 256) if joint[p].any()]
    covered, offsets, off_spine, on_sacrum = set(), [], 0, 0
    for label in pieces:
        counts = joint[label]
        majority = int(np.argmax(counts))
        if majority == 0 or counts[majority] < 0.5 * counts.sum():
            off_spine += 1
        elif majority == SACRUM:
            on_sacrum += 1
        elif majority in targets:
            covered.add(majority)
            offsets.append(label - majority)
    best = best_match_dice(pred, truth)
    first = result.traversals[0].vertebrae[0] if result.traversals and result.traversals[0].vertebrae else None
    first_on_spine = False
    if first is not None:
        piece = result.traversals[0].instances == first.index + 1
        counts = np.bincount(truth[piece], minlength=256)
        first_on_spine = bool(any(counts[t] >= 0.5 * counts.sum() for t in targets))
    n_pieces = len(pieces)
    regressed = [e["level_predicted"] for e in result.levels]
    sacrum_z = np.nonzero(np.any(truth == SACRUM, axis=(1, 2)))[0]
    below_sacrum = 0
    if len(sacrum_z) and n_pieces:
        centres = ndimage.center_of_mass(np.ones_like(pred), pred, pieces)     # one pass for all pieces
        below_sacrum = int(sum(c[0] < sacrum_z.max() for c in centres))     # z grows towards the head
    return {"case_id": case.case_id, "n_true": len(targets), "n_pieces": n_pieces, "covered": len(covered),
            "off_spine": off_spine, "on_sacrum": on_sacrum,
            "pieces_per_covered": round((n_pieces - off_spine - on_sacrum) / len(covered), 3) if covered else None,
            "best_dice": None if np.isnan(best) else round(best, 4),
            "label_offset": float(np.median(offsets)) if offsets else None,
            "first_on_spine": first_on_spine,
            "level_mean": round(float(np.mean(regressed)), 2) if regressed else None,
            "level_sd": round(float(np.std(regressed)), 2) if len(regressed) > 1 else None,
            "below_sacrum": below_sacrum,
            "stop": "/".join(t.stop_reason for t in result.traversals)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=ALL_ROWS)
    parser.add_argument("--n", type=int, default=40, help="ctc_test scans")
    parser.add_argument("--scale", default="quick")
    parser.add_argument("--first-box", choices=FIRST_BOX_RULES, default=None,
                        help="first-box rule for every row (default: the one each row was run with)")
    parser.add_argument("--first-box-z", choices=FIRST_BOX_Z, default=None,
                        help="where the first box lies along the spine (default: as each row was run)")
    parser.add_argument("--out", default=str(ROOT / "results" / "instance_walk_quality.csv"))
    args = parser.parse_args(argv)
    spacing = get_scale(args.scale).phantom_spacing_mm
    records = []
    for row, bundle in row_bundles(args.rows):
        if args.first_box:
            bundle.traversal = dataclasses.replace(bundle.traversal, first_box=args.first_box)
        if args.first_box_z:
            bundle.traversal = dataclasses.replace(bundle.traversal, first_box_z=args.first_box_z)
        records += [{"row": row, "first_box": bundle.traversal.first_box,
                     "first_box_z": bundle.traversal.first_box_z,
                     **walk_quality(bundle, read_verse_case(folder))}
                    for folder in cohort("ctc_test", spacing_mm=spacing, n=args.n, progress=False)]
    table = write_table(records, args.out)
    summary = table.groupby("row", sort=False).agg(
        scans=("case_id", "size"), walked=("n_pieces", lambda v: int((v > 0).sum())),
        first_on_spine=("first_on_spine", "sum"), true=("n_true", "sum"), covered=("covered", "sum"),
        pieces=("n_pieces", "sum"), off_spine=("off_spine", "sum"), on_sacrum=("on_sacrum", "sum"),
        below_sacrum=("below_sacrum", "sum"), best_dice=("best_dice", "mean"),
        label_offset_median=("label_offset", "median"), level_sd_mean=("level_sd", "mean"))
    print(summary.round(3).to_string())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
