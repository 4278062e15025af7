"""The environment variables ImageMagick and magicktune read, named once."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping

from .errors import InvalidValue

#: Directories ImageMagick searches first for policy.xml (and its other .xml files).
CONFIGURE_PATH = "MAGICK_CONFIGURE_PATH"
#: Where ImageMagick spills its pixel cache.
TEMPORARY_PATH = "MAGICK_TEMPORARY_PATH"
#: ImageMagick's older name for the same directory.
TMPDIR = "MAGICK_TMPDIR"
#: A `magick` or `convert` binary: which ImageMagick magicktune drives.
IMAGEMAGICK = "MAGICKTUNE_IMAGEMAGICK"
#: The user's config.yaml, instead of the one in the platform config dir.
CONFIG = "MAGICKTUNE_CONFIG"

_LIMIT_VARIABLE = re.compile(r"MAGICK_\w+_LIMIT")


def limit_variable(resource: str) -> str:
    """MAGICK_LIST_LENGTH_LIMIT for "list-length"."""
    return f"MAGICK_{resource.upper().replace('-', '_')}_LIMIT"


def prepend_configure_path(directory: str | os.PathLike[str], current: str | None) -> str:
    """MAGICK_CONFIGURE_PATH with `directory` searched first, so its resource values win."""
    return os.pathsep.join(filter(None, [configurable(directory), current]))


def configurable(directory: str | os.PathLike[str], what: str = "directory") -> str:
    """`directory` as an entry of MAGICK_CONFIGURE_PATH; refused when it holds the separator, which would split it.

    ImageMagick splits MAGICK_CONFIGURE_PATH at every os.pathsep, so a policy in `/tmp/a:b` is never found
    and the limits silently stay as they were.
    """
    text = os.fspath(directory)
    if os.pathsep in text:
        raise InvalidValue(
            f"{what} {text!r} contains {os.pathsep!r}, which separates the directories of {CONFIGURE_PATH}, so "
            f"ImageMagick would never find a policy.xml in it: choose a directory without {os.pathsep!r}"
        )
    return text


def configurable_temp_dir() -> tuple[str, str | None]:
    """Where to make a private directory for MAGICK_CONFIGURE_PATH: the temp dir, or another when its path holds
    os.pathsep (a TMPDIR of `/tmp/a:b`), with a note saying which and why (None when the temp dir is used)."""
    temp = tempfile.gettempdir()
    if os.pathsep not in temp:
        return temp, None
    for candidate in ("/tmp", "/var/tmp", "/usr/tmp", os.path.expanduser("~")):
        if os.pathsep not in candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
            return candidate, (
                f"the temp dir {temp!r} contains {os.pathsep!r}, which would split {CONFIGURE_PATH}: "
                f"the private policy directory goes in {candidate} instead"
            )
    return configurable(temp, "temp dir"), None


def without_limit_variables(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment less the MAGICK_*_LIMIT variables, so that only policy files decide."""
    source = os.environ if environ is None else environ
    return {name: value for name, value in source.items() if not _LIMIT_VARIABLE.fullmatch(name)}
