"""Synthetic CT cohort with exact ground truth (see the project's PHANTOM spec).

`cohort(name, spacing_mm, n, seed)` writes (or reuses) VerSe-style case folders in the cache;
`generate_case(rng, ...)` returns one scan in memory; `sample_anatomy(rng)` draws an anatomy only.
"""
from .anatomy import ANOMALIES, Anatomy, AnatomyConfig, sample_anatomy
from .case import GENERATOR_VERSION, PhantomCase, generate_case

__all__ = ["ANOMALIES", "Anatomy", "AnatomyConfig", "sample_anatomy", "GENERATOR_VERSION", "PhantomCase",
           "generate_case", "cohort"]


def __getattr__(name):
    if name in ("cohort", "COHORTS"):
        from . import cohorts
        return getattr(cohorts, name)
    raise AttributeError(name)
