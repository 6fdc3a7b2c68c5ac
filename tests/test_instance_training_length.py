"""scripts/instance_training_length.py: the committed instance row beside the same row trained longer."""
import json

import pytest
from test_instance_memory_probe import load_script


@pytest.fixture
def study(tmp_path, monkeypatch):
    """The script with its folders moved under tmp_path and one row, `row-a`."""
    module = load_script("instance_training_length", monkeypatch)
    monkeypatch.setattr(module, "ROOT", tmp_path)
    monkeypatch.setattr(module, "OUT", tmp_path / "results" / "instance_training_length")
    monkeypatch.setattr(module, "TABLE", tmp_path / "results" / "instance_training_length.csv")
    monkeypatch.setattr(module, "ROWS", ("row-a",))
    return module


def _run(folder, steps, l1_acc, dice_vals):
    folder.mkdir(parents=True)
    test = {"l1_acc": l1_acc, "med_err_mm": 8.0, "avg_err_mm": 9.0, "dice": 0.3, "id_rate": 0.4,
            "missing_cases": [], "match_dice_complete": 0.6, "dice_complete": 0.5}
    (folder / "metrics.json").write_text(json.dumps({
        "test": test, "n_test": 40, "threshold": 0.98, "dice_val": 0.6, "iterations": steps, "seed": 0,
        "walk_dice_val": 0.7, "walk_dice_val_by_threshold": {"0.98": 0.65}, "mask_floor_hu": 100.0}))
    quarter = steps // 4
    log = "direction,step,loss,dice_val\n" + "".join(
        f"down,{s},0.5,{'' if s % quarter else dice_vals[s // quarter - 1]}\n" for s in range(1, steps + 1))
    (folder / "train_log.csv").write_text(log)
    (folder / "timing.json").write_text(json.dumps({"train_seconds": steps / 2}))


def test_collect_lists_the_committed_row_then_the_longer_runs_by_steps(study, tmp_path):
    _run(tmp_path / "results" / "runs" / "row-a", 8, 0.5, [0.1, 0.2, 0.3, 0.4])
    out = tmp_path / "results" / "instance_training_length"
    _run(out / "row-a-seed0-steps16", 16, 0.75, [0.2, 0.3, 0.4, 0.5])
    _run(out / "row-a-seed0-steps12", 12, 0.6, [0.15, 0.25, 0.35, 0.45])
    table = study.collect()
    assert table["steps"].tolist() == [8, 12, 16]
    assert table["source"].tolist() == ["committed row", "this study", "this study"]
    assert table["l1_acc"].tolist() == [0.5, 0.6, 0.75]
    assert table["walk_dice_val"].tolist() == [0.7, 0.7, 0.7]          # the chosen threshold and floor
    assert table["dice_val_down_step8"].tolist()[0] == 0.4            # the end of the committed run
    assert table["dice_val_down_step16"].tolist()[2] == 0.5
    assert table["train_seconds"].tolist() == [4.0, 6.0, 8.0]
    assert (tmp_path / "results" / "instance_training_length.csv").read_text().startswith("row,steps,")


def test_collect_without_a_longer_run_writes_an_empty_table(study, tmp_path):
    _run(tmp_path / "results" / "runs" / "row-a", 8, 0.5, [0.1, 0.2, 0.3, 0.4])
    assert study.collect().empty
