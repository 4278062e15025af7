"""The environment variables ImageMagick and magicktune read, named once."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

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
    return os.pathsep.join(filter(None, [str(directory), current]))


def without_limit_variables(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment less the MAGICK_*_LIMIT variables, so that only policy files decide."""
    source = os.environ if environ is None else environ
    return {name: value for name, value in source.items() if not _LIMIT_VARIABLE.fullmatch(name)}
