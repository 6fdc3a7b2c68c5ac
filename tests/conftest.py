"""Test-suite settings: one torch thread (tiny models run faster without thread hand-offs, and
results do not depend on the machine's core count)."""
import torch

torch.set_num_threads(1)


import pytest


@pytest.fixture(autouse=True)
def _no_cache_override(monkeypatch):
    """Tests that move the cache do so by patching `vertebra.cache.DEFAULT_CACHE`; a VERTEBRA_CACHE set
    in the caller's environment must not send them elsewhere."""
    monkeypatch.delenv("VERTEBRA_CACHE", raising=False)
