import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import magicktune
from magicktune import cli, magick, policy, profile, units


def run(*args, env=None):
    """Run the real command in a fresh interpreter, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "magicktune.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_apply_reports_the_seed_job():
    result = run("apply", "--frames", "3000", "--size", "432x720", "--fps", "30")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "3000 frames of 432x720 at 30 fps: 3.73 GB of raw stream" in out
    # 8 bytes a pixel on Q16 (7.46 GB, 9.33 GB); Q16-HDRI stores floats, 16 (14.9 GB, 18.7 GB).
    read = 432 * 720 * 3000 * magick.find().bytes_per_pixel
    assert f"{units.human(read)} while reading, {units.human(read * 5 // 4)} while writing GIF" in out
    assert "list length at least 3001" in out
    assert "with magicktune.limits(" in out


def test_apply_json_is_the_plan():
    result = run("apply", "--frames", "3000", "--size", "432x720", "--json")
    plan = json.loads(result.stdout)
    assert plan["job"]["stream_bytes"] == 3_732_480_000
    assert plan["limits"]["list-length"] == 3001
    assert plan["engine"] == "magicktune"


def test_apply_sizes_for_optimize_layers_when_asked():
    plain = json.loads(run("apply", "--frames", "100", "--size", "432x720", "--optimize-layers", "no", "--json").stdout)
    layered = json.loads(
        run("apply", "--frames", "100", "--size", "432x720", "--optimize-layers", "yes", "--json").stdout
    )
    assert plain["cache"]["peak_bytes"] == plain["cache"]["gif_bytes"]
    assert layered["cache"]["peak_bytes"] == layered["cache"]["gif_bytes"] + layered["cache"]["read_bytes"]
    assert layered["limits"]["memory"] > plain["limits"]["memory"]


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
    assert units.same_limit(in_force["memory"], plan["limits"]["memory"])  # IM7 prints 6 significant digits


def test_apply_policy_format_says_when_a_policy_alone_cannot_grant_the_plan(tmp_path):
    """A policy only lowers ImageMagick's built-in limits (map = 2 x RAM): a bigger plan needs the variable too."""
    import psutil

    frames = 3 * psutil.virtual_memory().total // (432 * 720 * 10)
    result = run(
        "apply",
        "--frames",
        str(frames),
        "--size",
        "432x720",
        "--optimize-layers",
        "no",
        "--format",
        "policy",
        "--output",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    note = re.search(r"also export ((?:MAGICK_\w+=\S+ ?)+), or use --format shell$", result.stderr.strip())
    assert note and "with this one alone ImageMagick runs with map" in result.stderr
    exports = dict(pair.split("=", 1) for pair in note.group(1).split())
    env = {**os.environ, "MAGICK_CONFIGURE_PATH": str(tmp_path)}
    env.pop("MAGICK_MAP_LIMIT", None)
    im = magick.find()
    planned = next(r.value for r in policy.read(tmp_path / "policy.xml") if r.name == "map")
    assert im.resources(env=env)["map"] < units.parse(planned)
    raised = im.resources(env={**env, "MAGICK_MAP_LIMIT": exports["MAGICK_MAP_LIMIT"]})["map"]
    assert units.same_limit(raised, units.parse(planned))
    small = run("apply", "--frames", "70", "--size", "432x720", "--format", "policy", "--output", str(tmp_path))
    assert small.returncode == 0
    # IM6 takes the planned threads (one a core) from the policy; IM7 starts with cores-1, which a policy only lowers.
    expected = "" if im.resources(env=env)["thread"] >= os.cpu_count() else "MAGICK_THREAD_LIMIT="
    assert (small.stderr == "") if not expected else (expected in small.stderr and "MAGICK_MAP" not in small.stderr)


def test_shell_format_is_evaluable(tmp_path):
    script = (
        f'eval "$({sys.executable} -m magicktune.cli apply --frames 700 --size 432x720 --format shell '
        f'--output {tmp_path})" && identify -list resource'
    )
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    limits = magick.parse_list_resource(result.stdout)
    assert limits["list-length"] == 701
    assert limits["memory"] >= 700 * 432 * 720 * magick.find().bytes_per_pixel


def test_default_policy_dirs_are_named_by_their_content(tmp_path):
    """Two plans of the same shape but different limits must not overwrite each other's policy."""
    written = {}
    for layers in ("no", "yes"):
        out = run(
            "apply",
            "--frames",
            "700",
            "--size",
            "432x720",
            "--optimize-layers",
            layers,
            "--format",
            "shell",
            env={"XDG_CACHE_HOME": str(tmp_path)},
        ).stdout
        found = re.search(r'^export MAGICK_CONFIGURE_PATH=([^"]+)"', out, re.MULTILINE)
        if found is None:
            pytest.skip("no policy caps a planned resource here, so no override is written")
        memory = re.search(r"^export MAGICK_MEMORY_LIMIT=(\S+)$", out, re.MULTILINE).group(1)
        written[layers] = (Path(found.group(1)), memory)
    (no_dir, _), (yes_dir, _) = written["no"], written["yes"]
    assert no_dir != yes_dir and no_dir.parent == yes_dir.parent == tmp_path / "magicktune" / "policy"
    for directory, memory in written.values():
        value = next(r.value for r in policy.read(directory / "policy.xml") if r.name == "memory")
        assert value == memory


def test_profile_names_the_files_that_set_each_limit():
    data = json.loads(run("profile", "--json").stdout)
    assert data["imagemagick"]["major"] in (6, 7)
    sources = {entry["set_by"] for entry in data["limits"].values()}
    files = {source for source in sources if source.startswith("/")}
    assert files <= set(data["policy_files"])
    if data["policy_files"]:
        assert files, "a policy file is loaded but no limit is attributed to it"
    text = run("profile").stdout
    assert "limits:" in text and "machine:" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["apply", "--frames", "3", "--size", "43x"], "size '43x' not understood: use WIDTHxHEIGHT"),
        (["apply", "--frames", "3", "--size", "4x4", "--fps", "0"], "fps must be at least 0.00153"),
        (["apply", "--stream", "/nonexistent.rgba", "--size", "4x4"], "No such file"),
        (["apply", "--stream", "/tmp", "--size", "4x4"], "/tmp is not a regular file"),
        (
            ["apply", "--frames", "3", "--size", "4x4", "--temp-dir", "/etc/passwd"],
            "--temp-dir '/etc/passwd' is not a directory",
        ),
        (
            ["apply", "--frames", "3", "--size", "4x4", "--temp-dir", "/nonexistent"],
            "--temp-dir '/nonexistent' is not a directory",
        ),
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


def test_policy_generate_lists_presets():
    result = run("policy", "generate", "--list")
    assert result.returncode == 0
    assert {line.split(":")[0] for line in result.stdout.splitlines()} >= {"animation", "batch", "locked-down"}


@pytest.mark.parametrize("preset", ["animation", "batch", "locked-down"])
def test_policy_generate_then_check_loads_into_imagemagick(preset, tmp_path):
    generated = run("policy", "generate", preset, "-o", str(tmp_path / "override"))
    assert generated.returncode == 0, generated.stderr
    written = tmp_path / "override" / "policy.xml"
    checked = run("policy", "check", str(written))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "0 error(s)" in checked.stdout


def test_policy_generate_overrides_a_preset_value_and_imagemagick_obeys(tmp_path):
    result = run("policy", "generate", "animation", "--memory", "3GB", "--list-length", "3001", "-o", str(tmp_path))
    assert result.returncode == 0, result.stderr
    in_force = magick.find().resources(env={**os.environ, "MAGICK_CONFIGURE_PATH": str(tmp_path)})
    assert in_force["list-length"] == 3001
    assert units.same_limit(in_force["memory"], 3 * 10**9)  # IM7 prints 2.79397GiB


def test_policy_check_flags_a_trap_and_exits_1(tmp_path):
    bad = tmp_path / "policy.xml"
    bad.write_text('<policymap><policy domain="resource" name="memory" value="2gb"/></policymap>')
    result = run("policy", "check", str(bad))
    assert result.returncode == 1
    assert "read by ImageMagick as 2 B" in result.stdout
    as_json = run("policy", "check", str(bad), "--json")
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["errors"] >= 1
    assert any(f["level"] == "error" and "read by ImageMagick as 2 B" in f["message"] for f in report["findings"])


def test_policy_check_reads_the_system_policy_as_imagemagick_does():
    system = "/etc/ImageMagick-6/policy.xml"
    if not os.path.exists(system):
        pytest.skip("no Debian IM6 policy here")
    result = run("policy", "check", system)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 error(s)" in result.stdout


def test_policy_show_names_sources():
    result = run("policy", "show")
    assert result.returncode == 0 and "Resources:" in result.stdout
    shown = json.loads(run("policy", "show", "--json").stdout)
    im = magick.find()
    printed = im.resources()  # IM7 rounds to 6 significant digits; show gives the exact value where it knows it
    for name, entry in shown["limits"].items():
        assert units.same_limit(entry["value"], printed[name], units.RESOURCE_KINDS[name]), name
    system_rules = [r for r in im.policy_rules() if r.is_security_rule and not r.path.startswith("[")]
    assert [(r["domain"], r["pattern"], r["file"]) for r in shown["security_rules"]] == [
        (r.domain, r.pattern, r.path) for r in system_rules
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--memory", "10 parsecs"], "--memory: size '10 parsecs' not understood"),
        (["--temporary-path", "/nonexistent"], "--temporary-path '/nonexistent' is not a directory"),
        (["batch", "--temporary-path", "/nonexistent"], "--temporary-path '/nonexistent' is not a directory"),
    ],
)
def test_policy_generate_errors_name_the_option(tmp_path, args, message):
    result = run(
        "policy",
        "generate",
        *args,
        "-o",
        str(tmp_path / "out"),
        env={"MAGICKTUNE_CONFIG": str(tmp_path / "absent.yaml")},
    )
    assert result.returncode == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "config.yaml" not in result.stderr and ".yaml" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["policy", "generate", "-o"],
        ["apply", "--frames", "7", "--size", "8x8", "--format", "policy", "--output"],
        ["apply", "--frames", "7", "--size", "8x8", "--format", "shell", "--output"],
    ],
)
def test_an_output_imagemagick_would_never_load_is_refused(tmp_path, command):
    result = run(*command, str(tmp_path / "limits.xml"))
    assert result.returncode == 1 and result.stdout == ""
    assert "ImageMagick loads only files named policy.xml" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_the_configure_path_hint_is_absolute(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "magicktune.cli", "policy", "generate", "-o", "override"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert f"export MAGICK_CONFIGURE_PATH={tmp_path / 'override'}" in result.stdout


def test_no_system_rules_without_standalone_is_refused():
    result = run("policy", "generate", "--no-system-rules")
    assert result.returncode == 1 and "only applies to --standalone" in result.stderr


@pytest.mark.parametrize("given", [".", "~"])
def test_apply_makes_the_temp_dir_absolute(tmp_path, given):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "magicktune.cli",
            "apply",
            "--frames",
            "10",
            "--size",
            "8x8",
            "--temp-dir",
            given,
            "--format",
            "shell",
            "--output",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert f"export MAGICK_TEMPORARY_PATH={tmp_path.resolve()}\n" in result.stdout


def test_apply_takes_the_temp_dir_from_the_user_config(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(f"temporary-path: {scratch}\n")
    plan = json.loads(
        run("apply", "--frames", "10", "--size", "8x8", "--json", env={"MAGICKTUNE_CONFIG": str(config)}).stdout
    )
    assert plan["temporary_path"] == str(scratch)


def test_encode_a_raw_stream(tmp_path):
    import numpy as np
    from PIL import Image

    frames = np.zeros((6, 20, 30, 4), np.uint8)
    frames[..., 3] = 255
    for i in range(6):
        frames[i, :, i * 5 : (i + 1) * 5, 0] = 255
    source = tmp_path / "frames.rgba"
    source.write_bytes(frames.tobytes())
    output = tmp_path / "out.gif"
    result = run("encode", "--size", "30x20", "--fps", "30", str(source), str(output), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["frames"] == 6 and summary["bytes"] == output.stat().st_size
    with Image.open(output) as gif:
        assert gif.size == (30, 20)
        durations = [gif.seek(i) or gif.info["duration"] for i in range(gif.n_frames)]
    assert sum(durations) == 200  # 6 frames at 30 fps: 3,3,4,3,3,4 cs


@pytest.mark.parametrize("option", [["--quality", "60"], ["--tolerance", "2"], ["--quantizer", "imagemagick"]])
def test_encode_takes_quality_and_quantizer(tmp_path, option):
    import numpy as np

    frames = np.zeros((4, 20, 30, 4), np.uint8)
    frames[..., 3] = 255
    for i in range(4):
        frames[i, :, i * 5 : (i + 1) * 5, 1] = 200
    source = tmp_path / "frames.rgba"
    source.write_bytes(frames.tobytes())
    output = tmp_path / "out.gif"
    result = run("encode", "--size", "30x20", "--fps", "30", *option, str(source), str(output), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == 4 and output.read_bytes().startswith(b"GIF89a")


def test_encode_from_stdin(tmp_path):
    frame = bytes([0, 0, 255, 255]) * (8 * 8)
    output = tmp_path / "out.gif"
    result = subprocess.run(
        [sys.executable, "-m", "magicktune.cli", "encode", "--size", "8x8", "--fps", "10", "-", str(output)],
        input=frame * 3,
        capture_output=True,
    )
    assert result.returncode == 0, result.stderr
    assert output.read_bytes().startswith(b"GIF89a")


def test_encode_a_truncated_stream_leaves_nothing(tmp_path):
    source = tmp_path / "cut.rgba"
    source.write_bytes(bytes(8 * 8 * 4 * 2 + 5))
    output = tmp_path / "out.gif"
    result = run("encode", "--size", "8x8", "--fps", "10", str(source), str(output))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert not output.exists() and list(tmp_path.iterdir()) == [source]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--loop", "-1"], "loop must be"),
        (["--fps", "inf"], "fps must be"),
        (["--colors", "1"], "colors must be"),
        (["--quality", "101"], "quality must be"),
    ],
)
def test_encode_refuses_bad_options_in_one_line(tmp_path, option, message):
    source = tmp_path / "frames.rgba"
    source.write_bytes(bytes(8 * 8 * 4 * 2))
    result = run("encode", "--size", "8x8", "--fps", "10", *option, str(source), str(tmp_path / "out.gif"))
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"magicktune: error: {message}") and result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == [source]


def test_encode_to_stdout_keeps_the_gif_clean(tmp_path):
    frame = bytes([0, 255, 0, 255]) * (8 * 8)
    source = tmp_path / "frames.rgba"
    source.write_bytes(frame * 2)
    result = subprocess.run(
        [sys.executable, "-m", "magicktune.cli", "encode", "--size", "8x8", "--fps", "10", str(source), "-"],
        capture_output=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"GIF89a") and result.stdout.endswith(b"\x3b")
    assert b"wrote -" in result.stderr


def _evaluated(shell_text, cwd):
    """What `eval "$(magicktune apply --format shell ...)"` does with this text."""
    return subprocess.run(["bash", "-c", 'eval "$1"', "_", shell_text], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize("via", ["--temp-dir", "TMPDIR", "MAGICK_TEMPORARY_PATH", "config"])
def test_a_temp_dir_with_a_newline_never_reaches_the_shell(tmp_path, via):
    pwned = tmp_path / "PWNED"
    evil = tmp_path / "evil\ntouch PWNED\n#"  # eval runs in tmp_path
    evil.mkdir()
    # A job that cannot finish here, so the plan's first note names the temp dir.
    args = ["apply", "--frames", "1000000", "--size", "1000x1000", "--format", "shell", "--output", str(tmp_path)]
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "MAGICKTUNE_CONFIG": str(tmp_path / "none.yaml")}
    if via == "--temp-dir":
        args += ["--temp-dir", str(evil)]
    elif via == "config":
        config = tmp_path / "config.yaml"
        config.write_text(f"temporary-path: {json.dumps(str(evil))}\n")  # a JSON string is a YAML string
        env["MAGICKTUNE_CONFIG"] = str(config)
    else:
        env[via] = str(evil)
    result = run(*args, env=env)
    _evaluated(result.stdout, tmp_path)
    assert not pwned.exists(), f"eval ran a command from the temp dir's name: {result.stdout}"
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "holds a control character ('\\n')" in result.stderr


def test_shell_output_keeps_whatever_a_note_holds_inside_its_comment(tmp_path):
    pwned = tmp_path / "PWNED"
    plan = profile.plan(profile.Job(8, 8, 10))
    plan.warnings = [f"a note\ntouch {pwned}\n#"]
    text = cli.shell_exports(plan, magick.find(), str(tmp_path / "policy"))
    result = _evaluated(text, tmp_path)
    assert result.returncode == 0, result.stderr
    assert not pwned.exists()
    assert all(line.startswith(("# magicktune: ", "export ")) for line in text.splitlines()), text
    assert f"a note\\ntouch {pwned}\\n#" in text.splitlines()[0]


def test_temp_dirs_with_control_characters_are_refused_from_the_api(tmp_path):
    evil = tmp_path / "tab\there"
    evil.mkdir()
    with pytest.raises(ValueError, match="holds a control character"):
        profile.checked_temporary_path(evil)
    with pytest.raises(ValueError, match="holds a control character"), magicktune.limits(temporary_path=evil):
        pass


def test_policy_generate_says_what_a_policy_alone_cannot_give_and_the_exports_give_it(tmp_path):
    """IM7 takes time only from MAGICK_TIME_LIMIT and starts with cores-1 threads, which a policy only lowers: the
    locked-down (2 threads, 2 minutes) and batch (10 minutes) presets need exports there. IM6 takes both from the
    policy, so there the note may name nothing; either way, the policy plus the exports it names give every value."""
    for preset in ("locked-down", "batch"):
        directory = tmp_path / preset
        result = run("policy", "generate", preset, "--output", str(directory))
        assert result.returncode == 0, result.stderr
        exports = re.search(r"also export ((?:MAGICK_\w+_LIMIT=\S+ ?)+) wherever this policy is used$", result.stderr)
        env = {name: value for name, value in os.environ.items() if not name.startswith("MAGICK_")}
        env["MAGICK_CONFIGURE_PATH"] = str(directory)
        im = magick.find()
        alone = im.resources(env=env)
        if exports:
            env.update(pair.split("=", 1) for pair in exports.group(1).split())
        else:
            assert result.stderr == ""
        in_force = im.resources(env=env)
        for name, wanted in policy.load_preset(preset).resources.items():
            assert units.same_limit(in_force[name], wanted, units.RESOURCE_KINDS[name]), (name, in_force[name])
            if not units.same_limit(alone[name], wanted, units.RESOURCE_KINDS[name]):
                assert exports and f"MAGICK_{name.upper().replace('-', '_')}_LIMIT=" in exports.group(1)


def test_policy_generate_to_stdout_keeps_the_policy_clean_and_notes_on_stderr():
    result = run("policy", "generate", "locked-down")
    assert result.returncode == 0 and result.stdout.startswith("<?xml")
    assert "note" not in result.stdout and (result.stderr == "" or result.stderr.startswith("magicktune: note:"))


def test_profile_names_the_wand_library_and_says_when_it_is_another_build():
    from magicktune import wandlib

    data = json.loads(run("profile", "--json").stdout)
    library, label, major, depth, hdri = wandlib.loaded_build()
    assert data["wand"] == {"library": library, "label": label, "major": major, "build": data["wand"]["build"]}
    assert data["imagemagick"]["build"] in label
    text = run("profile")
    assert f"wand: {label}, {library}" in text.stdout
    assert (data["mismatch"] is None) == ("warning" not in text.stderr)
    im = magick.find()
    assert wandlib.mismatch(im) == data["mismatch"]
    other = dataclasses.replace(im, hdri=not im.hdri)
    assert "but Wand loaded" in wandlib.mismatch(other) and "WAND_MAGICK_LIBRARY_SUFFIX" in wandlib.mismatch(other)
