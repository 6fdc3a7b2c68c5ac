"""What the masks' density floor does on scans that played no part in choosing it.

    python scripts/instance_floor_check.py [--rows instance-fix-context-ordering,...]
        [--sets pseudo:0:14:74] [--out results/instance_floor_check.csv]

Each row chooses its floor on its 6 validation walks (`vertebra.instance.run.MASK_FLOORS_HU`,
`pipeline.restrict_to_bone`), and one choice about it (the threshold first, then the floor) was made
after a look at test results. This script measures the floor where nothing was chosen: for each row's
weights (``results/runs/<row>/weights.pt``) and each scan set, it walks every scan once, as
`label_spine` does, and labels that walk twice, with no floor and with the row's floor; both are
scored as the rows score the test scans (`evaluation.score_labelling`). The floor does not change the
walk, so any difference is the floor's: through the masks, and through the pieces' centroids where
fix (d)'s context network reads their levels.

A scan set is ``cohort:seed:first:stop`` as in `instance_rows.scan_sets`; the default,
``pseudo:0:14:74``, is the 60 `pseudo` scans that no instance network, context network or tuning used.
One row per (row, scan) goes to ``--out``; a summary per row and set is printed.
"""
from __future__ import annotations

import dataclasses
import sys

import numpy as np
from tqdm.auto import tqdm

from instance_rows import row_bundles, rows_and_sets, scan_sets, write_table
from vertebra.instance.evaluation import score_labelling
from vertebra.instance.pipeline import label_walk, walk_scan
from vertebra.io import read_verse_case

DEFAULT_ROWS = "instance-fix-context-ordering,instance-fix-edge-context-ordering"
DEFAULT_SETS = "pseudo:0:14:74"
SCORES = ("l1_correct", "n_found", "dice", "dice_complete", "match_dice_complete", "id_rate")


def label_twice(bundle, case) -> tuple[dict, dict]:
    """One walk of ``case`` labelled with no floor and with the bundle's floor: the two score records."""
    walk = walk_scan(bundle, case.image)
    return tuple(score_labelling(case, label_walk(dataclasses.replace(bundle, mask_floor_hu=floor), case.image, walk))
                 for floor in (None, bundle.mask_floor_hu))


def main(argv=None) -> int:
    args = rows_and_sets(__doc__, DEFAULT_ROWS, DEFAULT_SETS, "instance_floor_check.csv", argv)
    sets = scan_sets(args.sets, args.scale)
    records = []
    for row, bundle in row_bundles(args.rows):
        for name, folders in sets:
            for folder in tqdm(folders, desc=f"{row} {name}"):
                case = read_verse_case(folder)
                off, on = label_twice(bundle, case)
                records.append({"row": row, "set": name, "case_id": case.case_id, "floor_hu": bundle.mask_floor_hu,
                                "anomalies": on["anomalies"],
                                **{f"{k}_no_floor": off[k] for k in SCORES},
                                **{f"{k}_floor": on[k] for k in SCORES}})
    table = write_table(records, args.out)
    for (row, name), part in table.groupby(["row", "set"], sort=False):
        gained = int((part.l1_correct_floor & ~part.l1_correct_no_floor).sum())
        lost = int((part.l1_correct_no_floor & ~part.l1_correct_floor).sum())
        print(f"{row:38s} {name:16s} scans {len(part):3d}  L1 {part.l1_correct_no_floor.mean():.3f} -> "
              f"{part.l1_correct_floor.mean():.3f} (gained {gained}, lost {lost})  "
              + "  ".join(f"{k} {np.nanmean(part[f'{k}_no_floor']):.3f} -> {np.nanmean(part[f'{k}_floor']):.3f}"
                          for k in ("dice", "dice_complete", "match_dice_complete", "id_rate")))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
