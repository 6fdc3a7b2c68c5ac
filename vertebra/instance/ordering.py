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
  (L6) is allowed, optionally penalised by ``l6_log_prior`` (``LUMBARISATION_LOG_PRIOR``, log 0.06:
  the lumbarisation rate), in both rules;
* T13 cannot be told from T12 by the levels alone (both orderings give the same likelihood); the label
  names follow the standard count unless the caller says the spine has a T13.

The confidence is the log-likelihood margin of the best ordering over the runner-up; since every other
start shifts L1 to another vertebra, it is also the margin for the L1 decision.
``posterior`` is the best ordering's share of the likelihood over all orderings considered.

Fix (e), beyond the paper (`most_likely_monotone_labelling`): consecutive labels assume that the walk
found every vertebra once. When a piece spans two vertebrae and the walk skips one, or the walk cuts one
vertebra (often L5) into two pieces, every label above the fault shifts by one. The monotone labelling
only asks the labels to descend the spine: each next piece takes the same level as the one above it (a
split vertebra; its pieces merge) or a lower one, and every skipped level or shared level pays a fixed
log-prior. It is found exactly by dynamic programming over (piece, level), O(N · 25²). It needs levels
that mean something on their own, such as fix (d)'s context network; with the paper's head it is no
better than Eq. 2.

>>> o = most_likely_ordering([17.8, 19.2, 19.9, 21.1])
>>> o.levels, o.labels
((18, 19, 20, 21), (18, 19, 20, 21))
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import logsumexp

from ..labels import L1
from .levels import LAST_STANDARD_LEVEL, MAX_LEVEL, label_to_level, level_to_label

#: the aligned level of L1 (`vertebra.instance.levels`: L1 = 20)
L1_LEVEL = label_to_level(L1)
#: log of the lumbarisation rate (6 % of spines have an L6; the paper's introduction, and the phantom's)
LUMBARISATION_LOG_PRIOR = float(np.log(0.06))


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


@dataclass(frozen=True)
class OrderingConfig:
    """How the pieces of a walk are labelled. The defaults are the paper's (Eq. 2: consecutive, σ = 2)."""

    #: "consecutive" (Eq. 2) or "monotone" (fix (e): levels may be skipped or shared, at a cost)
    rule: str = "consecutive"
    sigma: float = 2.0
    #: log-prior (≤ 0) of each level skipped between two pieces (monotone rule)
    skip_log_prior: float = -1.0
    #: log-prior (≤ 0) of a piece that shares its level with the piece above (monotone rule)
    split_log_prior: float = -1.0
    #: log-prior (≤ 0) of a labelling that uses L6 (level 25), once per labelling: 0 = none (the paper);
    #: ``LUMBARISATION_LOG_PRIOR`` = log 0.06, the lumbarisation rate
    l6_log_prior: float = 0.0

    def __post_init__(self):
        if self.rule not in ("consecutive", "monotone"):
            raise ValueError(f"ordering rule must be 'consecutive' or 'monotone', got {self.rule!r}")
        if self.sigma <= 0 or self.skip_log_prior > 0 or self.split_log_prior > 0 or self.l6_log_prior > 0:
            raise ValueError("sigma must be > 0 and the log-priors <= 0")

    def to_dict(self) -> dict:
        return asdict(self)

    def order(self, predicted_levels, weights=None) -> Ordering:
        """The labelling of the pieces (top to bottom) under this rule."""
        if self.rule == "monotone":
            return most_likely_monotone_labelling(predicted_levels, self.sigma, self.skip_log_prior,
                                                  self.split_log_prior, l6_log_prior=self.l6_log_prior,
                                                  weights=weights)
        return most_likely_ordering(predicted_levels, self.sigma, l6_log_prior=self.l6_log_prior, weights=weights)


def level_log_likelihood(predicted_levels, sigma: float = 2.0, max_level: int = MAX_LEVEL) -> np.ndarray:
    """log l_ij of Eq. 2 as an (N, max_level) array; column j − 1 is level j."""
    pred = np.asarray(predicted_levels, dtype=float).reshape(-1, 1)
    j = np.arange(1, max_level + 1, dtype=float).reshape(1, -1)
    return -0.5 * ((pred - j) / float(sigma)) ** 2


def _weighted_table(predicted_levels, sigma: float, top: int, weights=None) -> np.ndarray:
    """The (N, top) table of Eq. 2's log-likelihoods, each row times its vertebra's weight; the checks
    both labelling rules need (finite levels, one weight per vertebra)."""
    pred = np.asarray(predicted_levels, dtype=float).ravel()
    if not np.all(np.isfinite(pred)):
        raise ValueError(f"predicted levels must be finite, got {pred.tolist()}")
    w = np.ones(pred.size) if weights is None else np.asarray(weights, dtype=float).ravel()
    if w.shape != pred.shape:
        raise ValueError(f"weights must have one entry per vertebra ({pred.size}), got shape {w.shape}")
    return level_log_likelihood(pred, sigma, top) * w[:, None]


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
    top = MAX_LEVEL if allow_l6 else LAST_STANDARD_LEVEL
    n = np.asarray(predicted_levels).size
    if n == 0:
        return Ordering((), (), 0.0, float("inf"), 1.0)
    if n > top:
        raise ValueError(f"{n} vertebrae cannot be labelled with consecutive levels 1..{top}")
    table = _weighted_table(predicted_levels, sigma, top, weights)
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


def _monotone_transitions(top: int, skip_log_prior: float, split_log_prior: float,
                          l6_log_prior: float = 0.0) -> np.ndarray:
    """(top, top) log-prior of going from level p (row) to level j (column) between two pieces; the
    step onto L6 (level 25) from above it pays ``l6_log_prior``."""
    p, j = np.meshgrid(np.arange(top), np.arange(top), indexing="ij")
    step = np.where(j == p, split_log_prior, np.where(j > p, skip_log_prior * (j - p - 1), -np.inf))
    if top >= MAX_LEVEL:
        step[:MAX_LEVEL - 1, MAX_LEVEL - 1] += l6_log_prior
    return step


def most_likely_monotone_labelling(predicted_levels, sigma: float = 1.0, skip_log_prior: float = -1.0,
                                   split_log_prior: float = -1.0, allow_l6: bool = True,
                                   has_t13: bool = False, weights=None, l6_log_prior: float = 0.0) -> Ordering:
    """Fix (e): the non-decreasing labelling (top to bottom) that maximises Σ log l_i,v_i + the log-priors
    of the levels it skips and shares (module docstring) + ``l6_log_prior`` once if it uses L6. Pieces
    with the same level are one vertebra.

    ``confidence`` is the log-likelihood margin of the L1 decision: over the best labelling in which the
    piece(s) labelled L1 are not L1, or, when no piece is labelled L1, over the best that names one L1;
    ``posterior`` is the best labelling's share of the likelihood summed over all monotone labellings."""
    top = MAX_LEVEL if allow_l6 else LAST_STANDARD_LEVEL
    n = np.asarray(predicted_levels).size
    if n == 0:
        return Ordering((), (), 0.0, float("inf"), 1.0)
    table = _weighted_table(predicted_levels, sigma, top, weights)
    step = _monotone_transitions(top, skip_log_prior, split_log_prior, l6_log_prior)
    if top >= MAX_LEVEL:
        table[0, MAX_LEVEL - 1] += l6_log_prior          # a labelling that starts on L6 uses it too

    def viterbi(emission):
        score, back = emission[0].copy(), np.zeros((n, top), int)
        for i in range(1, n):
            candidates = score[:, None] + step
            back[i] = np.argmax(candidates, axis=0)
            score = candidates[back[i], np.arange(top)] + emission[i]
        best = int(np.argmax(score))
        path = [best]
        for i in range(n - 1, 0, -1):
            path.append(int(back[i, path[-1]]))
        return float(score[best]), [j + 1 for j in path[::-1]]

    best_score, levels = viterbi(table)
    on_l1 = [i for i, v in enumerate(levels) if v == L1_LEVEL]
    if on_l1:                                    # the best labelling in which those pieces are not L1
        blocked = table.copy()
        blocked[on_l1, L1_LEVEL - 1] = -np.inf
        other = viterbi(blocked)[0]
    else:                                        # the best labelling that names one of the pieces L1
        other = -np.inf
        for i in range(n):
            forced = table.copy()
            forced[i] = -np.inf
            forced[i, L1_LEVEL - 1] = table[i, L1_LEVEL - 1]
            other = max(other, viterbi(forced)[0])
    margin = best_score - other if np.isfinite(other) else float("inf")
    forward = table[0].copy()                    # log Σ over all monotone labellings
    for i in range(1, n):
        forward = logsumexp(forward[:, None] + step, axis=0) + table[i]
    posterior = float(np.exp(best_score - logsumexp(forward)))
    labels = tuple(level_to_label(v, has_t13) for v in levels)
    return Ordering(tuple(levels), labels, best_score, float(margin), posterior)
