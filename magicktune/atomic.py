"""Atomic output: write beside the target under a hidden name and rename it into place only at the end, so a
failed or interrupted write never leaves a partial file. Every file magicktune writes goes through here."""

from __future__ import annotations

import os
import secrets
import shutil
from typing import BinaryIO, Union

PathLike = Union[str, "os.PathLike[str]"]


def writable_target(path: PathLike) -> str:
    """The file to replace at the end (through a symlink, as convert writes), checked before any work is done."""
    target = os.path.realpath(os.fspath(path))
    directory = os.path.dirname(target)
    if os.path.isdir(target):
        raise IsADirectoryError(f"{os.fspath(path)} is a directory: name the GIF to write")
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {os.fspath(path)}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {os.fspath(path)}: directory {directory} is not writable")
    return target


def partial_path(path: PathLike) -> str:
    """A hidden, unique name beside `path` for the file being written; it keeps the suffix tools read the format
    from."""
    directory, name = os.path.split(os.path.abspath(os.fspath(path)))
    stem, suffix = os.path.splitext(name)
    return os.path.join(directory, f".{stem}.{secrets.token_hex(4)}.partial{suffix}")


class AtomicOutput:
    """One file written at `.partial` (beside `.target`) and renamed onto the target by commit().

    Write it through open(), or let another program write the `.partial` path. commit() gives the file `mode` if
    set, else the mode of the file it replaces (a new file keeps what it was created with), and renames it into
    place; discard() removes it. Both are idempotent and discard() after commit() does nothing. As a context
    manager it commits on a clean exit and discards on an exception. Nothing is created before open().
    """

    def __init__(self, path: PathLike, mode: int | None = None) -> None:
        self.target = writable_target(path)
        self.partial = partial_path(self.target)
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
        """Create the partial file (never over an existing one) and return it for binary writing; leave it open
        for commit() to flush, fsync and close."""
        if self.committed or self.discarded or self._file is not None:
            raise ValueError(f"{self.partial} was already opened")
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

    def discard(self) -> None:
        """Close and remove the partial file, if there is one; safe to call twice, and after commit()."""
        if self.committed or self.discarded:
            return
        self.discarded = True
        if self._file is not None:
            self._file.close()
        try:
            os.unlink(self.partial)
        except FileNotFoundError:
            pass
