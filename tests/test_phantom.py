"""The synthetic cohort: anomaly frequencies, determinism, truth consistent with the images."""
import json

import numpy as np
import pytest

from vertebra import labels as L
from vertebra.io import read_verse_case
from vertebra.phantom import ANOMALIES, generate_case, sample_anatomy
from vertebra.phantom.anatomy import AnatomyConfig
from vertebra.phantom.cohorts import cohort, cohort_specs
from vertebra.phantom.sites import SITES, outside_training

SMOKE_MM = 4.0


@pytest.fixture(scope="module")
def anatomies():
    return [sample_anatomy(np.random.default_rng([7, i])) for i in range(2000)]


@pytest.mark.parametrize("name, incidence", [("lumbarization", 0.06), ("sacralization", 0.04), ("t13", 0.01),
                                             ("fracture", 0.05), ("metal", 0.03)])
def test_anomaly_incidence_within_two_points(anatomies, name, incidence):
    share = np.mean([name in a.anomalies for a in anatomies])
    assert abs(share - incidence) < 0.02, f"{name}: {share:.3f} vs {incidence}"


def test_short_or_absent_twelfth_rib_incidence(anatomies):
    share = np.mean([("rudimentary_12th_rib" in a.anomalies) or ("absent_12th_rib" in a.anomalies)
                     for a in anatomies])
    assert abs(share - AnatomyConfig().short_12th_rib) < 0.02


def test_low_density_depends_on_age(anatomies):
    old = [a for a in anatomies if a.age_years > 70]
    young = [a for a in anatomies if a.age_years < 45]
    assert np.mean(["low_density" in a.anomalies for a in old]) > np.mean(["low_density" in a.anomalies for a in young])
    low = [a for a in anatomies if "low_density" in a.anomalies]
    assert low and all(np.median(list(a.trabecular_hu.values())) < 110 for a in low)


@pytest.mark.parametrize("anomaly, labels_in, rule", [
    ("t13", {L.T13}, L.T13), ("lumbarization", {L.L6}, L.L1), ("rudimentary_12th_rib", set(), L.T12),
    ("absent_12th_rib", set(), L.T12), ("sacralization", set(), L.L1)])
def test_forced_anomalies_and_rib_rule(anomaly, labels_in, rule):
    a = sample_anatomy(np.random.default_rng(3), force=(anomaly,))
    assert a.anomalies == (anomaly,)
    assert labels_in <= set(a.labels)
    assert a.rib_rule_l1_label == rule
    assert a.labels[a.labels.index(L.L1) - 1] == (L.T13 if anomaly == "t13" else L.T12)


def test_normal_anatomy_rib_rule_finds_l1():
    a = sample_anatomy(np.random.default_rng(1), force=())
    assert a.anomalies == () and a.rib_rule_l1_label == L.L1 and a.labels[-1] == L.L5


def test_unknown_anomaly_is_rejected():
    with pytest.raises(ValueError, match="unknown anomalies"):
        sample_anatomy(np.random.default_rng(0), force=("scoliosis",))


@pytest.fixture(scope="module")
def ctc_case():
    return generate_case(np.random.default_rng([0, 0, 5]), protocol="ctc", spacing_mm=SMOKE_MM)


def test_generation_is_deterministic(ctc_case):
    again = generate_case(np.random.default_rng([0, 0, 5]), protocol="ctc", spacing_mm=SMOKE_MM)
    np.testing.assert_array_equal(ctc_case.image.array, again.image.array)
    np.testing.assert_array_equal(ctc_case.vertebrae.array, again.vertebrae.array)
    np.testing.assert_array_equal(ctc_case.ribs.array, again.ribs.array)
    assert ctc_case.meta == again.meta


def test_ct_is_int16_hu_with_air_fat_and_bone(ctc_case):
    ct = ctc_case.image.array
    assert ct.dtype == np.int16
    assert ct.min() >= -1024 and ct.max() <= 3071
    assert (ct < -900).mean() > 0.1 and ((ct > -130) & (ct < -70)).mean() > 0.02 and (ct > 300).sum() > 100


def test_labels_agree_with_meta(ctc_case):
    meta, vert = ctc_case.meta, ctc_case.vertebrae
    present = sorted(set(np.unique(vert.array)) - {0}, key=L.rank)
    assert meta["labels_present"] == present
    assert L.L1 in present and L.SACRUM in present and 8 not in present   # CTC never shows T1
    ks = np.flatnonzero((vert.array == L.L1).any(axis=(1, 2)))
    z = vert.index_to_world([[k, 0, 0] for k in (ks.min(), ks.max())])[:, 2]
    dz = vert.spacing_zyx[0]
    np.testing.assert_allclose(meta["l1_z_range_mm"], [z.min() - dz / 2, z.max() + dz / 2], atol=1e-2)
    lo, hi = meta["l1_z_range_mm"]
    assert lo <= meta["l1_centroid_mm"][2] <= hi
    rib_values = set(int(v) for v in np.unique(ctc_case.ribs.array)) - {0}
    assert rib_values <= set(range(1, 14)) | set(range(101, 114))
    assert set(meta["rib_vertebra"]) == {v % 100 for v in rib_values}
    assert all(meta["rib_vertebra"][k] == (7 + k if k <= 12 else L.T13) for k in meta["rib_vertebra"])


def test_prone_scan_has_spine_at_top_and_world_stays_patient_based():
    prone = generate_case(np.random.default_rng([0, 0, 5]), protocol="ctc", spacing_mm=SMOKE_MM, position="prone")
    supine = generate_case(np.random.default_rng([0, 0, 5]), protocol="ctc", spacing_mm=SMOKE_MM, position="supine")
    assert prone.image.geometry.direction[:5:4] == (-1.0, -1.0)
    for case, top in ((prone, True), (supine, False)):
        j = case.image.world_to_index([case.centroids_mm[L.L1]])[0][1]
        assert (j < case.image.array.shape[1] / 2) == top
    # L1 sits at the same anatomical place in both: posterior (+y in LPS) of the body centre
    assert abs(prone.centroids_mm[L.L1][0] - supine.centroids_mm[L.L1][0]) < 30


@pytest.mark.parametrize("anomaly, protocol, label", [("lumbarization", "ctc", L.L6), ("t13", "cap", L.T13)])
def test_transitional_labels_are_rendered(anomaly, protocol, label):
    case = generate_case(np.random.default_rng([1, 2, 3]), protocol=protocol,
                         site="cap_train" if protocol == "cap" else "ctc_train", spacing_mm=SMOKE_MM,
                         anomalies=(anomaly,))
    assert label in np.unique(case.vertebrae.array)
    assert case.meta["anomalies"] == [anomaly]


def test_tagged_fluid_pools_on_the_dependent_side():
    for position in ("supine", "prone"):
        case = generate_case(np.random.default_rng([0, 0, 2]), protocol="ctc", site="ctc_test",
                             spacing_mm=SMOKE_MM, position=position)
        assert ((case.image.array > 400) & (case.vertebrae.array == 0) & (case.ribs.array == 0)).sum() > 50


def test_test_site_lies_outside_training_ranges():
    assert len(outside_training(SITES["ctc_test"])) >= 2


def test_cohort_specs_follow_the_paper():
    hand = cohort_specs("hand")
    assert len(hand) == 52 and sum(s.protocol == "cap" for s in hand) == 37
    pseudo = cohort_specs("pseudo")
    assert len(pseudo) == 257 and sum(s.protocol == "ctc" for s in pseudo) == 225
    inst = cohort_specs("instance")
    assert len(inst) == 62 and sum(s.lumbar_only for s in inst) == 10
    assert {s.site for s in cohort_specs("ctc_test")} == {"ctc_test"}
    strata = cohort_specs("anomaly_test", n=2)
    assert len(strata) == 2 * (len(ANOMALIES) + 1)
    assert {p.protocol for p in cohort_specs("hand", 4)} == {"cap", "ctc"}


def test_cohort_files_are_byte_identical_and_reused(tmp_path):
    a = cohort("ctc_test", spacing_mm=6.0, n=1, seed=3, out=tmp_path / "a", progress=False)
    b = cohort("ctc_test", spacing_mm=6.0, n=1, seed=3, out=tmp_path / "b", progress=False)
    for fa in sorted(a[0].iterdir()):
        assert fa.read_bytes() == (b[0] / fa.name).read_bytes(), fa.name
    stamp = (a[0] / f"{a[0].name}_ct.nii.gz").stat().st_mtime_ns
    again = cohort("ctc_test", spacing_mm=6.0, n=1, seed=3, out=tmp_path / "a", progress=False)
    assert again == a and (a[0] / f"{a[0].name}_ct.nii.gz").stat().st_mtime_ns == stamp
    case = read_verse_case(a[0])
    assert case.meta["l1_label"] == 20 and case.vertebrae is not None and case.ribs is not None
    assert set(case.centroids_mm) == set(case.meta["labels_present"])
    meta = json.loads((a[0] / f"{a[0].name}_meta.json").read_text(encoding="utf-8"))
    assert meta["site"]["name"] == "ctc_test" and meta["generator_version"]


def test_case_independent_of_cohort_size(tmp_path):
    one = cohort("hand", spacing_mm=6.0, n=1, seed=0, out=tmp_path / "one", progress=False)
    two = cohort("hand", spacing_mm=6.0, n=2, seed=0, out=tmp_path / "two", progress=False)
    ct = f"{one[0].name}_ct.nii.gz"
    assert (one[0] / ct).read_bytes() == (two[0] / ct).read_bytes()


def test_smoke_scale_generation_is_fast():
    import time
    start = time.process_time()
    case = generate_case(np.random.default_rng([0, 0, 9]), protocol="cap", site="cap_train", spacing_mm=SMOKE_MM)
    assert time.process_time() - start < 10.0
    assert case.image.array.shape[0] > 50
