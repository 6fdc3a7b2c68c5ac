"""The sacrum state at the foot of the walk (`vertebra.instance.sacrum`)."""
import numpy as np
import pytest

from vertebra.instance.ordering import most_likely_monotone_labelling
from vertebra.instance.sacrum import (LAST_LEVEL_ABOVE_SACRUM_MIN, MONOTONE_WITH_SACRUM, SACRUM_LEVEL,
                                      SacrumOrdering, most_likely_labelling_with_sacrum)
from vertebra.labels import SACRUM


def test_a_last_piece_read_as_l5_again_is_the_sacrum_not_half_of_l5():
    levels = [21.1, 22.2, 23.2, 24.2, 24.1]
    assert MONOTONE_WITH_SACRUM.order(levels).labels == (21, 22, 23, 24, 24)          # fix (e) merges it
    assert most_likely_labelling_with_sacrum(levels).labels == (21, 22, 23, 24, SACRUM)


def test_a_walk_that_ends_on_l5_keeps_it():
    assert most_likely_labelling_with_sacrum([22.4, 23.3, 24.0]).labels == (22, 23, 24)
    assert most_likely_labelling_with_sacrum([20.0]).labels == (20,)


def test_a_very_unlikely_sacrum_gives_fix_e_back():
    rng = np.random.default_rng(0)
    for _ in range(50):
        levels = np.sort(rng.uniform(1, 25.5, rng.integers(1, 12)))
        plain = MONOTONE_WITH_SACRUM.order(levels)
        assert most_likely_labelling_with_sacrum(levels, sacrum_log_prior=-1e6).labels == plain.labels


@pytest.mark.parametrize("seed", range(30))
def test_any_levels_give_a_valid_labelling(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 14))
    levels = rng.uniform(0, 27, n)
    result = SacrumOrdering(sacrum_log_prior=float(rng.uniform(-3, 0))).order(levels)
    assert len(result.labels) == n and all(np.diff(result.levels) >= 0)
    on_sacrum = [i for i, v in enumerate(result.levels) if v == SACRUM_LEVEL]
    if on_sacrum:
        assert on_sacrum[0] > 0 and on_sacrum == list(range(on_sacrum[0], n))       # the last pieces only
        assert result.levels[on_sacrum[0] - 1] >= LAST_LEVEL_ABOVE_SACRUM_MIN       # below L4, L5 or L6
        assert all(result.labels[i] == SACRUM for i in on_sacrum)
    assert 0 < result.posterior <= 1 and result.confidence >= 0


def test_bad_arguments_are_refused():
    from vertebra.instance.ordering import OrderingConfig
    with pytest.raises(ValueError, match="monotone"):
        most_likely_labelling_with_sacrum([20.0], OrderingConfig())
    with pytest.raises(ValueError, match="<= 0"):
        most_likely_labelling_with_sacrum([20.0], sacrum_log_prior=0.5)
