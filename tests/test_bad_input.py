"""Every kind of bad input ends in one InputError naming the file and the problem; awkward but valid
inputs (oblique directions, float64 voxels) load."""
from __future__ import annotations

import logging

import pytest

from bad_inputs import build_corpus, load_entry, message_table
from vertebra.errors import InputError
from vertebra.io import ReadChecks, read_image


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("bad_inputs"))


def test_corpus_covers_at_least_fifteen_kinds(corpus):
    assert len({e.kind for e in corpus if e.expected is not None}) >= 15


def test_each_entry_fails_with_its_message_or_loads(corpus):
    for entry in corpus:
        if entry.expected is None:
            load_entry(entry)
            continue
        with pytest.raises(InputError) as info:
            load_entry(entry)
        assert entry.expected in info.value.problem, (entry.kind, info.value.problem)
        if entry.loader == "image":
            assert info.value.path == str(entry.path), entry.kind


def test_message_table_lists_every_kind(corpus, caplog):
    rows = message_table(corpus)
    assert [k for k, _ in rows] == [e.kind for e in corpus]
    with caplog.at_level(logging.INFO):
        for kind, message in rows:
            logging.getLogger("bad_inputs").info("%-45s %s", kind, message)


def test_memory_guard_is_configurable(corpus):
    good = next(e.path.parent / "good.nii.gz" for e in corpus)
    assert read_image(good).array.size == 12 * 20 * 20
    with pytest.raises(InputError, match="memory guard"):
        read_image(good, checks=ReadChecks(max_voxels=1000))


def test_two_series_can_be_chosen(corpus):
    two = next(e for e in corpus if e.kind == "folder with two DICOM series")
    vol = read_image(two.path, series_uid="1.2.826.0.1.3680043.2.1125.11")
    assert vol.array.shape == (12, 20, 20)
    with pytest.raises(InputError, match="no DICOM series"):
        read_image(two.path, series_uid="1.2.3")
