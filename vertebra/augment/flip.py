"""Random flips along the image axes (paper §2.2: "independent random flips along the x, y, and z
directions"; §2.3 flips x and y only, since a z flip would reverse the order of the vertebrae).

A flip reverses the array along one index axis and keeps the geometry, so the result is a mirrored
patient in the same grid; labels are flipped with the image. Axis names are those of the index axes
in ITK order: "x" is the last numpy axis, "z" the first (arrays are (z, y, x)).

>>> import numpy as np
>>> from vertebra.image import Volume
>>> vol = Volume(np.arange(8, dtype=np.int16).reshape(2, 2, 2))
>>> Flip(axes=("x",)).apply(vol)[0].array[0]
array([[1, 0],
       [3, 2]], dtype=int16)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..image import Volume

#: axis name → numpy axis of a (z, y, x) array
NUMPY_AXIS = {"x": 2, "y": 1, "z": 0}


def _check_axes(axes, what: str) -> tuple[str, ...]:
    if isinstance(axes, str):
        axes = (axes,)
    axes = tuple(axes)
    bad = [a for a in axes if a not in NUMPY_AXIS]
    if bad:
        raise ValueError(f"{what}: unknown axis {bad[0]!r}; use 'x', 'y' or 'z'")
    if len(set(axes)) != len(axes):
        raise ValueError(f"{what}: repeated axis in {axes}")
    return axes


@dataclass(frozen=True)
class Flip:
    """Reverse the array along each of `axes` ("x", "y", "z"), keeping the geometry."""

    axes: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "axes", _check_axes(self.axes, "Flip"))

    @property
    def is_identity(self) -> bool:
        return not self.axes

    def flip_array(self, array: np.ndarray) -> np.ndarray:
        if not self.axes:
            return array
        return np.ascontiguousarray(np.flip(array, axis=tuple(NUMPY_AXIS[a] for a in self.axes)))

    def apply(self, image: Volume, labels: Volume | None = None) -> tuple[Volume, Volume | None]:
        """Flip the image and (if given) its labels; shapes and geometry are unchanged."""
        out_labels = None if labels is None else labels.with_array(self.flip_array(labels.array))
        return image.with_array(self.flip_array(image.array)), out_labels

    def to_dict(self) -> dict:
        return {"name": "Flip", "axes": list(self.axes)}

    @classmethod
    def from_dict(cls, d: dict) -> "Flip":
        return cls(axes=tuple(d["axes"]))


class RandomFlip:
    """Sample a `Flip`: each of `axes` is flipped independently with `flip_probability`.

    >>> import numpy as np
    >>> RandomFlip(axes=("x", "y")).sample(np.random.default_rng(0)).axes
    ('y',)
    """

    def __init__(self, *, axes=("x", "y", "z"), flip_probability: float = 0.5):
        self.axes = _check_axes(axes, "RandomFlip")
        if not 0.0 <= float(flip_probability) <= 1.0:
            raise ValueError(f"RandomFlip: flip_probability must lie in [0, 1], got {flip_probability}")
        self.flip_probability = float(flip_probability)

    def sample(self, rng: np.random.Generator) -> Flip:
        draws = rng.random(len(self.axes))
        return Flip(axes=tuple(a for a, u in zip(self.axes, draws) if u < self.flip_probability))

    def __repr__(self) -> str:
        return f"RandomFlip(axes={self.axes}, flip_probability={self.flip_probability})"
