"""Fix (e), its L6 prior and the context calibration, taken apart on the tuning scans (never on the test cohort).

    python scripts/instance_ordering_ablation.py [--rows instance,instance-fix-edge] [--n-pseudo 14]
        [--sets pseudo:0:14:74] [--levels raw,calibrated] [--out results/instance_ordering_ablation.csv]

Each walk (the rows' saved weights, thresholds and floors, ``results/runs/<row>/weights.pt``) is run
once over the 20 tuning scans, starting where fix (d)'s rows start (`pipeline.walk_scan`): the 6
validation scans of the `instance` cohort (held out as `run_row` holds them out,
`run.validation_split`) and the first 14 scans of the `pseudo` cohort; and over the ``--sets`` named
(`instance_rows.scan_sets`), e.g. the 60 `pseudo` scans 14-73 that no choice was made on. Its pieces are
then labelled with fix (d)'s context network (the one every (d) row uses, `run.calibrated_context`):
its raw or its calibrated level, ordered by each rule of ``ORDERINGS`` (Eq. 2 or fix (e)'s monotone
labelling, `run.MONOTONE_ORDERING`, each with or without the lumbarisation prior on L6). Each labelling
is scored as Table 2 scores a test scan (`evaluation.score_labelling`).

One row per (walk, set, levels, ordering, scan) goes to ``--out``; the summary per (walk, set, levels,
ordering) goes beside it (``*_summary.csv``) and is printed. This is how fix (e)'s settings were
chosen; the calibration is fitted on the 6 validation scans, so those 6 are not independent of it.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

from tqdm.auto import tqdm

from instance_rows import ROOT, row_bundles, scan_sets, write_summary, write_table
from vertebra.experiments import get_scale
from vertebra.instance.context import ContextModel
from vertebra.instance.evaluation import score_labelling
from vertebra.instance.ordering import LUMBARISATION_LOG_PRIOR, OrderingConfig
from vertebra.instance.pipeline import label_walk, walk_scan
from vertebra.instance.run import MONOTONE_ORDERING, calibrated_context, validation_split
from vertebra.io import read_verse_case
from vertebra.phantom import cohort

#: the labelling rules compared; "+l6" adds the lumbarisation prior (`ordering.LUMBARISATION_LOG_PRIOR`)
ORDERINGS = {"eq2": OrderingConfig(), "monotone": MONOTONE_ORDERING,
             "eq2+l6": OrderingConfig(l6_log_prior=LUMBARISATION_LOG_PRIOR),
             "monotone+l6": dataclasses.replace(MONOTONE_ORDERING, l6_log_prior=LUMBARISATION_LOG_PRIOR)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="instance,instance-fix-edge")
    parser.add_argument("--n-pseudo", type=int, default=14, help="pseudo scans besides the 6 validation scans")
    parser.add_argument("--scale", default="quick")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sets", default="", help="more scans, as `instance_rows.scan_sets` reads them "
                        "(e.g. pseudo:0:14:74, the scans no choice was made on); the default: none")
    parser.add_argument("--levels", default="raw,calibrated", help="which context levels to label with")
    parser.add_argument("--out", default=str(ROOT / "results" / "instance_ordering_ablation.csv"))
    args = parser.parse_args(argv)
    scale = get_scale(args.scale)
    spacing = scale.phantom_spacing_mm
    train = list(cohort("instance", spacing_mm=spacing, n=scale.cohort_sizes["instance"], seed=args.seed))
    fit, val = validation_split(train)
    hand = list(cohort("hand", spacing_mm=spacing, n=scale.cohort_sizes["hand"], seed=args.seed))
    calibrated, _ = calibrated_context(fit + hand, val, scale, args.seed)
    levels = {"raw": ContextModel(calibrated.net, calibrated.config), "calibrated": calibrated}
    levels = {k: levels[k] for k in args.levels.split(",")}
    tuning = val + list(cohort("pseudo", spacing_mm=spacing, n=scale.cohort_sizes["pseudo"],
                                          seed=args.seed))[:args.n_pseudo]
    scans = [("tuning", folder) for folder in tuning]
    scans += [(name, folder) for name, folders in scan_sets(args.sets, args.scale) for folder in folders]
    print(f"calibration: level = {calibrated.level_scale:.4f} * read + {calibrated.level_offset:.4f}")
    records = []
    for row, bundle in row_bundles(args.rows):
        for set_name, folder in tqdm(scans, desc=row):
            case = read_verse_case(folder)
            # the walk starts where fix (d)'s rows start: where the context network sees a vertebra
            walk = walk_scan(dataclasses.replace(bundle, context=calibrated), case.image)
            for level_name, context in levels.items():
                for order_name, ordering in ORDERINGS.items():
                    variant = dataclasses.replace(bundle, context=context, ordering=ordering)
                    record = score_labelling(case, label_walk(variant, case.image, walk))
                    records.append({"walk": row, "set": set_name, "threshold": bundle.traversal.threshold,
                                    "levels": level_name,
                                    "ordering": order_name, **{k: record[k] for k in (
                                        "case_id", "l1_correct", "shift", "cc_error_mm", "dice", "id_rate",
                                        "n_true", "n_found", "anomalies")}})
    table = write_table(records, args.out)
    summary = table.groupby(["walk", "set", "levels", "ordering"], sort=False).agg(
        scans=("case_id", "size"), l1_correct=("l1_correct", "sum"), l1_acc=("l1_correct", "mean"),
        on_l2=("shift", lambda v: int((v.astype(str) == "1").sum())),
        on_t12=("shift", lambda v: int((v.astype(str) == "-1").sum())),
        other=("shift", lambda v: int((v.astype(str) == "other").sum())),
        dice=("dice", "mean"), id_rate=("id_rate", "mean")).reset_index()
    write_summary(summary, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
