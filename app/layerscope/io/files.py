"""Paths users type, checked before anything opens them, and outputs written safely.

Every file layerscope reads goes through ``regular_file`` first: a FIFO, ``/dev/zero``
or a socket would block a reader forever or feed it without end, so only regular
files are opened (``stat`` before ``open``). Every file it writes goes through
``atomic_write``: a temporary file in the same folder renamed into place, so a failed
write never leaves half a file, and ``output_path`` refuses an output path that is
one of the command's inputs. No output lands inside layerscope's own package or the
package a model's code came from (``check_writable``): a PNG written over ``entry.py``
would break every later command.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

from layerscope.errors import BadArgumentError, BadFileError, LayerscopeError, NotFoundError, with_article

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
PACKAGE = Path(__file__).resolve().parent.parent  # layerscope's own files: never an output
_UMASK = os.umask(0o022)  # read once, at import, before any thread could race it
os.umask(_UMASK)


def expand(text: str | Path, what: str = "file") -> Path:
    """``~`` and ``~user`` expanded; an empty name or an unknown user is a one-line error."""
    raw = str(text)
    if not raw.strip():
        raise BadArgumentError(f"empty {what} name")
    try:
        return Path(raw).expanduser()
    except RuntimeError as exc:  # ~nosuchuser
        raise NotFoundError(f"cannot expand {raw!r}: no such user's home folder") from exc


def status(path: Path) -> os.stat_result | None:
    """``os.stat`` that says "not there" as ``None`` and every other failure in one line."""
    try:
        return path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise BadFileError(f"cannot open {_short(path)}: {_reason(exc)}") from exc


def exists(path: Path) -> bool:
    """``Path.exists`` that never raises on over-long names or unreadable folders."""
    try:
        return path.exists()
    except OSError:
        return False


def regular_file(path: Path, what: str = "file") -> Path:
    """``path`` if it is a regular file this process can read; a one-line error otherwise."""
    info = status(path)
    if info is None:
        raise NotFoundError(f"no such {what}: {_short(path)}")
    if stat.S_ISDIR(info.st_mode):
        raise BadFileError(f"{_short(path)} is a folder, not {with_article(what)}")
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
        raise BadFileError(f"{_short(path)} is {kind}, not {with_article(what)}; layerscope reads regular files only")
    if info.st_size == 0:  # also what /proc and /sys pseudo-files report, whose reads may never end
        raise BadFileError(f"{_short(path)} is empty (0 bytes), not {with_article(what)}")
    try:
        with open(path, "rb", opener=_nonblocking) as handle:  # proves read permission; never blocks
            handle.read(1)
    except OSError as exc:
        raise BadFileError(f"cannot read {_short(path)}: {_reason(exc)}") from exc
    return path


def read_regular(path: Path, limit: int, what: str = "file") -> bytes | None:
    """The bytes of ``path``, or None when it is missing; a one-line error when it is a link,
    a folder, a FIFO or a device, or holds over ``limit`` bytes. For files layerscope wrote
    itself (a report's records): they are opened without following links or blocking, and
    read from the descriptor that was checked, so nothing can be swapped in between."""
    try:
        _refuse_odd(path, os.lstat(path), what, limit)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise LayerscopeError(f"cannot read {_short(path)}: {_reason(exc)}") from exc
    try:
        _refuse_odd(path, os.fstat(fd), what, limit)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(limit + 1)[:limit]
    except OSError as exc:
        raise LayerscopeError(f"cannot read {_short(path)}: {_reason(exc)}") from exc
    finally:
        os.close(fd)


def _refuse_odd(path: Path, info: os.stat_result, what: str, limit: int) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise LayerscopeError(f"{_short(path)} is a symbolic link, not {with_article(what)} layerscope wrote")
    if not stat.S_ISREG(info.st_mode):
        kind = (
            "a folder"
            if stat.S_ISDIR(info.st_mode)
            else next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
        )
        raise LayerscopeError(f"{_short(path)} is {kind}, not {with_article(what)}")
    if info.st_size > limit:
        raise LayerscopeError(
            f"{_short(path)} holds {info.st_size:,} bytes, over the {limit:,} {with_article(what)} may hold"
        )


def output_path(text: str, inputs: Iterable[Path], flag: str) -> Path:
    """The path an option such as ``--out`` names, refused when it is empty, a folder, a
    device (``--npy /dev/null``) or one of the command's inputs (``--out`` = ``--image``)."""
    if not str(text).strip():
        raise LayerscopeError(f"{flag} needs a file name")
    path = expand(text, "output")
    info = status(path)
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise LayerscopeError(f"{flag} {_short(path)} is a folder; give a file name")
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise LayerscopeError(f"{flag} {_short(path)} is not a regular file; layerscope writes regular files only")
    check_writable(path, inputs, flag)
    return path


def check_writable(path: Path, inputs: Iterable[Path], flag: str) -> None:
    """The one refusal list for outputs (a file or a report folder): not one of ``inputs``, and
    not inside layerscope's package or the package of a model's source file, however spelled
    (a symlink, ``..``, a hard link to a file there)."""
    inputs = list(inputs)
    for source in inputs:
        if same_file(path, source):
            raise LayerscopeError(f"{flag} {_short(path)} is also an input ({_short(source)}); it would be overwritten")
    for folder, what in _protected(inputs):
        if _inside(path, folder):
            raise LayerscopeError(
                f"{flag} {_short(path)} is inside {what} ({_short(folder)}); "
                "layerscope never writes there: give a path outside it"
            )


def _protected(inputs: Iterable[Path]) -> list[tuple[Path, str]]:
    """Folders no output may enter: layerscope's package, and the outermost package above any
    Python file a model was built from (a factory's module). A top-level module's folder is
    not protected: it is often the folder the user works in."""
    found = [(PACKAGE, "layerscope's own package")]
    for source in inputs:
        root = _package_root(source) if source.suffix == ".py" else None
        if root is not None:
            found.append((root, "the package the model's code was read from"))
    return found


def _package_root(source: Path) -> Path | None:
    try:
        folder, root = source.resolve().parent, None
        while exists(folder / "__init__.py") and folder != folder.parent:
            root, folder = folder, folder.parent
    except (OSError, RuntimeError):
        return None
    return root


def _inside(path: Path, folder: Path) -> bool:
    """``path`` (existing or not) resolves into ``folder``, or is a hard link to a file there."""
    try:
        target = path.resolve()
    except (OSError, RuntimeError):
        return False
    if target == folder or folder in target.parents:
        return True
    info = status(path)
    return info is not None and stat.S_ISREG(info.st_mode) and info.st_nlink > 1 and _holds_inode(folder, info)


def _holds_inode(folder: Path, info: os.stat_result) -> bool:
    """A hard link's other name under ``folder`` (directory entries carry their inode: no stat each)."""
    if (status(folder) or info).st_dev != info.st_dev:
        return False
    pending = [folder]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(Path(entry.path))
                    elif entry.inode() == info.st_ino and entry.is_file(follow_symlinks=False):
                        return True
        except OSError:
            continue
    return False


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write through ``write(handle)`` to a temporary file beside ``path``, then rename it
    into place: readers see the old file or the whole new one, never half of it."""
    info = status(path)
    if info is not None and not stat.S_ISREG(info.st_mode):  # renaming onto /dev/null would replace it
        raise LayerscopeError(f"cannot write {_short(path)}: not a regular file")
    check_writable(path, (), "cannot write")  # the last guard: every writer (the app's too) comes here
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise LayerscopeError(f"cannot write {_short(path)}: {_reason(exc)}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(temp, 0o666 & ~_UMASK)
        os.replace(temp, path)
    except BaseException as exc:
        Path(temp).unlink(missing_ok=True)
        if isinstance(exc, (OSError, ValueError)):
            raise LayerscopeError(f"cannot write {_short(path)}: {_reason(exc)}") from exc
        raise
    return path


def same_file(a: Path, b: Path) -> bool:
    """The same name after resolving links and ``..``, or the same inode (hard links)."""
    try:
        return a.resolve() == b.resolve() or (exists(a) and exists(b) and os.path.samefile(a, b))
    except (OSError, RuntimeError):
        return False


def _nonblocking(name: str, flags: int) -> int:
    return os.open(name, flags | os.O_NONBLOCK)


def _reason(exc: BaseException) -> str:
    """``File name too long`` rather than ``[Errno 36] File name too long: '/very/long…'``."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno) if exc.errno != errno.ENOENT else "no such file or folder"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _short(path: Path, limit: int = 120) -> str:
    """A path short enough for one line (over-long names are cut in the middle)."""
    text = str(path)
    return text if len(text) <= limit else f"{text[:60]}…{text[-40:]}"
