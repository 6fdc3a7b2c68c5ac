"""Determinism: two runs of a Table 2 row with the same seed write the same metric files, byte for byte.

Each run gets its own cache, so nothing (cohort, preprocessed samples, checkpoints) is shared between
them: the second run recomputes everything. Timings live apart (timing.json, provenance.json and the
timing columns of train_log.csv) and are the only things allowed to differ.

The fast test runs a direct row on toy spines (two iterations); the slow one runs the smoke scale of a
row end to end, phantom cohorts included. (Byte-identical phantom cohorts on their own are tested in
test_phantom.py.)
"""
from __future__ import annotations

import json

import pytest
import torch

from test_direct import toy_spine
from vertebra.direct import load_model, run_row
from vertebra.io import write_verse_case
from vertebra.train import read_log_csv

SAME_BYTES = ("metrics.json", "per_case.csv", "params.json")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: the same sums in the same order, and no spinning threads on a busy machine
    (two threads on two shared cores made a training step ten times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_twice(params: dict, tmp_path, case_lists=None) -> tuple:
    outs = []
    for n in (1, 2):
        out = tmp_path / f"run{n}" / "results" / "runs" / params["run_id"]
        run_row({**params, **(case_lists or {}), "cache": str(tmp_path / f"run{n}" / "cache")}, out)
        outs.append(out)
    return tuple(outs)


def assert_same_results(a, b) -> None:
    for name in SAME_BYTES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    untimed = [[{k: v for k, v in r.items() if k not in ("wait_s", "seconds")} for r in read_log_csv(d / "train_log.csv")]
               for d in (a, b)]
    assert untimed[0] == untimed[1]
    (net_a, _), (net_b, _) = load_model(a / "weights.pt"), load_model(b / "weights.pt")
    for (name, x), (_, y) in zip(net_a.state_dict().items(), net_b.state_dict().items()):
        assert torch.equal(x, y), name
    assert (a.parent.parent / "table2.csv").read_bytes() == (b.parent.parent / "table2.csv").read_bytes()
    assert "train_seconds" not in json.loads((a / "metrics.json").read_text(encoding="utf-8"))
    assert "train_seconds" in json.loads((a / "timing.json").read_text(encoding="utf-8"))


def test_direct_row_on_toy_spines_is_byte_identical(tmp_path):
    root = tmp_path / "cases"
    cases = []
    for seed in range(4):
        image, vertebrae, ribs, centroids, meta = toy_spine(seed)
        cases.append(write_verse_case(root, f"toy{seed}", image, vertebrae=vertebrae, ribs=ribs,
                                      centroids_mm=centroids, meta=meta))
    params = {"run_id": "toy-determinism", "classes": "L1", "n_train": 2, "n_aug": 2, "label_source": "hand",
              "scale": "smoke", "seed": 3, "iterations": 2, "features": 4}
    a, b = run_twice(params, tmp_path, {"train_cases": cases[:2], "val_cases": cases[2:3], "test_cases": cases[2:]})
    assert_same_results(a, b)


@pytest.mark.slow
def test_smoke_row_with_its_phantom_cohorts_is_byte_identical(tmp_path):
    pytest.importorskip("vertebra.phantom")
    params = {"run_id": "unet-l1-hand-22", "classes": "L1", "n_train": 22, "n_aug": 4, "label_source": "hand",
              "scale": "smoke", "seed": 1}
    a, b = run_twice(params, tmp_path)
    assert_same_results(a, b)
