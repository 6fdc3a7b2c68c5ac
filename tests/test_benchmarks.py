"""Every benchmark module follows the runner's contract (no timing here: timed tests are flaky)."""
import importlib
import inspect
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks` lives beside the package
from vertebra.results import cpu_description, cpu_label  # noqa: E402
from benchmarks.run_all import discover, summary_rows  # noqa: E402


@pytest.mark.parametrize("name", discover())
def test_each_benchmark_exposes_run(name):
    module = importlib.import_module(f"benchmarks.bench_{name}")
    parameters = inspect.signature(module.run).parameters
    assert all(p.default is not inspect.Parameter.empty for p in parameters.values()), name


def test_summary_marks_goals_met_and_missed_by_direction():
    result = {"ratios": [{"metric": "a", "ratio": 2.0, "goal": 1.5, "meaning": "", "higher_is_better": False},
                         {"metric": "b", "ratio": 2.0, "goal": 1.0, "meaning": ""}]}
    assert [row[-1] for row in summary_rows("x", result)] == ["MISSED", "met"]
    assert summary_rows("gpu", {"skipped": "no CUDA device"})[0][-1] == "skipped: no CUDA device"


def test_cpu_description_names_the_model_and_its_bf16_instruction_sets(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU 9000\nflags\t\t: fpu avx2 avx512_bf16 fma\n\n"
                       "processor\t: 1\nmodel name\t: Some CPU 9000\nflags\t\t: fpu avx2 avx512_bf16 fma\n")
    cpu = cpu_description(cpuinfo)
    assert cpu == {"model": "Some CPU 9000", "bf16_flags": ["avx512_bf16"]}
    assert cpu_label(cpu) == "Some CPU 9000 (bf16: avx512_bf16)"
    assert cpu_label({"model": "x", "bf16_flags": []}) == "x (bf16: none)"
    assert cpu_description(tmp_path / "missing")["bf16_flags"] is None
