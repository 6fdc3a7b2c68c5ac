"""The sacrum at the foot of the walk: fix (e)'s monotone labelling with a sacrum state (beyond the paper).

A top-down walk does not stop at L5: the top of the sacrum is bone that looks like a vertebral body from
above, so on most scans the walk's last piece is S1. The context network of fix (d) was trained on the
vertebrae C1-L6 only; it reads such a piece as "about L5" (level ≈ 24.2), and fix (e)'s monotone labelling
then either merges it into L5 (a shared level, `ordering.most_likely_monotone_labelling`) or, where the
sacrum piece is read a little lower than the real L5, calls it L5 and every vertebra above one level too
high. Both cost: the first lowers the L5 Dice, the second moves L1.

`most_likely_labelling_with_sacrum` adds one state to that dynamic programme: *sacrum* (level 26, VerSe
label 26). Only the last pieces may take it, only after a piece labelled L4 or lower (L4: a sacralised
L5), and each pays ``sacrum_log_prior`` instead of a level likelihood: the level regression knows nothing
of the sacrum, so the state is chosen when calling the piece L5 (shared or not) or L6 costs more than
the prior. A second sacrum piece pays the split prior, as any shared level does.

The Table 2 rows do not use it; `vertebra label-spine --sacrum-log-prior` does, on request.
`scripts/instance_sacrum.py` measures it on the (e) rows' own walks (`results/instance_sacrum.csv`): on
the plain walk it raises the labelled Dice and leaves L1 alone; on fix (b)'s walk, which more often cuts
L4 or L5 in two and ends inside L5, it calls the lower half of L5 the sacrum and lowers the Dice a little.
A piece's vertebra probability (fix (d)) would tell the two apart, but the ordering rules see only the
levels (`pipeline._relabel`). The dynamic programme repeats `ordering.most_likely_monotone_labelling`'s
with one more state; it belongs there once the rows are run again with it (editing `ordering` makes
every instance row's record stale, `vertebra.reproduce`).

>>> o = most_likely_labelling_with_sacrum([22.1, 23.2, 24.3, 24.2], MONOTONE_WITH_SACRUM)
>>> o.labels
(22, 23, 24, 26)
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy.special import logsumexp

from ..labels import L5, SACRUM
from .levels import MAX_LEVEL, label_to_level, level_to_label
from .ordering import (L1_LEVEL, LUMBARISATION_LOG_PRIOR, Ordering, OrderingConfig, _monotone_transitions,
                       _weighted_table)

#: the sacrum's place in level space: one past L6
SACRUM_LEVEL = MAX_LEVEL + 1
#: the highest level a piece above the sacrum may have: L4 (a sacralised L5 leaves four lumbar vertebrae)
LAST_LEVEL_ABOVE_SACRUM_MIN = label_to_level(L5 - 1)
#: the default log-prior of calling a piece the sacrum: what a shared level costs, so a last piece that
#: would otherwise share L5 is the sacrum. Chosen with the plain walk's row on the 20 tuning and 60 check
#: scans (`results/instance_sacrum.csv`): −0.25 and −0.5 find one more L1 on the tuning scans but lose 4
#: and 2 on the check scans, where a sacrum called L5 had made up for a vertebra the walk skipped
SACRUM_LOG_PRIOR = -1.0
#: fix (e)'s rule as the (d) + (e) rows use it (`run.MONOTONE_ORDERING`), the sacrum state aside
MONOTONE_WITH_SACRUM = OrderingConfig("monotone", sigma=1.0, skip_log_prior=-1.0, split_log_prior=-1.0,
                                      l6_log_prior=LUMBARISATION_LOG_PRIOR)


def _viterbi(emission: np.ndarray, step: np.ndarray) -> tuple[float, list[int]]:
    """Best path through (pieces × states) ``emission`` with ``step`` (state → state) log-priors;
    returns its score and its states (0-based)."""
    n, k = emission.shape
    score, back = emission[0].copy(), np.zeros((n, k), int)
    for i in range(1, n):
        candidates = score[:, None] + step
        back[i] = np.argmax(candidates, axis=0)
        score = candidates[back[i], np.arange(k)] + emission[i]
    best = int(np.argmax(score))
    path = [best]
    for i in range(n - 1, 0, -1):
        path.append(int(back[i, path[-1]]))
    return float(score[best]), path[::-1]


def most_likely_labelling_with_sacrum(predicted_levels, rule: OrderingConfig = MONOTONE_WITH_SACRUM,
                                      sacrum_log_prior: float = SACRUM_LOG_PRIOR, weights=None) -> Ordering:
    """Fix (e)'s monotone labelling (``rule``: its σ and log-priors) where the last pieces may be the
    sacrum (module docstring). Levels are listed top to bottom; the result's levels use 26 and its labels
    `labels.SACRUM` for sacrum pieces. ``confidence`` and ``posterior`` as in
    `ordering.most_likely_monotone_labelling`."""
    if rule.rule != "monotone":
        raise ValueError(f"the sacrum state extends the monotone rule, got {rule.rule!r}")
    if sacrum_log_prior > 0:
        raise ValueError(f"sacrum_log_prior must be <= 0, got {sacrum_log_prior}")
    n = np.asarray(predicted_levels).size
    if n == 0:
        return Ordering((), (), 0.0, float("inf"), 1.0)
    top = MAX_LEVEL
    table = np.full((n, top + 1), float(sacrum_log_prior))
    table[:, :top] = _weighted_table(predicted_levels, rule.sigma, top, weights)
    table[0, top] = -np.inf                               # the walk's first piece is never the sacrum
    table[0, MAX_LEVEL - 1] += rule.l6_log_prior          # a labelling that starts on L6 uses it too
    step = np.full((top + 1, top + 1), -np.inf)
    step[:top, :top] = _monotone_transitions(top, rule.skip_log_prior, rule.split_log_prior, rule.l6_log_prior)
    step[LAST_LEVEL_ABOVE_SACRUM_MIN - 1:top, top] = 0.0  # onto the sacrum from L4, L5 or L6
    step[top, top] = rule.split_log_prior                 # the sacrum in two pieces

    best_score, path = _viterbi(table, step)
    levels = [j + 1 for j in path]
    on_l1 = [i for i, v in enumerate(levels) if v == L1_LEVEL]
    if on_l1:                                             # best labelling in which those pieces are not L1
        blocked = table.copy()
        blocked[on_l1, L1_LEVEL - 1] = -np.inf
        other = _viterbi(blocked, step)[0]
    else:                                                 # best labelling that names one of the pieces L1
        other = -np.inf
        for i in range(n):
            forced = table.copy()
            forced[i] = -np.inf
            forced[i, L1_LEVEL - 1] = table[i, L1_LEVEL - 1]
            other = max(other, _viterbi(forced, step)[0])
    margin = best_score - other if np.isfinite(other) else float("inf")
    forward = table[0].copy()
    for i in range(1, n):
        forward = logsumexp(forward[:, None] + step, axis=0) + table[i]
    posterior = float(np.exp(best_score - logsumexp(forward)))
    labels = tuple(SACRUM if v == SACRUM_LEVEL else level_to_label(v) for v in levels)
    return Ordering(tuple(levels), labels, best_score, float(margin), posterior)


@dataclasses.dataclass(frozen=True)
class SacrumOrdering:
    """An ordering rule with `OrderingConfig`'s ``order`` interface, for `pipeline.label_walk` through
    a bundle's ``ordering``: fix (e)'s monotone rule plus the sacrum state."""

    rule: OrderingConfig = MONOTONE_WITH_SACRUM
    sacrum_log_prior: float = SACRUM_LOG_PRIOR

    def to_dict(self) -> dict:
        return {**self.rule.to_dict(), "sacrum_log_prior": self.sacrum_log_prior}

    def order(self, predicted_levels, weights=None) -> Ordering:
        return most_likely_labelling_with_sacrum(predicted_levels, self.rule, self.sacrum_log_prior, weights)
