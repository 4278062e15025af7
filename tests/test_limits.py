import os
import subprocess
import sys
import tempfile
import warnings

import pytest

from magicktune import environment, magick, units
from magicktune import resources as limits
from magicktune.errors import WandStartedWarning

# Encoder tests start Wand in this process first; that warning is tested on its own, in a fresh process.
pytestmark = pytest.mark.filterwarnings("ignore::magicktune.errors.WandStartedWarning")


@pytest.fixture
def clean_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith("MAGICK_"):
            monkeypatch.delenv(name)


def magick_variables():
    return {name: value for name, value in os.environ.items() if name.startswith("MAGICK_")}


def test_limits_are_in_force_inside_and_gone_after(im, clean_environment):
    before = magick_variables()
    stock = im.resources()
    with limits.limits(memory="10GB", disk="50GB", list_length=3001) as applied:
        inside = im.resources()
        # IM7 prints limits to 6 significant digits (10^10 as 9.31323GiB): equal as printed, not to the byte
        assert units.same_limit(inside["memory"], 10**10)
        assert units.same_limit(inside["disk"], 50 * 10**9)
        assert inside["list-length"] == 3001
        assert applied.policy_dir is not None and (applied.policy_dir / "policy.xml").exists()
        policy_dir = applied.policy_dir
    assert magick_variables() == before
    assert not policy_dir.exists()
    assert im.resources() == stock


def test_uncapped_resources_go_through_the_environment_only(im, clean_environment):
    caps = magick.resource_caps(im.policy_rules())
    uncapped = next(name for name in ("list-length", "time", "thread", "file") if name not in caps)
    kind = units.RESOURCE_KINDS[uncapped]
    value = {"count": 1, "seconds": 60}[kind]
    with limits.limits(**{uncapped.replace("-", "_"): value}) as applied:
        assert applied.via_environment == [uncapped]
        assert applied.policy_dir is None
        assert os.environ[environment.limit_variable(uncapped)] == str(value)
        assert im.resources()[uncapped] == value


def test_the_override_raises_what_the_system_policy_caps(im, clean_environment):
    caps = magick.resource_caps(im.policy_rules())
    if "memory" not in caps:
        pytest.skip("no policy caps memory on this machine")
    with limits.limits(memory="4GiB") as applied:
        assert "memory" in applied.via_policy
        assert im.resources()["memory"] == 4 * 2**30
    # The folk advice, for contrast: the variable alone cannot raise a capped limit.
    env = {**os.environ, "MAGICK_MEMORY_LIMIT": "4GiB"}
    assert im.resources(env=env)["memory"] == caps["memory"][0]


def test_unlimited_holds_for_every_kind(im, clean_environment, tmp_path):
    """ "unlimited" reaches ImageMagick as no limit, and ImageMagick still makes pixel caches under it."""
    with limits.limits(
        memory="unlimited",
        map="unlimited",
        disk="unlimited",
        time="unlimited",
        file="unlimited",
        list_length="unlimited",
    ):
        in_force = im.resources()
        assert [in_force[name] for name in ("memory", "map", "disk", "time", "file", "list-length")] == [None] * 6
        im.run(["rose:", "-resize", "300%", str(tmp_path / "rose.png")])


def test_a_cap_named_in_another_case_is_raised_too(im, clean_environment, monkeypatch, tmp_path):
    """ImageMagick applies name="List-Length"; limits() must restate it in its override, or IM stays at 50."""
    (tmp_path / "policy.xml").write_text(
        '<policymap><policy domain="resource" name="List-Length" value="50"/></policymap>'
    )
    monkeypatch.setenv("MAGICK_CONFIGURE_PATH", str(tmp_path))
    assert im.resources()["list-length"] == 50
    with limits.limits(list_length=3001) as applied:
        assert applied.via_policy == ["list-length"]
        assert im.resources()["list-length"] == 3001


def test_nested_limits_restore_in_order(im, clean_environment):
    with limits.limits(memory="8GB", list_length=100):
        outer = magick_variables()
        with limits.limits(memory="2GB"):
            assert units.same_limit(im.resources()["memory"], 2 * 10**9)
            assert im.resources()["list-length"] == 100
        assert magick_variables() == outer
        assert units.same_limit(im.resources()["memory"], 8 * 10**9)
    assert magick_variables() == {}


def test_environment_is_restored_after_an_exception(clean_environment, monkeypatch):
    monkeypatch.setenv("MAGICK_MEMORY_LIMIT", "1GB")
    monkeypatch.setenv("MAGICK_CONFIGURE_PATH", "/nonexistent-magicktune-test")
    before = magick_variables()
    with pytest.raises(RuntimeError, match="boom"):
        with limits.limits(memory="3GB", disk="9GB") as applied:
            raise RuntimeError("boom")
    assert magick_variables() == before
    assert not applied.policy_dir.exists()


def test_a_warning_raised_as_an_error_undoes_everything(clean_environment, monkeypatch, tmp_path):
    """With warnings as errors, the 'did not take effect' warning must not leave variables or a policy dir behind."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", WandStartedWarning)
        with pytest.raises(limits.LimitsWarning, match="thread limit 4096 did not take effect"):
            with limits.limits(thread=4096, memory="1GiB"):
                pass
    assert magick_variables() == {}
    assert list(tmp_path.iterdir()) == []


def test_bad_values_fail_before_anything_changes(clean_environment):
    with pytest.raises(ValueError, match="memory: size '10 parsecs' not understood"):
        with limits.limits(memory="10 parsecs"):
            pass
    with pytest.raises(ValueError, match="not a directory"):
        with limits.limits(memory="1GB", temporary_path="/nonexistent/magicktune"):
            pass
    assert magick_variables() == {}


def test_unlimited_throttle_is_refused_as_a_stall(clean_environment):
    """Throttle is a pause ImageMagick takes, so 'unlimited' would hang every convert."""
    with pytest.raises(ValueError, match="throttle: throttle 'unlimited'.* use 0 for no pause"):
        with limits.limits(throttle="unlimited"):
            pass
    assert magick_variables() == {}


def test_disk_percent_is_of_the_free_space_in_the_expanded_temporary_path(clean_environment, monkeypatch, tmp_path):
    import shutil

    monkeypatch.setenv("HOME", str(tmp_path))
    applied = limits.apply(disk="50%", temporary_path="~", verify=False)
    limits.restore(applied)
    assert applied.temporary_path == str(tmp_path.resolve())
    assert applied.requested["disk"] == pytest.approx(shutil.disk_usage(tmp_path).free / 2, rel=0.01)
    with pytest.raises(ValueError, match="temporary_path '/nonexistent/magicktune' is not a directory"):
        limits.apply(disk="50%", temporary_path="/nonexistent/magicktune")


def test_temporary_path_reaches_imagemagick(tmp_path, im, clean_environment):
    with limits.limits(temporary_path=tmp_path) as applied:
        assert os.environ["MAGICK_TEMPORARY_PATH"] == str(tmp_path.resolve())
        assert applied.temporary_path == str(tmp_path.resolve())


def test_percent_of_ram(im, clean_environment):
    import psutil

    with limits.limits(memory="10%") as applied:
        assert applied.requested["memory"] == round(psutil.virtual_memory().total / 10)


def test_a_limit_beyond_the_machine_warns(clean_environment):
    import psutil

    with pytest.warns(limits.LimitsWarning, match="more than this machine's"):
        with limits.limits(memory=psutil.virtual_memory().total * 2):
            pass


def test_a_frame_size_imagemagick_prints_rounded_does_not_warn(im, clean_environment):
    """IM6 prints width 1366 as 1.37KP: the plan's exact frame sizes must not read as 'did not take effect'."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", limits.LimitsWarning)
        warnings.simplefilter("ignore", WandStartedWarning)
        with limits.limits(width=1366, height=769, area=1366 * 769):
            assert units.same_limit(im.resources()["width"], 1366, "pixels")


def test_a_limit_imagemagick_clamps_warns(clean_environment):
    with pytest.warns(limits.LimitsWarning, match="thread limit 4096 did not take effect"):
        with limits.limits(thread=4096):
            pass


def test_warns_when_wand_has_started_in_this_process():
    code = (
        "import warnings; warnings.simplefilter('error')\n"
        "from wand.image import Image\n"
        "Image(width=1, height=1).close()\n"
        "import magicktune\n"
        "try:\n"
        "    with magicktune.limits(list_length=10): pass\n"
        "except magicktune.LimitsWarning as w: print('warned:', w)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("warned: Wand has started ImageMagick in this process")


def test_importing_magicktune_does_not_start_wand():
    code = "import magicktune, sys; from wand.api import library; print(bool(library.IsMagickWandInstantiated()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_override_keeps_every_security_rule_in_force(im, clean_environment, tmp_path):
    system_rules = [r for r in im.policy_rules() if r.is_security_rule and not r.path.startswith("[")]
    if not system_rules:
        pytest.skip("the system policy has no security rules to keep")
    listing = tmp_path / "list.txt"
    listing.write_text("rose:\n")
    denied_at = any(r.domain == "path" and r.pattern == "@*" and r.rights.lower() == "none" for r in system_rules)
    with limits.limits(memory="8GB", disk="20GB", area="1GP"):
        rules = im.policy_rules()
        kept = [r for r in rules if r.is_security_rule and not r.path.startswith("[")]
        assert [(r.domain, r.rights, r.pattern, r.path) for r in kept] == [
            (r.domain, r.rights, r.pattern, r.path) for r in system_rules
        ]
        if denied_at:
            result = im.run([f"@{listing}", "null:"], check=False)
            assert result.returncode != 0 and "security policy" in result.stderr
