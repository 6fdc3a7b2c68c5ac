"""Errors a user can act on. Each names the file and the problem; the CLI turns them into exit code 2."""
from __future__ import annotations

from pathlib import Path

#: exit code for bad input (a crash exits 1)
EXIT_BAD_INPUT = 2


class InputError(ValueError):
    """Bad input: the message names the file (if any) and what is wrong with it."""

    def __init__(self, problem: str, path: str | Path | None = None):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
