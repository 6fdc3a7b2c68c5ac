"""When does fix (d)'s own search for the spine start the walk, and what does it change?

    python scripts/instance_first_box_search.py [--rows instance-fix-context-ordering,...]
        [--sets ctc_test:0:0:40,ctc_test:1:0:30,pseudo:0:14:74] [--out results/instance_first_box_search.csv]

With the context network (fix (d)), the walk starts at the bone peak of the first slab that the
context network finds most likely on a vertebra. When it calls none of them a vertebra (where the
vertebral bodies are osteoporotic the densest bone of the first slab is a rib), it searches the first
slices itself on a grid (`TraversalConfig.first_box_judge_grid_mm`, `Traversal.judge_peak`) and the
walk starts where it sees a vertebra. With ``first_box_judge_grid_mm = 0`` the instance network's voxel
count decides instead, as before the search existed.

The search runs only when every bone peak is rejected, so on every other scan the two rules walk
alike. For each row's trained weights (``results/runs/<row>/weights.pt``) and each scan set, this script
labels every scan with the search on; where the search ran, it labels the scan again without it, and
records both (L1 correct, vertebrae labelled, labelled Dice, identification rate).

A scan set is ``cohort:seed:first:stop`` (scans ``first`` to ``stop - 1`` of that cohort drawn with that
seed): ``ctc_test:0:0:40`` is the test set, ``ctc_test:1:0:30`` thirty more scans from the test
site drawn with another seed (used by nothing else), ``pseudo:0:14:74`` the `pseudo` scans that no
instance network, context network or tuning used. One row per (row, scan) where the search ran goes
to ``--out``; a count per row and set is printed.
"""
from __future__ import annotations

import dataclasses
import sys

from instance_rows import row_bundles, rows_and_sets, scan_sets, write_table
from vertebra.instance.evaluation import evaluate_case
from vertebra.instance.traversal import Traversal
from vertebra.io import read_verse_case

DEFAULT_ROWS = "instance-fix-context-ordering,instance-fix-edge-context-ordering"
DEFAULT_SETS = "ctc_test:0:0:40,ctc_test:1:0:30,pseudo:0:14:74"


class SearchCounter:
    """Counts `Traversal.judge_peak` calls that found a start (the search ran and was used)."""

    def __init__(self):
        self.found = 0
        self._original = Traversal.judge_peak
        counter = self

        def judge_peak(traversal):
            point = counter._original(traversal)
            counter.found += point is not None
            return point

        Traversal.judge_peak = judge_peak


def _short(record: dict) -> dict:
    return {k: record[k] for k in ("l1_correct", "n_found", "dice", "id_rate")}


def main(argv=None) -> int:
    args = rows_and_sets(__doc__, DEFAULT_ROWS, DEFAULT_SETS, "instance_first_box_search.csv", argv)
    counter = SearchCounter()
    sets = scan_sets(args.sets, args.scale)
    records, counts = [], []
    for row, bundle in row_bundles(args.rows):
        without = dataclasses.replace(bundle, traversal=dataclasses.replace(bundle.traversal,
                                                                            first_box_judge_grid_mm=0.0))
        for name, folders in sets:
            searched = 0
            for folder in folders:
                case = read_verse_case(folder)
                before = counter.found
                on = evaluate_case(bundle, case)
                if counter.found == before:
                    continue
                searched += 1
                off = evaluate_case(without, case)
                records.append({"row": row, "set": name, "case_id": case.case_id,
                                "anomalies": on["anomalies"],
                                **{f"{k}_search": v for k, v in _short(on).items()},
                                **{f"{k}_voxel_rule": v for k, v in _short(off).items()}})
            counts.append({"row": row, "set": name, "scans": len(folders), "searched": searched})
    write_table(records, args.out)
    for c in counts:
        mine = [r for r in records if r["row"] == c["row"] and r["set"] == c["set"]]
        gained = sum(r["l1_correct_search"] and not r["l1_correct_voxel_rule"] for r in mine)
        lost = sum(r["l1_correct_voxel_rule"] and not r["l1_correct_search"] for r in mine)
        print(f"{c['row']:40s} {c['set']:18s} scans {c['scans']:3d}  searched {c['searched']:2d}  "
              f"L1 gained {gained}  lost {lost}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
