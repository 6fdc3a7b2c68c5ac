"""Does the instance U-Net know the level? Its level head, and a least-squares probe of its features.

    python scripts/instance_level_probe.py [--rows instance,instance-fix-edge] [--batches 150]
                                           [--out results/instance_level_probe.csv]

For each row's trained weights (``results/runs/<row>/weights.pt``, top-down model), training patches
centred on a vertebra (the row's sampler: ±2 cm jitter, augmentation, no empty patches) are drawn from
the ``instance`` cohort's training scans, its held-out validation scans and the first ``--test`` scans
of ``ctc_test``. On each patch the level head's answer is compared with the true level, and so is:

* the median training level, always (a constant: what a head that learnt nothing scores);
* a ridge regression fitted on the training patches to the pooled bottleneck features (the head's own
  input: 16f channels averaged over the patch), and to the whole bottleneck (every position kept).

If the probe beats the head, the head was badly trained; if neither beats the constant, the features
do not hold the level. Also scored, for rows with a context network (fix (d)): that network at the true
centroid of every vertebra of the same scans. One table row per (row, cohort split, predictor): mean
absolute error in levels and the share within half a level. The cohorts come from the cache.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from instance_rows import ROOT, row_bundles, write_table
from vertebra.experiments import get_scale
from vertebra.instance.context import level_errors
from vertebra.instance.patches import PatchConfig, PatchSampler, network_input
from vertebra.instance.run import validation_split
from vertebra.instance.scan import prepare_case
from vertebra.io import read_verse_case
from vertebra.phantom import cohort

RIDGE_ALPHA = 10.0


def head_and_features(model, scans, scale, n_batches: int, seed: int) -> tuple[np.ndarray, ...]:
    """(features (N, F), true levels (N,), head's levels (N,)) on vertebra patches of ``scans``."""
    captured = {}
    hook = model.level_head.register_forward_hook(lambda m, i, o: captured.__setitem__("x4", i[0].detach()))
    sampler = PatchSampler(scans, PatchConfig(patch_voxels=scale.instance_patch, spacing_mm=scale.instance_spacing_mm,
                                              empty_fraction=0.0), batch_size=8, seed=seed)
    feats, truth, head = [], [], []
    try:
        for step in range(n_batches):
            batch = sampler(step)
            with torch.no_grad():
                out = model(network_input(batch))
            x4 = captured["x4"]
            feats.append(torch.cat([x4.mean((2, 3, 4)), x4.flatten(1)], 1).numpy())
            truth.append(batch["level"].numpy())
            head.append(out["level"].numpy())
    finally:
        hook.remove()
    return np.concatenate(feats), np.concatenate(truth).astype(float), np.concatenate(head).astype(float)


def ridge(train_x, train_y, alpha: float = RIDGE_ALPHA):
    """Standardised ridge regression; returns a predict function."""
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    x = (train_x - mu) / sd
    w = np.linalg.solve(x.T @ x + alpha * np.eye(x.shape[1]), x.T @ (train_y - train_y.mean()))
    return lambda z: ((z - mu) / sd) @ w + train_y.mean()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="instance,instance-fix-edge-context")
    parser.add_argument("--batches", type=int, default=150, help="batches of 8 training patches")
    parser.add_argument("--test", type=int, default=20, help="ctc_test scans")
    parser.add_argument("--scale", default="quick")
    parser.add_argument("--out", default=str(ROOT / "results" / "instance_level_probe.csv"))
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    scale = get_scale(args.scale)
    cases = list(cohort("instance", spacing_mm=scale.phantom_spacing_mm, n=scale.cohort_sizes["instance"], seed=0))
    fit, val = validation_split(cases)
    tests = list(cohort("ctc_test", spacing_mm=scale.phantom_spacing_mm, n=scale.cohort_sizes["ctc_test"], seed=0))
    splits = {"train": fit, "validation": val, "ctc_test": tests[:args.test]}
    prepared = {k: [prepare_case(read_verse_case(c), scale.instance_spacing_mm) for c in v] for k, v in splits.items()}
    records = []
    for row, bundle in row_bundles(args.rows):
        model = bundle.models["down"].eval()
        drawn = {k: head_and_features(model, v, scale, args.batches if k == "train" else max(10, args.batches // 5),
                                      seed=i + 1) for i, (k, v) in enumerate(prepared.items())}
        x_train, y_train, _ = drawn["train"]
        n_pooled = 16 * model.config.features
        probes = {"ridge_pooled": ridge(x_train[:, :n_pooled], y_train), "ridge_bottleneck": ridge(x_train, y_train)}
        constant = float(np.median(y_train))
        for split, (x, y, head) in drawn.items():
            answers = {"instance_head": head, "constant_median": np.full_like(y, constant),
                       "ridge_pooled": probes["ridge_pooled"](x[:, :n_pooled]),
                       "ridge_bottleneck": probes["ridge_bottleneck"](x)}
            for name, pred in answers.items():
                err = np.abs(pred - y)
                records.append({"row": row, "split": split, "predictor": name, "n": len(y),
                                "mae_levels": err.mean(), "within_half_level": (err < 0.5).mean()})
        if bundle.context is not None:
            for split, split_cases in splits.items():
                if split == "train":
                    continue
                scans = [prepare_case(read_verse_case(c), bundle.context.config.spacing_mm) for c in split_cases]
                err = level_errors(bundle.context, scans)
                records.append({"row": row, "split": split, "predictor": "context_network_at_centroid",
                                "n": len(err), "mae_levels": err.mean(), "within_half_level": (err < 0.5).mean()})
        print(f"{row} done", file=sys.stderr, flush=True)
    table = write_table(records, args.out)
    print(table.pivot_table(index=["row", "predictor"], columns="split", values="mae_levels").round(2).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
