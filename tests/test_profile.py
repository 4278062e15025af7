from pathlib import Path

import pytest

from magicktune import magick, profile, units

FIXTURES = Path(__file__).parent / "fixtures"
DEBIAN_LIMITS = magick.parse_list_resource((FIXTURES / "im6/list-resource.txt").read_text())
SEED = profile.Job(432, 720, 3000, fps=30)


def imagemagick_from(version_file: str) -> magick.ImageMagick:
    facts = magick.parse_version((FIXTURES / version_file).read_text())
    return magick.ImageMagick(convert=("convert",), identify=("identify",), **facts)


def roomy_machine(ram=32 * 10**9, temp_free=100 * 10**9) -> profile.Machine:
    return profile.Machine(ram, ram, 8, "/scratch", temp_free)


def test_seed_job_on_im6_q16():
    plan = profile.plan(
        SEED, imagemagick_from("im6/version.txt"), current_limits=DEBIAN_LIMITS, machine=roomy_machine()
    )
    assert SEED.stream_bytes == 3_732_480_000
    assert plan.cache.read_bytes == 7_464_960_000
    assert plan.cache.gif_bytes == 9_331_200_000
    assert plan.limits["list-length"] == 3001
    assert plan.frames_that_fit_now == 539  # Debian's 256MiB memory + 1GiB disk; ~540 seen failing
    assert plan.convert_fits == "memory"
    assert plan.limits["memory"] >= plan.cache.gif_bytes
    assert any("539" in w and "no images defined" in w for w in plan.warnings)


def test_seed_job_on_im7_hdri_needs_twice_the_cache():
    plan = profile.plan(SEED, imagemagick_from("im7/version.txt"), current_limits={}, machine=roomy_machine())
    assert plan.cache.bytes_per_pixel == 16
    assert plan.cache.read_bytes == 14_929_920_000
    assert plan.cache.gif_bytes == 18_662_400_000


def test_spill_and_no_fit_are_said_in_plain_words():
    im = imagemagick_from("im6/version.txt")
    small = profile.Machine(8 * 10**9, 6_100_000_000, 4, "/tmp", 50 * 10**9)
    plan = profile.plan(SEED, im, current_limits=DEBIAN_LIMITS, machine=small)
    assert plan.convert_fits == "disk"
    assert "needs 9.33 GB of pixel cache" in plan.warnings[0]
    assert "6.1 GB of RAM is free" in plan.warnings[0] and "spill to disk" in plan.warnings[0]
    assert "streaming engine" in plan.warnings[0]
    tiny = profile.Machine(8 * 10**9, 2 * 10**9, 4, "/tmp", 10**9)
    assert profile.plan(SEED, im, current_limits=DEBIAN_LIMITS, machine=tiny).convert_fits == "no"


def test_unknown_frame_count_sizes_to_the_machine():
    plan = profile.plan(
        profile.Job(432, 720),
        imagemagick_from("im6/version.txt"),
        current_limits=DEBIAN_LIMITS,
        machine=roomy_machine(),
    )
    assert plan.limits["list-length"] is units.UNLIMITED
    assert plan.convert_fits == "unknown"
    assert plan.limits["memory"] == pytest.approx(32e9 * profile.RAM_SHARE, rel=1e-3)


def test_frames_too_large_for_the_width_cap_raise_it():
    plan = profile.plan(
        profile.Job(20_000, 100, 10),
        imagemagick_from("im6/version.txt"),
        current_limits=DEBIAN_LIMITS,
        machine=roomy_machine(),
    )
    assert plan.limits["width"] == 20_000 and "height" not in plan.limits


def test_job_from_stream(tmp_path):
    stream = tmp_path / "frames.rgba"
    stream.write_bytes(bytes(4 * 3 * 2 * 5))
    assert profile.Job.from_stream(stream, 3, 2).frames == 5
    stream.write_bytes(bytes(4 * 3 * 2 * 5 + 7))
    with pytest.raises(ValueError, match="7 bytes left over"):
        profile.Job.from_stream(stream, 3, 2)


@pytest.mark.parametrize("bad", ["432", "x720", "432x0", "-4x5", "432 by 720", ""])
def test_bad_geometry(bad):
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        profile.parse_geometry(bad)


def test_bad_jobs():
    with pytest.raises(ValueError, match="frames"):
        profile.Job(4, 4, 0)
    with pytest.raises(ValueError, match="fps"):
        profile.Job(4, 4, 10, fps=0)


def test_plan_on_this_machine():
    plan = profile.plan(SEED)
    assert plan.machine.ram_total > 0 and plan.machine.cpus >= 1
    assert plan.limits["thread"] == plan.machine.cpus
    assert plan.to_dict()["job"]["stream_bytes"] == SEED.stream_bytes


def test_optimize_layers_holds_both_frame_lists():
    plan = profile.plan(
        SEED,
        imagemagick_from("im6/version.txt"),
        current_limits=DEBIAN_LIMITS,
        machine=roomy_machine(),
        optimize_layers=True,
    )
    assert plan.cache.gif_bytes == 9_331_200_000
    assert plan.cache.peak_bytes == 7_464_960_000 + 9_331_200_000
    assert plan.limits["memory"] >= plan.cache.peak_bytes
    assert "needs up to 16.8 GB" in plan.warnings[0]
    assert "with the copy -layers OptimizePlus makes when every pixel changes" in plan.warnings[0]
