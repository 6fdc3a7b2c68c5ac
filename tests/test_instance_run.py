"""One instance row end to end on toy spines (smoke scale, a few steps), and the per-stratum summary."""
import csv
import json

import numpy as np
import pytest

from vertebra.instance.evaluation import summarise_by_stratum
from vertebra.instance.run import model_directions
from vertebra.metrics import score_l1


TRUTH = {19: (0, 0, 35.0), 20: (0, 0, 0.0), 21: (0, 0, -35.0)}


def _record(case_id, correct, anomalies=""):
    record = score_l1(case_id, (0, 0, 1.0) if correct else (0, 0, 33.0), TRUTH)
    return {**record, "anomalies": anomalies, "dice": 0.8, "id_rate": 0.5, "passes_per_vertebra": 3.0,
            "seconds": 1.0}


def test_strata_count_each_anomaly():
    strata = summarise_by_stratum([_record("a", True), _record("b", False, "t13"),
                                   _record("c", True, "t13;metal")])
    assert set(strata) == {"all", "none", "t13", "metal"}
    assert strata["all"]["n"] == 3 and strata["t13"]["n"] == 2 and strata["t13"]["l1_acc"] == 0.5
    assert strata["none"]["l1_acc"] == 1.0 and strata["all"]["dice"] == pytest.approx(0.8)


def test_model_directions_per_row():
    base = {"mode": "top-down", "fix_combine_directions": False}
    assert model_directions(base) == {"down": "top-down"}
    assert model_directions({**base, "mode": "bottom-up"}) == {"up": "bottom-up"}
    assert model_directions({**base, "fix_combine_directions": True}) == {"down": "top-down", "up": "bottom-up"}


@pytest.mark.slow
def test_run_row_writes_every_result_file(tmp_path, monkeypatch):
    from vertebra.instance.run import run_row
    from vertebra.instance.toy import write_toy_cases
    monkeypatch.setenv("HOME", str(tmp_path))                  # training checkpoints go to a private cache
    import vertebra.cache
    monkeypatch.setattr(vertebra.cache, "DEFAULT_CACHE", tmp_path / "cache")
    cases = write_toy_cases(tmp_path / "cases", 4, np.random.default_rng(0))
    out = tmp_path / "run"
    metrics = run_row({"scale": "smoke", "iterations": 2, "run_id": "instance", "fix_completeness_head": True,
                       "fix_edge_patches": True, "fix_context_levels": True}, out, train_cases=cases[:3],
                      test_cases=cases[3:], table2_path=tmp_path / "table2.csv")
    for name in ("params.json", "metrics.json", "per_case.csv", "train_log.csv", "provenance.json", "weights.pt"):
        assert (out / name).is_file(), name
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8"))["n_test"] == 1 == metrics["n_test"]
    assert metrics["context_level_mae_val"] >= 0                  # fix (d) trained and scored its network
    assert metrics["context_level_mae_val_calibrated"] >= 0 and metrics["n_train_context"] == 2
    from vertebra.instance.run import WALK_THRESHOLDS
    from vertebra.instance.run import MASK_FLOORS_HU
    walks = metrics["walk_dice_val_by_threshold"]                # the threshold was chosen on whole walks
    assert list(walks) == [str(t) for t in WALK_THRESHOLDS] and str(metrics["threshold"]) in walks
    by_floor = metrics["walk_dice_val_by_floor"]                 # ... together with the density floor
    assert list(by_floor) == list(walks) and all(list(v) == [str(f) for f in MASK_FLOORS_HU] for v in by_floor.values())
    assert all(by_floor[t]["None"] == walks[t] or np.isnan(walks[t]) for t in walks)
    # the threshold by the raw walks; the floor at that threshold
    assert walks[str(metrics["threshold"])] == max(walks.values()) or all(np.isnan(list(walks.values())))
    at_threshold = list(by_floor[str(metrics["threshold"])].values())
    chosen = by_floor[str(metrics["threshold"])][str(metrics["mask_floor_hu"])]
    assert metrics["walk_dice_val"] == chosen and (chosen == max(at_threshold) or all(np.isnan(at_threshold)))
    from vertebra.instance.weights import load_bundle
    assert load_bundle(out / "weights.pt").mask_floor_hu == metrics["mask_floor_hu"]
    assert json.loads((out / "params.json").read_text(encoding="utf-8"))["context"]["spacing_mm"] == 8.0
    rows = list(csv.DictReader(open(tmp_path / "table2.csv")))
    assert rows[0]["run_id"] == "instance" and rows[0]["scale"] == "smoke" and rows[0]["method"] == "Instance"


def test_figure3_draws_one_column_per_cohort(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    from vertebra.instance.figures import figure3, pick_cases
    from vertebra.instance.toy import write_toy_cases
    from vertebra.instance.traversal import TraversalConfig
    from vertebra.instance.weights import InstanceBundle
    from vertebra.models.instance_unet import InstanceUNet, InstanceUNetConfig

    cases = write_toy_cases(tmp_path, 3, np.random.default_rng(1))
    picked = pick_cases({"a": cases[:2], "b": cases[2:]}, np.random.default_rng(0))
    assert list(picked) == ["a", "b"] and picked["b"] == cases[2]
    bundle = InstanceBundle({"down": InstanceUNet(InstanceUNetConfig(features=4))}, 4.0,
                            TraversalConfig(patch_voxels=32, scan_stride_voxels=32))
    fig = figure3(bundle, picked)
    assert len(fig.axes) == 4
