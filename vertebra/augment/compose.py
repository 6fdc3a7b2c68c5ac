"""Chaining augmentations: sample every transform's parameters, then apply them with one resampling.

`Compose([...]).sample(rng)` returns `ComposedParams`, the list of deterministic transforms drawn for
one training sample. Applying it flips arrays directly (no interpolation) and gathers each run of
consecutive spatial transforms (rotation, B-spline) into one `sitk.CompositeTransform`, so the image is
interpolated once per run rather than once per transform. With the usual order (flips first) that is
a single resampling. `to_dict` / `from_dict` replay a sample exactly.

>>> import numpy as np
>>> from vertebra.image import Volume
>>> from vertebra.augment import RandomFlip, RandomRotation
>>> augment = Compose([RandomFlip(axes=("x", "y")), RandomRotation(max_degrees=20)])
>>> params = augment.sample(np.random.default_rng(0))
>>> image, _ = params.apply(Volume(np.zeros((8, 8, 8), np.int16)))
>>> ComposedParams.from_dict(params.to_dict()) == params
True
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..image import Volume
from .elastic import ElasticDeformation
from .flip import Flip
from .resample import DEFAULT_FIELD_STEP_VOXELS, chain, displacement_field, resample_pair
from .rotation import Rotation

#: deterministic transform classes by the name their `to_dict` writes
TRANSFORMS = {cls.__name__: cls for cls in (Flip, Rotation, ElasticDeformation)}


@dataclass(frozen=True)
class ComposedParams:
    """The deterministic transforms drawn for one sample, applied in order."""

    transforms: tuple = ()

    def apply(self, image: Volume, labels: Volume | None = None, *, fill_value: float | None = None,
              field_step_voxels: int | None = DEFAULT_FIELD_STEP_VOXELS
              ) -> tuple[Volume, Volume | None]:
        """Transform an image (linear interpolation) and its labels (nearest neighbour).

        Shapes, dtypes and geometry are kept. `fill_value` fills the image where the transform
        reaches outside it (default: the image minimum, i.e. air for a CT); labels fill with 0.
        When a B-spline is in the chain, the chain is evaluated every `field_step_voxels` voxels and
        interpolated in between (`resample.displacement_field`); `None` evaluates it at every voxel.
        """
        if labels is not None and labels.array.shape != image.array.shape:
            raise ValueError(f"labels of shape {labels.array.shape} do not match the image's "
                             f"{image.array.shape}")
        pending = []  # spatial transforms waiting to be resampled together

        def flush(image, labels):
            if not pending:
                return image, labels
            transform = chain([t.sitk_transform(image) for t in pending])
            if field_step_voxels and any(isinstance(t, ElasticDeformation) for t in pending):
                transform = displacement_field(transform, image, field_step_voxels)
            pending.clear()
            return resample_pair(image, labels, transform, fill_value=fill_value)

        for transform in self.transforms:
            if transform.is_identity:
                continue
            if isinstance(transform, Flip):
                image, labels = transform.apply(*flush(image, labels))
            else:
                pending.append(transform)
        return flush(image, labels)

    def to_dict(self) -> dict:
        return {"transforms": [t.to_dict() for t in self.transforms]}

    @classmethod
    def from_dict(cls, d: dict) -> "ComposedParams":
        transforms = []
        for item in d["transforms"]:
            if item.get("name") not in TRANSFORMS:
                raise ValueError(f"unknown transform {item.get('name')!r} in augmentation parameters")
            transforms.append(TRANSFORMS[item["name"]].from_dict(item))
        return cls(transforms=tuple(transforms))

    def __eq__(self, other) -> bool:
        return isinstance(other, ComposedParams) and self.to_dict() == other.to_dict()

    __hash__ = None


class Compose:
    """Sample a chain of augmentations; each item is a `Random...` sampler or a fixed transform."""

    def __init__(self, transforms: Sequence):
        transforms = list(transforms)
        for t in transforms:
            if not (hasattr(t, "sample") or type(t).__name__ in TRANSFORMS):
                raise ValueError(f"Compose: {t!r} is neither a Random... sampler nor a transform")
        self.transforms = transforms

    def sample(self, rng: np.random.Generator) -> ComposedParams:
        """Draw the parameters of every transform, in order, from `rng`."""
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"Compose.sample needs a numpy.random.Generator, got {type(rng).__name__}")
        return ComposedParams(tuple(t.sample(rng) if hasattr(t, "sample") else t
                                    for t in self.transforms))

    def __call__(self, image: Volume, labels: Volume | None = None, *, rng: np.random.Generator,
                 fill_value: float | None = None) -> tuple[Volume, Volume | None]:
        """Sample and apply in one step (keep `sample(rng)`'s result when you need to replay)."""
        return self.sample(rng).apply(image, labels, fill_value=fill_value)

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"
