import json
import os
import subprocess
import sys

import pytest

from magicktune import magick, units


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("1GB", "bytes", 10**9),
        ("1GiB", "bytes", 2**30),
        ("10gb", "bytes", 10 * 10**9),
        ("256mb", "bytes", 256 * 10**6),
        ("256MiB", "bytes", 256 * 2**20),
        ("1.5 GB", "bytes", 1_500_000_000),
        ("1000000", "bytes", 10**6),
        (12345, "bytes", 12345),
        ("16KP", "pixels", 16_000),
        ("128mp", "pixels", 128 * 10**6),
        ("3001", "count", 3001),
        ("16K", "count", 16_000),
        ("90s", "seconds", 90),
        ("10min", "seconds", 600),
        ("2h", "seconds", 7200),
        ("1e3", "bytes", 1000),
        ("2.5e3", "count", 2500),
        ("1e3", "seconds", 1000),
        ("1eb", "bytes", 10**18),
        ("unlimited", "bytes", None),
        ("Unlimited", "seconds", None),
        ("8EiB", "bytes", None),
        (2**64, "bytes", None),
    ],
)
def test_parse_reads_what_a_person_means(text, kind, expected):
    assert units.parse(text, kind) == expected


def test_percent_is_a_share_of_the_whole():
    assert units.parse("50%", whole=24 * 2**30) == 12 * 2**30
    with pytest.raises(ValueError, match="nothing to take it of"):
        units.parse("50%")
    with pytest.raises(ValueError, match="between 0 and 100"):
        units.parse("150%", whole=100)


@pytest.mark.parametrize("bad", ["10 parsecs", "-1GB", "", "1e400", "GB", "1iB", "nan", "10 gallons", "1.2.3MB"])
def test_bad_sizes_quote_the_input_and_show_the_forms(bad):
    with pytest.raises(ValueError) as error:
        units.parse(bad)
    assert repr(bad) in str(error.value)
    assert "10GB" in str(error.value) and "unlimited" in str(error.value)


def test_bad_types_and_units_for_the_kind():
    with pytest.raises(ValueError):
        units.parse(-5)
    with pytest.raises(ValueError):
        units.parse(True)
    with pytest.raises(ValueError, match="pixels"):
        units.parse("16KB", "pixels")
    with pytest.raises(ValueError, match="time"):
        units.parse("3 fortnights", "seconds")


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        (10**10, "bytes", "10GB"),
        (8 * 2**30, "bytes", "8GiB"),
        (1_234_567, "bytes", "1234567"),
        (1_234_567, "pixels", "1234567"),
        (16_000, "pixels", "16KP"),
        (3001, "count", "3001"),
        (600, "seconds", "600"),
        (None, "bytes", "9223372036854774784"),
        (None, "pixels", "9223372036854774784"),
        (None, "seconds", "9223372036854774784"),
        (0, "bytes", "0"),
    ],
)
def test_to_magick_forms(value, kind, expected):
    assert units.to_magick(value, kind) == expected


@pytest.mark.parametrize(
    ("printed", "kind", "expected"),
    [
        ("256MiB", "bytes", 256 * 2**20),
        ("1GiB", "bytes", 2**30),
        ("1000000000B", "bytes", 10**9),
        ("16KP", "pixels", 16_000),
        ("128MP", "pixels", 128 * 10**6),
        ("32000P", "pixels", 32_000),
        ("461.169PP", "pixels", 461_169 * 10**12),
        ("unlimited", "count", None),
        ("15000", "count", 15000),
        ("701B", "count", 701),
        ("10 minutes", "seconds", 600),
        ("-9223372036854775808", "seconds", None),
        ("-1", "count", None),
        ("9223372036854774784", "count", None),
        ("8EiB", "count", None),
    ],
)
def test_from_magick_reads_list_resource(printed, kind, expected):
    assert units.from_magick(printed, kind) == expected


def test_imagemagick_prints_unlimited_as_something_read_back_as_unlimited():
    """IM6 prints file, throttle and time through a signed cast: 2**63 came back as a negative number."""
    unlimited = units.to_magick(None, "count")
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("MAGICK_")},
        **{f"MAGICK_{name}_LIMIT": unlimited for name in ("TIME", "FILE", "LIST_LENGTH")},
    }
    limits = magick.find().resources(env=env)
    assert (limits["time"], limits["file"], limits["list-length"]) == (None, None, None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2gb", 2),
        ("256MiB", 256 * 2**20),
        ("unlimited", 0),
        ("50%", 50),
        ("1hour", 100),
        ("-1", 2**64 - 1),
        ("-5GB", 2**64 - 5 * 10**9),
        ("-0.5", 0),
        ("1e400", 2**64 - 1),
    ],
)
def test_as_imagemagick_reads(text, expected):
    assert units.as_imagemagick_reads(text) == expected


def test_human_readings():
    assert units.human(3_732_480_000) == "3.73 GB"
    assert units.human(None) == "unlimited"
    assert units.human(999) == "999 B"
    assert units.human(128 * 10**6, "pixels") == "128 MP"
    assert units.human(256 * 2**20) == "256 MiB"
    assert units.human(2**30) == "1 GiB"


READ_BACK = """
import json
from wand.resource import genesis
from wand.api import library
genesis()
print(json.dumps([library.MagickGetResourceLimit(i) for i in (1, 2, 11)]))  # area, disk, list-length
"""


@pytest.mark.parametrize("value", [10**10, 8 * 2**30, 1_234_567, 987_654_321_000, 3 * 2**40 + 17, 16_000, None])
def test_imagemagick_reads_to_magick_back_exactly(value, tmp_path):
    """Area (pixels), disk (bytes) and list-length (count) written by to_magick come back unchanged."""
    (tmp_path / "policy.xml").write_text(
        '<policymap><policy domain="resource" name="disk" value="8EiB"/>'
        '<policy domain="resource" name="area" value="8EiP"/></policymap>'
    )
    env = {
        "MAGICK_CONFIGURE_PATH": str(tmp_path),
        "MAGICK_DISK_LIMIT": units.to_magick(value, "bytes"),
        "MAGICK_AREA_LIMIT": units.to_magick(value, "pixels"),
        "MAGICK_LIST_LENGTH_LIMIT": units.to_magick(value, "count"),
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run([sys.executable, "-c", READ_BACK], env=env, capture_output=True, text=True, check=True)
    read = json.loads(out.stdout)
    expected = units.UNLIMITED_AT if value is None else value
    assert read == [expected, expected, expected]


def test_same_limit_reads_through_list_resource_rounding():
    assert units.same_limit(round(15.447 * 2**30), 16_586_109_321)
    assert units.same_limit(units.from_magick("1.37KP", "pixels"), 1366, "pixels")
    assert units.same_limit(units.from_magick("1.235MP", "pixels"), 1_234_567, "pixels")
    assert not units.same_limit(units.from_magick("1.37KP", "pixels"), 1366)
    assert not units.same_limit(3, 2, "count")
    assert not units.same_limit(256 * 2**20, 512 * 2**20)
    assert units.same_limit(None, None) and units.same_limit(None, 2**63)
    assert not units.same_limit(None, 3001)
