"""Training the direct U-Net: augmented copies, batches as a function of the step, loss, validation.

``n_aug`` means what it meant in Table 2: every training scan has ``n_aug`` fixed augmented versions.
Copy k of scan i is drawn from a generator seeded with ``(row seed, i, k)``, so it is the same in every
run and on every machine; training draws (scan, copy) pairs, and a copy is computed when first needed on
the network grid (flips in x, y, z, B-spline deformation, rotation up to 20° about a random axis, §2.2)
and kept in a small in-memory cache.

The loss is cross-entropy plus a soft Dice over the foreground classes; the paper does not name the
direct U-Net's loss, so this is our choice (written down here and in the row's params.json). L1 fills
about 0.05% of the quick grid, so the cross-entropy weighs foreground voxels ``foreground_weight`` times
a background voxel: unweighted, a short run learns to predict background everywhere (measured: Dice
loss still 0.999 after 150 steps at the quick scale).
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock

import numpy as np
import torch
import torch.nn.functional as F

from .direct_targets import DirectSample
from .image import Volume
from .metrics import dice
from .train import step_seed

log = logging.getLogger(__name__)


def direct_augmentation():
    """The §2.2 augmentation: independent flips along x, y, z; B-spline deformation; rotation ±20°."""
    from .augment import Compose, RandomElasticDeformation, RandomFlip, RandomRotation
    return Compose([RandomFlip(axes=("x", "y", "z")), RandomElasticDeformation(), RandomRotation(max_degrees=20)])


class AugmentedCopies:
    """``n_aug`` seeded augmented versions of each training sample, computed on demand, memoised (LRU)."""

    def __init__(self, samples: list[DirectSample], n_aug: int, seed: int, augment=None,
                 memo_bytes: int = 1 << 30):
        if not samples:
            raise ValueError("no training samples")
        if any(s.target is None for s in samples):
            raise ValueError("every training sample needs a target")
        self.samples, self.n_aug, self.seed = samples, int(n_aug), int(seed)
        self.augment = direct_augmentation() if augment is None and n_aug > 0 else augment
        self._memo: OrderedDict = OrderedDict()
        self._lock = Lock()
        per_copy = samples[0].image.nbytes + samples[0].target.nbytes
        self._memo_size = max(1, memo_bytes // per_copy)

    def __len__(self) -> int:
        return len(self.samples) * max(1, self.n_aug)

    def copy(self, i: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(image, target) of copy k of scan i; with n_aug = 0 the scan itself."""
        s = self.samples[i]
        if self.n_aug == 0:
            return s.image, s.target
        with self._lock:
            if (i, k) in self._memo:
                self._memo.move_to_end((i, k))
                return self._memo[(i, k)]
        rng = np.random.default_rng([self.seed, i, k])
        params = self.augment.sample(rng)
        image, target = params.apply(Volume(s.image, s.geometry), Volume(s.target, s.geometry), fill_value=0.0)
        out = (image.array.astype(np.float32), target.array.astype(np.uint8))
        with self._lock:
            self._memo[(i, k)] = out
            while len(self._memo) > self._memo_size:
                self._memo.popitem(last=False)
        return out

    def batch_sampler(self, batch_size: int, seed: int):
        """``step -> {"image": (B, 1, D, H, W) float32, "target": (B, D, H, W) int64}``, pure in the step."""
        def sample_batch(step: int) -> dict:
            rng = np.random.default_rng(step_seed(seed, step))
            scans = rng.integers(len(self.samples), size=batch_size)
            copies = rng.integers(max(1, self.n_aug), size=batch_size)
            pairs = [self.copy(int(i), int(k)) for i, k in zip(scans, copies)]
            return {"image": torch.from_numpy(np.stack([p[0] for p in pairs])[:, None]),
                    "target": torch.from_numpy(np.stack([p[1] for p in pairs]).astype(np.int64))}
        return sample_batch


@dataclass(frozen=True)
class DirectLoss:
    """Weighted cross-entropy + ``dice_weight`` x (1 - mean soft Dice of the foreground classes)."""

    num_classes: int = 1
    dice_weight: float = 1.0
    foreground_weight: float = 1.0

    def __call__(self, model, batch: dict, step: int):
        logits = model(batch["image"])
        target = batch["target"]
        weight = torch.full((self.num_classes + 1,), float(self.foreground_weight), device=logits.device)
        weight[0] = 1.0
        ce = F.cross_entropy(logits, target, weight=weight)
        probs = logits.softmax(dim=1)[:, 1:]
        onehot = F.one_hot(target, self.num_classes + 1).permute(0, 4, 1, 2, 3)[:, 1:].float()
        dims = (0, 2, 3, 4)
        soft = (2 * (probs * onehot).sum(dims) + 1.0) / (probs.sum(dims) + onehot.sum(dims) + 1.0)
        dice_loss = 1 - soft.mean()
        return ce + self.dice_weight * dice_loss, {"ce": float(ce.detach()), "dice_loss": float(dice_loss.detach())}


def predict_probabilities(model, image: np.ndarray, device=None) -> np.ndarray:
    """(D, H, W) network-grid input → (classes + 1, D, H, W) softmax probabilities, eval mode, no gradients."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        probs = model(torch.from_numpy(np.ascontiguousarray(image, np.float32))[None, None].to(device)).softmax(1)
    model.train(was_training)
    return probs[0].cpu().numpy()


def dice_validator(samples: list[DirectSample]):
    """``model -> {"dice_val": mean Dice of the L1 class (argmax) over samples}`` on the network grid."""
    def validate(model) -> dict:
        scores = [dice(predict_probabilities(model, s.image).argmax(0) == 1, s.target == 1) for s in samples]
        return {"dice_val": float(np.mean(scores)) if scores else float("nan")}
    return validate
