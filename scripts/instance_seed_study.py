"""How much of an instance row's accuracy is the training run: the same row trained again with other seeds.

Two runs of the same code on two kinds of CPU gave rows that differed by tens of points of L1 accuracy
(book, instance chapter). This script measures that noise on one machine: it trains and evaluates a row
exactly as ``04_instance`` does (`vertebra.instance.run.run_row`), on the same data as the committed row
(the seed-0 `instance`, `hand` and `ctc_test` cohorts), with only the training seed changed: network
initialisation, patch sampling, augmentation and the context network's training all follow it. Seed 0
is the committed row itself; running it here too checks that a run on the same kind of CPU repeats it.

    OMP_NUM_THREADS=1 python scripts/instance_seed_study.py run ROW SEED   # one row and seed (~25 min)
    python scripts/instance_seed_study.py collect                         # results/instance_seed_study.csv
    python scripts/instance_seed_study.py export ROW SEED                 # its weights.pt next to it

The study was first run with the first box wholly inside the scan (``first_box_z="edge"``); those runs
are kept in ``results/instance_seed_study_first_box_edge{.csv,/}``. The current table walks from the
scan's first two slices, the paper's first box and the library's default.

``run`` writes ``<cache>/instance-seed-study/<row>-seed<k>/`` (weights there, not in git) and copies its
``metrics.json``, ``per_case.csv``, ``params.json`` and ``provenance.json`` to
``results/instance_seed_study/<row>-seed<k>/``; a finished run is skipped. ``collect`` marks the
network with the best validation walk Dice within each row and over both: a choice that needs no test
scan. The instance networks' checkpoint key holds the row's parameters, seed and training scans, so
this script's runs (seed-0 cohorts, seed k) and a notebook run with ``seed=k`` (seed-k cohorts) keep
apart in one cache.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import pandas as pd

from vertebra.cache import cache_dir
from vertebra.experiments import get_row, get_scale
from vertebra.results import write_bytes_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "instance_seed_study"
TABLE = ROOT / "results" / "instance_seed_study.csv"
#: the two best rows of the committed run, which differ only in fix (b)'s training patches
ROWS = ("instance-fix-context-ordering", "instance-fix-edge-context-ordering")
#: what a run keeps in ``results/`` (its weights stay in the cache; `export` copies them)
RESULT_FILES = ("metrics.json", "per_case.csv", "params.json", "provenance.json")


def run(row: str, seed: int, scale_name: str = "quick", iterations: int | None = None, out: Path = OUT,
        files: tuple[str, ...] = RESULT_FILES) -> Path:
    """Train and evaluate ``row`` with training seed ``seed`` (and ``iterations`` steps instead of the
    scale's, when given) on the seed-0 cohorts; ``files`` of the run go to ``out/<name>/``."""
    from vertebra.instance.run import run_row
    from vertebra.phantom import cohort

    name = f"{row}-seed{seed}" + (f"-steps{iterations}" if iterations else "")
    copy = out / name
    if (copy / "metrics.json").is_file():
        print(f"{name}: done before, skipped")
        return copy
    scale = get_scale(scale_name)
    data = {kind: cohort(kind, spacing_mm=scale.phantom_spacing_mm, n=scale.cohort_sizes[kind], seed=0)
            for kind in ("instance", "ctc_test", "hand")}
    params = {**get_row(row).params, "scale": scale_name, "seed": seed, "run_id": name, "iterations": iterations}
    work = cache_dir() / "instance-seed-study" / name
    run_row(params, work, train_cases=data["instance"], test_cases=data["ctc_test"],
            context_cases=data["hand"], table2_path=None)
    tmp = copy.with_name(copy.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in files:
        shutil.copy2(work / f, tmp / f)
    shutil.rmtree(copy, ignore_errors=True)
    tmp.rename(copy)
    print(f"{name}: written to {copy.relative_to(ROOT)}")
    return copy


def _summary(row: str, seed: int, folder: Path, source: str) -> dict:
    metrics = json.loads((folder / "metrics.json").read_text())
    test = metrics["test"]
    params = folder / "params.json"
    traversal = json.loads(params.read_text()).get("traversal", {}) if params.is_file() else {}
    return {"row": row, "seed": seed, "source": source,
            # runs from before `TraversalConfig.first_box_z` existed walked from the scan's edge
            "first_box_z": traversal.get("first_box_z", "edge"), "l1_acc": test.get("l1_acc"),
            "med_err_mm": test.get("med_err_mm"), "avg_err_mm": test.get("avg_err_mm"),
            "dice": test.get("dice"), "id_rate": test.get("id_rate"), "n_l1_missing": len(test.get("missing_cases") or []),
            "n_test": metrics["n_test"], "threshold": metrics["threshold"], "dice_val": metrics["dice_val"],
            # runs from before the density floor: the raw walks at the chosen threshold
            "walk_dice_val": metrics.get("walk_dice_val",
                                         metrics["walk_dice_val_by_threshold"].get(str(metrics["threshold"]))),
            "mask_floor_hu": metrics.get("mask_floor_hu"),
            "context_mae_val": metrics.get("context_level_mae_val")}


def _same_results(a: Path, b: Path) -> bool:
    """Whether two runs of a row gave the same per-scan table and metrics (the run id aside)."""
    def metrics(folder):
        return {k: v for k, v in json.loads((folder / "metrics.json").read_text()).items() if k != "run_id"}
    return ((a / "per_case.csv").read_bytes() == (b / "per_case.csv").read_bytes()
            and metrics(a) == metrics(b))


def collect() -> pd.DataFrame:
    """One line per row and seed: the committed row as seed 0 (``results/runs``), then this study's runs."""
    lines = []
    for row in ROWS:
        lines.append(_summary(row, 0, ROOT / "results" / "runs" / row, "committed row"))
        for folder in sorted(OUT.glob(f"{row}-seed*")):
            seed = int(folder.name.rsplit("-seed", 1)[1])
            line = _summary(row, seed, folder, "this study")
            if seed == 0:  # trained again from an empty cache: does it repeat the committed row?
                line["source"] = "this study, seed 0 again"
                line["same_as_committed"] = _same_results(folder, ROOT / "results" / "runs" / row)
            lines.append(line)
    table = pd.DataFrame(lines)
    # the choice a user could make without a test scan: the network with the best validation walk Dice,
    # within each row and over both
    walk = table["walk_dice_val"].fillna(-1.0)
    table["best_walk_in_row"] = walk == walk.groupby(table["row"]).transform("max")
    table["best_walk_overall"] = walk == walk.max()
    write_text_atomic(TABLE, table.to_csv(index=False, float_format="%.4g"))
    return table


def export(row: str, seed: int) -> Path:
    """Copy one study run's weights from the cache next to its metrics, for ``label-spine --weights``."""
    name = f"{row}-seed{seed}"
    source = cache_dir() / "instance-seed-study" / name / "weights.pt"
    if not source.is_file():
        raise SystemExit(f"{source}: no such weights (run `run {row} {seed}` first, with the same VERTEBRA_CACHE)")
    target = write_bytes_atomic(OUT / name / "weights.pt", source.read_bytes())
    print(f"{name}: weights copied to {target.relative_to(ROOT)}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("run", help="train and evaluate one row with one seed")
    one.add_argument("row", choices=ROWS)
    one.add_argument("seed", type=int)
    sub.add_parser("collect", help=f"write {TABLE.relative_to(ROOT)}")
    keep = sub.add_parser("export", help="copy one run's weights next to its metrics")
    keep.add_argument("row", choices=ROWS)
    keep.add_argument("seed", type=int)
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.row, args.seed)
    elif args.command == "export":
        export(args.row, args.seed)
    else:
        print(collect().to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
