"""Training the 6-layer FCNN baseline of §3.1: how far is L1 from this subvolume?

A subvolume is a slab of ``slab_slices`` axial slices of the whole-scan network grid (the same input as
the direct U-Net, `vertebra.direct_targets`), centred at a random slice. Its target is the signed
craniocaudal distance (mm) from the slab's centre down to the true L1 centroid:
``z_centre - z_L1`` in world LPS, positive when L1 lies below. The paper reports that the validation
error of such a network plateaued near 30 mm; `train_fcnn` logs the same number (``mae_mm_val``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .direct_targets import DirectSample
from .image import Volume
from .labels import L1
from .models import FCNN, FCNNConfig
from .train import TrainConfig, TrainResult, step_seed, train


@dataclass(frozen=True)
class SlabTask:
    """Slabs of ``slab_slices`` slices (a multiple of 16) cut from the network grid."""

    slab_slices: int = 16

    def slab(self, sample: DirectSample, z0: int) -> tuple[np.ndarray, float]:
        """(slab (slab_slices, H, W), distance mm from the slab's centre to L1, positive when L1 is below)."""
        image = sample.image[z0:z0 + self.slab_slices]
        grid = Volume(sample.image, sample.geometry)
        z_centre = grid.index_to_world([[z0 + (self.slab_slices - 1) / 2, 0, 0]])[0, 2]
        return image, float(z_centre - sample.centroids_mm[L1][2])

    def batch_sampler(self, samples: list[DirectSample], batch_size: int, seed: int):
        def sample_batch(step: int) -> dict:
            rng = np.random.default_rng(step_seed(seed, step))
            picks = [(samples[i], int(rng.integers(samples[i].image.shape[0] - self.slab_slices + 1)))
                     for i in rng.integers(len(samples), size=batch_size)]
            slabs = [self.slab(s, z0) for s, z0 in picks]
            return {"image": torch.from_numpy(np.stack([s[0] for s in slabs])[:, None]),
                    "distance_mm": torch.tensor([s[1] for s in slabs], dtype=torch.float32)}
        return sample_batch

    def validator(self, samples: list[DirectSample], stride: int = 4):
        """``model -> {"mae_mm_val": mean |predicted - true| distance over slabs every ``stride`` slices}``."""
        def validate(model) -> dict:
            errors = []
            for s in samples:
                for z0 in range(0, s.image.shape[0] - self.slab_slices + 1, stride):
                    image, distance = self.slab(s, z0)
                    pred = model(torch.from_numpy(np.ascontiguousarray(image))[None, None])
                    errors.append(abs(float(pred[0]) - distance))
            return {"mae_mm_val": float(np.mean(errors))}
        return validate


def fcnn_loss(model, batch: dict, step: int):
    """L1 (absolute) error in mm, scaled by the network's distance scale so that it stays near 1."""
    pred = model(batch["image"])
    error = (pred - batch["distance_mm"]).abs()
    return error.mean() / model.config.distance_scale_mm, {"mae_mm": float(error.mean().detach())}


def train_fcnn(train_samples: list[DirectSample], val_samples: list[DirectSample], run_dir: str | Path,
               config: TrainConfig, fcnn: FCNNConfig = FCNNConfig(features=8),
               task: SlabTask = SlabTask()) -> tuple[FCNN, TrainResult]:
    """Train the baseline; the last validation error is ``result.last_validation["mae_mm_val"]``."""
    usable = [s for s in train_samples if L1 in s.centroids_mm]
    if not usable:
        raise ValueError("no training sample has an L1 centroid")
    torch.manual_seed(config.seed)
    model = FCNN(fcnn)
    result = train(model, task.batch_sampler(usable, config.batch_size, config.seed), fcnn_loss, config, run_dir,
                   validate=task.validator([s for s in val_samples if L1 in s.centroids_mm]))
    return model, result


def run_fcnn_baseline(params: dict, out_dir: str | Path, iterations: int) -> dict:
    """Train the FCNN on a row's training scans (hand cohort), validate on its held-out scans.

    Writes ``out_dir/fcnn_log.csv`` and returns ``{"mae_mm_val": ..., "iterations": ...}``.
    """
    import shutil

    from .direct_experiment import DEFAULT_PARAMS, _run_cache, split_cohorts
    from .direct_targets import load_direct_sample
    from .experiments import get_scale
    from .results import write_json_atomic

    params = {**DEFAULT_PARAMS, **params, "classes": "L1", "label_source": "hand"}
    scale = get_scale(params["scale"])
    cases = split_cohorts(params, scale)
    load = [[load_direct_sample(p, scale.direct_shape_zyx, "L1", "hand", params.get("cache")) for p in cases[k]]
            for k in ("train", "val")]
    config = TrainConfig(iterations=iterations, batch_size=scale.direct_batch * 2, learning_rate=1e-3,
                         seed=params["seed"], checkpoint_every=max(1, min(50, iterations)),
                         validate_every=max(1, iterations // 5))
    run_dir = _run_cache({**params, "run_id": params["run_id"] + "-fcnn", "iterations": iterations}, iterations)
    task = SlabTask(slab_slices=16 if scale.direct_shape_zyx[0] >= 32 else scale.direct_shape_zyx[0])
    _, result = train_fcnn(load[0], load[1], run_dir, config,
                           FCNNConfig(features=max(4, scale.direct_features)), task)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(result.log_path, out_dir / "fcnn_log.csv")
    summary = {"mae_mm_val": result.last_validation.get("mae_mm_val"), "iterations": iterations,
               "n_train": len(load[0]), "n_val": len(load[1]), "slab_slices": task.slab_slices}
    write_json_atomic(out_dir / "fcnn_metrics.json", summary)
    return summary
