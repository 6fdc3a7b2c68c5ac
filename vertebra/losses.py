"""The instance U-Net's loss, Eq. 1 of the paper, with the λn schedule as a pure function of the step.

    L = λn · FP_frac + FN_frac + β · |pL − tL|                                   (Eq. 1)

Soft voxel counts, per patch, from the predicted foreground probability p ∈ [0, 1] and the binary target
t (the vertebra to segment), then averaged over the batch. The paper describes FP and FN as *numbers of
voxels*; we divide both by V, the number of voxels of a typical vertebra at the patch spacing
(``vertebra_volume_mm3`` / voxel volume), which rescales the whole loss without moving its optimum:

* ``FP_frac = Σ p·(1 − t) / V``: background predicted as vertebra, in vertebra volumes;
* ``FN_frac = Σ (1 − p)·t / V``: target missed, in vertebra volumes; 0 for an empty patch (there is
  nothing to miss), which is why the loss still has a gradient there, unlike Dice (§2.3).

With λn = 1 a false-positive voxel then costs as much as a false-negative one, so the natural output
threshold is 0.5; early on (λn = 0.05) false positives are cheap, which keeps the network from learning
the empty mask that the many background voxels would otherwise favour (§2.3 says exactly this happens
when λn is too large). λn (`lambda_n`) starts at 0.05 and rises sigmoidally to 1 at ``n_max`` (§2.3).

``fp_reference="background"`` instead divides FP by the number of background voxels of the patch (and
FN by the target's voxels). That was this project's first reading of "FP_frac"; it makes a background
voxel ~40x cheaper than a missed vertebra voxel even at λn = 1, and the networks trained with it
over-segmented: at the quick scale, masks in evaluation were 3-4x the size of the target vertebra
(about 9,000 voxels for 2,700), and tuning the threshold up to 0.9 did not undo it.

The level term. The paper regresses the level in label units (L1 = 20) and uses β = 1000 with FP and
FN as *numbers of voxels* at 1 mm: one level of error costs as much as 1000 misclassified voxels, i.e.
1000 mm³, about 3% of a vertebra. We keep that balance in physical terms at every spacing: the level
weight against the fractions is β · (1 mm)³ / ``vertebra_volume_mm3`` = 0.033, so one level of error
costs 3.3% of a vertebra whether the patches are at 1 mm or 2 mm. (An earlier version divided β by the
vertebra's voxel count at the patch spacing, which at the quick scale's 2 mm made a level of error
8x dearer, 0.27; the level term then outweighed the segmentation terms, about 1.7 against 0.3-0.6 in
the training log, while the level head learnt nothing.) Without any division the level term (β up to
24,000) would swamp the segmentation terms (≤ 2).

Optional, for fix (c): a completeness term (binary cross-entropy of the completeness logit against
"the target vertebra lies wholly inside the patch"), weighted by ``completeness_weight``, as in
Lessmann et al. 2019; it is skipped when the model has no completeness head.

>>> round(lambda_n(0, 1000), 3), round(lambda_n(1000, 1000), 3), lambda_n(500, 1000) > lambda_n(100, 1000)
(0.05, 1.0, True)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


#: the paper's voxel volume (1 mm isotropic), in which β = 1000 voxels was set
PAPER_VOXEL_MM3 = 1.0


@dataclass(frozen=True)
class InstanceLossConfig:
    """Eq. 1's constants. Defaults are the paper's (λ0 = 0.05, λ_max ≈ 1, β = 1000)."""

    n_max: int = 50_000
    lambda_start: float = 0.05
    lambda_end: float = 1.0
    #: steepness of the sigmoid in units of 1 / n_max (10: the rise happens mostly in the middle half)
    lambda_steepness: float = 10.0
    beta: float = 1000.0
    #: volume of a typical vertebra (body and arch), mm³; turns β into a per-fraction weight (see above)
    vertebra_volume_mm3: float = 30_000.0
    #: isotropic voxel edge of the patches, mm (paper 1 mm)
    spacing_mm: float = 1.0
    completeness_weight: float = 1.0
    #: what FP and FN are divided by: "vertebra" (V, see above; default) or "background" (see above)
    fp_reference: str = "vertebra"

    def __post_init__(self):
        if self.fp_reference not in ("vertebra", "background"):
            raise ValueError(f"fp_reference must be 'vertebra' or 'background', got {self.fp_reference!r}")
        if not 0 < self.lambda_start <= self.lambda_end:
            raise ValueError(f"need 0 < lambda_start <= lambda_end, got {self.lambda_start}, {self.lambda_end}")
        if self.n_max < 1 or self.spacing_mm <= 0 or self.vertebra_volume_mm3 <= 0:
            raise ValueError("n_max, spacing_mm and vertebra_volume_mm3 must be positive")

    @property
    def vertebra_voxels(self) -> float:
        """V: voxels of a typical vertebra at ``spacing_mm``."""
        return self.vertebra_volume_mm3 / self.spacing_mm ** 3

    @property
    def level_weight(self) -> float:
        """β · 1 mm³ / vertebra volume: the weight of one level of error against the fractions, the
        paper's balance at 1 mm kept at every spacing (see module docstring)."""
        return self.beta * PAPER_VOXEL_MM3 / self.vertebra_volume_mm3


def lambda_n(step: int, n_max: int, start: float = 0.05, end: float = 1.0, steepness: float = 10.0) -> float:
    """λn of Eq. 1: a logistic curve rescaled to be exactly ``start`` at n = 0 and ``end`` at n = n_max."""
    def logistic(u: float) -> float:
        return 1.0 / (1.0 + math.exp(-steepness * (u - 0.5)))
    u = min(max(step / max(n_max, 1), 0.0), 1.0)
    lo, hi = logistic(0.0), logistic(1.0)
    return start + (end - start) * (logistic(u) - lo) / (hi - lo)


def soft_fp_fn_fractions(probability: torch.Tensor, target: torch.Tensor,
                         reference_voxels: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample soft FP and FN (see module docstring) of (B, 1, D, H, W) tensors → two (B,).

    With ``reference_voxels`` (V) both are soft voxel counts divided by V; without, FP is divided by
    the patch's background voxels and FN by its target voxels (``fp_reference="background"``).
    """
    if probability.shape != target.shape:
        raise ValueError(f"probability {tuple(probability.shape)} and target {tuple(target.shape)} differ")
    p, t = probability.flatten(1), target.flatten(1).to(probability.dtype)
    fp_voxels, fn_voxels = (p * (1 - t)).sum(1), ((1 - p) * t).sum(1)
    if reference_voxels is not None:
        return fp_voxels / float(reference_voxels), fn_voxels / float(reference_voxels)
    return fp_voxels / (1 - t).sum(1).clamp_min(1.0), fn_voxels / t.sum(1).clamp_min(1.0)


def instance_loss(outputs: dict, batch: dict, step: int, config: InstanceLossConfig) -> tuple[torch.Tensor, dict]:
    """Eq. 1 (plus the optional completeness term) averaged over the batch.

    Args:
        outputs: the model's dict: ``"segmentation"`` logits (B, 1, D, H, W), ``"level"`` (B,), and
            optionally ``"completeness"`` logits (B,).
        batch: ``"target"`` (B, 1, D, H, W) in {0, 1}, ``"level"`` (B,) aligned levels (0 = empty patch),
            and ``"complete"`` (B,) in {0, 1} when the completeness head is trained.
    Returns:
        the scalar loss and its terms as floats (for the training log).
    """
    lam = lambda_n(step, config.n_max, config.lambda_start, config.lambda_end, config.lambda_steepness)
    prob = torch.sigmoid(outputs["segmentation"])
    fp, fn = soft_fp_fn_fractions(prob, batch["target"], config.vertebra_voxels
                                  if config.fp_reference == "vertebra" else None)
    level_error = (outputs["level"].reshape(-1) - batch["level"].reshape(-1).to(prob.dtype)).abs()
    loss = (lam * fp + fn + config.level_weight * level_error).mean()
    terms = {"lambda_n": lam, "fp_frac": float(fp.detach().mean()),
             "fn_frac": float(fn.detach().mean()), "level_abs_err": float(level_error.detach().mean())}
    if outputs.get("completeness") is not None and "complete" in batch:
        bce = F.binary_cross_entropy_with_logits(outputs["completeness"].reshape(-1),
                                                 batch["complete"].reshape(-1).to(prob.dtype))
        loss = loss + config.completeness_weight * bce
        terms["completeness_bce"] = float(bce.detach())
    return loss, terms
