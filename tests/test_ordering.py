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
