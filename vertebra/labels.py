"""Vertebra labels in VerSe numbering, and their order along the spine.

VerSe numbering: 1-7 C1-C7, 8-19 T1-T12, 20-24 L1-L5, 25 L6, 26 sacrum, 28 T13.
The craniocaudal *rank* of a label puts T13 between T12 and L1 and L6 between L5 and the sacrum,
so that ranks, unlike labels, increase monotonically down the spine.

>>> name(20), name(28), name(25)
('L1', 'T13', 'L6')
>>> rank(19) < rank(28) < rank(20)
True
"""
from __future__ import annotations

L1 = 20
T12 = 19
T13 = 28
L5 = 24
L6 = 25
SACRUM = 26

_NAMES = {**{i: f"C{i}" for i in range(1, 8)},
          **{i + 7: f"T{i}" for i in range(1, 13)},
          **{i + 19: f"L{i}" for i in range(1, 6)},
          L6: "L6", SACRUM: "S", T13: "T13"}

#: Labels from the top of the spine to the bottom, transitional extras included.
CRANIOCAUDAL = tuple(list(range(1, 20)) + [T13] + list(range(20, 25)) + [L6, SACRUM])

VALID_LABELS = frozenset(_NAMES)


def name(label: int) -> str:
    """The anatomical name of a VerSe label ('L1' for 20)."""
    try:
        return _NAMES[int(label)]
    except KeyError:
        raise ValueError(f"{label} is not a VerSe vertebra label (valid: {sorted(_NAMES)})") from None


def label(vertebra_name: str) -> int:
    """The VerSe label of an anatomical name ('L1' → 20)."""
    for lab, nm in _NAMES.items():
        if nm == vertebra_name.upper():
            return lab
    raise ValueError(f"unknown vertebra name {vertebra_name!r}")


def rank(label: int) -> int:
    """Position of a label along the spine, 0 for C1, increasing caudally."""
    try:
        return CRANIOCAUDAL.index(int(label))
    except ValueError:
        raise ValueError(f"{label} is not a VerSe vertebra label") from None

