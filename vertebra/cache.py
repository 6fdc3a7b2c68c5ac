"""Where generated data lives: a cache folder outside git, regenerated from seeds when missing.

The default is ``~/.cache/vertebra``; the environment variable ``VERTEBRA_CACHE`` moves it (for
example to a larger disk, or to an empty folder to time a run from scratch).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
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


@contextmanager
def file_lock(path: str | Path):
    """Hold an exclusive lock on ``path`` (created if missing) for the ``with`` block, waiting for any
    other process that holds it: two runs started in parallel then build a shared cache entry once
    (the second finds it finished). POSIX ``flock``; where that is missing the block runs unlocked."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:          # not POSIX: no lock, the entry may be built twice (same result)
        yield path
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield path
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
