"""scripts/instance_memory_probe.py: one pass per (vertebra, memory kind), scored against the truth;
scripts/instance_walk_quality.py: label-free measures of a labelled scan."""
import importlib.util
from pathlib import Path

import torch

from vertebra.instance.traversal import TraversalConfig
from vertebra.instance.weights import InstanceBundle
from vertebra.io import read_verse_case
from vertebra.models.instance_unet import InstanceUNet, InstanceUNetConfig
from vertebra.phantom import cohort

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str, monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))            # as when run: the scripts share a helper module
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_bundle_and_case(tmp_path):
    torch.manual_seed(0)
    net = InstanceUNet(InstanceUNetConfig(features=2, group_size=2)).eval()
    bundle = InstanceBundle({"down": net}, 8.0, TraversalConfig(patch_voxels=16, threshold=0.5))
    case = read_verse_case(cohort("instance", spacing_mm=8.0, n=1, out=tmp_path, progress=False)[0])
    return bundle, case


def test_probe_scores_each_vertebra_with_and_without_memory(tmp_path, monkeypatch):
    module = load_script("instance_memory_probe", monkeypatch)
    bundle, case = tiny_bundle_and_case(tmp_path)
    rows = module.probe(bundle, case)
    labels = {r["label"] for r in rows}
    assert len(rows) == 2 * len(labels) and {r["memory"] for r in rows} == {"vertebrae above", "empty"}
    assert sum(r["first_in_scan"] for r in rows) == 2                  # the top vertebra, both ways
    assert all(0.0 <= r["dice"] <= 1.0 and r["truth_voxels"] > 0 for r in rows)


def test_walk_quality_counts_are_consistent(tmp_path, monkeypatch):
    module = load_script("instance_walk_quality", monkeypatch)
    bundle, case = tiny_bundle_and_case(tmp_path)
    r = module.walk_quality(bundle, case)
    assert r["n_true"] > 0 and 0 <= r["covered"] <= r["n_true"]
    assert r["off_spine"] + r["on_sacrum"] <= r["n_pieces"]
    assert 0.0 <= r["best_dice"] <= 1.0
    assert 0 <= r["below_sacrum"] <= r["n_pieces"]
    assert (r["level_sd"] is None) == (r["n_pieces"] < 2) and (r["level_mean"] is None) == (r["n_pieces"] == 0)
