"""Eq. 2: the most likely consecutive labelling of the regressed levels."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vertebra.instance.ordering import level_log_likelihood, most_likely_ordering
from vertebra.labels import L1, T13, rank


def test_recovers_labels_with_one_ambiguous_vertebra():
    # the third vertebra regresses 22.4 (it is L1 = 20); its neighbours outvote it
    o = most_likely_ordering([18.2, 18.9, 22.4, 21.1, 21.8])
    assert o.labels == (18, 19, 20, 21, 22)
    assert o.labels.index(L1) == 2
    assert o.confidence > 0 and 0 < o.posterior <= 1


def test_likelihood_table_is_eq2():
    table = level_log_likelihood([20.0], sigma=2.0)
    assert table.shape == (1, 25)
    assert table[0, 19] == 0.0                                  # level 20: exp(0) = 1
    assert np.isclose(table[0, 21], -0.5)                       # two levels away = one sigma


def test_l6_only_when_allowed():
    levels = [21.0, 22.0, 23.0, 24.0, 25.0]
    assert most_likely_ordering(levels).labels[-1] == 25
    assert most_likely_ordering(levels, allow_l6=False).labels == (20, 21, 22, 23, 24)
    assert most_likely_ordering(levels, l6_log_prior=-10.0).labels == (20, 21, 22, 23, 24)


def test_t13_naming_and_zero_weight():
    assert most_likely_ordering([18.0, 19.0, 20.0], has_t13=True).labels == (19, T13, 20)
    # a vertebra with weight 0 does not vote: the others decide
    o = most_likely_ordering([10.0, 20.0, 21.0], weights=[0, 1, 1])
    assert o.labels == (19, 20, 21)


def test_too_many_vertebrae_and_empty():
    with pytest.raises(ValueError, match="consecutive"):
        most_likely_ordering(np.arange(26.0))
    assert most_likely_ordering([]).labels == ()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=-10, max_value=40, allow_nan=False), min_size=1, max_size=25),
       st.booleans())
def test_any_table_gives_a_valid_consecutive_labelling(levels, allow_l6):
    if len(levels) > (25 if allow_l6 else 24):
        return
    o = most_likely_ordering(levels, allow_l6=allow_l6)
    assert len(o.labels) == len(levels)
    assert list(o.levels) == list(range(o.levels[0], o.levels[0] + len(levels)))   # consecutive
    assert o.labels == o.levels                                 # standard names: label = level
    ranks = [rank(lab) for lab in o.labels]
    assert ranks == sorted(ranks)                               # top to bottom down the spine
    assert all(1 <= v <= (25 if allow_l6 else 24) for v in o.levels)
    assert o.confidence >= 0 and 0 < o.posterior <= 1


# ------------------------------------------------------------------ fix (e): the monotone labelling

from itertools import combinations_with_replacement  # noqa: E402

from vertebra.instance.ordering import (LUMBARISATION_LOG_PRIOR, OrderingConfig,  # noqa: E402
                                        most_likely_monotone_labelling)


def _brute_force(levels, sigma, skip, split, top, l6=0.0):
    """The best non-decreasing labelling by enumeration (tiny cases only)."""
    table = level_log_likelihood(levels, sigma, top)
    best, arg = -np.inf, None
    for labels in combinations_with_replacement(range(1, top + 1), len(levels)):
        score = sum(table[i, v - 1] for i, v in enumerate(labels))
        score += sum(split if b == a else skip * (b - a - 1) for a, b in zip(labels, labels[1:]))
        score += l6 if 25 in labels else 0.0
        if score > best + 1e-12:
            best, arg = score, labels
    return best, arg


def test_monotone_labelling_survives_a_skipped_and_a_split_vertebra():
    # T11, T12, L1, then L3 (the walk jumped L2), L4, L5, L6: Eq. 2 shifts L1 up onto T12
    skipped = [18.0, 19.0, 20.0, 22.0, 23.0, 24.0, 24.9]
    o = most_likely_monotone_labelling(skipped, sigma=1.0)
    assert o.levels == (18, 19, 20, 22, 23, 24, 25) and o.labels.index(L1) == 2
    assert o.confidence > 0 and 0 < o.posterior <= 1
    assert most_likely_ordering(skipped, sigma=1.0).labels.index(L1) == 1
    # T12, L1, L2 in two pieces, L3, L4, L5: Eq. 2 needs seven levels and moves L1 down
    split = [19.0, 20.0, 21.0, 21.0, 22.0, 23.0, 24.0]
    assert most_likely_monotone_labelling(split, sigma=1.0).levels == (19, 20, 21, 21, 22, 23, 24)
    assert most_likely_ordering(split, sigma=1.0).labels.index(L1) == 2


def test_monotone_labelling_with_nothing_to_skip_is_eq2():
    levels = [17.1, 18.0, 18.8, 20.1, 21.0]
    assert most_likely_monotone_labelling(levels).levels == most_likely_ordering(levels).levels


def test_monotone_confidence_is_the_margin_of_the_l1_decision():
    o = most_likely_monotone_labelling([19.0, 20.0, 21.0], sigma=1.0)
    # the runner-up for L1 moves it to a neighbour: one piece off by one level (−½) + the rest shifted
    # or a level shared / skipped; the margin must equal the best score without L1 on piece 1
    table = level_log_likelihood([19.0, 20.0, 21.0], 1.0)
    table[1, 19] = -np.inf
    best_without = max(s for s, _ in [_brute_force_masked(table)])
    assert o.confidence == pytest.approx(o.log_likelihood - best_without)
    none = most_likely_monotone_labelling([3.0, 4.0], sigma=1.0)        # no L1 in sight: a huge margin
    assert L1 not in none.labels and none.confidence > 50


def _brute_force_masked(table, skip=-1.0, split=-1.0):
    n, top = table.shape
    best = -np.inf
    for labels in combinations_with_replacement(range(1, top + 1), n):
        score = sum(table[i, v - 1] for i, v in enumerate(labels))
        score += sum(split if b == a else skip * (b - a - 1) for a, b in zip(labels, labels[1:]))
        best = max(best, score)
    return best, None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=-5, max_value=30, allow_nan=False), min_size=1, max_size=4),
       st.floats(min_value=0.3, max_value=3.0), st.floats(min_value=-4, max_value=0),
       st.floats(min_value=-4, max_value=0), st.floats(min_value=-4, max_value=0))
def test_monotone_labelling_is_the_best_non_decreasing_one(levels, sigma, skip, split, l6):
    o = most_likely_monotone_labelling(levels, sigma, skip, split, l6_log_prior=l6)
    assert list(o.levels) == sorted(o.levels) and all(1 <= v <= 25 for v in o.levels)
    best, _ = _brute_force(levels, sigma, skip, split, 25, l6)
    assert o.log_likelihood == pytest.approx(best, abs=1e-9)
    assert o.confidence >= 0 and 0 < o.posterior <= 1 + 1e-12


def test_ordering_config_chooses_the_rule_and_rejects_nonsense():
    assert OrderingConfig().order([18.2, 18.9, 22.4]).levels == most_likely_ordering([18.2, 18.9, 22.4]).levels
    jumped = OrderingConfig("monotone", sigma=1.0).order([12.0, 18.0]).levels
    assert jumped[1] - jumped[0] > 1 and OrderingConfig().order([12.0, 18.0]).levels == (14, 15)
    with pytest.raises(ValueError, match="rule"):
        OrderingConfig("greedy")
    with pytest.raises(ValueError, match="log-priors"):
        OrderingConfig("monotone", skip_log_prior=1.0)


def test_the_l6_prior_keeps_a_spine_whose_levels_read_half_a_level_low_from_gaining_an_l6():
    # T11..L5 read about half a level too far down the spine: without a prior the labelling ending on L6
    # is as likely as the true one, and every label shifts up by one (L1 lands on T12)
    levels = [18.2, 19.4, 20.6, 21.65, 22.55, 23.8, 24.35]
    for rule in ("consecutive", "monotone"):
        plain = OrderingConfig(rule, sigma=1.0).order(levels)
        prior = OrderingConfig(rule, sigma=1.0, l6_log_prior=LUMBARISATION_LOG_PRIOR).order(levels)
        assert plain.levels[-1] == 25 and prior.levels == tuple(range(18, 25)), rule
    # a clear L6 keeps it: the prior is one small cost, paid once however many pieces share the level
    clear = [20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 25.1]
    o = most_likely_monotone_labelling(clear, sigma=1.0, l6_log_prior=-0.5)
    assert o.levels == (20, 21, 22, 23, 24, 25, 25)
    assert o.log_likelihood == pytest.approx(
        most_likely_monotone_labelling(clear, sigma=1.0).log_likelihood - 0.5)
    with pytest.raises(ValueError, match="log-priors"):
        OrderingConfig("monotone", l6_log_prior=0.5)
