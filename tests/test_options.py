"""One reading of sizes, rates, switches, counts and limit values for apply, encode, the writers and extra_args."""

import json
import os
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

import magicktune
from magicktune import options, profile, units
from magicktune.encoder import GifEncoder
from magicktune.errors import InvalidValue
from magicktune.writers import MagickTuneWriter, parse_extra_args


def cli(*args):
    return subprocess.run([sys.executable, "-m", "magicktune.cli", *args], capture_output=True, text=True, timeout=120)


def one_line_error(result, *words):
    assert result.returncode == 1, f"rc {result.returncode}: {result.stdout}{result.stderr}"
    assert result.stderr.startswith("magicktune: error: ") and result.stderr.count("\n") == 1, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.fixture
def stream(tmp_path):
    path = tmp_path / "frames.rgba"
    path.write_bytes(bytes(8 * 8 * 4 * 3))
    return path


@pytest.mark.parametrize(
    ("size", "fps", "words"),
    [
        ("70000x10", "10", ["70000x10", "1 to 65535 pixels on each side"]),
        ("8x8", "1e-9", ["fps must be at least 0.00153"]),
        ("8x8", "nan", ["fps must be at least"]),
    ],
)
def test_apply_and_encode_refuse_the_same_sizes_and_rates(tmp_path, stream, size, fps, words):
    if size != "8x8":
        stream = tmp_path / "wide.rgba"
        stream.write_bytes(bytes(70000 * 10 * 4))
    one_line_error(cli("apply", "--frames", "3", "--size", size, "--fps", fps), *words)
    one_line_error(cli("encode", "--size", size, "--fps", fps, str(stream), str(tmp_path / "x.gif")), *words)
    assert not (tmp_path / "x.gif").exists()


def test_apply_and_encode_take_the_same_fast_rates(tmp_path, stream):
    """Above 50 fps the encoder merges frames a GIF cannot show; a plan for that job is as valid."""
    planned = cli("apply", "--frames", "3", "--size", "8x8", "--fps", "200", "--json")
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout)["job"]["fps"] == 200
    encoded = cli("encode", "--size", "8x8", "--fps", "200", str(stream), str(tmp_path / "x.gif"))
    assert encoded.returncode == 0, encoded.stderr


@pytest.mark.parametrize("value", ["1e-5", "0.4", "0.5"])
def test_limits_that_would_round_to_zero_are_refused(value):
    with pytest.raises(InvalidValue, match="less than 1 byte, which would be a limit of 0"):
        units.parse_limit("memory", value)
    with pytest.raises(InvalidValue, match="less than 1 byte"), magicktune.limits(memory=value):
        pass
    assert units.parse_limit("memory", "50%", whole=1) == 0  # a share checked before the whole is known


def test_policy_generate_refuses_a_memory_below_one_byte():
    one_line_error(cli("policy", "generate", "--memory", "1e-5"), "--memory", "less than 1 byte")
    one_line_error(cli("policy", "generate", "--thread", "0.4"), "--thread", "less than 1")


def test_limits_still_round_what_is_above_one():
    assert units.parse("1.5") == 2 and units.parse("0") == 0 and units.parse("1.5KB") == 1500


@pytest.mark.parametrize(
    ("text", "value"), [("no", False), ("Off", False), ("0", False), ("yes", True), (" TRUE ", True)]
)
def test_switches_read_words_as_people_mean_them(tmp_path, text, value):
    assert MagickTuneWriter(optimize=text).options["optimize"] is value
    assert MagickTuneWriter(extra_args=[f"optimize={text}"]).options["optimize"] is value
    assert MagickTuneWriter(blit=text).blit is value
    with GifEncoder(tmp_path / "x.gif", (8, 8), 10, optimize=text, global_palette=text) as encoder:
        assert encoder.optimize is value and encoder.global_palette is value
        encoder.add_frame(np.zeros((8, 8, 4), np.uint8))


@pytest.mark.parametrize("text", ["maybe", "", 2, 0.5, None])
def test_a_switch_that_is_not_a_boolean_is_refused(tmp_path, text):
    with pytest.raises(InvalidValue, match="optimize must be a boolean"):
        MagickTuneWriter(optimize=text)
    with pytest.raises(InvalidValue, match="must be a boolean"):
        GifEncoder(tmp_path / "x.gif", (8, 8), 10, optimize=text)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("colors", 2.5, "colors must be a whole number, 2 to 256, got 2.5"),
        ("colors", 1, "colors must be 2 to 256, got 1"),
        ("colors", "many", "colors must be a whole number"),
        ("colors", True, "colors must be a whole number"),
        ("treedepth", 100, "treedepth must be 0 to 8, got 100"),
        ("treedepth", -1, "treedepth must be 0 to 8"),
        ("magick_threads", -1, "magick_threads must be at least 1, got -1"),
        ("magick_threads", 0, "magick_threads must be at least 1, got 0"),
        ("workers", 0, "workers must be at least 1"),
        ("dither", "ordered", "dither must be one of none, floyd-steinberg, riemersma"),
        ("loop", 2.5, "loop must be a whole number of repeats"),
    ],
)
def test_bad_encoder_options_are_refused_before_any_work_by_every_front_end(tmp_path, name, value, message):
    target = tmp_path / "x.gif"
    with pytest.raises(InvalidValue, match=message):
        GifEncoder(target, (8, 8), 10, **{name: value})
    with pytest.raises(InvalidValue, match=message):
        MagickTuneWriter(**{name: value})
    if not isinstance(value, bool):
        with pytest.raises(InvalidValue, match=message.split(",")[0]):
            parse_extra_args([f"{name}={value}"])
    assert os.listdir(tmp_path) == []


def test_good_options_are_read_to_their_types():
    assert parse_extra_args(["colors=128", "treedepth=8", "magick-threads=2", "dither=Riemersma", "frames=30"]) == {
        "colors": 128,
        "treedepth": 8,
        "magick_threads": 2,
        "dither": "riemersma",
        "frames": 30,
    }
    assert options.read({"colors": 64.0, "loop": None}, options.ENCODER_OPTIONS) == {"colors": 64, "loop": None}
    assert options.frame_size((np.int64(432), 720.0)) == (432, 720)
    assert options.switch(np.bool_(False), "optimize") is False


def test_a_job_reads_its_fields_as_the_encoder_does():
    with pytest.raises(InvalidValue, match="1 to 65535 pixels on each side"):
        profile.Job(70000, 10, 3)
    with pytest.raises(InvalidValue, match="frames must be a whole number"):
        profile.Job(8, 8, 2.5)
    with pytest.raises(InvalidValue, match="fps must be at least"):
        profile.Job(8, 8, 3, fps=1e-9)
    assert profile.Job(8, 8, 3, fps=200).fps == 200
