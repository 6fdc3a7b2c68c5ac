"""Where generated data lives: a cache folder outside git, regenerated from seeds when missing.

The default is ``~/.cache/vertebra``; the environment variable ``VERTEBRA_CACHE`` moves it (for
example to a larger disk, or to an empty folder to time a run from scratch).
"""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CACHE = Path.home() / ".cache" / "vertebra"


def cache_dir(root: str | Path | None = None) -> Path:
    """The cache root: ``root`` if given, else ``$VERTEBRA_CACHE``, else ``~/.cache/vertebra``;
    created on first use."""
    if root is not None:
        path = Path(root)
    else:
        path = Path(os.environ["VERTEBRA_CACHE"]) if os.environ.get("VERTEBRA_CACHE") else DEFAULT_CACHE
    path.mkdir(parents=True, exist_ok=True)
    return path
