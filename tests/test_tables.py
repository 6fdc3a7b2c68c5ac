"""Table 2 and the evaluation tables, recomputed from result files (and compared with the book page)."""
import json
import math
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from vertebra import tables
from vertebra.experiments import ROWS, get_row
from vertebra.results import update_table2

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def results(tmp_path):
    table = tmp_path / "table2.csv"
    update_table2({"run_id": "unet-l1-hand-44", "scale": "quick", "l1_acc_test": 0.6, "dice_val": 0.7,
                   "avg_err_test_mm": 20.0, "med_err_test_mm": 9.5, "n_test": 40}, table)
    update_table2({"run_id": "unet-l1-hand-44", "scale": "smoke", "l1_acc_test": 0.1}, table)
    run = tmp_path / "runs" / "unet-l1-hand-44"
    run.mkdir(parents=True)
    pd.DataFrame({"case_id": ["a", "b", "c", "d"], "l1_found": [True, True, True, False],
                  "l1_correct": [True, False, False, False], "cc_error_mm": [1.0, 30.0, 28.0, float("nan")],
                  "shift": ["0", "-1", "1", "other"], "anomalies": ["", "t13", "metal;fracture", ""],
                  }).to_csv(run / "per_case.csv", index=False)
    pd.DataFrame({"case_id": ["e", "f"], "l1_found": [True, True], "l1_correct": [True, False],
                  "shift": [0, -1], "anomalies": ["t13", "t13"]}).to_csv(run / "per_case_anomaly_test.csv",
                                                                         index=False)
    return tmp_path


def test_table2_has_every_row_with_paper_ours_and_difference(results):
    t = tables.table2(results, "quick")
    assert list(t["run_id"]) == [r.run_id for r in ROWS]
    line = t.set_index("run_id").loc["unet-l1-hand-44"]
    assert line["l1_acc_test_paper"] == pytest.approx(0.70)
    assert line["l1_acc_test_ours"] == pytest.approx(0.6)
    assert line["l1_acc_test_diff"] == pytest.approx(-0.1)
    assert line["n_test"] == 40
    other = t.set_index("run_id").loc["unet-l1-pseudo-249"]
    assert math.isnan(other["l1_acc_test_ours"]) and other["l1_acc_test_paper"] == pytest.approx(0.98)
    assert tables.table2(results, "smoke").set_index("run_id").loc["unet-l1-hand-44", "l1_acc_test_ours"] == 0.1


def test_table2_without_results_is_the_paper_alone(tmp_path):
    t = tables.table2(tmp_path)
    assert t["l1_acc_test_ours"].isna().all() and t["l1_acc_test_paper"].notna().sum() == 11


def test_each_row_has_one_papermill_command_and_its_runner_equivalent():
    row = get_row("unet-l1_t12pribs-hand-22")
    cmd = tables.papermill_command(row)
    assert cmd.startswith("jupytext --to ipynb notebooks/03_direct_l1.py -o - | OMP_NUM_THREADS=1 papermill - ")
    assert "-p run_id unet-l1_t12pribs-hand-22" in cmd and "-p classes 'L1,T12+ribs'" in cmd
    assert tables.reproduce_command(row) == "vertebra reproduce --rows unet-l1_t12pribs-hand-22 --scale quick"


def test_per_case_shift_counts_and_strata(results):
    per_case = tables.per_case_results(results)
    assert set(per_case["cohort"]) == {"ctc_test", "anomaly_test"}
    ctc = per_case[per_case["cohort"] == "ctc_test"]
    counts = tables.shift_counts(ctc).iloc[0]
    assert (counts["n"], counts["correct"], counts["shifted_up"], counts["shifted_down"],
            counts["not_found"]) == (4, 1, 1, 1, 1)
    assert counts["accuracy"] == 0.25
    strata = tables.accuracy_by_stratum(per_case[per_case["cohort"] == "anomaly_test"])
    assert strata.loc["unet-l1-hand-44", "t13"] == 0.5
    by_case = tables.case_outcomes(ctc)
    assert by_case.loc["b", "unet-l1-hand-44"] == "up" and by_case.loc["d", "unet-l1-hand-44"] == "not found"
    assert tables.best_run(results) == "unet-l1-hand-44"


def test_empty_results_degrade_to_empty_tables(tmp_path):
    per_case = tables.per_case_results(tmp_path)
    assert per_case.empty and tables.shift_counts(per_case).empty
    assert tables.accuracy_by_stratum(per_case).empty and tables.best_run(tmp_path) is None
    assert tables.benchmarks_table(tmp_path).empty


def test_benchmarks_table_flattens_json(tmp_path):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "phantom.json").write_text(json.dumps({"s_per_scan": 1.5, "x": {"a": 2}}))
    t = tables.benchmarks_table(tmp_path)
    assert t.loc[0, "benchmark"] == "phantom" and t.loc[0, "x.a"] == 2


def _html_table(html: str) -> dict:
    from bs4 import BeautifulSoup

    rows = {}
    body = BeautifulSoup(html, "html.parser").find("tbody")
    head = [th.get_text(strip=True) for th in BeautifulSoup(html, "html.parser").find("thead")
            .find_all("tr")[0].find_all("th")]
    for tr in body.find_all("tr"):
        cells = [c.get_text(strip=True) for c in tr.find_all(["th", "td"])]
        rows[cells[0]] = dict(zip(head[1:], cells[1:]))
    return rows


def test_book_table2_page_matches_the_results():
    page = ROOT / "book" / "executed" / "08_table2.ipynb"
    if not page.exists():
        pytest.skip("Table 2 has not been executed into the book yet")
    nb = nbformat.read(page, as_version=4)
    params = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])
                  or "parameters" in c.metadata.get("tags", []))
    scale = "smoke" if 'scale = "smoke"' in params.source else "quick"
    cell = next(c for c in nb.cells if "table2" in c.metadata.get("tags", []))
    shown = _html_table(next(o["data"]["text/html"] for o in cell.outputs if "text/html" in o.get("data", {})))
    expected = tables.table2(ROOT / "results", scale).set_index("run_id")
    assert set(shown) == set(expected.index)
    for run_id, line in expected.iterrows():
        for metric in tables.METRICS:
            for kind in ("paper", "ours"):
                value = line[f"{metric}_{kind}"]
                text = shown[run_id][f"{tables.SHORT_METRIC[metric]} {kind}"]
                assert text == ("" if pd.isna(value) else f"{value:.2f}"), (run_id, metric, kind)
