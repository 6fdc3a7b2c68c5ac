"""The most likely labelling of the vertebrae found by the traversal (Eq. 2 of the paper).

Each vertebra i found by the traversal comes with a regressed level ``L_pred,i`` (L1 = 20, see
`vertebra.instance.levels`). Eq. 2 turns it into an unnormalised Gaussian likelihood of being level j,

    l_ij = exp(-½ ((L_pred,i − j) / σ)²),   σ = 2,

and the labelling of the N vertebrae (sorted top to bottom) is the ordering v that maximises
L(v) = ∏_i l_i,v_i among the orderings *consistent with the number found*: N consecutive levels.

In level space every anatomically possible spine is consecutive (T13 is level 19 and shifts the thoracic
levels up by one; L6 is level 25), so an ordering is fixed by its first level s, and the search is over
s = 1 .. MAX_LEVEL − N + 1: O(N · 25), no dynamic programme needed. Two consequences worth stating:

* with ``allow_l6=False`` the last level is 24 (the paper's 24 labels); with ``True`` (default) level 25
  (L6) is allowed, optionally penalised by ``l6_log_prior`` (e.g. log 0.06, the lumbarisation rate);
* T13 cannot be told from T12 by the levels alone (both orderings give the same likelihood); the label
  names follow the standard count unless the caller says the spine has a T13.

The confidence is the log-likelihood margin of the best ordering over the runner-up; since every other
start shifts L1 to another vertebra, it is also the margin for the L1 decision.
``posterior`` is the best ordering's share of the likelihood over all orderings considered.

>>> o = most_likely_ordering([17.8, 19.2, 19.9, 21.1])
>>> o.levels, o.labels
((18, 19, 20, 21), (18, 19, 20, 21))
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .levels import LAST_STANDARD_LEVEL, MAX_LEVEL, level_to_label


@dataclass(frozen=True)
class Ordering:
    """The chosen labelling of N vertebrae, top to bottom."""

    levels: tuple[int, ...]
    labels: tuple[int, ...]
    log_likelihood: float
    #: log-likelihood margin to the runner-up ordering (inf when there is only one ordering)
    confidence: float
    #: the best ordering's share of the total likelihood over all orderings considered
    posterior: float

    def level_of(self, index: int) -> int:
        return self.levels[index]


def level_log_likelihood(predicted_levels, sigma: float = 2.0, max_level: int = MAX_LEVEL) -> np.ndarray:
    """log l_ij of Eq. 2 as an (N, max_level) array; column j − 1 is level j."""
    pred = np.asarray(predicted_levels, dtype=float).reshape(-1, 1)
    j = np.arange(1, max_level + 1, dtype=float).reshape(1, -1)
    return -0.5 * ((pred - j) / float(sigma)) ** 2


def most_likely_ordering(predicted_levels, sigma: float = 2.0, allow_l6: bool = True,
                         l6_log_prior: float = 0.0, has_t13: bool = False,
                         weights=None) -> Ordering:
    """The consecutive labelling that maximises ∏_i l_i,v_i (Eq. 2) for levels listed top to bottom.

    Args:
        predicted_levels: the regressed level of each vertebra, in craniocaudal order (top first).
        sigma: σ of Eq. 2 in level units (paper: 2).
        allow_l6: whether level 25 (L6) may be used.
        l6_log_prior: added to the log-likelihood of orderings that use L6 (0 = no prior, as the paper).
        has_t13: name level 19 T13 (and shift thoracic names), when known from elsewhere.
        weights: optional per-vertebra weights on the log-likelihood terms (0 = ignore that vertebra's
            regression, e.g. a partly visible one flagged by the completeness head).
    """
    pred = np.asarray(predicted_levels, dtype=float).ravel()
    n = pred.size
    top = MAX_LEVEL if allow_l6 else LAST_STANDARD_LEVEL
    if n == 0:
        return Ordering((), (), 0.0, float("inf"), 1.0)
    if n > top:
        raise ValueError(f"{n} vertebrae cannot be labelled with consecutive levels 1..{top}")
    if not np.all(np.isfinite(pred)):
        raise ValueError(f"predicted levels must be finite, got {pred.tolist()}")
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float).ravel()
    if w.shape != (n,):
        raise ValueError(f"weights must have one entry per vertebra ({n}), got shape {w.shape}")

    table = level_log_likelihood(pred, sigma, top) * w[:, None]
    starts = np.arange(1, top - n + 2)                        # first level of each candidate ordering
    rows = np.arange(n)
    scores = np.array([table[rows, s - 1 + rows].sum() for s in starts])
    if allow_l6 and l6_log_prior:
        scores = scores + np.where(starts + n - 1 == MAX_LEVEL, l6_log_prior, 0.0)

    best = int(np.argmax(scores))                             # ties go to the higher (cranial) start
    ranked = np.sort(scores)[::-1]
    margin = float(ranked[0] - ranked[1]) if ranked.size > 1 else float("inf")
    posterior = float(1.0 / np.exp(scores - scores[best]).sum())
    levels = tuple(int(starts[best] + i) for i in range(n))
    labels = tuple(level_to_label(v, has_t13) for v in levels)
    return Ordering(levels, labels, float(scores[best]), margin, posterior)
