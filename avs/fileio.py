"""Writing result files: all or nothing, and never over an existing result unless asked."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import tempfile
from pathlib import Path
from typing import IO, Iterable, Iterator

from .errors import InputError


def check_writable(path: str | os.PathLike, force: bool = False,
                   inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """Refuse early (before any work) what a write to ``path`` would get wrong: an existing result without
    ``force``, anything but a regular file to replace (a device, a folder), one of the command's ``inputs``,
    a destination folder that cannot be made or written."""
    p = Path(path)
    if p.exists() or p.is_symlink():
        if not force:
            raise InputError(p, "already exists (use --force to overwrite)")
        _refuse_special(p)
        for other in inputs:
            if other is not None and Path(other).exists() and os.path.samefile(p, other):
                raise InputError(p, "is also an input of this command; write the output elsewhere")
    folder = p.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(p, f"cannot write here: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(p, f"cannot write here: {folder} is not writable")
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
        publish(tmp, p, force)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def publish(tmp: str | os.PathLike, path: Path, force: bool) -> None:
    """Move the finished ``tmp`` onto ``path`` in one step. Without ``force`` a hard link does it, which fails
    if ``path`` has appeared meanwhile (another writer won the race), where a rename would replace it."""
    if force:
        _refuse_special(path)  # again: it may have changed since check_writable
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise InputError(path, "was written by someone else meanwhile; nothing replaced (use --force to overwrite)") \
            from None
    except OSError:  # a file system without hard links: rename only where nothing is
        if path.exists():
            raise InputError(path, "was written by someone else meanwhile; nothing replaced") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _refuse_special(path: Path) -> None:
    if (path.exists() or path.is_symlink()) and not path.is_file():
        raise InputError(path, "is not a regular file; avs replaces only files")


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, data: bytes | str, force: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (see ``atomic_open``)."""
    return atomic_write_all({path: data}, force)[0]


def atomic_write_all(files: dict[str | os.PathLike, bytes | str], force: bool = False) -> list[Path]:
    """Write several files that form one result: every one to its temporary file first, published only when
    all are written, so a failure (a full disk) leaves none of them."""
    with contextlib.ExitStack() as stack:
        for path, data in files.items():
            stack.enter_context(atomic_open(path, "wb" if isinstance(data, bytes) else "w", force=force)).write(data)
    return [Path(p) for p in files]
