"""The reproduce runner: plan selection, skip-if-unchanged, provenance, atomic outputs (tiny fake notebook)."""
import json
from pathlib import Path

import pytest

from vertebra import reproduce
from vertebra.experiments import DIRECT_ROWS, INSTANCE_ROWS
from vertebra.reproduce import NotebookRun, Workspace, execute, notebook_parameter_names, plan

FAKE = '''# ---
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
from pathlib import Path
Path(results_dir, "value.txt").write_text(str(value * 2))
'''


@pytest.fixture
def workspace(tmp_path):
    ws = Workspace(tmp_path, tmp_path / "results", tmp_path / "executed", tmp_path / "records", tmp_path)
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "fake.py").write_text(FAKE)
    ws.results_dir.mkdir()
    return ws


def names(runs):
    return [r.name for r in runs]


def test_plan_all_has_every_row_between_data_and_summary_notebooks():
    runs = names(plan("all", "quick"))
    assert runs[:2] == ["01_synthetic_cohort", "02_pseudomasks"]
    assert runs[-5:] == ["05_ctc_evaluation", "06_figure2", "07_figure3", "08_table2", "09_real_ct"]
    assert len(runs) == 2 + len(DIRECT_ROWS) + len(INSTANCE_ROWS) + 5


def test_plan_selection_by_group_and_run_id():
    direct = plan("direct", "smoke")
    assert [r.run_id for r in direct if r.run_id] == [r.run_id for r in DIRECT_ROWS]
    mixed = plan("unet-l1-hand-44,instance", "smoke", seed=3)
    ids = [r.run_id for r in mixed if r.run_id]
    assert ids == ["unet-l1-hand-44"] + [r.run_id for r in INSTANCE_ROWS]
    row = next(r for r in mixed if r.run_id == "unet-l1-hand-44")
    assert row.parameters == {"classes": "L1", "n_train": 44, "n_aug": 256, "label_source": "hand", "fcnn_iterations": 300,
                              "scale": "smoke", "seed": 3, "run_id": "unet-l1-hand-44"}
    assert row.name == "03_direct_l1-unet-l1-hand-44"


def test_plan_rejects_unknown_rows_and_scales():
    with pytest.raises(ValueError, match="unknown rows"):
        plan("unet-l1-hand-99")
    with pytest.raises(ValueError, match="unknown scale"):
        plan("all", "huge")


def test_the_book_toc_lists_every_planned_notebook():
    from vertebra.book import toc_files

    toc = toc_files(Path(reproduce.REPO_ROOT) / "_toc.yml")
    executed = [t.removeprefix("book/executed/") for t in toc if t.startswith("book/executed/")]
    assert sorted(executed) == sorted(names(plan("all")))


def test_parameter_names_come_from_the_parameters_cell():
    assert notebook_parameter_names(FAKE) == {"scale", "seed", "value", "results_dir"}


def test_missing_notebook_is_reported_not_raised(workspace):
    record = execute(NotebookRun("not_written_yet", {"scale": "smoke"}), workspace)
    assert record["status"] == "missing"


def test_run_skip_rerun_and_provenance(workspace):
    run = NotebookRun("fake", {"scale": "smoke", "seed": 0, "value": 2})
    first = execute(run, workspace)
    assert first["status"] == "ok"
    assert (workspace.results_dir / "value.txt").read_text(encoding="utf-8") == "4"  # results_dir was injected
    out = workspace.executed_dir / "fake.ipynb"
    assert out.exists() and not list(workspace.executed_dir.glob("*.part"))
    record = json.loads((workspace.records_dir / "fake.json").read_text(encoding="utf-8"))
    for key in ("fingerprint", "params", "seed", "git_commit", "packages", "device", "wall_time_s",
                "peak_memory_mb", "started_utc"):
        assert key in record, key
    assert record["params"]["value"] == 2 and record["status"] == "ok"

    assert execute(run, workspace)["status"] == "skipped"          # nothing changed
    assert execute(run, workspace, force=True)["status"] == "ok"     # forced
    changed = NotebookRun("fake", {"scale": "smoke", "seed": 0, "value": 3})
    assert execute(changed, workspace)["status"] == "ok"             # parameters changed
    assert (workspace.results_dir / "value.txt").read_text(encoding="utf-8") == "6"

    out.unlink()  # an executed notebook that went missing is run again
    assert execute(changed, workspace)["status"] == "ok"


def test_failed_notebook_leaves_no_output_and_is_retried(workspace, tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "cache_dir", lambda root=None: tmp_path / "cache")
    (tmp_path / "notebooks" / "broken.py").write_text(FAKE.replace("value * 2", "value / 0"))
    run = NotebookRun("broken", {"scale": "smoke", "seed": 0})
    record = execute(run, workspace)
    assert record["status"] == "failed" and "ZeroDivisionError" in record["error"]
    assert not (workspace.executed_dir / "broken.ipynb").exists()
    assert (tmp_path / "cache" / "failed" / "broken.ipynb").exists()
    assert json.loads((workspace.records_dir / "broken.json").read_text(encoding="utf-8"))["status"] == "failed"
    assert execute(run, workspace)["status"] == "failed"  # a failed run is never "unchanged"


def test_summary_fingerprint_follows_result_files(workspace):
    run = NotebookRun("08_table2", {"scale": "smoke", "seed": 0})
    before = reproduce.fingerprint(run, "source", workspace)
    (workspace.results_dir / "table2.csv").write_text("run_id,scale\nx,smoke\n")
    assert reproduce.fingerprint(run, "source", workspace) != before
    # what page 09 writes itself does not make the summary pages stale
    before = reproduce.fingerprint(run, "source", workspace)
    (workspace.results_dir / "real_ct").mkdir(parents=True, exist_ok=True)
    (workspace.results_dir / "real_ct" / "methods.csv").write_text("run_id\nx\n")
    assert reproduce.fingerprint(run, "source", workspace) == before
    row = NotebookRun("fake", {"scale": "smoke"}, run_id="x")
    assert reproduce.fingerprint(row, "source", workspace) == reproduce.fingerprint(row, "source", workspace)


def test_fingerprint_hashes_only_the_package_modules_the_notebook_imports(workspace, tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import json\n\ndef f():\n    from .sub import b  # a lazy, relative import\n")
    (pkg / "sub" / "b.py").write_text("from ..c import g\n")
    (pkg / "c.py").write_text("g = 1\n")
    (pkg / "unused.py").write_text("x = 1\n")
    monkeypatch.setattr(reproduce, "PACKAGE_DIR", pkg)
    source = "# %%\nfrom pkg.a import f\n"
    files = reproduce.imported_package_files(source)
    assert [f.relative_to(pkg).as_posix() for f in files] == ["__init__.py", "a.py", "c.py", "sub/__init__.py",
                                                             "sub/b.py"]
    run = NotebookRun("fake", {"scale": "smoke"}, run_id="x")
    before = reproduce.fingerprint(run, source, workspace)
    (pkg / "unused.py").write_text("x = 2\n")               # not imported: the row stays current
    assert reproduce.fingerprint(run, source, workspace) == before
    (pkg / "c.py").write_text("g = 2\n")                    # imported through two modules: stale
    assert reproduce.fingerprint(run, source, workspace) != before
    # a notebook that does not parse is conservatively tied to every file
    assert len(reproduce.imported_package_files("def broken(:\n")) == 6


def test_the_direct_rows_do_not_run_the_instance_code():
    source = (reproduce.REPO_ROOT / "notebooks" / "03_direct_l1.py").read_text(encoding="utf-8")
    files = {f.relative_to(reproduce.PACKAGE_DIR).as_posix() for f in reproduce.imported_package_files(source)}
    assert {"__init__.py", "direct.py", "train.py", "models/unet.py"} <= files
    assert not any(f.startswith("instance/") for f in files)
    instance = (reproduce.REPO_ROOT / "notebooks" / "04_instance.py").read_text(encoding="utf-8")
    assert "instance/traversal.py" in {f.relative_to(reproduce.PACKAGE_DIR).as_posix()
                                       for f in reproduce.imported_package_files(instance)}


def test_dry_run_says_what_would_run_and_why(workspace, monkeypatch):
    run = NotebookRun("fake", {"scale": "smoke", "seed": 0, "value": 3}, run_id="x")
    monkeypatch.setattr(reproduce, "plan", lambda rows, scale, seed: [run])
    assert reproduce.stale_runs(ws=workspace) == [{"name": "fake-x", "why": "never run"}]
    assert execute(run, workspace)["status"] == "ok"
    assert reproduce.stale_runs(ws=workspace) == [{"name": "fake-x", "why": None}]
    (workspace.executed_dir / "fake-x.ipynb").unlink()
    assert reproduce.stale_runs(ws=workspace)[0]["why"] == "executed notebook missing"
    assert execute(run, workspace)["status"] == "ok"
    (workspace.root / "notebooks" / "fake.py").write_text(FAKE.replace("value * 2", "value * 4"))
    assert "changed" in reproduce.stale_runs(ws=workspace)[0]["why"]
    assert (workspace.results_dir / "value.txt").read_text() == "6"   # the dry run ran nothing


def test_summary_table_lists_each_run():
    text = reproduce.summary_table([{"name": "a", "status": "ok", "wall_time_s": 1.25, "l1_acc_test": 0.5},
                                    {"name": "b", "status": "missing"}])
    assert "a" in text and "1.2" in text and "0.50" in text and "missing" in text
