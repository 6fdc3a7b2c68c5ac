"""Work spread over processes gives the same results as in one process (cohorts, the runner's rows)."""
import json
import os

import numpy as np

from vertebra import reproduce
from vertebra.io import read_verse_case
from vertebra.parallel import parallel_map
from vertebra.phantom import cohort
from vertebra.reproduce import NotebookRun, Workspace


def _square_and_threads(x):
    return x * x, os.environ.get("OMP_NUM_THREADS")


def test_parallel_map_keeps_order_and_gives_each_worker_one_thread():
    assert parallel_map(_square_and_threads, [3, 1, 2], jobs=1, progress=False)[0][0] == 9
    out = parallel_map(_square_and_threads, [3, 1, 2, 5], jobs=2, progress=False)
    assert [v for v, _ in out] == [9, 1, 4, 25]
    assert {t for _, t in out} == {"1"}


def test_cohort_files_do_not_depend_on_the_number_of_processes(tmp_path):
    one = cohort("ctc_test", spacing_mm=8.0, n=3, seed=5, out=tmp_path / "one", progress=False)
    two = cohort("ctc_test", spacing_mm=8.0, n=3, seed=5, out=tmp_path / "two", progress=False, jobs=2)
    assert [p.name for p in one] == [p.name for p in two]
    for a, b in zip(one, two):
        ca, cb = read_verse_case(a), read_verse_case(b)
        assert np.array_equal(ca.image.array, cb.image.array)
        assert np.array_equal(ca.vertebrae.array, cb.vertebrae.array)
        assert ca.centroids_mm.keys() == cb.centroids_mm.keys()
        assert all(np.array_equal(ca.centroids_mm[k], cb.centroids_mm[k]) for k in ca.centroids_mm)


NOTEBOOK = '''# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
scale = "smoke"
seed = 0
value = 1
results_dir = ""

# %%
import json, os
from pathlib import Path
Path(results_dir, f"value{value}.json").write_text(json.dumps(
    {"pid": os.getpid(), "threads": os.environ.get("OMP_NUM_THREADS")}))
'''


def test_rows_run_in_parallel_processes_with_the_requested_threads(tmp_path, monkeypatch):
    ws = Workspace(tmp_path, tmp_path / "results", tmp_path / "executed", tmp_path / "records", tmp_path)
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "fake.py").write_text(NOTEBOOK)
    ws.results_dir.mkdir()
    runs = [NotebookRun("fake", {"scale": "smoke", "seed": 0, "value": v}, f"row{v}") for v in (1, 2, 3)]
    monkeypatch.setattr(reproduce, "plan", lambda rows, scale, seed: runs)
    records = reproduce.reproduce("all", "smoke", ws=ws, book=False, jobs=2, threads=1)
    assert [r["name"] for r in records] == ["fake-row1", "fake-row2", "fake-row3"]   # plan order
    assert {r["status"] for r in records} == {"ok"}, [(r["name"], r["status"], r.get("error")) for r in records]
    written = [json.loads((ws.results_dir / f"value{v}.json").read_text()) for v in (1, 2, 3)]
    assert {w["threads"] for w in written} == {"1"}
    # a second call finds every row unchanged
    again = reproduce.reproduce("all", "smoke", ws=ws, book=False, jobs=2, threads=1)
    assert {r["status"] for r in again} == {"skipped"}
    # another thread count is another computation: the rows run again
    assert {r["status"] for r in reproduce.reproduce("all", "smoke", ws=ws, book=False, jobs=1,
                                                      threads=2)} == {"ok"}
    assert json.loads((ws.results_dir / "value1.json").read_text())["threads"] == "2"


def test_the_cache_follows_the_environment(tmp_path, monkeypatch):
    from vertebra.cache import cache_dir
    monkeypatch.setenv("VERTEBRA_CACHE", str(tmp_path / "elsewhere"))
    assert cache_dir() == tmp_path / "elsewhere" and (tmp_path / "elsewhere").is_dir()
    assert cache_dir(tmp_path / "given") == tmp_path / "given"


def test_packaged_weights_follow_their_rows(tmp_path, monkeypatch):
    ws = Workspace(tmp_path, tmp_path / "results", tmp_path / "executed", tmp_path / "records", tmp_path)
    monkeypatch.setattr(reproduce, "PACKAGE_DIR", tmp_path / "pkg")
    (row,) = [r for r, name in reproduce.PACKAGED_WEIGHT_ROWS.items() if name == "instance_quick.pt"]
    run = ws.results_dir / "runs" / row
    run.mkdir(parents=True)
    (run / "weights.pt").write_bytes(b"new weights")
    assert reproduce.publish_weights(ws) == [tmp_path / "pkg" / "weights" / "instance_quick.pt"]
    assert (tmp_path / "pkg" / "weights" / "instance_quick.pt").read_bytes() == b"new weights"
    assert reproduce.publish_weights(ws) == []                    # unchanged: nothing copied


def test_file_lock_lets_one_holder_in_at_a_time(tmp_path):
    import threading
    import time
    from vertebra.cache import file_lock
    order, inside = [], threading.Event()

    def first():
        with file_lock(tmp_path / "entry" / ".lock"):
            inside.set()
            time.sleep(0.2)
            order.append("first done")

    def second():
        inside.wait()
        with file_lock(tmp_path / "entry" / ".lock"):
            order.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert order == ["first done", "second in"]
