"""Sizes as ImageMagick means them, read forgivingly and written so ImageMagick reads them back exactly.

ImageMagick's own reader is case-sensitive and treacherous ("256mb" is 256 bytes, "unlimited" in a
policy is 0, "1hour" is 100 s). `parse` accepts what a person means; `to_magick` writes only forms that
ImageMagick reads back to the same number; `from_magick` reads what `-list resource` prints.
"""

from __future__ import annotations

import enum
import math
import re
from typing import Literal

from .errors import InvalidValue

Kind = Literal["bytes", "pixels", "count", "seconds"]


class Unlimited(enum.Enum):
    """The explicit "no cap" in a mapping of limits, where a resource left out is left as it is."""

    UNLIMITED = "unlimited"

    def __repr__(self) -> str:
        return "UNLIMITED"


UNLIMITED = Unlimited.UNLIMITED
#: One resource's limit in a mapping of limits: a number in the resource's unit, or UNLIMITED.
Limit = int | Literal[Unlimited.UNLIMITED]


def reading(limit: Limit | None) -> int | None:
    """A limit as readings hold it elsewhere in magicktune: None for unlimited."""
    return None if limit is UNLIMITED else limit


def limit(value: int | None) -> Limit:
    """A reading (None for unlimited) as a limit for a mapping of limits."""
    return UNLIMITED if value is None else value


#: The kind of quantity each ImageMagick resource limit holds.
RESOURCE_KINDS: dict[str, Kind] = {
    "memory": "bytes",
    "map": "bytes",
    "disk": "bytes",
    "area": "pixels",
    "width": "pixels",
    "height": "pixels",
    "list-length": "count",
    "file": "count",
    "thread": "count",
    "throttle": "count",
    "time": "seconds",
}

#: What magicktune writes for "unlimited", and where readings start to mean it: the largest number below 2**63
#: that ImageMagick's reader (a double) keeps exactly. IM6 compares memory, map, disk and file limits as signed
#: 64-bit numbers, so 2**63 ("8EiB") refuses every pixel cache, and it prints file, throttle and time at or
#: above 2**63 as negative numbers. IM's own "unlimited" (2**63 - 1) is above this too.
UNLIMITED_AT = 2**63 - 1024

_PREFIXES = "kmgtpe"
_UNIT_LETTER = {"bytes": "b", "pixels": "p", "count": "", "seconds": ""}
_SECONDS = {
    "": 1,
    "s": 1,
    "m": 60,
    "sec": 1,
    "second": 1,
    "seconds": 1,
    "min": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}
#: "1e3" as ImageMagick's strtod reads it; ASCII digits only, as strtod takes ("٢" is 0 to ImageMagick).
_NUMBER = r"(?P<number>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:e[+-]?[0-9]+)?)\s*"
_TIME = re.compile(_NUMBER + r"(?P<unit>[a-z]*)", re.ASCII)
_SIZE = re.compile(_NUMBER + r"(?P<prefix>[kmgtpe])?(?P<binary>i)?(?P<unit>[a-z]*)", re.ASCII)
_NOUNS = {"bytes": "size", "pixels": "pixel size", "count": "count", "seconds": "time"}
_WORDS_FOR_UNLIMITED = {"unlimited", "none", "inf", "infinity", "max"}


def _forms(kind: Kind) -> str:
    examples = {
        "bytes": "10GB (10^9 bytes), 8GiB (2^30 bytes), 512MiB, 1000000, 50% (of RAM or of free disk)",
        "pixels": "16KP (16,000 pixels), 128MP, 1GP, 20000",
        "count": "3001, 16K",
        "seconds": "600, 90s, 10min, 2h",
    }[kind]
    return f"{examples}, or 'unlimited'"


def parse(value: str | Limit | None, kind: Kind = "bytes", *, whole: int | None = None) -> int | None:
    """Read a limit the way a person means it; None means unlimited.

    Prefixes are case-insensitive ("10gb" is 10**10), "i" makes them binary, "50%" is that share of
    `whole` (physical RAM for memory and map, the temp disk's free space for disk).
    """
    if value is None or value is UNLIMITED:
        return None
    if isinstance(value, bool):
        raise InvalidValue(f"{value!r} is not a size: use {_forms(kind)}")
    if isinstance(value, int):
        if value < 0:
            raise InvalidValue(f"size {value!r} is negative: use {_forms(kind)}")
        return None if value >= UNLIMITED_AT else value
    if not isinstance(value, str):
        raise InvalidValue(f"{value!r} is not a size: use {_forms(kind)}")
    text = value.strip().lower()
    if text in _WORDS_FOR_UNLIMITED:
        return None
    if not text.isascii():
        raise InvalidValue(
            f"{_NOUNS[kind]} {value!r} has characters other than ASCII (ImageMagick reads only 0-9, so "
            f"'١٠GB' is 0 to it): use {_forms(kind)}"
        )
    if re.match(r"[+-]?0x", text):
        raise InvalidValue(
            f"{_NOUNS[kind]} {value!r} is hexadecimal, which ImageMagick reads but its size suffixes "
            f"make treacherous ('0x10B' is 267): write it in decimal, e.g. {_forms(kind)}"
        )
    if text.endswith("%"):
        return _percent(value, text[:-1], kind, whole)
    if kind == "seconds":
        match = _TIME.fullmatch(text)
        if not match or match.group("unit") not in _SECONDS:
            raise InvalidValue(f"time {value!r} not understood: use {_forms(kind)}")
        number, scale = match.group("number"), _SECONDS[match.group("unit")]
    else:
        match = _SIZE.fullmatch(text)
        if (
            not match
            or match.group("unit") not in ("", _UNIT_LETTER[kind])
            or (match.group("binary") and not match.group("prefix"))
        ):
            raise InvalidValue(f"{_NOUNS[kind]} {value!r} not understood: use {_forms(kind)}")
        number, scale = match.group("number"), _scale(match.group("prefix"), match.group("binary"))
    amount = float(number) * scale
    if not math.isfinite(amount):
        raise InvalidValue(f"size {value!r} is too large: use {_forms(kind)}")
    result = round(amount)
    return None if result >= UNLIMITED_AT else result


def parse_limit(name: str, value: str | Limit | None, *, whole: int | None = None) -> int | None:
    """Read the limit of one resource by name (`parse` for its kind); None means unlimited.

    Throttle is not a cap but a pause (milliseconds ImageMagick sleeps every 32 pixel-cache requests, and a
    policy value is a floor), so "unlimited" would stall every command: it is refused.
    """
    limit = parse(value, RESOURCE_KINDS[name], whole=whole)
    if limit is None and name == "throttle":
        raise InvalidValue(
            f"throttle {value!r}: throttle is a pause ImageMagick takes (in milliseconds), not a cap, "
            f"so 'unlimited' would stall every command: use 0 for no pause"
        )
    return limit


def _scale(prefix: str | None, binary: str | None) -> int:
    if not prefix:
        return 1
    power = _PREFIXES.index(prefix) + 1
    return 1024**power if binary else 1000**power


def _percent(original: str, number: str, kind: Kind, whole: int | None) -> int:
    try:
        share = float(number)
    except ValueError:
        raise InvalidValue(f"size {original!r} not understood: use {_forms(kind)}") from None
    if not 0 < share <= 100 or not math.isfinite(share):
        raise InvalidValue(f"size {original!r} must be a percentage between 0 and 100")
    if whole is None:
        raise InvalidValue(
            f"size {original!r} is a percentage, but this limit has nothing to take it of: "
            f"use an absolute size like {_forms(kind)}"
        )
    return round(whole * share / 100)


def to_magick(value: Limit | None, kind: Kind = "bytes") -> str:
    """Write a limit so ImageMagick reads it back to exactly this number (never the word "unlimited")."""
    unit = _UNIT_LETTER[kind].upper()
    if value is None or value is UNLIMITED or value >= UNLIMITED_AT:
        return str(UNLIMITED_AT)
    if value < 0:
        raise InvalidValue(f"a limit cannot be negative, got {value}")
    if kind in ("count", "seconds") or value == 0:
        return str(value)
    for power in range(len(_PREFIXES), 0, -1):
        letter = _PREFIXES[power - 1].upper()
        if value % 1024**power == 0:
            return f"{value // 1024**power}{letter}i{unit}"
        if value % 1000**power == 0:
            return f"{value // 1000**power}{letter}{unit}"
    return str(value)  # ImageMagick reads a bare "1234567P" as peta, so no unit without a prefix


def from_magick(text: str, kind: Kind = "bytes") -> int | None:
    """Read a value as `-list resource` prints it ("256MiB", "16KP", "15.447GiB", "10 minutes").

    IM6 prints file, throttle and time limits at or above 2**63 as negative numbers: those read as unlimited.
    """
    text = text.strip()
    if text.lower() == "unlimited" or re.fullmatch(r"-\d+", text):
        return None
    if kind == "seconds":
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text)
        if not match or match.group(2) not in _SECONDS:
            raise InvalidValue(f"ImageMagick printed a time this parser does not know: {text!r}")
        value = round(float(match.group(1)) * _SECONDS[match.group(2)])
    else:
        if text[-1:] in ("B", "P"):  # the unit; IM prints counts as bytes ("701B") and small areas as "32000P"
            text = text[:-1]
        match = re.fullmatch(r"(\d+(?:\.\d+)?(?:e[+-]?\d+)?)([kKMGTPE])?(i)?", text)
        if not match:
            raise InvalidValue(f"ImageMagick printed a {kind} value this parser does not know: {text!r}")
        number, prefix, binary = match.groups()
        value = round(float(number) * _scale(prefix.lower() if prefix else None, binary))
    return None if value >= UNLIMITED_AT else value


_SI_EXPONENTS = {"h": 2, "k": 3, "K": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
#: What ImageMagick 6.9.11's number reader takes, as seen with `identify -list resource` under a policy: decimal
#: with an exponent, hexadecimal integers ("0x10" is 16; "0x1.8" is 1 and "0x1P4" 1 peta: no fraction or
#: p-exponent), inf/infinity and nan in any case, ASCII digits only.
_LEADING_NUMBER = re.compile(
    r"\s*(?P<sign>[+-]?)(?:0[xX](?P<hex>[0-9a-fA-F]+)|(?P<inf>inf(?:inity)?)|(?P<nan>nan)"
    r"|(?P<decimal>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?))",
    re.IGNORECASE,
)


def as_imagemagick_reads(text: str) -> int:
    """The number ImageMagick itself makes of a policy or env value (InterpretSiPrefixValue, then %).

    Case-sensitive: "2gb" is 2, "256mb" is 256, "1hour" is 100 (hecto), "unlimited" and "50%" are 0 and 50;
    "inf" is no cap, "nan" and "-inf" 2**63 (no cap for a size, an endless throttle), "0x10" 16, "٢" 0.
    A negative value wraps around to nearly 2**64 (C's cast to unsigned, on x86-64), which is no cap at all:
    memory "-1" runs with all the RAM, and a throttle of "-1" pauses for ever.
    """
    match = _LEADING_NUMBER.match(text)
    if not match:
        return 0
    if match.group("nan"):
        return 2**63  # C's cast of NaN to an integer on x86-64: throttle prints -9223372036854775808
    if match.group("hex"):
        value = float(int(match.group("hex"), 16))
    elif match.group("inf"):
        value = math.inf
    else:
        value = float(match.group("decimal"))
    if match.group("sign") == "-":
        value = -value
    rest = text[match.end() :]
    exponent = _SI_EXPONENTS.get(rest[:1], 0)
    if exponent:
        value *= 2 ** (exponent / 0.3) if rest[1:2] == "i" else 10**exponent
    if value >= 2**64:
        return 2**64 - 1
    if value <= -(2**63):
        return 2**63
    return int(value) % 2**64


#: The fewest significant digits `-list resource` prints a limit of each kind with: IM6 prints pixels to as few
#: as 3 (width 1366 is "1.37KP", area 1234567 "1.235MP"), everything else to at least 6.
_PRINTED_DIGITS = {"pixels": 3, "bytes": 6, "count": 6, "seconds": 6}


def same_limit(got: int | None, wanted: int | None, kind: Kind = "bytes") -> bool:
    """Equal at the precision `-list resource` prints this kind with; None and >= 2**62 both mean unlimited."""
    if got is None or wanted is None:
        return got == wanted or (got or wanted or 0) >= 2**62
    return abs(got - wanted) <= wanted * 5 * 10.0 ** -_PRINTED_DIGITS[kind]


def human(value: Limit | None, kind: Kind = "bytes") -> str:
    """A short decimal reading for reports: "3.73 GB", "128 MP", "3001", "unlimited"."""
    if value is None or value is UNLIMITED:
        return "unlimited"
    if kind == "count":
        return str(value)
    if kind == "seconds":
        return f"{value} s"
    unit = "B" if kind == "bytes" else "P"
    if value < 1000:
        return f"{value} {unit}"
    binary_power = next((p for p in range(len(_PREFIXES), 0, -1) if value % 1024**p == 0), 0)
    if kind == "bytes" and binary_power >= 2:  # a round binary size reads as policy.xml writes it: 256 MiB
        return f"{value // 1024**binary_power} {_PREFIXES[binary_power - 1].upper()}iB"
    power = min(int(math.log10(value) // 3), len(_PREFIXES))
    return f"{value / 1000**power:.3g} {_PREFIXES[power - 1].upper()}{unit}"
