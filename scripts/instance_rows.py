"""What the instance diagnostics scripts share: the rows' trained bundles, and the per-pass table out.

Imported by `instance_memory_probe.py` and `instance_walk_quality.py` (run as ``python scripts/...``,
so this folder is on the import path).
"""
from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from vertebra.instance.weights import InstanceBundle, load_bundle
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
