"""Every notebook: a jupytext percent source with a kernelspec, a `parameters` cell first, no outputs,
computation imported from `vertebra` (plus the standard library and the libraries that only present
results: numpy for explicit generators, pandas, matplotlib, IPython); executed copies in the book stay small and name no machine."""
import ast
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks").glob("*.py"))
EXECUTED = sorted((ROOT / "book" / "executed").glob("*.ipynb"))


def test_there_are_notebooks():
    assert SOURCES


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_parameters_cell_first_and_kernelspec(path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# ---\n"), "jupytext header missing"
    nb = jupytext.reads(text, fmt="py:percent")
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    first = nb.cells[0]
    assert first.cell_type == "code" and "parameters" in first.metadata.get("tags", []), \
        "the first cell must be the papermill parameters cell"
    assert {"scale", "seed"} <= {t.id for node in ast.parse(first.source).body if isinstance(node, ast.Assign)
                                 for t in node.targets if isinstance(t, ast.Name)}
    assert any(c.cell_type == "markdown" for c in nb.cells), "a notebook explains in markdown cells"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_outputs_in_sources(path):
    nb = jupytext.reads(path.read_text(encoding="utf-8"), fmt="py:percent")
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert "image/png" not in path.read_text(encoding="utf-8") and "execution_count" not in path.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_imports_only_from_vertebra_and_presentation_libraries(path):
    nb = jupytext.reads(path.read_text(encoding="utf-8"), fmt="py:percent")
    modules = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Import):
                modules |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split(".")[0])
    allowed = {"vertebra", "numpy", "pandas", "matplotlib", "IPython"} | set(sys.stdlib_module_names)
    assert modules <= allowed, sorted(modules - allowed)


def test_no_executed_notebooks_among_sources():
    assert not list((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", EXECUTED, ids=lambda p: p.name)
def test_executed_notebooks_are_small_and_carry_no_widget_state(path):
    assert path.stat().st_size < 3_000_000, f"{path.name} is {path.stat().st_size / 1e6:.1f} MB"
    text = path.read_text(encoding="utf-8")
    for machine_path in (str(ROOT), str(Path.home()) + "/", '"/tmp/'):
        assert machine_path not in text, f"{path.name} names a folder of the machine it ran on"
    nb = nbformat.read(path, as_version=4)
    assert "widgets" not in nb.metadata
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            assert "application/vnd.jupyter.widget-view+json" not in output.get("data", {})
            assert output.get("output_type") != "error", f"{path.name} holds an error output"
