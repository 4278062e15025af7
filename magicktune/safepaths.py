"""Files and directories magicktune trusts: small regular files read without blocking, directories only we can change.

A policy or config path may name a device (`/dev/zero` never ends), a FIFO (opening it waits for a writer) or
a directory; a cache directory under a shared XDG_CACHE_HOME may have been made by another user, who could then
swap the policy ImageMagick loads from it (and its delegates.xml).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .errors import InvalidValue

#: The most a policy.xml, preset or config.yaml may hold. Debian's policy.xml is 7 KB; 10,000 rules are 0.6 MB.
SMALL_FILE_CAP = 4 * 2**20


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_small_file(path: str | os.PathLike, what: str, *, cap: int = SMALL_FILE_CAP) -> bytes:
    """The bytes of a regular file of at most `cap` bytes; InvalidValue (or FileNotFoundError) otherwise.

    Checked with stat before it is opened (a device is never opened), opened with O_NONBLOCK (a FIFO swapped in
    meanwhile does not wait for a writer) and checked again with fstat, so what is checked is what is read.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise
    except OSError as error:
        raise InvalidValue(f"cannot read {what} {path}: {error.strerror}") from None
    if not stat.S_ISREG(mode):
        raise InvalidValue(f"{what} {path} is {_kind(mode)}, not a regular file: give the path of a file")
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise InvalidValue(f"{what} {path} is a directory: give the path of a file") from None
    except OSError as error:
        if error.errno == errno.ENXIO:  # a socket swapped in after the stat
            raise InvalidValue(f"{what} {path} is not a regular file: give the path of a file") from None
        raise InvalidValue(f"cannot read {what} {path}: {error.strerror}") from None
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidValue(f"{what} {path} is {_kind(info.st_mode)}, not a regular file: give the path of a file")
        if info.st_size > cap:
            raise InvalidValue(f"{what} {path} is {info.st_size} bytes, more than the {cap} a {what} may have")
        data = handle.read(cap + 1)
    if len(data) > cap:
        raise InvalidValue(f"{what} {path} grew past the {cap} bytes a {what} may have while it was read")
    return data


def private_directory(path: str | os.PathLike, what: str, *, levels: int = 1) -> Path:
    """`path` created owner-only (0700) where missing, with its `levels - 1` parents; each refused unless ours alone.

    A directory that is a symlink, belongs to another user or that group or others may write is refused:
    whoever can change it can change what is read from it.
    """
    directory = Path(path)
    chain = [directory, *list(directory.parents)[: levels - 1]]
    for level in reversed(chain):
        try:
            level.mkdir(mode=0o700, parents=True)
        except FileExistsError:
            pass
        info = level.lstat()
        problem = None
        if stat.S_ISLNK(info.st_mode):
            problem = "is a symlink"
        elif not stat.S_ISDIR(info.st_mode):
            problem = "is not a directory"
        elif info.st_uid != os.geteuid():
            problem = f"belongs to another user (uid {info.st_uid})"
        elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            problem = f"can be written by others (mode {stat.S_IMODE(info.st_mode):o})"
        if problem:
            raise InvalidValue(
                f"{what} {level} {problem}, so another user could change what is read from it: "
                f"remove it, or point XDG_CACHE_HOME (or --output) somewhere private"
            )
    return directory
