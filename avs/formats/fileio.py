"""Writing result files: all or nothing, and never over an existing result unless asked."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import logging
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import IO, Iterable, Iterator

from avs.errors import InputError, first_line


def check_writable(
    path: str | os.PathLike, force: bool = False, inputs: Iterable[str | os.PathLike | None] = ()
) -> Path:
    """Refuse early (before any work) what a write to ``path`` would get wrong: an existing result without
    ``force``, anything but a regular file to replace (a device, a folder), one of the command's ``inputs`` or a
    file inside an input folder (a model directory, a folder of videos), a destination folder that cannot be made
    or written."""
    p = Path(path)
    if p.exists() or p.is_symlink():
        if not force:
            raise InputError(p, "already exists (use --force to overwrite)")
        _refuse_special(p)
        for other in inputs:
            if other is None or not Path(other).exists():
                continue
            if os.path.samefile(p, other):
                raise InputError(p, "is also an input of this command; write the output elsewhere")
            if Path(other).is_dir() and Path(other).resolve() in p.resolve().parents:
                raise InputError(p, f"is inside {other}, an input of this command; write the output elsewhere")
    folder = p.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(p, f"cannot write here: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(p, f"cannot write here: {folder} is not writable")
    return p


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike, mode: str = "w", force: bool = False, encoding: str | None = "utf-8"
) -> Iterator[IO]:
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
            raw.flush()
            os.fsync(raw.fileno())  # the rename must not reach the disk before the data does
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; results should be shareable like any file
        publish(tmp, p, force)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """A temporary folder beside ``path`` to fill; it replaces ``path`` (only with ``force`` if ``path`` exists)
    when the block succeeds, and is removed when it fails. For results that are folders (a model, the demo)."""
    out = Path(path)
    if out.exists() and not force:
        raise InputError(out, "already exists (use --force to overwrite)")
    if out.exists() and not out.is_dir():
        raise InputError(out, "is not a folder; avs replaces only folders it would write")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    except OSError as e:
        raise InputError(out, f"cannot write here: {os_problem(e)}") from None
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; results are shared like any folder
        yield tmp
        _fsync_tree(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            fsync_file(os.path.join(folder, name))


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, read in 1 MiB pieces (checkpoints run to gigabytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a closed file's data to the disk, so that a rename published after it never shows an empty or
    partial file after a power cut (for writers that own their file, such as HDF5's)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
        raise InputError(
            path, "was written by someone else meanwhile; nothing replaced (use --force to overwrite)"
        ) from None
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


try:
    import fcntl
except ImportError:  # not POSIX: no locking
    fcntl = None


log = logging.getLogger(__name__)


def io_failure(e: BaseException) -> str | None:
    """One line for a failed read or write (an OSError, or the RuntimeError h5py raises when a flush fails, the
    errno inside its message); None for any other exception."""
    if isinstance(e, OSError):
        return os_problem(e)
    if isinstance(e, RuntimeError) and re.search(r"errno = \d+|write failed|read failed", str(e)):
        return os_problem(OSError(str(e)))
    return None


@contextlib.contextmanager
def quiet_release() -> Iterator[None]:
    """Close (and drop the last reference to) an HDF5 file whose writes failed inside this block: HDF5 retries
    the failed flush when the file object is freed, and h5py would print that error as an ignored exception."""
    hook, stderr = sys.unraisablehook, sys.stderr
    sys.unraisablehook = lambda unraisable: None
    sys.stderr = io.StringIO()  # Cython prints the traceback itself before calling the hook
    try:
        yield
    finally:
        sys.unraisablehook, sys.stderr = hook, stderr


def os_problem(e: OSError) -> str:
    """One line for an OS error, h5py's included (they carry the errno only inside their message)."""
    if e.errno:
        return os.strerror(e.errno)
    m = re.search(r"errno = (\d+)", str(e))
    if m and int(m.group(1)):
        return os.strerror(int(m.group(1)))
    return first_line(e)


class DestinationLock:
    """The exclusive right to write ``path``: an ``flock`` on ``.NAME.lock`` beside it, taken without waiting.

    Two writers of one output (they share its ``.NAME.part`` name, so that an interrupted write can resume)
    would damage each other's file; the second one is refused instead. The lock dies with its process, so a
    killed writer never blocks the next one; :meth:`release` removes the lock file.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.lock_path = self.path.parent / f".{self.path.name}.lock"
        self._fd: int | None = None

    def acquire(self) -> "DestinationLock":
        if fcntl is None or self._fd is not None:
            return self
        while True:
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as e:
                raise InputError(self.path, f"cannot write here: {os_problem(e)}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise InputError(
                    self.path,
                    f"another avs is writing {self.path} (it holds {self.lock_path.name}); wait for it to finish",
                ) from None
            except OSError as e:  # a file system without locks: write unguarded rather than not at all
                log.warning("cannot lock %s (%s): not guarded against a second writer", self.lock_path, os_problem(e))
                os.close(fd)
                return self
            # the previous holder may have removed the file between our open and our lock: hold the one at the path
            try:
                st, mine = os.stat(self.lock_path), os.fstat(fd)
                same = (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                return self
            os.close(fd)

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.lock_path)  # while still holding it (see acquire)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "DestinationLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
