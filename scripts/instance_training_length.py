"""Is the quick instance network short of training? The best row trained again for more steps.

The quick rows train each instance U-Net for 1,500 steps of batch 2 (the paper: far more, on a GPU),
and its masks miss about a fifth of each vertebra. This script trains the row again, exactly as
``04_instance`` does (`vertebra.instance.run.run_row`, the seed-0 cohorts and training seed), with only
the number of steps changed; Eq. 1's λn schedule stretches with it, as it does between scales. The
threshold and the floor are chosen again on the validation walks, and the test scans are labelled and
scored as the committed row's are.

    OMP_NUM_THREADS=2 python scripts/instance_training_length.py run ROW STEPS   # ~45 min for 6,000 steps
    python scripts/instance_training_length.py collect               # results/instance_training_length.csv

``run`` writes ``<cache>/instance-seed-study/<row>-seed0-steps<n>/`` (weights there, not in git) and
copies its metrics, per-scan table, parameters, training log and timing to
``results/instance_training_length/<row>-seed0-steps<n>/``; a finished run is skipped. ``collect``
puts the committed row (its scale's steps) beside every longer run, with the validation patches' Dice
at each quarter of training (``dice_val_*``: at threshold 0.5, from the training log).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from instance_seed_study import RESULT_FILES, ROWS, _summary, run
from vertebra.results import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "instance_training_length"
TABLE = ROOT / "results" / "instance_training_length.csv"
FILES = RESULT_FILES + ("train_log.csv", "timing.json")


def _line(row: str, folder: Path, source: str) -> dict:
    metrics = json.loads((folder / "metrics.json").read_text())
    line = {"row": row, "steps": metrics["iterations"], **_summary(row, metrics["seed"], folder, source)}
    line["match_dice_complete"] = metrics["test"].get("match_dice_complete")
    line["dice_complete"] = metrics["test"].get("dice_complete")
    log = pd.read_csv(folder / "train_log.csv")
    checks = log.dropna(subset=["dice_val"])
    for _, check in checks.iterrows():
        line[f"dice_val_{check['direction']}_step{int(check['step'])}"] = round(float(check["dice_val"]), 4)
    timing = folder / "timing.json"
    if timing.is_file():
        line["train_seconds"] = json.loads(timing.read_text())["train_seconds"]
    return line


def collect() -> pd.DataFrame:
    """One line per row and length: the committed row (``results/runs``), then this script's runs."""
    lines = []
    for row in ROWS:
        runs = sorted(OUT.glob(f"{row}-seed0-steps*"), key=lambda f: int(f.name.rsplit("steps", 1)[1]))
        if runs:
            lines.append(_line(row, ROOT / "results" / "runs" / row, "committed row"))
        lines += [_line(row, folder, "this study") for folder in runs]
    table = pd.DataFrame(lines)
    write_text_atomic(TABLE, table.to_csv(index=False, float_format="%.4g"))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("run", help="train and evaluate one row for a number of steps")
    one.add_argument("row", choices=ROWS)
    one.add_argument("steps", type=int)
    sub.add_parser("collect", help=f"write {TABLE.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.row, 0, iterations=args.steps, out=OUT, files=FILES)
    else:
        print(collect().to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
