"""The one exception type for bad input, shared by ``trec_eval_compat`` and ``avs``."""

from __future__ import annotations

import os


class InputError(ValueError):
    """A user's input is wrong: a malformed file, a bad option, missing data.

    ``str()`` gives ``<path>[:<line>]: <problem>`` (just the problem when no file is involved), the form every
    command prints after ``error:``.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str, line: int | None = None):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        self.line = line
        where = self.path
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(problem if where is None else f"{where}: {problem}")
