"""One Table 2 row of the direct method, end to end: data, training, evaluation, files (§3.1).

`run_row(params, out_dir)` trains the U-Net of one row on ``n_train`` scans of the ``hand`` (truth) or
``pseudo`` (pseudo-mask) cohort with ``n_aug`` augmented copies each, validates on held-out ``hand``
scans (4-10 of them, as the paper), evaluates L1 identification on ``ctc_test`` and writes
``out_dir/``: params.json, metrics.json, per_case.csv, train_log.csv, training_curve.png,
provenance.json, timing.json, weights.pt; then upserts the row into ``results/table2.csv``. Everything but
the timings (timing.json, provenance.json, the timing columns of train_log.csv) is the same bytes for the
same parameters and seed.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from .cache import cache_dir
from .direct import predict_sample, save_weights
from .direct_targets import TARGETS_VERSION, class_names, load_direct_sample
from .direct_training import AugmentedCopies, DirectLoss, dice_validator
from .errors import InputError
from .experiments import get_scale
from .metrics import score_l1, summarise
from .models import UNet3D, UNetConfig
from .results import provenance, update_table2, write_json_atomic, write_text_atomic
from .train import TrainConfig, train

log = logging.getLogger(__name__)

#: the parameters of a row and their defaults (iterations None → the scale's)
DEFAULT_PARAMS = {"run_id": "unet-l1-hand-22", "classes": "L1", "n_train": 22, "n_aug": 256,
                  "label_source": "hand", "scale": "quick", "seed": 0, "iterations": None,
                  "learning_rate": 1e-3, "features": None, "foreground_weight": 30.0}


def split_cohorts(params: dict, scale) -> dict[str, list[Path]]:
    """Case folders for train / val / test. Explicit lists in params (``train_cases`` ...) win."""
    if all(k in params for k in ("train_cases", "val_cases", "test_cases")):
        return {k: [Path(p) for p in params[f"{k}_cases"]] for k in ("train", "val", "test")}
    from .phantom import cohort

    def get(name):
        return cohort(name, spacing_mm=scale.phantom_spacing_mm, n=scale.cohort_sizes.get(name), seed=0,
                      cache=params.get("cache"), progress=False)
    hand = get("hand")
    # validation on held-out hand scans (the paper: 4-10): what the hand rows leave over, up to 10;
    # the pseudo rows train on other scans, so they validate on the last 10 hand scans
    spare = len(hand) - int(params["n_train"]) if params["label_source"] == "hand" else len(hand) // 2
    n_val = max(1, min(10, spare))
    val = hand[-n_val:]
    if params["label_source"] == "hand":
        train_cases = hand[:min(int(params["n_train"]), len(hand) - n_val)]
    else:
        # all of them: scans the pseudo-mask tool cannot segment are skipped when loading (see run_row)
        train_cases = get("pseudo")
    return {"train": train_cases, "val": val, "test": get("ctc_test")}


#: bump when training changes in a way that makes old checkpoints in the cache stale
TRAINING_VERSION = 2


def _run_cache(params: dict, iterations: int) -> Path:
    """Checkpoint folder of a row in the cache, keyed by its parameters, the effective number of
    iterations, the scale's network sizes and the code versions."""
    key = {k: params[k] for k in sorted(params) if not k.endswith("_cases")}
    scale = get_scale(params["scale"])
    key["_effective"] = {"iterations": iterations, "shape_zyx": scale.direct_shape_zyx,
                         "batch": scale.direct_batch, "dropout": scale.direct_dropout}
    key["_versions"] = (TRAINING_VERSION, TARGETS_VERSION)
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return cache_dir(params.get("cache")) / "runs" / f"{params['run_id']}-{digest}"


def evaluate(model, samples, cohort: str = "ctc_test") -> tuple[list[dict], dict]:
    """Per-case L1 records (found, correct, error mm, shift, confidence) and their summary."""
    records = []
    for s in samples:
        finding = predict_sample(model, s)
        rec = score_l1(s.case_id, finding.centroid_mm, s.centroids_mm)
        rec.update({"confidence": finding.confidence,
                    "pred_x_mm": finding.centroid_mm[0] if finding.found else math.nan,
                    "pred_y_mm": finding.centroid_mm[1] if finding.found else math.nan,
                    "pred_z_mm": finding.centroid_mm[2] if finding.found else math.nan,
                    "anomalies": ";".join(s.meta.get("anomalies", [])),
                    "protocol": s.meta.get("protocol", ""), "cohort": cohort})
        if s.target is not None:
            from .metrics import dice
            rec["dice"] = dice(finding.mask, s.target == 1)
        records.append(rec)
    return records, summarise(records)


def _write_per_case(records: list[dict], path: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(records[0]) if records else ["case_id"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    write_text_atomic(path, buf.getvalue())


def plot_curve(log_rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = [r["step"] for r in log_rows]
    ax.plot(steps, [r["loss"] for r in log_rows], lw=0.8, label="training loss")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    val = [(r["step"], r["dice_val"]) for r in log_rows if "dice_val" in r]
    if val:
        ax2 = ax.twinx()
        ax2.plot(*zip(*val), "o-", color="C1", label="Dice (validation)")
        ax2.set_ylabel("Dice, validation")
        ax2.set_ylim(0, 1)
    fig.legend(loc="upper right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    from .results import write_bytes_atomic
    write_bytes_atomic(path, buf.getvalue())


def run_row(params: dict, out_dir: str | Path, table2_path: str | Path | None = None) -> dict:
    """Train, evaluate and record one row; returns its metrics (see module docstring)."""
    started = time.time()
    params = {**DEFAULT_PARAMS, **params}
    scale = get_scale(params["scale"])
    out_dir = Path(out_dir)
    shape = scale.direct_shape_zyx
    names = class_names(params["classes"])
    iterations = int(params["iterations"] or scale.direct_iterations)
    cases = split_cohorts(params, scale)

    def load(paths, source):
        return [load_direct_sample(p, shape, params["classes"], source, params.get("cache")) for p in paths]

    def load_pseudo(paths, n):
        """The first `n` scans the pseudo-mask tool could segment (as in the paper, a scan the tool
        fails on has no pseudo-mask and is not used for training)."""
        samples, skipped = [], []
        for p in paths:
            if len(samples) == n:
                break
            try:
                samples.append(load_direct_sample(p, shape, params["classes"], "pseudo", params.get("cache")))
            except InputError as exc:
                skipped.append(f"{Path(p).name}: {exc}")
        return samples, skipped

    skipped: list[str] = []
    if params["label_source"] == "pseudo":
        train_s, skipped = load_pseudo(cases["train"], int(params["n_train"]))
    else:
        train_s = load(cases["train"], params["label_source"])
    val_s = load(cases["val"], "hand")
    test_s = load(cases["test"], "hand")
    log.info("row %s: %d train, %d val, %d test scans", params["run_id"], len(train_s), len(val_s), len(test_s))

    torch.manual_seed(params["seed"])
    config = UNetConfig(num_classes=len(names), features=params["features"] or scale.direct_features,
                        dropout=scale.direct_dropout)
    model = UNet3D(config)
    copies = AugmentedCopies(train_s, params["n_aug"], params["seed"])
    tconf = TrainConfig(iterations=iterations, batch_size=scale.direct_batch,
                        learning_rate=params["learning_rate"], seed=params["seed"],
                        checkpoint_every=max(1, min(50, iterations)), validate_every=max(1, iterations // 5))
    run_cache = _run_cache(params, iterations)
    loss = DirectLoss(len(names), foreground_weight=params["foreground_weight"])
    result = train(model, copies.batch_sampler(tconf.batch_size, tconf.seed), loss, tconf,
                   run_cache, validate=dice_validator(val_s))

    records, summary = evaluate(model, test_s)
    dice_val = result.last_validation.get("dice_val", math.nan)
    effective = {"n_train": len(train_s), "n_val": len(val_s), "n_test": len(test_s), "iterations": iterations,
                 "batch_size": tconf.batch_size, "shape_zyx": list(shape), "unet": config.to_dict(),
                 "pseudo_mask_failures": skipped,
                 "loss": f"cross-entropy (foreground x{params['foreground_weight']}) + soft Dice (foreground)"}
    metrics = {"dice_val": dice_val, "avg_err_test_mm": summary["avg_err_mm"],
               "med_err_test_mm": summary["med_err_mm"], "l1_acc_test": summary["l1_acc"],
               "n_test": summary["n"], "test_summary": summary}
    # timings vary from run to run; they live apart so that metrics.json is a pure function of the seed
    timing = {"train_seconds": result.seconds,
              "seconds_per_step": float(np.median([r["seconds"] for r in result.log])) if result.log else None,
              "loader_wait_s": float(np.sum([r.get("wait_s", 0.0) for r in result.log]))}
    out_dir.mkdir(parents=True, exist_ok=True)
    public = {k: v for k, v in params.items() if not k.endswith("_cases") and k != "cache"}
    write_json_atomic(out_dir / "params.json", {**public, "effective": effective})
    write_json_atomic(out_dir / "metrics.json", metrics)
    write_json_atomic(out_dir / "timing.json", timing)
    _write_per_case(records, out_dir / "per_case.csv")
    shutil.copyfile(result.log_path, out_dir / ".train_log.csv.tmp")
    (out_dir / ".train_log.csv.tmp").replace(out_dir / "train_log.csv")
    plot_curve(result.log, out_dir / "training_curve.png")
    save_weights(model, out_dir / "weights.pt", classes=params["classes"], shape_zyx=list(shape),
                 run_id=params["run_id"], scale=scale.name)
    write_json_atomic(out_dir / "provenance.json", provenance(params["seed"], public, started))
    row = {"method": "3D U-Net", "classes": params["classes"], "n_train": len(train_s), "n_aug": params["n_aug"],
           "dice_val": _r(dice_val), "avg_err_test_mm": _r(summary["avg_err_mm"], 1),
           "med_err_test_mm": _r(summary["med_err_mm"], 1), "l1_acc_test": _r(summary["l1_acc"]),
           "label_source": params["label_source"], "scale": scale.name, "run_id": params["run_id"],
           "n_test": summary["n"], "seed": params["seed"]}
    update_table2(row, table2_path or out_dir.parent.parent / "table2.csv")
    return metrics


def _r(x, digits: int = 3):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), digits)
