"""scripts/instance_seed_study.py: the summary table of an instance row trained with several seeds."""
import json

import pytest
from test_instance_memory_probe import load_script


@pytest.fixture
def study(tmp_path, monkeypatch):
    """The script with its folders moved under tmp_path and one row, `row-a`."""
    module = load_script("instance_seed_study", monkeypatch)
    monkeypatch.setattr(module, "ROOT", tmp_path)
    monkeypatch.setattr(module, "OUT", tmp_path / "results" / "instance_seed_study")
    monkeypatch.setattr(module, "TABLE", tmp_path / "results" / "instance_seed_study.csv")
    monkeypatch.setattr(module, "ROWS", ("row-a",))
    return module


def _metrics(folder, l1_acc, walk_dice):
    folder.mkdir(parents=True)
    test = {"l1_acc": l1_acc, "med_err_mm": 8.0, "avg_err_mm": 9.0, "dice": 0.3, "id_rate": 0.4,
            "missing_cases": ["a", "b"]}
    (folder / "metrics.json").write_text(json.dumps({
        "test": test, "n_test": 40, "threshold": 0.98, "dice_val": 0.6,
        "walk_dice_val_by_threshold": {"0.95": 0.1, "0.98": walk_dice}, "context_level_mae_val": 0.2}))


def test_collect_puts_the_committed_row_as_seed_zero_beside_the_study_runs(study, tmp_path):
    _metrics(tmp_path / "results" / "runs" / "row-a", 0.5, 0.3)
    _metrics(tmp_path / "results" / "instance_seed_study" / "row-a-seed2", 0.25, 0.2)
    _metrics(tmp_path / "results" / "instance_seed_study" / "row-a-seed1", 0.75, 0.4)
    (tmp_path / "results" / "runs" / "row-a" / "params.json").write_text(
        json.dumps({"traversal": {"first_box_z": "first_slices"}}))
    table = study.collect()
    assert table["seed"].tolist() == [0, 1, 2]
    assert table["first_box_z"].tolist() == ["first_slices", "edge", "edge"]   # no params: the old rule
    assert table["source"].tolist() == ["committed row", "this study", "this study"]
    assert table["l1_acc"].tolist() == [0.5, 0.75, 0.25]
    assert table["walk_dice_val"].tolist() == [0.3, 0.4, 0.2]       # at the row's chosen threshold
    assert table["n_l1_missing"].tolist() == [2, 2, 2]
    assert table["best_walk_in_row"].tolist() == [False, True, False]
    assert (tmp_path / "results" / "instance_seed_study.csv").read_text().startswith("row,seed,")


def test_collect_says_whether_seed_zero_trained_again_repeats_the_committed_row(study, tmp_path):
    committed = tmp_path / "results" / "runs" / "row-a"
    again = tmp_path / "results" / "instance_seed_study" / "row-a-seed0"
    for folder in (committed, again):
        _metrics(folder, 0.5, 0.3)
        (folder / "per_case.csv").write_text("case_id,l1_correct\nc0,True\n")
    assert study.collect()["same_as_committed"].tolist()[1] is True
    (again / "per_case.csv").write_text("case_id,l1_correct\nc0,False\n")
    assert study.collect()["same_as_committed"].tolist()[1] is False
