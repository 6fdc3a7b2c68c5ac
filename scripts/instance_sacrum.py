"""The sacrum state (`vertebra.instance.sacrum`) against fix (e)'s labelling, on a row's own walks.

    python scripts/instance_sacrum.py [--rows instance-fix-context-ordering] [--priors -0.25,-0.5,-1]
        [--sets val,pseudo:0:0:14,pseudo:0:14:74,ctc_test:0:0:40] [--walks DIR]
        [--out results/instance_sacrum.csv]

Each scan is walked once with the row's saved bundle (``results/runs/<row>/weights.pt``, as its Table 2
run walks it: `pipeline.walk_scan`), then labelled twice or more: with the row's own rule and with the
sacrum state at each log-prior of ``--priors``. Each labelling is scored as Table 2 scores a test scan
(`evaluation.score_labelling`, which leaves the sacrum out of the Dice), with two more columns: the
label of the bottom-most labelled piece (26: the sacrum) and the share of the voxels labelled as
vertebrae that lie in the true sacrum. Sets: ``val`` (the 6 validation scans of the `instance`
cohort) and ``cohort:seed:first:stop`` items (`instance_rows.scan_sets`). The prior is chosen on the
tuning scans (``val`` and the first 14 `pseudo` scans, as fix (e)'s settings were); the 60 other
`pseudo` scans check it; the test scans are reported, not chosen on.

``--walks DIR`` keeps each walk (a pickle per row and scan) so that a second call only labels; the
walks are the expensive part (about 10 s a scan on one core).
"""
from __future__ import annotations

import dataclasses
import os
import pickle
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from instance_rows import ROOT, row_bundles, scan_sets, write_summary, write_table
from vertebra.experiments import get_scale
from vertebra.instance.evaluation import score_labelling
from vertebra.instance.pipeline import label_walk, walk_scan
from vertebra.instance.run import validation_split
from vertebra.instance.sacrum import SacrumOrdering
from vertebra.instance.scan import prepare_scan
from vertebra.io import read_verse_case
from vertebra.labels import SACRUM
from vertebra.phantom import cohort

KEYS = ("case_id", "l1_correct", "shift", "cc_error_mm", "dice", "dice_complete", "match_dice_complete",
        "id_rate", "n_true", "n_found", "anomalies")


def _sets(spec: str, scale: str) -> list[tuple[str, list]]:
    out = []
    for item in [s for s in spec.split(",") if s]:
        if item == "val":
            scale_ = get_scale(scale)
            train = list(cohort("instance", spacing_mm=scale_.phantom_spacing_mm,
                                n=scale_.cohort_sizes["instance"], seed=0, progress=False))
            out.append(("val", validation_split(train)[1]))
        else:
            out.extend(scan_sets(item, scale))
    return out


def _walk(bundle, case, path: Path | None):
    if path is not None and path.exists():
        return pickle.loads(path.read_bytes())
    walk = walk_scan(bundle, case.image)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_suffix(".part")
        part.write_bytes(pickle.dumps(walk))
        os.replace(part, path)
    return walk


def _sacrum_share(result, sacrum_truth: np.ndarray) -> dict:
    """The label of the bottom-most labelled piece, and the share of the voxels labelled as vertebrae
    (any label but the sacrum's) that lie in the true sacrum: what merging the sacrum into L5 costs."""
    if not result.levels:
        return {"last_label": None, "vertebra_voxels_in_sacrum": np.nan}
    last = min(result.levels, key=lambda e: e["centroid_mm"][2])
    vertebrae = (result.labels_prepared > 0) & (result.labels_prepared != SACRUM)
    share = float(sacrum_truth[vertebrae].mean()) if vertebrae.any() else np.nan
    return {"last_label": last["label"], "vertebra_voxels_in_sacrum": round(share, 4)}


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="instance-fix-context-ordering")
    parser.add_argument("--priors", default="-0.25,-0.5,-1")   # the committed table's
    parser.add_argument("--sets", default="val,pseudo:0:0:14,pseudo:0:14:74,ctc_test:0:0:40")
    parser.add_argument("--scale", default="quick")
    parser.add_argument("--walks", default="", help="folder that keeps the walks between calls")
    parser.add_argument("--out", default=str(ROOT / "results" / "instance_sacrum.csv"))
    args = parser.parse_args(argv)
    priors = [float(p) for p in args.priors.split(",")]
    scans = [(name, folder) for name, folders in _sets(args.sets, args.scale) for folder in folders]
    records = []
    for row, bundle in row_bundles(args.rows):
        rules = {"row": bundle.ordering, **{f"sacrum{p:g}": SacrumOrdering(bundle.ordering, p) for p in priors}}
        for set_name, folder in tqdm(scans, desc=row):
            case = read_verse_case(folder)
            walk = _walk(bundle, case, Path(args.walks) / row / f"{case.case_id}.pkl" if args.walks else None)
            truth = prepare_scan(case.image, case.vertebrae, spacing_mm=bundle.spacing_mm).labels == SACRUM
            for rule_name, rule in rules.items():
                result = label_walk(dataclasses.replace(bundle, ordering=rule), case.image, walk)
                record = score_labelling(case, result)
                records.append({"row": row, "set": set_name,
                                "rule": rule_name, **{k: record[k] for k in KEYS},
                                **_sacrum_share(result, truth)})
    table = write_table(records, args.out)
    table["last_is_sacrum"] = table["last_label"] == SACRUM
    summary = table.groupby(["row", "set", "rule"], sort=False).agg(
        scans=("case_id", "size"), l1_correct=("l1_correct", "sum"), l1_acc=("l1_correct", "mean"),
        dice=("dice", "mean"), dice_complete=("dice_complete", "mean"), id_rate=("id_rate", "mean"),
        last_called_sacrum=("last_is_sacrum", "sum"),
        vertebra_voxels_in_sacrum=("vertebra_voxels_in_sacrum", "mean")).reset_index()
    write_summary(summary, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
