"""scripts/instance_memory_probe.py: one pass per (vertebra, memory kind), scored against the truth."""
import importlib.util
from pathlib import Path

import torch

from vertebra.instance.traversal import TraversalConfig
from vertebra.instance.weights import InstanceBundle
from vertebra.io import read_verse_case
from vertebra.models.instance_unet import InstanceUNet, InstanceUNetConfig
from vertebra.phantom import cohort

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "instance_memory_probe.py"


def test_probe_scores_each_vertebra_with_and_without_memory(tmp_path):
    spec = importlib.util.spec_from_file_location("instance_memory_probe", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    net = InstanceUNet(InstanceUNetConfig(features=2, group_size=2)).eval()
    bundle = InstanceBundle({"down": net}, 8.0, TraversalConfig(patch_voxels=16, threshold=0.5))
    case = read_verse_case(cohort("instance", spacing_mm=8.0, n=1, out=tmp_path, progress=False)[0])
    rows = module.probe(bundle, case)
    labels = {r["label"] for r in rows}
    assert len(rows) == 2 * len(labels) and {r["memory"] for r in rows} == {"vertebrae above", "empty"}
    assert sum(r["first_in_scan"] for r in rows) == 2                  # the top vertebra, both ways
    assert all(0.0 <= r["dice"] <= 1.0 and r["truth_voxels"] > 0 for r in rows)
