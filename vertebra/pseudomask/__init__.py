"""The classical spine tool that made the paper's pseudo-masks (§2.1), rebuilt from CT alone.

Stages, one module each: `canal` (spinal canal per axial slice) → `centreline` (robust smooth path)
→ `reformat` (curved planar reformation) → `profile` (bone density along the centreline, discs) →
`watershed` (seeded watershed, directed-graph merge of oversegments); `pipeline.segment_spine` runs
them all. `alignment` numbers the segments from a manually read L1; `training_set` builds the cached
`pseudo` labels; `bmd` measures L1 trabecular density, the tool's original purpose; `quality`
compares with the phantom's truth.
"""
from .alignment import align_to_l1
from .pipeline import PseudoMaskConfig, PseudoMaskResult, segment_spine
from .training_set import build_training_set, pseudo_case, training_labels

__all__ = ["PseudoMaskConfig", "PseudoMaskResult", "align_to_l1", "build_training_set", "pseudo_case",
           "segment_spine", "training_labels"]
