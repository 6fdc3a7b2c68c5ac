"""What the instance diagnostics scripts share: the rows' trained bundles, and the per-pass table out.

Imported by `instance_memory_probe.py`, `instance_walk_quality.py`, `instance_first_box_search.py`,
`instance_floor_check.py`, `instance_ordering_ablation.py` and `instance_sacrum.py` (run as ``python scripts/...``,
so this folder is on the import path).
"""
from __future__ import annotations

import argparse
import io
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from vertebra.experiments import get_scale
from vertebra.instance.weights import InstanceBundle, load_bundle
from vertebra.phantom import cohort
from vertebra.results import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
#: the rows whose networks differ (fix (d)'s rows reuse the networks of "instance" and "instance-fix-edge";
#: their walks start where the context network sees a vertebra, see `pipeline.context_judge`)
ALL_ROWS = "instance,instance-fix-combined,instance-fix-edge,instance-fix-completeness"


def row_bundles(rows: str) -> Iterator[tuple[str, InstanceBundle]]:
    """(row, bundle) for each comma-separated row, from ``results/runs/<row>/weights.pt``."""
    for row in [r.strip() for r in rows.split(",") if r.strip()]:
        yield row, load_bundle(ROOT / "results" / "runs" / row / "weights.pt")


def write_table(records: list[dict], out: str | Path) -> pd.DataFrame:
    """The records as a CSV written atomically to ``out`` (4 significant digits); returns the table."""
    table = pd.DataFrame(records)
    buffer = io.StringIO()
    table.to_csv(buffer, index=False, float_format="%.4g")
    write_text_atomic(out, buffer.getvalue())
    return table


def write_summary(summary: pd.DataFrame, out: str | Path) -> str:
    """Write a per-group ``summary`` beside the per-scan table ``out`` (``*_summary.csv``), print it and
    say where both went; returns the summary's path."""
    summary_path = str(out).replace(".csv", "_summary.csv")
    write_table(summary.to_dict("records"), summary_path)
    print(summary.round(3).to_string(index=False))
    print(f"wrote {out} and {summary_path}")
    return summary_path


def rows_and_sets(doc: str, rows: str, sets: str, out: str, argv=None) -> argparse.Namespace:
    """The command line of a script that runs rows' bundles over scan sets: ``--rows``, ``--sets``
    (`scan_sets`), ``--scale`` and ``--out`` (a file name under ``results/``)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--rows", default=rows)
    parser.add_argument("--sets", default=sets)
    parser.add_argument("--scale", default="quick")
    parser.add_argument("--out", default=str(ROOT / "results" / out))
    return parser.parse_args(argv)


def scan_sets(spec: str, scale: str) -> list[tuple[str, list]]:
    """[(item, case folders)] for each comma-separated ``cohort:seed:first:stop`` of ``spec``: scans
    ``first`` to ``stop - 1`` of that cohort drawn with that seed."""
    spacing = get_scale(scale).phantom_spacing_mm
    sizes = get_scale(scale).cohort_sizes
    out = []
    for item in [s for s in spec.split(",") if s]:
        name, seed, first, stop = item.split(":")
        # the whole cohort, as the rows draw it (a cohort's mix of sites depends on its size)
        folders = cohort(name, spacing_mm=spacing, n=max(int(stop), sizes.get(name, 0)), seed=int(seed),
                         progress=False)
        out.append((item, list(folders)[int(first):int(stop)]))
    return out
