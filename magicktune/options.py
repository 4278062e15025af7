"""What a user may pass (frame sizes, rates, switches, counts, the encoder's and writers' options), read once.

The command line, the Python API, the writers' keywords and matplotlib's `extra_args` strings all go through
these readers, so a value one front end refuses is refused by every other, with the same one-line message
saying what was wrong and what to give instead. Limit values (memory, disk, ...) are read by `units.parse`.
"""

from __future__ import annotations

import math
import os
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .errors import InvalidValue

#: A GIF's screen and frames are 16-bit wide and high.
MAX_SIDE = 0xFFFF
#: A GIF frame's delay is 16-bit, in 1/100 s: the slowest rate a GIF can play is one frame in 655.35 s.
MAX_DELAY_CS = 0xFFFF
MIN_FPS = 100 / MAX_DELAY_CS
MAX_LOOP = 0xFFFF
#: Colours in one GIF colour table.
MIN_COLORS, MAX_COLORS = 2, 256
#: ImageMagick's colour tree is at most 8 levels deep (MaxTreeDepth); 0 lets it choose.
MAX_TREEDEPTH = 8
DITHERS = ("none", "floyd-steinberg", "riemersma")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_GEOMETRY = re.compile(r"\s*(\d+)\s*[xX]\s*(\d+)\s*")


def whole(value: Any, what: str, low: int, high: int | None = None) -> int:
    """`value` as a whole number from `low` to `high` (no upper bound when None): an int, an integral float
    or the text of one; 2.5, True or "many" are refused."""
    span = f"{low} to {high}" if high is not None else f"at least {low}"
    wanted = f"{what} must be a whole number, {span}"
    if isinstance(value, (bool, np.bool_)):
        raise InvalidValue(f"{wanted}, got {value!r}")
    number: int | None = None
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?[0-9]+", text):
            number = int(text)
    elif isinstance(value, float):
        number = int(value) if value.is_integer() else None
    elif hasattr(value, "__index__"):
        number = value.__index__()
    if number is None:
        raise InvalidValue(f"{wanted}, got {value!r}")
    if number < low or (high is not None and number > high):
        raise InvalidValue(f"{what} must be {span}, got {number}")
    return number


def switch(value: Any, what: str) -> bool:
    """`value` as a boolean: True/False, 1/0, or one of the words yes/no, true/false, on/off, 1/0.

    Anything else is refused rather than read by Python's truth ("no" is a non-empty string, so true).
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
    raise InvalidValue(
        f"{what} must be a boolean (True or False; in text yes/no, true/false, on/off, 1/0), got {value!r}"
    )


def choice(value: Any, what: str, choices: tuple[str, ...]) -> str:
    """`value` as one of `choices`, ignoring case and surrounding space."""
    word = value.strip().lower() if isinstance(value, str) else None
    if word not in choices:
        raise InvalidValue(f"{what} must be one of {', '.join(choices)}, got {value!r}")
    return word


def fps(value: Any, what: str = "fps") -> float:
    """A frame rate a GIF can play: finite and at least MIN_FPS (a frame shows at most 655.35 s).

    Rates above 50 fps are taken: frames a GIF cannot show for its 2 cs minimum are merged into the one before.
    """
    if isinstance(value, bool):
        raise InvalidValue(f"{what} must be a number of frames per second, got {value!r}")
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise InvalidValue(f"{what} must be a number of frames per second, like 30, got {value!r}") from None
    if not (math.isfinite(rate) and rate >= MIN_FPS):
        raise InvalidValue(
            f"{what} must be at least {MIN_FPS:.5f} (a GIF frame shows at most {MAX_DELAY_CS / 100} s) "
            f"and finite, got {value!r}"
        )
    return rate


def frame_size(value: Any, what: str = "size") -> tuple[int, int]:
    """A frame size, 'WxH' text or a (width, height) pair, each side 1 to MAX_SIDE pixels (a GIF's 16 bits)."""
    if isinstance(value, str):
        match = _GEOMETRY.fullmatch(value)
        if not match:
            raise InvalidValue(f"{what} {value!r} not understood: use WIDTHxHEIGHT in pixels, like 432x720")
        pair: Any = (match.group(1), match.group(2))
    else:
        pair = value
    try:
        width, height = pair
    except (TypeError, ValueError):
        raise InvalidValue(f"{what} must be WIDTHxHEIGHT or a (width, height) pair, got {value!r}") from None
    try:
        return whole(width, "width", 1, MAX_SIDE), whole(height, "height", 1, MAX_SIDE)
    except InvalidValue as error:
        raise InvalidValue(
            f"{what} {_shown(value)}: a GIF is 1 to {MAX_SIDE} pixels on each side ({error}): use WIDTHxHEIGHT "
            f"in pixels, like 432x720"
        ) from None


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    try:
        width, height = value
        return f"{width}x{height}"
    except (TypeError, ValueError):
        return repr(value)


def plain_path(path: str | os.PathLike[str], what: str) -> str:
    """`path` as text, refused when it holds a control character (a newline, a tab, an escape).

    Such a path cannot be shown on one line, and in the shell lines `apply --format shell` prints a newline
    would end a comment and run the rest as a command.
    """
    text = os.fspath(path)
    bad = next((c for c in text if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        raise InvalidValue(
            f"{what} {text!r} holds a control character ({bad!r}): rename the directory or choose one whose "
            f"name has none"
        )
    return text


def loop(value: Any) -> int | None:
    """Times a GIF repeats: 0 is forever, None plays it once (no loop extension)."""
    if value is None:
        return None
    try:
        return whole(value, "loop", 0, MAX_LOOP)
    except InvalidValue:
        raise InvalidValue(
            f"loop must be a whole number of repeats from 0 (forever) to {MAX_LOOP}, or None (play once), got {value!r}"
        ) from None


def _optional(read: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else read(value)


#: The streaming encoder's options (GifEncoder's keywords, writer="magicktune"'s keywords and extra_args), each
#: with its reader. A new option goes here and is then read the same way by every front end.
#: Who builds each frame's colour table: magicktune's quantizer (exact where it can be), or ImageMagick's octree.
QUANTIZERS = ("magicktune", "imagemagick")

ENCODER_OPTIONS: dict[str, Callable[[Any], Any]] = {
    "colors": lambda v: whole(v, "colors", MIN_COLORS, MAX_COLORS),
    "dither": lambda v: choice(v, "dither", DITHERS),
    "optimize": lambda v: switch(v, "optimize"),
    "global_palette": lambda v: switch(v, "global_palette"),
    "loop": loop,
    "workers": _optional(lambda v: whole(v, "workers", 1)),
    "magick_threads": _optional(lambda v: whole(v, "magick_threads", 1)),
    "treedepth": lambda v: whole(v, "treedepth", 0, MAX_TREEDEPTH),
    "quality": lambda v: whole(v, "quality", 0, 100),
    "tolerance": lambda v: whole(v, "tolerance", 0, 255),
    "quantizer": lambda v: choice(v, "quantizer", QUANTIZERS),
    "processes": lambda v: switch(v, "processes"),
}
#: Options of writer="magicktune" itself rather than of its encoder.
WRITER_OPTIONS: dict[str, Callable[[Any], Any]] = {
    "blit": lambda v: switch(v, "blit"),
    "progress": lambda v: switch(v, "progress"),
    "frames": _optional(lambda v: whole(v, "frames", 1)),
}


def read(given: Mapping[str, Any], readers: Mapping[str, Callable[[Any], Any]]) -> dict[str, Any]:
    """Each of `given` read by its reader; a name without one is refused, naming those there are."""
    unknown = sorted(set(given) - set(readers))
    if unknown:
        raise InvalidValue(f"unknown option {', '.join(map(repr, unknown))}: the options are {', '.join(readers)}")
    return {name: readers[name](value) for name, value in given.items()}


def parse_extra_args(extra_args: Any, readers: Mapping[str, Callable[[Any], Any]]) -> dict[str, Any]:
    """matplotlib's `extra_args=['colors=128', 'dither=riemersma', 'blit=yes']` read into options by `readers`."""
    if isinstance(extra_args, (str, bytes)):
        raise InvalidValue(f"extra_args must be a list of 'key=value' strings, got {extra_args!r}")
    given: dict[str, str] = {}
    for arg in extra_args or ():
        key, sep, value = str(arg).partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or key not in readers:
            raise InvalidValue(f"extra_args entries must be key=value with key in {sorted(readers)}, got {arg!r}")
        given[key] = value
    return read(given, readers)
