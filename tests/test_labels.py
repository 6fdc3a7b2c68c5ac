import pytest

from vertebra import labels


def test_names_follow_verse_numbering():
    assert [labels.name(i) for i in (1, 7, 8, 19, 20, 24, 25, 26, 28)] == \
        ["C1", "C7", "T1", "T12", "L1", "L5", "L6", "S", "T13"]


def test_rank_increases_down_the_spine_with_transitional_vertebrae_in_place():
    ranks = [labels.rank(lab) for lab in labels.CRANIOCAUDAL]
    assert ranks == sorted(ranks)
    assert labels.rank(labels.T12) < labels.rank(labels.T13) < labels.rank(labels.L1)
    assert labels.rank(labels.L5) < labels.rank(labels.L6) < labels.rank(labels.SACRUM)


def test_name_and_label_are_inverse():
    for lab in labels.VALID_LABELS:
        assert labels.label(labels.name(lab)) == lab


@pytest.mark.parametrize("bad", [0, 27, 29, 100])
def test_unknown_labels_are_rejected(bad):
    with pytest.raises(ValueError, match=str(bad)):
        labels.name(bad)
