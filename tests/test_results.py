import json
import time

import pytest

from vertebra import results


def test_update_table2_upserts_by_run_and_scale_in_row_order(tmp_path):
    path = tmp_path / "table2.csv"
    results.update_table2({"run_id": "unet-l1-hand-44", "scale": "quick", "l1_acc_test": 0.5}, path)
    results.update_table2({"run_id": "unet-l1-hand-22", "scale": "quick", "l1_acc_test": 0.4}, path)
    results.update_table2({"run_id": "unet-l1-hand-44", "scale": "quick", "l1_acc_test": 0.6}, path)
    results.update_table2({"run_id": "unet-l1-hand-44", "scale": "smoke", "l1_acc_test": 0.1}, path)
    rows = results.read_table2(path)
    assert [(r["run_id"], r["scale"], r["l1_acc_test"]) for r in rows] == [
        ("unet-l1-hand-22", "quick", "0.4"), ("unet-l1-hand-44", "quick", "0.6"),
        ("unet-l1-hand-44", "smoke", "0.1")]


def test_update_table2_rejects_unknown_columns(tmp_path):
    with pytest.raises(ValueError, match="accuracy"):
        results.update_table2({"run_id": "x", "scale": "quick", "accuracy": 1}, tmp_path / "t.csv")


def test_json_writes_are_byte_stable_and_leave_no_temporary_files(tmp_path):
    path = tmp_path / "m.json"
    results.write_json_atomic(path, {"b": 1, "a": [1.5, 2]})
    first = path.read_bytes()
    results.write_json_atomic(path, {"a": [1.5, 2], "b": 1})
    assert path.read_bytes() == first
    assert json.loads(first) == {"a": [1.5, 2], "b": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_provenance_records_what_made_a_result():
    prov = results.provenance(seed=3, params={"n_train": 22}, started=time.time() - 1.0)
    assert prov["seed"] == 3 and prov["params"] == {"n_train": 22}
    assert prov["wall_time_s"] >= 1.0 and prov["peak_memory_mb"] > 0
    assert {"torch", "numpy", "python"} <= set(prov["packages"])
    assert prov["cpu"]["model"]                                     # results repeat only on one kind of CPU


def test_git_commit_is_dirty_for_changed_code_not_for_changed_results(tmp_path):
    import shutil
    import subprocess
    if shutil.which("git") is None:
        pytest.skip("git not installed")

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "book" / "executed").mkdir(parents=True)
    (tmp_path / "vertebra" / "weights").mkdir(parents=True)
    for name in ("code.py", "results/table2.csv", "book/executed/row.ipynb", "vertebra/weights/w.pt"):
        (tmp_path / name).write_text("0\n")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
    clean = results.git_commit(tmp_path)
    assert clean and not clean.endswith("-dirty")
    (tmp_path / "results" / "table2.csv").write_text("1\n")           # a reproduction writing its results
    (tmp_path / "book" / "executed" / "row.ipynb").write_text("1\n")
    (tmp_path / "vertebra" / "weights" / "w.pt").write_text("1\n")     # the packaged rows' weights
    assert results.git_commit(tmp_path) == clean
    assert results.git_commit(tmp_path / "results") == clean          # from a subfolder too
    (tmp_path / "code.py").write_text("1\n")
    assert results.git_commit(tmp_path) == clean + "-dirty"
