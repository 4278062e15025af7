import os
import stat
import time
from pathlib import Path

import pytest

from magicktune import environment, magick

FIXTURES = Path(__file__).parent / "fixtures"


def read(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_parse_im7_version():
    facts = magick.parse_version(read("im7/version.txt"))
    assert facts["version"] == "7.1.1-11"
    assert (facts["major"], facts["quantum_depth"], facts["hdri"], facts["openmp"]) == (7, 16, True, True)


def test_parse_im6_version():
    facts = magick.parse_version(read("im6/version.txt"))
    assert (facts["major"], facts["quantum_depth"], facts["hdri"]) == (6, 16, False)
    assert "png" in facts["delegates"]


def test_parse_im7_list_resource():
    limits = magick.parse_list_resource(read("im7/list-resource.txt"))
    assert limits["list-length"] is None and limits["disk"] is None and limits["time"] is None
    assert limits["memory"] == round(15.447 * 2**30)
    assert limits["area"] == round(66.3442e9)
    assert limits["width"] == round(461.169e15)
    assert (limits["file"], limits["thread"], limits["throttle"]) == (768, 8, 0)


def test_parse_im6_list_resource():
    limits = magick.parse_list_resource(read("im6/list-resource.txt"))
    assert limits == {
        "width": 16_000,
        "height": 16_000,
        "list-length": None,
        "area": 128_000_000,
        "memory": 256 * 2**20,
        "map": 512 * 2**20,
        "disk": 2**30,
        "file": limits["file"],
        "thread": limits["thread"],
        "throttle": 0,
        "time": None,
    }


def test_parse_im7_list_policy():
    rules = magick.parse_list_policy(read("im7/list-policy.txt"))
    assert magick.policy_files(rules) == ["/etc/ImageMagick-7/policy.xml"]
    caps = magick.resource_caps(rules)
    assert caps["memory"] == (256 * 2**20, "/etc/ImageMagick-7/policy.xml")
    assert "max-memory-request" not in caps
    security = [r for r in rules if r.is_security_rule and not r.path.startswith("[")]
    assert [(r.domain, r.rights, r.pattern) for r in security] == [
        ("delegate", "None", "URL"),
        ("delegate", "None", "HTTPS"),
        ("delegate", "None", "HTTP"),
        ("path", "None", "@*"),
        ("coder", "Read Write", "{GIF,JPEG,PNG,WEBP}"),
    ]


def test_first_file_naming_a_resource_wins():
    text = (
        "Path: /a/policy.xml\n  Policy: Resource\n    name: memory\n    value: 8GiB\n"
        "Path: /etc/policy.xml\n  Policy: Resource\n    name: memory\n    value: 256MiB\n"
        "  Policy: Resource\n    name: disk\n    value: 1GiB\n"
    )
    caps = magick.resource_caps(magick.parse_list_policy(text))
    assert caps == {"memory": (8 * 2**30, "/a/policy.xml"), "disk": (2**30, "/etc/policy.xml")}


def test_resource_names_ignore_case_as_imagemagick_does():
    text = (
        "Path: /p.xml\n  Policy: Resource\n    name: Memory\n    value: 100MiB\n"
        "  Policy: Resource\n    name: List-Length\n    value: 50\n"
    )
    assert magick.resource_caps(magick.parse_list_policy(text)) == {
        "memory": (100 * 2**20, "/p.xml"),
        "list-length": (50, "/p.xml"),
    }


def test_caps_are_read_the_way_imagemagick_reads_them():
    text = (
        "Path: /p.xml\n  Policy: Resource\n    name: memory\n    value: 2gb\n"
        "  Policy: Resource\n    name: disk\n    value: unlimited\n"
    )
    assert magick.resource_caps(magick.parse_list_policy(text)) == {"memory": (2, "/p.xml"), "disk": (0, "/p.xml")}


def test_find_the_real_imagemagick():
    im = magick.find()
    assert im.major in (6, 7)
    assert im.quantum_depth in (8, 16, 32)
    assert im.bytes_per_pixel in (4, 8, 16)
    limits = im.resources()
    assert {"memory", "map", "disk", "area", "list-length"} <= limits.keys()
    rules = im.policy_rules()
    assert all(isinstance(r, magick.PolicyRule) for r in rules)


def test_a_binary_that_is_not_imagemagick_is_refused(tmp_path):
    fake = tmp_path / "convert"
    fake.write_text("#!/bin/sh\necho 'Invalid Parameter - -version'\nexit 4\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(magick.ImageMagickNotFound, match="apt-get install imagemagick"):
        magick.find(fake)


def test_missing_imagemagick_names_the_install_commands(tmp_path, monkeypatch):
    fake = tmp_path / "convert"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(environment.IMAGEMAGICK, raising=False)
    with pytest.raises(magick.ImageMagickNotFound) as error:
        magick.find()
    message = str(error.value)
    assert "apt-get install imagemagick" in message and "brew install" in message and "conda install" in message
    assert str(fake) in message


def test_env_override_chooses_the_binary(monkeypatch):
    real = magick.find()
    monkeypatch.setenv(environment.IMAGEMAGICK, real.convert[-1] if real.major == 6 else real.convert[0])
    assert magick.find().version == real.version


def test_debian_versioned_name_is_found(tmp_path, monkeypatch):
    real = Path("/usr/bin/convert-im6.q16")
    if not real.exists():
        pytest.skip("Debian's convert-im6.q16 is not installed here")
    os.symlink(real, tmp_path / "convert-im6.q16")
    os.symlink("/usr/bin/identify-im6.q16", tmp_path / "identify-im6.q16")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(environment.IMAGEMAGICK, raising=False)
    im = magick.find()
    assert im.convert == (str(tmp_path / "convert-im6.q16"),)
    assert im.identify == (str(tmp_path / "identify-im6.q16"),)


def test_a_stand_in_printing_bytes_that_are_not_utf8_falls_through_to_the_real_one(tmp_path, monkeypatch):
    real = magick.find()
    stub = tmp_path / "bin"
    stub.mkdir()
    fake = stub / "magick"  # the first name detection tries
    fake.write_bytes(b"#!/bin/sh\nprintf '\\377\\376Version: not ImageMagick\\n'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{stub}{os.pathsep}{Path(real.convert[0]).parent}")
    monkeypatch.delenv(environment.IMAGEMAGICK, raising=False)
    found = magick.find()
    assert found.version == real.version and found.convert[0] != str(fake)
    with pytest.raises(magick.ImageMagickNotFound, match="did not say so"):
        magick.find(fake)


def stalling_env(directory):
    """The environment without MAGICK_* variables and with a policy whose throttle of -1 stalls every pixel cache."""
    (directory / "policy.xml").write_text(
        '<policymap><policy domain="resource" name="throttle" value="-1"/></policymap>'
    )
    clean = {name: value for name, value in os.environ.items() if not name.startswith("MAGICK_")}
    return {**clean, environment.CONFIGURE_PATH: str(directory)}


def test_listing_opens_no_pixel_cache(im, tmp_path):
    """IM7's bare `magick -list policy` obeys a throttle and sleeps for ever under this policy (IM6's convert does
    not); listing through identify works on both."""
    env = stalling_env(tmp_path)
    started = time.monotonic()
    rules = im.policy_rules(env=env)
    assert im.resources(env=env)["memory"]
    assert time.monotonic() - started < magick.COMMAND_TIMEOUT
    assert any(r.name == "throttle" and r.path == str(tmp_path / "policy.xml") for r in rules)


def test_a_stalled_command_is_stopped_and_named(im, tmp_path):
    env = stalling_env(tmp_path)
    with pytest.raises(magick.ImageMagickError, match=r"still running after 2 s and was stopped.*throttle"):
        im.run(["-size", "8x8", "xc:red", str(tmp_path / "x.png")], env=env, timeout=2)


def test_the_build_is_named_as_imagemagick_names_it(im):
    assert im.build in ("Q8", "Q16", "Q16-HDRI", "Q32-HDRI")
    assert f" {im.build} " in im.version_text.splitlines()[0] and im.label.endswith(im.build)
