"""Writing result files: all or nothing, and never over an existing result unless asked."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from .errors import InputError


def check_writable(path: str | os.PathLike, force: bool = False) -> Path:
    """Refuse early (before any work) when ``path`` exists and ``force`` is off."""
    p = Path(path)
    if p.exists() and not force:
        raise InputError(p, "already exists (use --force to overwrite)")
    if p.exists() and p.is_dir():
        raise InputError(p, "is a directory")
    return p


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", force: bool = False,
                encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it onto ``path`` only if the block succeeds.

    A ``.gz`` suffix writes gzip. An interrupted or failed write leaves nothing at ``path``.
    """
    p = check_writable(path, force)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent)
    except OSError as e:
        raise InputError(p, f"cannot write here: {e.strerror or e}") from None
    binary = "b" in mode
    try:
        with os.fdopen(fd, "wb") as raw:
            stream = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if p.suffix == ".gz" else raw
            with contextlib.ExitStack() as stack:
                if stream is not raw:
                    stack.enter_context(stream)
                if binary:
                    yield stream
                else:
                    text = io.TextIOWrapper(stream, encoding=encoding, newline="")
                    yield text
                    text.flush()
                    text.detach()
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; results should be shareable like any file
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, data: bytes | str, force: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (see ``atomic_open``)."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w", force=force) as f:
        f.write(data)
    return Path(path)
