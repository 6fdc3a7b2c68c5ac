"""The book's tables, computed from the files under `results/` (never typed by hand).

- `table2`: Table 2 of the paper next to ours (from `results/table2.csv`), with the difference and
  the one command that re-runs each row.
- `per_case_results`, `shift_counts`, `accuracy_by_stratum`: the CTC test evaluation of Section 3.1
  from the per-case files the methods write (`results/runs/<run_id>/per_case*.csv`).
- `benchmarks_table`: the performance chapter, from `results/benchmarks/*.json`.

Per-case columns (written by the method notebooks): case_id, l1_found, l1_correct, cc_error_mm,
shift, dice, anomalies, protocol. `shift` is the craniocaudal rank of the vertebra a method called L1
minus the rank of the true L1 (`vertebra.labels.rank`): -1 is "shifted up" to T12, +1 "shifted down"
to L2. `anomalies` holds the case's anomalies separated by ';' (empty: none).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .experiments import ROWS, Row

#: the metric columns of Table 2, in the paper's order
METRICS = ("dice_val", "avg_err_test_mm", "med_err_test_mm", "l1_acc_test")


def papermill_command(row: Row, scale: str = "quick", seed: int = 0) -> str:
    """The one shell command that re-runs `row` with jupytext and papermill (no `vertebra` needed).

    The kernel gets one torch/OpenMP thread, as the committed runs did, so the numbers come back
    bit-identical."""
    params = " ".join(f"-p {k} {_shell_value(v)}" for k, v in row.papermill_parameters(scale, seed).items())
    return (f"jupytext --to ipynb notebooks/{row.notebook}.py -o - | "
            f"OMP_NUM_THREADS=1 papermill - book/executed/{row.notebook}-{row.run_id}.ipynb {params}")


def reproduce_command(row: Row, scale: str = "quick") -> str:
    """The `vertebra reproduce` equivalent of `papermill_command`."""
    return f"vertebra reproduce --rows {row.run_id} --scale {scale}"


def _shell_value(value) -> str:
    text = str(value)
    return f"'{text}'" if any(c in text for c in " ,+;&|()") else text


def table2(results_dir: str | Path = "results", scale: str = "quick", seed: int = 0) -> pd.DataFrame:
    """Table 2: one line per row of `vertebra.experiments.ROWS`, the paper's numbers and ours.

    Columns: run_id, method, classes, label_source, n_train, n_aug, then for each metric
    `<metric>_paper`, `<metric>_ours`, `<metric>_diff` (ours - paper), then n_test, command,
    reproduce. Rows not run yet have empty (NaN) numbers.
    """
    path = Path(results_dir) / "table2.csv"
    ours = pd.read_csv(path, dtype={"run_id": str, "scale": str}) if path.exists() else pd.DataFrame()
    if len(ours):
        ours = ours[ours["scale"] == scale].drop_duplicates("run_id", keep="last").set_index("run_id")
    lines = []
    for row in ROWS:
        paper = row.paper or {}
        mine = ours.loc[row.run_id] if row.run_id in getattr(ours, "index", ()) else None
        line = {"run_id": row.run_id, "method": row.method, "classes": row.classes,
                "label_source": row.params.get("label_source", "truth"),
                "n_train": paper.get("n_train", row.params.get("n_train")),
                "n_aug": paper.get("n_aug", row.params.get("n_aug"))}
        for metric in METRICS:
            p = _number(paper.get(metric))
            o = _number(mine[metric]) if mine is not None and metric in mine else float("nan")
            line.update({f"{metric}_paper": p, f"{metric}_ours": o, f"{metric}_diff": o - p})
        line["n_test"] = _number(mine["n_test"]) if mine is not None and "n_test" in mine else float("nan")
        line["command"] = papermill_command(row, scale, seed)
        line["reproduce"] = reproduce_command(row, scale)
        lines.append(line)
    frame = pd.DataFrame(lines)
    for col in ("n_train", "n_aug"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
    return frame


#: short column titles for the book's Table 2 (metric_kind → "metric kind")
SHORT_METRIC = {"dice_val": "Dice val", "avg_err_test_mm": "avg err mm", "med_err_test_mm": "med err mm",
                "l1_acc_test": "L1 acc"}


def table2_for_display(table: pd.DataFrame) -> pd.DataFrame:
    """Table 2 as the book shows it: indexed by run_id, short titles, no command columns."""
    names = {f"{m}_{k}": f"{short} {'Δ' if k == 'diff' else k}" for m, short in SHORT_METRIC.items()
             for k in ("paper", "ours", "diff")}
    names.update(label_source="labels")
    return (table.drop(columns=["command", "reproduce", "method"]).rename(columns=names)
            .set_index("run_id"))


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def per_case_results(results_dir: str | Path = "results") -> pd.DataFrame:
    """Every per-case file under `results/runs/*/`, stacked, with `run_id` and `cohort` columns.

    `per_case.csv` holds the ctc_test cases; `per_case_<cohort>.csv` another cohort (for example
    `per_case_anomaly_test.csv`); a `cohort` column inside a file wins over its name.
    """
    frames = []
    for path in sorted(Path(results_dir).glob("runs/*/per_case*.csv")):
        frame = pd.read_csv(path, dtype={"case_id": str, "anomalies": str})
        frame.insert(0, "run_id", path.parent.name)
        if "cohort" not in frame:
            stem = path.stem.removeprefix("per_case").lstrip("_")
            frame["cohort"] = stem or "ctc_test"
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["run_id", "cohort", "case_id", "l1_found", "l1_correct",
                                     "cc_error_mm", "shift", "anomalies"])
    out = pd.concat(frames, ignore_index=True)
    out["anomalies"] = out.get("anomalies", pd.Series(index=out.index, dtype=str)).fillna("")
    return out


def _truthy(series: pd.Series) -> pd.Series:
    return series.astype(str).str.lower().isin(("1", "true", "1.0", "yes"))


def _shift_numbers(group: pd.DataFrame) -> pd.Series:
    return pd.to_numeric(group["shift"], errors="coerce") if "shift" in group else pd.Series(
        float("nan"), index=group.index)


def outcome(per_case: pd.DataFrame) -> pd.Series:
    """One word per case: 'correct', 'up' (shifted up), 'down', 'other' (further off), 'not found'."""
    found = _truthy(per_case["l1_found"]) if "l1_found" in per_case else pd.Series(True, index=per_case.index)
    correct = _truthy(per_case["l1_correct"])
    shift = _shift_numbers(per_case)
    words = pd.Series("other", index=per_case.index)
    words[shift < 0] = "up"
    words[shift > 0] = "down"
    words[correct] = "correct"
    words[~found] = "not found"
    return words


def shift_counts(per_case: pd.DataFrame) -> pd.DataFrame:
    """Per run: cases, correct, shifted up (to T12), shifted down (to L2), other, not found (§3.1)."""
    rows = []
    for run_id, group in per_case.groupby("run_id", sort=False):
        words = outcome(group)
        rows.append({"run_id": run_id, "n": len(group), "correct": int((words == "correct").sum()),
                     "shifted_up": int((words == "up").sum()), "shifted_down": int((words == "down").sum()),
                     "other": int((words == "other").sum()), "not_found": int((words == "not found").sum()),
                     "accuracy": float((words == "correct").mean()) if len(group) else float("nan")})
    return pd.DataFrame(rows, columns=["run_id", "n", "correct", "shifted_up", "shifted_down", "other",
                                       "not_found", "accuracy"])


def case_outcomes(per_case: pd.DataFrame) -> pd.DataFrame:
    """Cases (rows, with their anomalies and protocol) by runs (columns): the outcome of each case."""
    if per_case.empty:
        return pd.DataFrame()
    frame = per_case.assign(outcome=outcome(per_case))
    table = frame.pivot_table(index="case_id", columns="run_id", values="outcome", aggfunc="first")
    info = frame.drop_duplicates("case_id").set_index("case_id")
    for col in ("protocol", "anomalies"):
        if col in info:
            table.insert(0, col, info[col].reindex(table.index).fillna(""))
    return table


def best_run(results_dir: str | Path = "results", scale: str = "quick", method: str = "3D U-Net") -> str | None:
    """The run_id of `method` with the highest L1 accuracy in Table 2 at `scale` (None if none ran)."""
    table = table2(results_dir, scale)
    table = table[(table["method"] == method) & table["l1_acc_test_ours"].notna()]
    if table.empty:
        return None
    return str(table.sort_values(["l1_acc_test_ours", "avg_err_test_mm_ours"],
                                 ascending=[False, True]).iloc[0]["run_id"])


def accuracy_by_stratum(per_case: pd.DataFrame) -> pd.DataFrame:
    """L1 accuracy per run (rows) and anomaly (columns); a case with no anomaly counts as 'none'."""
    if per_case.empty:
        return pd.DataFrame()
    long = per_case.assign(
        stratum=per_case["anomalies"].fillna("").astype(str).str.replace(",", ";").str.split(";"),
        correct=_truthy(per_case["l1_correct"]))
    long = long.explode("stratum")
    long["stratum"] = long["stratum"].str.strip().replace("", "none")
    return long.pivot_table(index="run_id", columns="stratum", values="correct", aggfunc="mean")


def benchmarks_table(results_dir: str | Path = "results") -> pd.DataFrame:
    """One line per `results/benchmarks/*.json`: its name and its top-level numbers and strings."""
    lines = []
    for path in sorted(Path(results_dir).glob("benchmarks/*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            continue
        flat = {"benchmark": path.stem}
        if isinstance(data, dict):
            for key, value in data.items():
                if isinstance(value, (int, float, str, bool)) or value is None:
                    flat[key] = value
                elif isinstance(value, dict):
                    flat.update({f"{key}.{k}": v for k, v in value.items()
                                 if isinstance(v, (int, float, str, bool))})
        lines.append(flat)
    return pd.DataFrame(lines)
