import json
import os
import subprocess
import sys

import pytest

from magicktune import cli, magick


def run(*args, env=None):
    """Run the real command in a fresh interpreter, as a user would."""
    return subprocess.run([sys.executable, "-m", "magicktune.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_apply_reports_the_seed_job():
    result = run("apply", "--frames", "3000", "--size", "432x720", "--fps", "30")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "3000 frames of 432x720 at 30 fps: 3.73 GB of raw stream" in out
    assert "7.46 GB while reading, 9.33 GB while writing GIF; list length at least 3001" in out
    assert "with magicktune.limits(" in out


def test_apply_json_is_the_plan():
    result = run("apply", "--frames", "3000", "--size", "432x720", "--json")
    plan = json.loads(result.stdout)
    assert plan["job"]["stream_bytes"] == 3_732_480_000
    assert plan["limits"]["list-length"] == 3001
    assert plan["engine"] == "magicktune"


def test_apply_from_a_stream_file(tmp_path):
    stream = tmp_path / "x.rgba"
    stream.write_bytes(bytes(10 * 20 * 4 * 7))
    plan = json.loads(run("apply", "--stream", str(stream), "--size", "10x20", "--json").stdout)
    assert plan["job"]["frames"] == 7


def test_apply_policy_format_writes_a_policy_imagemagick_loads(tmp_path):
    result = run("apply", "--frames", "700", "--size", "432x720", "--format", "policy", "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "policy.xml").exists()
    plan = json.loads(run("apply", "--frames", "700", "--size", "432x720", "--json").stdout)
    in_force = magick.find().resources(env={**os.environ, "MAGICK_CONFIGURE_PATH": str(tmp_path)})
    assert in_force["list-length"] == 701
    assert in_force["memory"] == plan["limits"]["memory"]


def test_shell_format_is_evaluable(tmp_path):
    script = f'eval "$({sys.executable} -m magicktune.cli apply --frames 700 --size 432x720 --format shell ' \
             f'--output {tmp_path})" && identify -list resource'
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    limits = magick.parse_list_resource(result.stdout)
    assert limits["list-length"] == 701
    assert limits["memory"] >= 700 * 432 * 720 * magick.find().bytes_per_pixel


def test_profile_names_the_files_that_set_each_limit():
    data = json.loads(run("profile", "--json").stdout)
    assert data["imagemagick"]["major"] in (6, 7)
    for name, entry in data["limits"].items():
        if entry["set_by"] is not None:
            assert entry["set_by"] in data["policy_files"]
    text = run("profile").stdout
    assert "limits:" in text and "machine:" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["apply", "--frames", "3", "--size", "43x"], "size '43x' not understood: use WIDTHxHEIGHT"),
        (["apply", "--frames", "3", "--size", "4x4", "--fps", "0"], "fps must be above 0"),
        (["apply", "--stream", "/nonexistent.rgba", "--size", "4x4"], "No such file"),
        (["--imagemagick", "/bin/false", "profile"], "apt-get install imagemagick"),
        (["encode", "--size", "4x4", "--fps", "10", "/nonexistent.rgba", "/tmp/x.gif"], "No such file"),
    ],
)
def test_errors_are_one_line_without_traceback(args, message):
    result = run(*args)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_usage_errors_exit_2():
    result = run("apply", "--size", "4x4")
    assert result.returncode == 2 and "--frames" in result.stderr


def test_main_returns_exit_codes_in_process(capsys):
    assert cli.main(["apply", "--frames", "10", "--size", "8x8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["job"]["frames"] == 10
