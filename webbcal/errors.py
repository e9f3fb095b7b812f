"""The one exception type that reaches users.

Every failure caused by input (a file, a reference, a config value) is raised as
``WebbcalError(path, problem)``; the CLI prints it as a single line
``webbcal: error: <path>: <problem>`` and exits non-zero (traceback only with --debug).
"""

from __future__ import annotations

import os


class WebbcalError(Exception):
    """A user-facing error naming the file (or config key) and the problem."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = " ".join(str(problem).split())  # always one line
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}" if self.path else self.problem


class ReferenceNotFound(WebbcalError):
    """No reference file in the cache matches an exposure's selectors."""
