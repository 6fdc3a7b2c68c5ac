"""One instance row of Table 2: train on the `instance` cohort, evaluate on `ctc_test`, write the results.

``run_row(params, out_dir)`` with ``params`` a row of `vertebra.experiments.INSTANCE_ROWS` plus
``scale``, ``seed``, ``run_id`` (and optionally ``iterations``, ``n_test``):

1. prepare the `instance` cohort (isotropic ``Scale.instance_spacing_mm``, −100..2000 HU); hold out 10%
   (at least one scan) for validation;
2. train one instance U-Net per direction with the shared loop (`vertebra.train.train`) on Eq. 1
   (`vertebra.losses`): the row's ``mode`` gives one model ("top-down" → traversed down, "bottom-up" →
   up, "bidirectional" → trained both ways, traversed down); fix (a) ``fix_combine_directions`` trains
   a top-down *and* a bottom-up model and merges their traversals; fix (b) ``fix_edge_patches`` adds 15%
   edge patches; fix (c) ``fix_completeness_head`` adds the completeness head. A network is keyed by
   what shapes its training, not by the row's name, so rows that differ only after training share it;
2b. fix (d) ``fix_context_levels`` (beyond the paper) also trains the context network of
   `vertebra.instance.context` on the training scans and the `hand` cohort (one network for every
   row at a scale and seed), calibrates its level on the validation scans (`context.calibrate_levels`)
   and labels with its levels; fix (e) ``fix_monotone_ordering`` (beyond the paper, with (d)) labels
   the pieces with `ordering.most_likely_monotone_labelling` (``MONOTONE_ORDERING``) instead of Eq. 2;
3. tune the output threshold on the validation scans: whole walks at each of ``WALK_THRESHOLDS``,
   scored by `walk_dice` (the validation patches' Dice at the chosen threshold is the DICE_val
   column); then, on the same walks at that threshold, the pieces' density floor (one of
   ``MASK_FLOORS_HU``, beyond the paper: `pipeline.restrict_to_bone`); the walk starts at the first
   box of ``FIRST_BOX`` (see there: not the paper's rule), on the first two slices
   (`TraversalConfig.first_box_z`, the paper's), and with fix (d) it asks the context network where
   the spine is, as the test walks do;
4. label every `ctc_test` scan and score it (`vertebra.instance.evaluation`);
5. write ``out_dir``: params.json, metrics.json, per_case.csv, train_log.csv, provenance.json,
   weights.pt; upsert the row into results/table2.csv.

Training checkpoints live in the cache (``<cache>/instance-train/...``), so a stopped run resumes.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import logging
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..cache import cache_dir, file_lock
from ..experiments import get_scale
from ..io import read_verse_case
from ..losses import InstanceLossConfig, instance_loss
from ..models.instance_unet import InstanceUNet, InstanceUNetConfig
from ..results import provenance, update_table2, write_json_atomic, write_text_atomic
from ..train import TrainConfig, read_log_csv, train
from ..models.context_net import ContextNet, ContextNetConfig
from .context import (ContextConfig, ContextModel, ContextSampler, calibrate_levels, context_loss,
                      level_errors)
from .evaluation import best_match_dice, evaluate_case, summarise_by_stratum
from .ordering import LUMBARISATION_LOG_PRIOR, OrderingConfig
from .patches import PatchConfig, PatchSampler, network_input
from .scan import prepare_case
from .pipeline import context_judge, restrict_to_bone, walk_spine
from .traversal import TraversalConfig
from .weights import InstanceBundle

log = logging.getLogger(__name__)

EDGE_FRACTION = 0.15
#: where every row's walk starts: the densest bone of the first slab that the network likes best
#: (`TraversalConfig.first_box`), not the paper's mean of the bone in the first two slices: in the
#: phantom's scans the patient table (and, prone, the table in front of the body) pulls that mean 20-60 mm
#: off the spine, and the box then holds no vertebra (the book's instance chapter has the measurement)
FIRST_BOX = "bone_peaks"
#: output thresholds scored on the validation patches (Dice; reported as ``dice_val_by_threshold``)
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999)
#: the output threshold is chosen on whole walks over the validation scans (§2.3: "tuned on validation
#: scans"), by `walk_dice`. The patch Dice of the quick networks rises all the way to 0.999 (they
#: over-segment: λn ends at 0.3, so a false positive weighs little), but a walk is more than a patch: at
#: 0.999 the edge-patch model's pieces stop spanning two vertebrae, while the plain model's walks die out
WALK_THRESHOLDS = (0.95, 0.98, 0.995, 0.999)
#: the density floors (HU) tried on the validation walks at the chosen threshold
#: (`pipeline.restrict_to_bone`; None: none, the paper). The quick networks' pieces spread into the soft
#: tissue round the bone: on the validation walks of the (d)+(e) row, 39 % of a vertebra's volume in
#: false positives below 200 HU, and a floor of 100 HU raised their label-free Dice from 0.61 to 0.70
#: without changing an L1 decision. The floor does not steer the walk, so it does not choose the
#: threshold: chosen together, the floor's cleaner masks pulled the plain network's threshold from
#: 0.995 down to 0.98, a different walk (the book's instance chapter has what that did)
MASK_FLOORS_HU = (None, 50.0, 100.0, 150.0)
DEFAULTS = {"mode": "top-down", "empty_fraction": 0.3, "fix_combine_directions": False,
            "fix_edge_patches": False, "fix_completeness_head": False, "fix_context_levels": False,
            "fix_monotone_ordering": False, "scale": "quick", "seed": 0,
            "run_id": "instance", "iterations": None, "n_test": None, "learning_rate": None}
#: Adam's learning rate: the paper's 1e-4 at the paper scale; 1e-3 for the few hundred steps of quick/smoke
LEARNING_RATE = {"paper": 1e-4}
SHORT_RUN_LEARNING_RATE = 1e-3
#: fix (d)'s context network: the learning rate falls linearly to 5 % of it over the run (at a constant
#: 1e-3 its level error on the test scans stayed near 0.6-0.9 levels, too noisy for Eq. 2)
CONTEXT_FINAL_LR_FRACTION = 0.05
#: fix (e): σ of one level, about three times the calibrated context level's spread at the validation
#: vertebrae's centroids (0.3 levels), for a piece's centroid is seldom the vertebra's; a skipped or a
#: shared level costs one nat. Set on 20 tuning scans (the 6 validation scans and 14 `pseudo` scans),
#: never on the test cohort: with fix (b)'s walk and calibrated levels, σ 0.5 or 1 with costs of 1 or 3
#: nats found L1 on 15-17 of them, Eq. 2 on 14 (`scripts/instance_ordering_ablation.py` for this setting).
#: A labelling that uses L6 pays the lumbarisation rate (log 0.06, not tuned): the calibrated levels
#: often read a lumbar spine half a level low, and without the prior a labelling that ends on L6 was as
#: likely as the true one (plain walk: 17 → 16 of the 20 tuning scans, 51 → 55 of the 60 `pseudo` scans
#: 14-73; three of those 60 had shown the fault)
MONOTONE_ORDERING = OrderingConfig("monotone", sigma=1.0, skip_log_prior=-1.0, split_log_prior=-1.0,
                                   l6_log_prior=LUMBARISATION_LOG_PRIOR)


def validation_split(items: list) -> tuple[list, list]:
    """(training, validation) of a row's `instance` scans: the last 10 % (at least one) held out; a
    single scan serves as both."""
    items = list(items)
    n_val = max(1, round(0.1 * len(items))) if len(items) > 1 else 0
    return items[:len(items) - n_val], items[len(items) - n_val:] or items


def model_directions(params: dict) -> dict[str, str]:
    """{traversal direction: training mode} of the models a row trains."""
    if params["fix_combine_directions"]:
        return {"down": "top-down", "up": "bottom-up"}
    return {"up": "bottom-up"} if params["mode"] == "bottom-up" else {"down": params["mode"]}


def validation_batches(scans, patch: PatchConfig, directions: dict[str, str], n: int, seed: int) -> dict:
    """Fixed vertebra patches (no augmentation, no empty ones) per direction, for threshold and Dice_val."""
    out = {}
    for direction, mode in directions.items():
        cfg = PatchConfig(**{**patch.to_dict(), "mode": mode, "augment": False, "empty_fraction": 0.0,
                             "edge_fraction": 0.0})
        out[direction] = PatchSampler(scans, cfg, batch_size=n, seed=seed + 7919)(0)
    return out


@torch.no_grad()
def threshold_dice(model, batch: dict, thresholds=THRESHOLDS) -> np.ndarray:
    """Mean Dice of the validation patches at each output threshold."""
    model.eval()
    prob = torch.sigmoid(model(network_input(batch))["segmentation"]).flatten(1)
    target = batch["target"].flatten(1) > 0.5
    scores = []
    for t in thresholds:
        pred = prob > t
        inter = (pred & target).sum(1).float()
        scores.append(float((2 * inter / (pred.sum(1) + target.sum(1)).clamp_min(1)).mean()))
    return np.array(scores)


def walk_dice(models: dict, scans, traversal: TraversalConfig, judges=None, mask_floor_hu=None) -> float:
    """Mean label-free walk quality (`evaluation.best_match_dice`) of the walk(s) of ``models``
    ({direction: model}; two are merged as `label_spine` merges them) over prepared ``scans`` with labels.
    ``judges``: one fix (d) ``on_spine`` per scan (`pipeline.context_judge`), as `label_spine` walks;
    ``mask_floor_hu``: the pieces cut as `label_spine` cuts them (`pipeline.restrict_to_bone`)."""
    return walk_dice_by_floor(models, scans, traversal, judges, (mask_floor_hu,))[mask_floor_hu]


def walk_dice_by_floor(models: dict, scans, traversal: TraversalConfig, judges=None,
                       floors=MASK_FLOORS_HU) -> dict:
    """{floor: `walk_dice` with that ``mask_floor_hu``} from one walk per scan."""
    judges = [None] * len(scans) if judges is None else judges
    scores = {floor: [] for floor in floors}
    for scan, judge in zip(scans, judges):
        instances = walk_spine(models, scan, traversal, judge)[1]
        for floor in floors:
            cut = instances if floor is None else restrict_to_bone(instances, scan.image_hu, floor)
            scores[floor].append(best_match_dice(cut, scan.labels))
    return {floor: float(np.nanmean(s)) if s else float("nan") for floor, s in scores.items()}


def run_row(params: dict, out_dir: str | Path, *, train_cases=None, test_cases=None, context_cases=None,
            table2_path: str | Path | None = "results/table2.csv") -> dict:
    """Train, tune, evaluate and write one instance row (see module docstring); returns metrics.json's dict.

    ``context_cases``: the scans fix (d)'s context network learns from besides the training scans
    (default: the `hand` cohort, or none when the caller gives its own ``train_cases``)."""
    started = time.time()
    own_cases = train_cases is not None
    params = {**DEFAULTS, **params}
    scale = get_scale(params["scale"])
    seed, out_dir = int(params["seed"]), Path(out_dir)
    iterations = int(params["iterations"] or scale.instance_iterations)
    if train_cases is None or test_cases is None:
        from ..phantom import cohort
        train_cases = train_cases or cohort("instance", spacing_mm=scale.phantom_spacing_mm,
                                            n=scale.cohort_sizes["instance"], seed=seed)
        test_cases = test_cases or cohort("ctc_test", spacing_mm=scale.phantom_spacing_mm,
                                          n=scale.cohort_sizes["ctc_test"], seed=seed)
    if params["n_test"]:
        test_cases = list(test_cases)[:int(params["n_test"])]
    if params["fix_monotone_ordering"] and not params["fix_context_levels"]:
        raise ValueError("fix_monotone_ordering labels the context network's levels: it needs fix_context_levels")

    scans = [prepare_case(read_verse_case(c), scale.instance_spacing_mm) for c in tqdm(train_cases, desc="prepare")]
    train_scans, val_scans = validation_split(scans)
    patch = PatchConfig(patch_voxels=scale.instance_patch, spacing_mm=scale.instance_spacing_mm,
                        mode=params["mode"], empty_fraction=float(params["empty_fraction"]),
                        edge_fraction=EDGE_FRACTION if params["fix_edge_patches"] else 0.0)
    loss_cfg = InstanceLossConfig(n_max=max(iterations, 1), spacing_mm=scale.instance_spacing_mm,
                                  lambda_end=scale.instance_lambda_end)
    net_cfg = InstanceUNetConfig.for_scale(scale, completeness_head=bool(params["fix_completeness_head"]))
    directions = model_directions(params)
    val = validation_batches(val_scans, patch, directions, n=8 if scale.name != "smoke" else 2, seed=seed)

    models, logs, train_seconds = {}, [], 0.0
    for direction, mode in directions.items():
        torch.manual_seed(seed)
        model = InstanceUNet(net_cfg)
        sampler = PatchSampler(train_scans, PatchConfig(**{**patch.to_dict(), "mode": mode}),
                               batch_size=scale.instance_batch, seed=seed + (0 if direction == "down" else 1))

        def loss_fn(model, batch, step):
            return instance_loss(model(network_input(batch)), batch, step, loss_cfg)

        def validate(model, batch=val[direction]):
            return {"dice_val": float(threshold_dice(model, batch, (0.5,))[0])}

        key = _digest(params, iterations, loss_cfg, patch, net_cfg, [Path(c).name for c in train_cases])
        train_dir = cache_dir() / "instance-train" / f"{key}-{direction}"
        config = TrainConfig(iterations=iterations, batch_size=scale.instance_batch, seed=seed,
                             learning_rate=float(params["learning_rate"] or
                                                 LEARNING_RATE.get(scale.name, SHORT_RUN_LEARNING_RATE)),
                             checkpoint_every=max(1, iterations // 4), validate_every=max(1, iterations // 4))
        with file_lock(train_dir / ".lock"):    # rows that share this network train it once
            result = train(model, sampler, loss_fn, config, train_dir, validate=validate)
        train_seconds += sum(r.get("seconds", 0.0) for r in result.log)
        logs += [{"direction": direction, **r} for r in read_log_csv(result.log_path)]
        models[direction] = model.eval()

    scores = np.mean([threshold_dice(models[d], val[d]) for d in models], axis=0)
    context, context_mae, context_train, judges = None, (None, None), [], None
    held_out = list(train_cases)[len(train_scans):]
    val_cases = held_out or list(train_cases)                   # as `validation_split` pairs val_scans
    if params["fix_context_levels"]:
        if context_cases is None:
            from ..phantom import cohort
            context_cases = [] if own_cases else cohort("hand", spacing_mm=scale.phantom_spacing_mm,
                                                        n=scale.cohort_sizes["hand"], seed=seed)
        context_train = list(train_cases)[:len(train_scans)] + list(context_cases)
        context, context_mae = calibrated_context(context_train, held_out, scale, seed)
        # the validation walks start as the test walks do, with the context network's judge
        judges = [context_judge(context, context.prepare(read_verse_case(c).image), scan)
                  for c, scan in zip(val_cases, val_scans)]
    walk_base = TraversalConfig(patch_voxels=scale.instance_patch, scan_stride_voxels=scale.instance_scan_stride,
                                first_box=FIRST_BOX)
    walk_scores = {(t, floor): v for t in tqdm(WALK_THRESHOLDS, desc="threshold on validation walks")
                   for floor, v in walk_dice_by_floor(models, val_scans, dataclasses.replace(walk_base, threshold=t),
                                                      judges).items()}
    # the threshold by the raw walks, then the floor at that threshold; ties: the lower threshold, no floor
    threshold = max(WALK_THRESHOLDS, key=lambda t: (np.nan_to_num(walk_scores[t, None], nan=-1.0), -t))
    floor = max(MASK_FLOORS_HU, key=lambda f: (np.nan_to_num(walk_scores[threshold, f], nan=-1.0),
                                               -(-1.0 if f is None else f)))
    best = THRESHOLDS.index(threshold)
    traversal = dataclasses.replace(walk_base, threshold=threshold)
    ordering = MONOTONE_ORDERING if params["fix_monotone_ordering"] else OrderingConfig()
    bundle = InstanceBundle(models, scale.instance_spacing_mm, traversal, dict(params), context, ordering,
                            mask_floor_hu=floor)

    records = [evaluate_case(bundle, read_verse_case(c)) for c in tqdm(test_cases, desc="ctc_test")]
    # timings differ from run to run: they go to timing.json, so that metrics.json and per_case.csv are a
    # pure function of the parameters and the seed
    timing = {"train_seconds": round(train_seconds, 1),
              "per_case": {r["case_id"]: {k: r.pop(k) for k in _TIMING_KEYS} for r in records}}
    strata = summarise_by_stratum(records)
    metrics = {"run_id": params["run_id"], "scale": scale.name, "seed": seed, "iterations": iterations,
               "threshold": THRESHOLDS[best], "dice_val": float(scores[best]),
               "dice_val_by_threshold": dict(zip(map(str, THRESHOLDS), scores.round(4).tolist())),
               # the raw walks (no floor), and every (threshold, floor) tried; the chosen pair's score
               "walk_dice_val_by_threshold": {str(t): round(walk_scores[t, None], 4) for t in WALK_THRESHOLDS},
               "walk_dice_val_by_floor": {str(t): {str(f): round(walk_scores[t, f], 4) for f in MASK_FLOORS_HU}
                                          for t in WALK_THRESHOLDS},
               "mask_floor_hu": floor, "walk_dice_val": round(walk_scores[threshold, floor], 4),
               "n_train": len(train_scans), "n_val": len(val_scans), "n_test": len(records),
               "n_train_context": len(context_train) if context is not None else None,
               # before the calibration, and after it (fitted on these scans: not independent)
               "context_level_mae_val": None if context_mae[0] is None else round(context_mae[0], 3),
               "context_level_mae_val_calibrated": None if context_mae[1] is None else round(context_mae[1], 3),
               "context_level_calibration": None if context is None else
               {"scale": round(context.level_scale, 4), "offset": round(context.level_offset, 4)},
               "ordering": ordering.to_dict(),
               "test": strata["all"], "strata": strata}

    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "params.json", {**params, "iterations": iterations, "patch": patch.to_dict(),
                                                "loss": loss_cfg.__dict__, "model": net_cfg.to_dict(),
                                                "traversal": traversal.to_dict(), "ordering": ordering.to_dict(),
                                                "mask_floor_hu": floor,
                                                "context": None if context is None else
                                                {**context.config.to_dict(), "net": context.net.config.to_dict(),
                                                 "iterations": scale.context_iterations,
                                                 "batch": scale.context_batch}})
    write_json_atomic(out_dir / "metrics.json", metrics)
    write_json_atomic(out_dir / "timing.json", timing)
    write_text_atomic(out_dir / "per_case.csv", _csv(records))
    write_text_atomic(out_dir / "train_log.csv", _csv(logs))
    bundle.save(out_dir / "weights.pt")
    write_json_atomic(out_dir / "provenance.json", provenance(seed, params, started))
    if table2_path is not None:
        update_table2({"method": "Instance", "classes": "1 generic class", "n_train": len(train_scans),
                       "n_aug": None, "dice_val": round(metrics["dice_val"], 3),
                       "avg_err_test_mm": _round(strata["all"]["avg_err_mm"]),
                       "med_err_test_mm": _round(strata["all"]["med_err_mm"]),
                       "l1_acc_test": _round(strata["all"]["l1_acc"], 3), "label_source": "phantom truth",
                       "scale": scale.name, "run_id": params["run_id"], "n_test": len(records), "seed": seed},
                      table2_path)
    return metrics


_TIMING_KEYS = ("seconds", "network_seconds")


def calibrated_context(cases, val_cases, scale, seed: int) -> tuple[ContextModel, tuple[float, float]]:
    """Fix (d)'s context network trained on ``cases`` (`train_context`) and calibrated on ``val_cases``
    (`context.calibrate_levels`), with its mean level error on them before and after the calibration
    (after: on the scans it was fitted on, so not an independent estimate)."""
    context = train_context(cases, scale, seed)
    val = [prepare_case(read_verse_case(c), context.config.spacing_mm) for c in val_cases]
    calibrated = calibrate_levels(context, val)
    return calibrated, (float(np.mean(level_errors(context, val))), float(np.mean(level_errors(calibrated, val))))


def train_context(cases, scale, seed: int) -> ContextModel:
    """Fix (d): train the context network on ``cases`` (VerSe case folders with labels) at
    ``scale.context_spacing_mm``. The rows use the `instance` cohort's training scans and the `hand`
    cohort (chest-abdomen-pelvis and colonography scans: the colonography protocol's tagged fluid and
    prone position are in no `instance` scan). One network per scale, seed and case list, whichever row
    asks first: the others find its finished checkpoint (a lock keeps two rows run in parallel from
    training it twice)."""
    import hashlib
    import json

    cases = list(cases)
    config = ContextConfig(spacing_mm=scale.context_spacing_mm)
    net_config = ContextNetConfig()
    key = json.dumps({"config": config.to_dict(), "net": net_config.to_dict(), "iterations": scale.context_iterations,
                      "final_lr_fraction": CONTEXT_FINAL_LR_FRACTION,
                      "batch": scale.context_batch, "seed": seed, "cases": [Path(c).name for c in cases]},
                     sort_keys=True)
    train_dir = cache_dir() / "instance-train" / f"context-{hashlib.sha1(key.encode()).hexdigest()[:10]}"
    train_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    net = ContextNet(net_config, config.box_zyx)
    samplers = []

    def sampler(step):              # the scans are prepared only when there is training left to do
        if not samplers:
            scans = [prepare_case(read_verse_case(c), config.spacing_mm) for c in tqdm(cases, desc="prepare (context)")]
            samplers.append(ContextSampler(scans, config, batch_size=scale.context_batch, seed=seed))
        return samplers[0](step)

    with file_lock(train_dir / ".lock"):
        train_config = TrainConfig(iterations=scale.context_iterations, batch_size=scale.context_batch, seed=seed,
                                   learning_rate=SHORT_RUN_LEARNING_RATE, final_lr_fraction=CONTEXT_FINAL_LR_FRACTION,
                                   checkpoint_every=max(1, scale.context_iterations // 4),
                                   validate_every=max(1, scale.context_iterations))

        def loss_fn(model, batch, step):
            return context_loss(model(batch["image"]), batch, config)

        train(net, sampler, loss_fn, train_config, train_dir)
    return ContextModel(net.eval(), config)


def _digest(params: dict, iterations: int, loss: InstanceLossConfig, patch: PatchConfig,
            model: InstanceUNetConfig, cases: list[str]) -> str:
    """A short hash of what determines training (the row's training parameters, seed and scans: ``cases``
    are the names of the `instance` cohort's scans, validation ones included), so that a changed row
    never resumes a stale checkpoint. Rows that differ only in how they walk or label share a network."""
    import hashlib
    import json
    keys = ("learning_rate", "mode", "empty_fraction", "fix_combine_directions", "fix_edge_patches",
            "fix_completeness_head", "scale", "seed")
    text = json.dumps({**{k: params[k] for k in keys}, "iterations": iterations,
                       "loss": {**loss.__dict__, "level_weight": loss.level_weight},
                       "patch": patch.to_dict(), "model": model.to_dict(), "cases": list(cases)}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def _round(x, digits: int = 1):
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else round(float(x), digits)


def _csv(rows: list[dict]) -> str:
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns or ["case_id"], restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
