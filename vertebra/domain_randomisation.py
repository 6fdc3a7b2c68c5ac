"""Domain randomisation for the direct U-Net: make the synthetic training data vary more than any scanner.

Two opt-in additions to the training of §2.2 (the phantom's default output is untouched):

* `IntensityJitter` — per training copy, a random HU gain and offset, a gamma curve, Gaussian noise and
  Gaussian blur, applied to the network input (the 100-1000 HU window scaled to [0, 1]; arrays (z, y, x)).
  Tobin et al.'s domain randomisation and the intensity augmentations of nnU-Net and TorchIO do the same
  kind of thing: a scan from an unseen scanner should look like one more random draw.
* `ChestCrop` — a field of view like a chest CT's: the scan is cut a random distance below L1 (so L1 and
  one to four vertebrae below it stay in view, as in the real scan of the book) and the cut scan is
  resampled to the network grid, so L1 no longer always sits at the same height of the grid.

`fine_tune` continues the training of a direct row's weights with one `Randomisation`; the experiment
that compares variants on ``ctc_test`` and on the real CT is `vertebra.real_experiment`.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi

from .direct_targets import HU_MAX, HU_MIN, DirectSample, class_map
from .direct_training import DirectLoss
from .image import Geometry, Volume
from .labels import L1
from .preprocess import resample_to_shape, window
from .train import TrainConfig, step_seed, train

log = logging.getLogger(__name__)

#: width of the HU window of the direct U-Net's input (`vertebra.direct_targets`)
HU_SPAN = HU_MAX - HU_MIN


@dataclass(frozen=True)
class IntensityJitter:
    """Ranges of the intensity randomisation (HU where it says so; `blur_sigma_mm` in mm)."""

    probability: float = 0.8
    hu_gain: tuple[float, float] = (0.85, 1.15)
    hu_offset: tuple[float, float] = (-60.0, 60.0)
    gamma: tuple[float, float] = (0.75, 1.35)
    noise_hu: tuple[float, float] = (0.0, 40.0)
    blur_sigma_mm: tuple[float, float] = (0.0, 4.0)

    def sample(self, rng: np.random.Generator) -> dict:
        if rng.random() >= self.probability:
            return {}
        draw = lambda r: float(rng.uniform(*r))  # noqa: E731
        return {"hu_gain": draw(self.hu_gain), "hu_offset": draw(self.hu_offset), "gamma": draw(self.gamma),
                "noise_hu": draw(self.noise_hu), "blur_sigma_mm": draw(self.blur_sigma_mm),
                "noise_seed": int(rng.integers(2 ** 31))}

    @staticmethod
    def apply(image01: np.ndarray, params: dict, spacing_zyx) -> np.ndarray:
        """Apply drawn `params` to a windowed image (values in [0, 1]); returns a new float32 array."""
        if not params:
            return image01
        hu = HU_MIN + HU_SPAN * image01.astype(np.float32)
        sigma = [params["blur_sigma_mm"] / s for s in spacing_zyx]
        if max(sigma) > 0.3:
            hu = ndi.gaussian_filter(hu, sigma, mode="nearest")
        hu = params["hu_gain"] * hu + params["hu_offset"]
        noise = np.random.default_rng(params["noise_seed"]).standard_normal(hu.shape, dtype=np.float32)
        hu = hu + params["noise_hu"] * noise
        out = np.clip((hu - HU_MIN) / HU_SPAN, 0.0, 1.0)
        return (out ** params["gamma"]).astype(np.float32)


@dataclass(frozen=True)
class ChestCrop:
    """Cut the scan between `below_l1_mm` below the L1 centroid and the top of the scan (world z, mm)."""

    probability: float = 0.6
    below_l1_mm: tuple[float, float] = (30.0, 130.0)
    copies: int = 3  # precomputed crops per training scan

    def crop(self, case, shape_zyx, rng: np.random.Generator, classes: str = "L1") -> DirectSample | None:
        """One random chest-like crop of a `VerseCase` (with labels) on the network grid, or None when
        the scan ends less than the drawn distance below L1."""
        from .io import to_canonical

        image, _ = to_canonical(case.image)
        vert, _ = to_canonical(case.vertebrae)
        ribs = to_canonical(case.ribs)[0].array if case.ribs is not None else None
        l1_z = float(case.centroids_mm[L1][2])
        cut_z = l1_z - float(rng.uniform(*self.below_l1_mm))
        k_cut = int(np.ceil(image.world_to_index([[0.0, 0.0, cut_z]])[0][0]))
        if k_cut <= 0:
            return None
        g = image.geometry
        origin = np.asarray(g.origin_mm) + g.direction_matrix @ np.array([0.0, 0.0, k_cut * g.spacing_mm[2]])
        geom = Geometry(g.spacing_mm, tuple(origin), g.direction)
        cut = Volume(image.array[k_cut:], geom)
        target = class_map(vert.array[k_cut:], None if ribs is None else ribs[k_cut:], case.meta, classes)
        grid = resample_to_shape(cut, shape_zyx, antialias=True)
        labels = resample_to_shape(Volume(target, geom), shape_zyx, interpolator="nearest", default_hu=0).array
        centroids = {int(k): tuple(float(c) for c in v) for k, v in case.centroids_mm.items()}
        return DirectSample(case.case_id, window(grid.array, HU_MIN, HU_MAX), labels, grid.geometry,
                            centroids, case.meta)


@dataclass(frozen=True)
class Randomisation:
    """One variant of the experiment: which randomisations are on (None = off)."""

    name: str
    intensity: IntensityJitter | None = None
    crop: ChestCrop | None = None

    def to_dict(self) -> dict:
        return asdict(self)


VARIANTS = (
    Randomisation("continued"),
    Randomisation("intensity", intensity=IntensityJitter()),
    Randomisation("chest-crop", crop=ChestCrop()),
    Randomisation("intensity+chest-crop", intensity=IntensityJitter(), crop=ChestCrop()),
)


@dataclass
class RandomisedCopies:
    """Training batches: whole-scan samples or their chest-like crops, intensity-randomised, by step."""

    whole: list[DirectSample]
    crops: list[list[DirectSample]] = field(default_factory=list)
    variant: Randomisation = Randomisation("continued")

    def batch_sampler(self, batch_size: int, seed: int):
        def sample_batch(step: int) -> dict:
            rng = np.random.default_rng(step_seed(seed, step))
            images, targets = [], []
            for _ in range(batch_size):
                i = int(rng.integers(len(self.whole)))
                s = self.whole[i]
                crop_p = self.variant.crop.probability if self.variant.crop else 0.0
                if self.crops and self.crops[i] and rng.random() < crop_p:
                    s = self.crops[i][int(rng.integers(len(self.crops[i])))]
                image = s.image
                if rng.random() < 0.5:  # left-right flip, as in the original augmentation
                    image, target = image[:, :, ::-1], s.target[:, :, ::-1]
                else:
                    target = s.target
                if self.variant.intensity:
                    image = IntensityJitter.apply(image, self.variant.intensity.sample(rng),
                                                  s.geometry.spacing_mm[::-1])
                images.append(np.ascontiguousarray(image, np.float32))
                targets.append(np.ascontiguousarray(target).astype(np.int64))
            return {"image": torch.from_numpy(np.stack(images)[:, None]), "target": torch.from_numpy(np.stack(targets))}
        return sample_batch


def chest_crops(case_dirs, shape_zyx, crop: ChestCrop, seed: int) -> list[list[DirectSample]]:
    """`crop.copies` crops of every case, each drawn from ``default_rng([seed, i, k])``."""
    from .io import read_verse_case

    out = []
    for i, d in enumerate(case_dirs):
        case = read_verse_case(d)
        crops = [crop.crop(case, shape_zyx, np.random.default_rng([seed, i, k])) for k in range(crop.copies)]
        out.append([c for c in crops if c is not None and (c.target == 1).any()])
    return out


def fine_tune(model, whole: list[DirectSample], variant: Randomisation, run_dir: str | Path, *,
              iterations: int, case_dirs=None, learning_rate: float = 3e-4, batch_size: int = 2,
              foreground_weight: float = 1.0, seed: int = 0):
    """Continue training `model` in place for `iterations` steps with `variant`; returns the `TrainResult`.
    `case_dirs` (the training scans' folders, in the order of `whole`) are needed for chest crops;
    `foreground_weight` should be the base row's (its params.json), so that only the data changes."""
    crops = chest_crops(case_dirs, whole[0].image.shape, variant.crop, seed) if variant.crop else []
    copies = RandomisedCopies(whole, crops, variant)
    config = TrainConfig(iterations=iterations, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                         checkpoint_every=max(1, min(25, iterations)), validate_every=max(1, iterations))
    return train(model, copies.batch_sampler(batch_size, seed), DirectLoss(1, foreground_weight=foreground_weight),
                 config, run_dir)
