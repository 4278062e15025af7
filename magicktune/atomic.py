"""Atomic output: write beside the target under a hidden name and rename it into place only at the end, so a
failed or interrupted write never leaves a partial file. Every file magicktune writes goes through here.

A target is judged as `open(path, O_WRONLY)` would judge it: the kernel decides whether a symlink may be followed
(fs.protected_symlinks) and whether the file may be written (a 0444 file is refused unless we are root), before
any work is done. Only a regular file is replaced by a rename; a device, FIFO or socket (`/dev/null`, a named
pipe, `/dev/stdout`) is written straight into, as a shell redirect would.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import BinaryIO, Union

from . import signals

PathLike = Union[str, "os.PathLike[str]"]

#: A partial file of ours whose writer is gone is removed once it is this old (seconds since it last changed):
#: the writer's process id is in its name, and a writer in another PID namespace, or a convert still reading its
#: frames before it writes a byte, may look gone while it is not.
STALE_AFTER = 3600

#: Paths that name one of this process's file descriptors, which a rename would detach from the descriptor.
_DESCRIPTOR = re.compile(r"^/(?:proc/(?:self|thread-self|\d+)(?:/task/\d+)?/fd/\d+|dev/fd/\d+|dev/std(?:out|err))$")
_MAX_HOPS = 40  # the kernel's limit on symlinks followed in one lookup


def _names_a_descriptor(path: str) -> bool:
    for _ in range(_MAX_HOPS):
        if _DESCRIPTOR.match(path):
            return True
        if not os.path.islink(path):
            return False
        path = os.path.normpath(os.path.join(os.path.dirname(path), os.readlink(path)))
    return False


def _judge(given: str, absolute: str) -> int | None:
    """Open `absolute` for writing as a program would (O_WRONLY, no O_TRUNC, so nothing changes) and return the
    descriptor; None for a FIFO no one reads yet. The kernel refuses what it would refuse any writer."""
    try:
        return os.open(absolute, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    except OSError as error:
        if error.errno == errno.ENXIO:  # a FIFO with no reader: opened for writing once one comes
            return None
        reason = os.strerror(error.errno) if error.errno else str(error)
        link = f" (a symlink to {os.readlink(absolute)})" if os.path.islink(absolute) else ""
        raise type(error)(
            error.errno, f"cannot write {given}{link}: {reason}, as for any program opening it: write elsewhere"
        ) from None


def _resolve(given: str) -> tuple[str, int | None, bool]:
    """(the file to write, a descriptor open on it if it is written straight into, whether it is)."""
    absolute = os.path.abspath(given)
    if os.path.isdir(absolute):
        raise IsADirectoryError(f"{given} is a directory: name the GIF to write")
    if os.path.lexists(absolute):
        try:
            os.stat(absolute)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"cannot write {given}: it is a symlink to {os.readlink(absolute)}, which does not exist: name the "
                f"file itself"
            ) from None
        except OSError:
            pass  # a link the kernel will not follow: the open below says so
        fd = _judge(given, absolute)
        if fd is None:
            return absolute, None, True
        opened = os.fstat(fd)
        if _names_a_descriptor(absolute) or not stat.S_ISREG(opened.st_mode):
            # Kept open: closing it would give a FIFO's reader its end of file before a byte is written.
            os.set_blocking(fd, True)
            return absolute, fd, True
        os.close(fd)
        target = os.path.realpath(absolute)
        now = os.stat(target)
        if (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino):
            raise FileExistsError(f"cannot write {given}: it changed while it was checked; try again")
    else:
        target = absolute
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {given}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {given}: directory {directory} is not writable")
    return target, None, False


def resolve_target(path: PathLike) -> tuple[str, bool]:
    """(the file to write, whether it is written straight into) for `path`, checked before any work is done.

    A regular file (through symlinks the kernel lets us follow) is replaced by a rename at the end; anything else
    that exists is written into. A symlink to nothing is refused rather than followed to create its target.
    """
    target, fd, direct = _resolve(os.fspath(path))
    if fd is not None:
        os.close(fd)
    return target, direct


def writable_target(path: PathLike) -> str:
    """The file to write for `path` (see resolve_target), checked before any work is done."""
    return resolve_target(path)[0]


def _partial_name(stem: str, suffix: str) -> str:
    return f".{stem}.{secrets.token_hex(4)}-{os.getpid()}.partial{suffix}"


def _stale_pattern(stem: str, suffix: str) -> re.Pattern[str]:
    return re.compile(rf"^\.{re.escape(stem)}\.[0-9a-f]{{8}}-(\d+)\.partial{re.escape(suffix)}$")


def partial_path(path: PathLike, name: PathLike | None = None) -> str:
    """A hidden, unique name beside `path` for the file being written; it keeps the suffix of `name` (default
    `path`), which tools such as convert read the format from, and carries our process id for stale_partials."""
    directory = os.path.dirname(os.path.abspath(os.fspath(path)))
    stem, suffix = os.path.splitext(os.path.basename(os.fspath(name if name is not None else path)))
    return os.path.join(directory, _partial_name(stem, suffix))


def process_gone(pid: int) -> bool:
    """Whether no process has this id (one of another user's counts as there)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def remove_stale_partials(path: PathLike, name: PathLike | None = None, older_than: float = STALE_AFTER) -> list[str]:
    """Remove partial files that an earlier magicktune left beside `path` when it was killed: only files of our
    naming for this target, owned by us, unchanged for `older_than` seconds, whose writer's process is gone."""
    directory = os.path.dirname(os.path.abspath(os.fspath(path)))
    stem, suffix = os.path.splitext(os.path.basename(os.fspath(name if name is not None else path)))
    pattern = _stale_pattern(stem, suffix)
    removed: list[str] = []
    for candidate in stale_entries(directory, pattern, stat.S_ISREG, older_than):
        try:
            os.unlink(candidate)
        except OSError:
            continue
        removed.append(candidate)
    return removed


def stale_entries(
    directory: str, pattern: re.Pattern[str], is_kind: Callable[[int], bool], older_than: float
) -> Iterator[str]:
    """Entries of `directory` a killed magicktune left: named by `pattern` (group 1 the writer's pid, not ours), of
    the kind `is_kind` tells from st_mode, owned by us, unchanged for `older_than` seconds, the writer's process gone."""
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        found = pattern.match(entry)
        if not found or int(found.group(1)) == os.getpid():
            continue
        candidate = os.path.join(directory, entry)
        try:
            info = os.lstat(candidate)
        except OSError:
            continue
        if (
            is_kind(info.st_mode)
            and info.st_uid == os.geteuid()
            and time.time() - info.st_mtime > older_than
            and process_gone(int(found.group(1)))
        ):
            yield candidate


class AtomicOutput:
    """One file written at `.partial` (beside `.target`) and renamed onto the target by commit().

    Write it through open(), or let another program write the `.partial` path. commit() gives the file `mode` if
    set, else the mode of the file it replaces (a new file keeps what it was created with), and renames it into
    place; discard() removes it. Both are idempotent and discard() after commit() does nothing. As a context
    manager it commits on a clean exit and discards on an exception. Nothing is created before open().

    A target that is not a regular file (`.direct`) is written straight into: open() opens the target itself,
    and a `.partial` another program wrote (in the temp dir then) is copied into it by commit(). `name` gives
    the partial its name and suffix (default the target's: the tuned writer passes the name the user gave, so
    `link.gif -> target.dat` still makes convert write GIF).
    """

    def __init__(self, path: PathLike, mode: int | None = None, name: PathLike | None = None) -> None:
        self.target, self._direct_fd, self.direct = _resolve(os.fspath(path))
        naming = name if name is not None else (path if self.direct else self.target)
        if self.direct:
            self.partial = os.path.join(tempfile.gettempdir(), os.path.basename(partial_path(self.target, naming)))
        else:
            remove_stale_partials(self.target, naming)
            self.partial = partial_path(self.target, naming)
        self.mode = mode
        self.committed = False
        self.discarded = False
        self._file: BinaryIO | None = None

    def __enter__(self) -> AtomicOutput:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()

    def open(self) -> BinaryIO:
        """Create the partial file (never over an existing one; for a direct target, open the target) and return it
        for binary writing; leave it open for commit() to flush, fsync and close."""
        if self.committed or self.discarded or self._file is not None:
            raise ValueError(f"{self.partial} was already opened")
        if self.direct:
            self._file = self._open_direct()
            return self._file
        # Created with `mode` if given, so a private file is never readable by others, not even while written.
        try:
            fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if self.mode is None else self.mode)
        except BaseException:
            self.discarded = True  # nothing of ours to remove: a file already there is another writer's
            raise
        self._file = os.fdopen(fd, "wb")
        return self._file

    def commit(self) -> str:
        """Flush and fsync what open() returned, set the mode, rename the partial file onto the target, return the
        target. On failure the partial file is removed and the error raised."""
        if self.committed:
            return self.target
        if self.discarded:
            raise ValueError(f"{self.partial} was discarded; there is nothing to commit")
        try:
            if self.direct:
                self._commit_direct()
            else:
                if self._file is not None and not self._file.closed:
                    self._file.flush()
                    os.fsync(self._file.fileno())
                    self._file.close()
                if self.mode is not None:
                    os.chmod(self.partial, self.mode)
                elif os.path.exists(self.target):
                    shutil.copymode(self.target, self.partial)
                os.replace(self.partial, self.target)
        except BaseException:
            self.discard()
            raise
        self.committed = True
        return self.target

    def _open_direct(self) -> BinaryIO:
        """The target itself: the descriptor the check opened, or (a FIFO no one read then) a new one."""
        fd, self._direct_fd = self._direct_fd, None
        if fd is None:
            fd = os.open(self.target, os.O_WRONLY | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
        return os.fdopen(fd, "wb", buffering=0)

    def _commit_direct(self) -> None:
        if self._file is None:  # another program wrote the partial: pass it on
            with open(self.partial, "rb") as source, self._open_direct() as sink:
                shutil.copyfileobj(source, sink)
            os.unlink(self.partial)
        elif not self._file.closed:
            self._file.flush()
            self._file.close()

    def discard(self) -> None:
        """Remove the partial file, if there is one, then close it; safe to call twice, and after commit().

        The unlink comes first and nothing can stop it: not a failing close() (a full disk's ENOSPC), nor a
        second Ctrl-C."""
        if self.committed or self.discarded:
            return
        with signals.deferred():
            self.discarded = True
            if not (self.direct and self._file is not None):
                with suppress(FileNotFoundError):
                    os.unlink(self.partial)
            if self._file is not None:
                with suppress(OSError):
                    self._file.close()
            if self._direct_fd is not None:
                os.close(self._direct_fd)
                self._direct_fd = None
