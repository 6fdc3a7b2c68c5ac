"""The simple L1 rules fail exactly where the paper says they do."""
import numpy as np
import pytest

from vertebra import labels as L
from vertebra.baselines import bone_threshold, fused_to_sacrum, rib_rule_l1, sacrum_count_l1
from vertebra.image import Volume
from vertebra.phantom import generate_case


def _case(anomalies, i=0):
    # the chest-abdomen-pelvis protocol shows every rib-bearing vertebra and the sacrum
    return generate_case(np.random.default_rng([11, 4, i]), protocol="cap", site="cap_train", spacing_mm=4.0,
                         anomalies=anomalies)


@pytest.mark.parametrize("anomalies, rib_answer, sacrum_answer", [
    ((), L.L1, L.L1),
    (("t13",), L.T13, L.L1),
    (("rudimentary_12th_rib",), L.T12, L.L1),
    (("absent_12th_rib",), L.T12, L.L1),
    (("lumbarization",), L.L1, 21),
    (("sacralization",), L.L1, L.T12),
])
def test_rules_fail_where_the_paper_says(anomalies, rib_answer, sacrum_answer):
    case = _case(anomalies)
    assert rib_rule_l1(case.vertebrae, case.ribs) == rib_answer == case.meta["rib_rule_l1_label"]
    assert sacrum_count_l1(case.vertebrae) == sacrum_answer


def test_sacralized_vertebra_touches_the_sacrum():
    assert fused_to_sacrum(_case(("sacralization",)).vertebrae) == [L.L5]
    assert fused_to_sacrum(_case(()).vertebrae) == []


def test_bone_threshold_takes_tagged_fluid_for_bone():
    case = generate_case(np.random.default_rng([11, 4, 1]), protocol="ctc", site="ctc_test", spacing_mm=4.0)
    out = bone_threshold(case.image, case.fluid)
    assert out["fluid_ml"] > 1 and out["fluid_called_bone_ml"] > 0.5 * out["fluid_ml"]


def _stack(labels):
    vert = np.zeros((5 * len(labels), 6, 6), np.uint8)
    for n, lab in enumerate(labels):
        vert[n * 5 + 1:n * 5 + 5, 2:4, 2:4] = lab
    return vert


def test_sacrum_count_on_a_literal_stack():
    assert sacrum_count_l1(Volume(_stack([26, 25, 24, 23, 22, 21, 20]))) == 21   # lumbarization: one too low
    normal = _stack([26, 24, 23, 22, 21, 20, 19])
    assert sacrum_count_l1(Volume(normal)) == 20
    normal[5, 2:4, 2:4] = 24                                                    # L5 bridged to the sacrum
    assert fused_to_sacrum(Volume(normal), min_contact_mm2=1) == [24]
    assert sacrum_count_l1(Volume(normal), min_contact_mm2=1) == 19
