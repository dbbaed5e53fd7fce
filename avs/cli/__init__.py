"""The ``avs`` command line. Each command parses options, calls one library function, renders its result."""

from __future__ import annotations

# one module per command group; importing it registers its commands on ``cli``
from avs.cli import collection, demo, eval, extract, index, model, run, search, serve, topics, train  # noqa: F401
from avs.cli.group import cli, main

__all__ = ["cli", "main"]
