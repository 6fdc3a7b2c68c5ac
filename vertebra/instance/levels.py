"""Aligned levels: the number the instance U-Net regresses for each vertebra (§2.1, §2.3).

The paper labels cervical, thoracic and lumbar vertebrae with integers 1-24, *aligned so that L1 = 20*.
Transitional vertebrae therefore shift the thoracic numbers, not the lumbar ones:

* with a 13th rib-bearing vertebra (T13, VerSe 28): T13 → 19, T12 → 18, ..., T1 → 7, C7 → 6, ...
* a sixth lumbar vertebra (L6, VerSe 25) → 25;
* the sacrum (26) is not a target; an empty patch has level 0.

In level space every spine is a run of consecutive integers, which is what `ordering` relies on.

>>> label_to_level(20), label_to_level(19), label_to_level(19, has_t13=True), label_to_level(28)
(20, 19, 18, 19)
>>> level_to_label(25), level_to_label(19), level_to_label(19, has_t13=True)
(25, 19, 28)
"""
from __future__ import annotations

from ..labels import L1, L6, SACRUM, T12, T13

#: the level of an empty patch (no target vertebra)
EMPTY_LEVEL = 0
#: highest level the traversal keeps going for in top-down mode (L5 = 24, §2.3)
LAST_STANDARD_LEVEL = 24
#: highest level any vertebra can have (L6)
MAX_LEVEL = 25


def is_target(label: int) -> bool:
    """Whether a VerSe label is segmented as an instance (every vertebra except the sacrum)."""
    return int(label) != SACRUM and (1 <= int(label) <= L6 or int(label) == T13)


def label_to_level(label: int, has_t13: bool = False) -> int:
    """The aligned level (L1 = 20) of a VerSe label; ``has_t13`` says whether the spine has a T13."""
    label = int(label)
    if not is_target(label):
        raise ValueError(f"label {label} is not an instance target (the sacrum and unknown labels are not)")
    if label == T13:
        return L1 - 1
    if has_t13 and label <= T12:
        return label - 1
    return label


def level_to_label(level: int, has_t13: bool = False) -> int:
    """The VerSe label of an aligned level (inverse of `label_to_level`)."""
    level = int(level)
    if not 1 <= level <= MAX_LEVEL:
        raise ValueError(f"level {level} is outside 1..{MAX_LEVEL}")
    if has_t13 and level == L1 - 1:
        return T13
    if has_t13 and level < L1 - 1:
        return level + 1
    return level


def levels_of(labels_present, has_t13: bool | None = None) -> dict[int, int]:
    """{VerSe label: aligned level} for the targets among ``labels_present``; T13 presence inferred."""
    labels_present = [int(v) for v in labels_present]
    if has_t13 is None:
        has_t13 = T13 in labels_present
    return {lab: label_to_level(lab, has_t13) for lab in labels_present if is_target(lab)}
