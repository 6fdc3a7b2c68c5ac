"""Data augmentation for training (paper §2.2 and §2.3): flips, rotations, B-spline deformations.

Each `Random...` class only *samples* parameters from an explicit `numpy.random.Generator` and returns
a deterministic twin that *applies* them, so every augmented sample can be replayed from its
parameters (`to_dict` / `from_dict`). `Compose` chains them and resamples once.

Direct U-Net (§2.2)::

    augment = Compose([RandomFlip(axes=("x", "y", "z")), RandomElasticDeformation(),
                       RandomRotation(max_degrees=20)])
    params = augment.sample(rng)
    image, labels = params.apply(image, labels)

Instance segmentation (§2.3): ``Compose([RandomFlip(axes=("x", "y")), RandomElasticDeformation(),
RandomRotation(max_degrees=20)])`` — no z flip, which would reverse the order of the vertebrae.
"""
from .compose import Compose, ComposedParams
from .elastic import ElasticDeformation, RandomElasticDeformation
from .flip import Flip, RandomFlip
from .rotation import RandomRotation, Rotation

__all__ = ["Compose", "ComposedParams", "ElasticDeformation", "Flip", "RandomElasticDeformation",
           "RandomFlip", "RandomRotation", "Rotation"]
