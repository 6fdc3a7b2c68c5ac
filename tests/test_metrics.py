"""Metric invariants (hypothesis) and the worked cases of Table 2's definitions."""
from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from vertebra import metrics
from vertebra.labels import CRANIOCAUDAL, L1, rank

masks = arrays(np.bool_, (4, 5, 3))
coords = st.floats(-300, 300, allow_nan=False, allow_infinity=False)
points = st.tuples(coords, coords, coords)


def straight_spine(labels=(17, 18, 19, 20, 21, 22), step_mm=30.0, x_mm=0.0):
    """Centroids down world z (craniocaudal = -z), one every ``step_mm``, L1 at z = 0."""
    ordered = sorted(labels, key=rank)
    i_l1 = ordered.index(L1)
    return {lab: (x_mm, 0.0, -step_mm * (i - i_l1)) for i, lab in enumerate(ordered)}


@given(masks, masks)
def test_dice_symmetric_and_bounded(a, b):
    d = metrics.dice(a, b)
    assert 0.0 <= d <= 1.0
    assert d == metrics.dice(b, a)


@given(masks)
def test_dice_of_itself_is_one(a):
    assert metrics.dice(a, a) == 1.0
    if a.any():
        assert metrics.dice(a, ~a) == 0.0


@given(points, st.dictionaries(st.sampled_from(CRANIOCAUDAL), points, min_size=1))
def test_closest_label_is_a_minimum(p, centroids):
    lab = metrics.closest_label(p, centroids)
    d = {k: np.linalg.norm(np.subtract(v, p)) for k, v in centroids.items()}
    assert d[lab] == min(d.values())


@given(points, points, st.floats(-100, 100))
def test_error_ignores_in_plane_and_is_translation_invariant(pred, truth, dz):
    e = metrics.craniocaudal_error_mm(pred, truth)
    moved = metrics.craniocaudal_error_mm((pred[0] + 7, pred[1] - 3, pred[2] + dz), (truth[0], truth[1],
                                                                                   truth[2] + dz))
    assert e >= 0 and math.isclose(e, moved, abs_tol=1e-9)


@settings(max_examples=50)
@given(st.floats(-14.9, 14.9), st.floats(-10, 10))
def test_near_l1_is_correct_and_unshifted(dz, dx):
    truth = straight_spine()
    assert metrics.l1_correct((dx, 0, dz), truth)
    assert metrics.shift((dx, 0, dz), truth) == 0


def test_shift_directions_follow_the_paper():
    truth = straight_spine()
    assert metrics.shift(truth[19], truth) == -1  # T12: shifted up
    assert metrics.shift(truth[21], truth) == 1  # L2: shifted down
    assert metrics.shift(truth[17], truth) == "other"
    assert metrics.shift(None, truth) == "other"
    with_t13 = straight_spine(labels=(18, 19, 28, 20, 21))
    assert metrics.shift(with_t13[28], with_t13) == -1


def test_missing_l1_is_wrong_and_listed():
    truth = straight_spine()
    recs = [metrics.score_l1("a", truth[20], truth), metrics.score_l1("b", None, truth),
            metrics.score_l1("c", truth[19], truth)]
    s = metrics.summarise(recs)
    assert s["n"] == 3 and math.isclose(s["l1_acc"], 1 / 3)
    assert s["missing_cases"] == ["b"] and s["wrong_cases"] == ["c"]
    assert s["avg_err_mm"] == 15.0 and s["med_err_mm"] == 15.0
    assert math.isclose(s["shift_up_rate"], 1 / 3)


@given(st.dictionaries(st.sampled_from(CRANIOCAUDAL), points, min_size=1))
def test_identification_rate_perfect_on_truth(truth):
    rate = metrics.identification_rate(truth, truth)
    # (near-)duplicate centroid positions can make two labels tie; otherwise every vertebra is identified
    pts = np.array(list(truth.values()))
    gaps = np.linalg.norm(pts[:, None] - pts[None], axis=-1) + np.eye(len(pts))
    if gaps.min() > 1e-6:
        assert rate == 1.0
    assert 0.0 <= rate <= 1.0


def test_identification_rate_distance_and_labels():
    truth = straight_spine()
    off = {lab: (x, y, z + 25) for lab, (x, y, z) in truth.items()}  # closest truth is the one above
    assert metrics.identification_rate(off, truth) == 0.0
    relabelled = {lab + 1: p for lab, p in truth.items()}
    assert metrics.identification_rate(relabelled, truth) == 0.0
    half = {lab: truth[lab] for lab in (19, 20, 21)}
    assert metrics.identification_rate(half, truth) == 0.5
