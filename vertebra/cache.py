"""Where generated data lives: a cache folder outside git, regenerated from seeds when missing."""
from __future__ import annotations

from pathlib import Path

DEFAULT_CACHE = Path.home() / ".cache" / "vertebra"


def cache_dir(root: str | Path | None = None) -> Path:
    """The cache root (default ``~/.cache/vertebra``); created on first use."""
    path = Path(root) if root is not None else DEFAULT_CACHE
    path.mkdir(parents=True, exist_ok=True)
    return path
