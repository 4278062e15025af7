import os
import stat

import psutil
import pytest

from magicktune import environment, magick, policy, units


@pytest.fixture
def env():
    """The environment without MAGICK_* variables, so only policy files decide."""
    return {name: value for name, value in os.environ.items() if not name.startswith("MAGICK_")}


def override_env(env, directory):
    return {**env, "MAGICK_CONFIGURE_PATH": str(directory)}


def security_rules(rules):
    return {
        (r.path, r.domain, r.rights, r.pattern)
        for r in rules
        if r.domain in policy.SECURITY_DOMAINS and r.rights is not None
    }


def system_security(im, env):
    return [r for r in policy.system_policy(im, env) if r.domain in policy.SECURITY_DOMAINS]


def close(got, wanted):
    if got is None or wanted is None:
        return got == wanted
    return abs(got - wanted) <= wanted * 1e-5


@pytest.mark.parametrize("name", ["animation", "batch", "locked-down"])
@pytest.mark.parametrize("standalone", [False, True])
def test_each_preset_loads_into_imagemagick_with_its_values(im, env, tmp_path, name, standalone):
    preset = policy.load_preset(name)
    text = policy.generate(preset, standalone=standalone, system_rules=policy.system_policy(im, env))
    policy.write(tmp_path, text, private=True)
    in_force = im.resources(env=override_env(env, tmp_path))
    for resource, wanted in preset.resources.items():
        if im.major >= 7 and resource in ("time", "thread"):
            # IM6 takes both from the policy. IM7 takes time only from MAGICK_TIME_LIMIT (the policy caps it) and
            # starts with cores-1 threads, which a policy only lowers: `policy generate` names the exports that
            # give them (test_cli's test_policy_generate_says_what_a_policy_alone_cannot_give...), and with them:
            variables = {environment.limit_variable(resource): units.to_magick(wanted, units.RESOURCE_KINDS[resource])}
            exported = im.resources(env={**override_env(env, tmp_path), **variables})
            assert close(exported[resource], wanted), (resource, exported[resource], wanted)
            continue
        assert close(in_force[resource], wanted), (resource, in_force[resource], wanted)
    loaded = im.policy_rules(env=override_env(env, tmp_path))
    ours = {(r.domain, r.pattern) for r in loaded if r.path == str(tmp_path / "policy.xml") and r.rights}
    assert {(r.domain, r.pattern) for r in preset.rules if r.rights} <= ours
    assert not [f for f in policy.check(tmp_path / "policy.xml", im, standalone=standalone) if f.level == "error"]


def test_percentages_resolve_against_this_machine():
    preset = policy.load_preset("animation")
    ram = psutil.virtual_memory().total
    assert preset.resources["memory"] == round(ram * 0.75)
    assert preset.resources["map"] == ram
    assert preset.resources["list-length"] is None


def indirect_read(im, env, tmp_path):
    """Run `convert @list.txt out.png`, which Debian's path @* rule refuses."""
    frame = tmp_path / "frame.gif"
    if not frame.exists():
        im.run(["-size", "4x4", "xc:red", str(frame)], env=env)
        (tmp_path / "list.txt").write_text(f"{frame}\n")
    return im.run([f"@{tmp_path / 'list.txt'}", str(tmp_path / "out.png")], env=env, check=False)


def test_override_keeps_every_system_security_rule_in_force(im, env, tmp_path):
    before = security_rules(im.policy_rules(env=env))
    denies_indirect = "security policy" in indirect_read(im, env, tmp_path).stderr
    for name in policy.available_presets():
        directory = tmp_path / name
        policy.write(
            directory / "policy.xml",
            policy.generate(policy.load_preset(name), system_rules=policy.system_policy(im, env)),
        )
        after = security_rules(im.policy_rules(env=override_env(env, directory)))
        assert before <= after, name
        if denies_indirect:
            assert "security policy" in indirect_read(im, override_env(env, directory), tmp_path).stderr, name


def test_an_override_that_grants_cannot_loosen_a_system_denial(im, env, tmp_path):
    rules = policy.system_policy(im, env)
    if not any(r.domain == "path" and r.pattern == "@*" and r.rights == "none" for r in rules):
        pytest.skip("the system policy here does not deny indirect @file reads")
    hostile = tmp_path / "hostile.yaml"
    hostile.write_text(
        "description: tries to allow @file\nresources: {memory: 1GiB}\n"
        "rules:\n  - {domain: path, rights: read|write, pattern: '@*'}\n"
    )
    directory = tmp_path / "override"
    policy.write(directory / "policy.xml", policy.generate(policy.load_preset(hostile), system_rules=rules))
    result = indirect_read(im, override_env(env, directory), tmp_path)
    assert result.returncode != 0
    assert "security policy" in result.stderr
    findings = policy.check(directory / "policy.xml", im)
    assert not [f for f in findings if f.level == "error"]
    assert any("later system rule decides" in f.message for f in findings)


def test_locked_down_refuses_pipes_as_its_description_says(im, env, tmp_path):
    preset = policy.load_preset("locked-down")
    assert '"-"' in preset.description
    policy.write(tmp_path, policy.generate(preset, system_rules=policy.system_policy(im, env)))
    result = im.run(["-size", "2x2", "xc:red", "rgba:-"], env=override_env(env, tmp_path), check=False)
    assert "security policy" in result.stderr


def test_standalone_restates_every_system_security_rule_last(im, env, tmp_path):
    system = system_security(im, env)
    text = policy.generate(
        policy.load_preset("locked-down"), standalone=True, system_rules=policy.system_policy(im, env)
    )
    written = policy.write(tmp_path / "policy.xml", text)
    rules = policy.read(written)
    tail = [(r.domain, r.rights, r.pattern) for r in rules[-len(system) :]] if system else []
    assert tail == [(r.domain, r.rights, r.pattern) for r in system]
    names = {(r.domain, r.name) for r in rules if r.domain == "resource"}
    assert {("resource", name) for name in magick.resource_caps(policy.system_policy(im, env))} <= names


def test_standalone_without_system_rules_is_flagged(im, env, tmp_path):
    if not system_security(im, env):
        pytest.skip("no system security rules here")
    text = policy.generate(
        policy.load_preset("batch"),
        standalone=True,
        keep_system_rules=False,
        system_rules=policy.system_policy(im, env),
    )
    written = policy.write(tmp_path / "policy.xml", text)
    errors = [f for f in policy.check(written, im, standalone=True) if f.level == "error"]
    assert errors and all("weakens" in f.message for f in errors)


def test_patterns_match_case_sensitively_as_imagemagick_does(im, env, tmp_path):
    """IM6 lets `convert rose: x.gif` through a rule for "gif"; only "GIF" blocks it."""
    for pattern, blocked in (("gif", False), ("GIF", True)):
        directory = tmp_path / pattern
        rule = f'<policy domain="coder" rights="none" pattern="{pattern}"/>'
        policy.write(directory / "policy.xml", f"<policymap>{rule}</policymap>")
        result = im.run(["rose:", str(tmp_path / "x.gif")], env=override_env(env, directory), check=False)
        assert ("security policy" in result.stderr) == blocked
        rules = policy.read(directory / "policy.xml")
        assert (policy.rights.decision(rules, "coder", "GIF") == frozenset()) == blocked
    lowercase = policy.check(tmp_path / "gif" / "policy.xml", im)
    assert any(f.level == "warning" and "write 'GIF'" in f.message for f in lowercase)


def test_standalone_check_sees_a_lowercase_restatement_does_not_deny(im, env, tmp_path):
    rules = policy.system_policy(im, env)
    if not any(r.domain == "coder" and r.pattern == "PS" and r.rights == "none" for r in rules):
        pytest.skip("the system policy here does not deny the PS coder")
    text = policy.generate(policy.load_preset("batch"), standalone=True, system_rules=rules)
    written = policy.write(tmp_path / "policy.xml", text.replace('pattern="PS"', 'pattern="ps"'))
    errors = [f.message for f in policy.check(written, im, standalone=True) if f.level == "error"]
    assert any("weakens" in m and 'pattern="PS"' in m for m in errors)


def test_check_catches_values_imagemagick_reads_differently(im, tmp_path):
    path = tmp_path / "policy.xml"
    path.write_text(
        "<policymap>\n"
        '  <policy domain="resource" name="memory" value="2gb"/>\n'
        '  <policy domain="resource" name="disk" value="unlimited"/>\n'
        '  <policy domain="resource" name="map" value="50%"/>\n'
        '  <policy domain="resource" name="time" value="1hour"/>\n'
        '  <policy domain="resource" name="colours" value="8"/>\n'
        '  <policy domain="coder" pattern="PNG"/>\n'
        '  <policy domain="filesystem" rights="none" pattern="x"/>\n'
        '  <policy domain="resource" name="width" value="16KP"/>\n'
        "</policymap>\n"
    )
    findings = policy.check(path, im)
    errors = [f.message for f in findings if f.level == "error"]
    warnings = [f.message for f in findings if f.level == "warning"]
    assert any("'2gb'" in m and "2 B" in m for m in errors)
    assert any("'unlimited'" in m and "0 B" in m for m in errors)
    assert any("'50%'" in m and "50 B" in m for m in errors)
    assert any("'1hour'" in m and "100 s" in m for m in errors)
    assert any("no rights" in m for m in errors)
    assert any("colours" in m for m in warnings) and any("filesystem" in m for m in warnings)
    assert not any("resource width" in m for m in errors + warnings)
    loaded = [f.message for f in findings if f.level == "info"]
    assert any(m.startswith("memory:") and "runs with 2 B" in m for m in loaded)


def test_check_reads_resource_names_in_any_case(im, tmp_path):
    path = tmp_path / "policy.xml"
    path.write_text('<policymap><policy domain="resource" name="Memory" value="100MiB"/></policymap>')
    findings = policy.check(path, im)
    assert [f for f in findings if f.level != "info"] == []
    assert any(f.message.startswith("memory: value '100MiB', ImageMagick runs with 100 MiB") for f in findings)


def test_check_reads_pixel_limits_at_the_precision_imagemagick_prints(im, tmp_path):
    path = tmp_path / "policy.xml"
    path.write_text(
        '<policymap><policy domain="resource" name="width" value="1366"/>'
        '<policy domain="resource" name="area" value="1050454"/></policymap>'
    )
    findings = policy.check(path, im)
    assert [f for f in findings if f.level != "info"] == []
    assert any(f.message.startswith("width: value '1366'") for f in findings)


def test_check_says_a_negative_value_drops_the_cap(im, env, tmp_path):
    """IM reads memory "-1" as no cap at all (all the RAM), not as 0; a negative throttle pauses for ever."""
    path = tmp_path / "policy.xml"
    path.write_text(
        '<policymap><policy domain="resource" name="memory" value="-1"/>'
        '<policy domain="resource" name="throttle" value="-1"/></policymap>'
    )
    assert magick.resource_caps(policy.read(path))["memory"] == (None, str(path))
    assert units.same_limit(im.resources(env=override_env(env, tmp_path))["memory"], psutil.virtual_memory().total)
    errors = [f.message for f in policy.check(path, im) if f.level == "error"]
    assert any("memory: '-1' is negative" in m and "no cap at all" in m for m in errors)
    assert any("throttle: '-1' is negative" in m and "every command stalls" in m for m in errors)


LENIENT = """<policymap>
  <policy domain="resource" name="memory" value="256MiB"/>
  <!-- <policy domain="cache" name="shared-secret" value="passphrase" stealth="true"/>
  <!-- <policy domain="system" name="shred" value="2"/> -->
  <policy domain="coder" rights="none" pattern="XPS" />
</policymap>
"""


def test_check_reads_a_file_xml_refuses_as_imagemagick_does(im, tmp_path):
    """Debian's policy.xml has an unclosed <!--, which ImageMagick's lenient reader loads anyway."""
    path = tmp_path / "policy.xml"
    path.write_text(LENIENT)
    with pytest.raises(policy.PolicySyntaxError):
        policy.read(path)
    findings = policy.check(path, im)
    assert not [f for f in findings if f.level == "error"], findings
    assert "not well-formed" in findings[0].message and "ImageMagick lists for it" in findings[0].message
    assert any(f.message.startswith("memory: value '256MiB', ImageMagick runs with 256 MiB") for f in findings)


def test_reading_refuses_a_billion_laughs(im, tmp_path):
    path = tmp_path / "policy.xml"
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 or "")) * 10}">' for i in range(1, 10)
    ]
    path.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE policymap [\n' + "\n".join(entities) + "\n]>\n"
        '<policymap><policy domain="resource" name="memory" value="&lol9;"/></policymap>\n'
    )
    with pytest.raises(policy.PolicyError, match="refused"):
        policy.read(path)
    findings = policy.check(path, im)
    assert len(findings) == 1 and findings[0].level == "error"


def test_private_write_is_owner_only_and_leaves_no_temp_file(tmp_path):
    target = policy.write(tmp_path, policy.render({"memory": 2**30}), private=True)
    assert target == tmp_path / "policy.xml"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["policy.xml"]


def test_save_is_private_only_in_shared_directories(tmp_path):
    shared, own = tmp_path / "shared", tmp_path / "own"
    shared.mkdir()
    own.mkdir()
    shared.chmod(0o1777)
    own.chmod(0o755)
    text = policy.render({"memory": 2**30})
    assert stat.S_IMODE(policy.save(shared, text).stat().st_mode) == 0o600
    assert stat.S_IMODE(policy.save(own / "policy.xml", text).stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["own", "policy.xml", "policy.xml", "shared"]


def test_unknown_preset_lists_the_available_ones():
    assert {"animation", "batch", "locked-down"} <= set(policy.available_presets())
    with pytest.raises(ValueError, match="animation, batch, locked-down"):
        policy.load_preset("gif")


@pytest.mark.parametrize(
    "text, key",
    [
        ("description: x\nresources: [memory\n", "not valid YAML"),
        ("description: x\nresources: {colours: 8}\n", "resources.colours"),
        ("description: x\nresources: {memory: 2 gigs}\n", "resources.memory"),
        ("description: x\nrules:\n  - {domain: coder, pattern: PDF}\n", "rules[0]"),
        ("description: x\nrules:\n  - {domain: coder, rights: maybe, pattern: PDF}\n", "rules[0].rights"),
        ("description: x\nlimits: {memory: 1GB}\n", "'limits'"),
        ("description: x\nresources: {throttle: unlimited}\n", "resources.throttle"),
    ],
)
def test_bad_preset_files_name_the_file_and_key(tmp_path, text, key):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as error:
        policy.load_preset(path)
    assert str(path) in str(error.value) and key in str(error.value)


def test_user_defaults_are_read_and_applied(tmp_path, monkeypatch):
    config = tmp_path / "config.yaml"
    config.write_text(f"preset: batch\ntemporary-path: {tmp_path}\nresources:\n  memory: 50%\n  thread: 4\n")
    monkeypatch.setenv(environment.CONFIG, str(config))
    assert policy.user_config_path() == config
    defaults = policy.user_defaults()
    assert defaults == {
        "preset": "batch",
        "temporary-path": str(tmp_path),
        "resources": {"memory": "50%", "thread": "4"},
    }
    preset = policy.configured_preset()
    assert preset.name == "batch" and preset.temporary_path == str(tmp_path)
    assert preset.resources["memory"] == round(psutil.virtual_memory().total / 2)
    assert preset.resources["thread"] == 4 and preset.resources["time"] == 600
    assert policy.configured_preset("animation", resources={"thread": 1}).resources["thread"] == 1


def test_missing_user_config_means_no_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv(environment.CONFIG, str(tmp_path / "absent.yaml"))
    assert policy.user_defaults() == {}


@pytest.mark.parametrize(
    "text", ["preset: [animation\n", "- preset\n", "resources: {memory: lots}\n", "resources: {colours: 8}\n"]
)
def test_malformed_user_config_names_the_file(tmp_path, monkeypatch, text):
    config = tmp_path / "config.yaml"
    config.write_text(text)
    monkeypatch.setenv(environment.CONFIG, str(config))
    with pytest.raises(ValueError, match=str(config)):
        policy.user_defaults()


def test_show_names_the_file_that_sets_each_limit(im, env, tmp_path):
    policy.write(tmp_path, policy.render({"memory": 3 * 2**30, "list-length": 500}))
    shown = policy.show(im, env=override_env(env, tmp_path))
    by_name = {setting.name: setting for setting in shown.resources}
    assert by_name["memory"].value == 3 * 2**30 and by_name["memory"].source == str(tmp_path / "policy.xml")
    assert by_name["list-length"].source == str(tmp_path / "policy.xml")
    assert shown.files[0] == str(tmp_path / "policy.xml")
    system = system_security(im, env)
    assert [(r.pattern, r.path) for r in shown.rules] == [(r.pattern, r.path) for r in system]
    assert "Security rules" in shown.text()


def test_show_names_the_environment_when_a_variable_lowers_a_limit(im, env):
    shown = policy.show(im, env={**env, "MAGICK_THREAD_LIMIT": "1"})
    thread = next(setting for setting in shown.resources if setting.name == "thread")
    assert thread.value == 1 and "MAGICK_THREAD_LIMIT" in thread.source


def test_errors_name_where_the_bad_value_came_from(tmp_path, monkeypatch):
    config = tmp_path / "config.yaml"
    monkeypatch.setenv(environment.CONFIG, str(tmp_path / "absent.yaml"))
    with pytest.raises(ValueError, match="^resource overrides: resources.memory: size '10 parsecs'"):
        policy.configured_preset(resources={"memory": "10 parsecs"})
    with pytest.raises(ValueError, match="^temporary_path '/nonexistent' is not a directory"):
        policy.configured_preset(temporary_path="/nonexistent")
    config.write_text("temporary-path: /nonexistent\n")
    monkeypatch.setenv(environment.CONFIG, str(config))
    with pytest.raises(ValueError, match=f"^{config}: temporary-path '/nonexistent' is not a directory"):
        policy.configured_preset()


def test_an_unknown_preset_in_the_user_config_names_the_config(tmp_path, monkeypatch):
    config = tmp_path / "config.yaml"
    config.write_text("preset: gifs\n")
    monkeypatch.setenv(environment.CONFIG, str(config))
    with pytest.raises(ValueError, match=f"{config}: preset: no preset named 'gifs'"):
        policy.configured_preset()


def test_the_undefined_placeholder_is_no_security_rule_anywhere(im, env, tmp_path):
    """IM7's stock policy.xml holds `<policy domain="Undefined" rights="none"/>`, which matches nothing: the profile,
    show and check all treat it so (no rule counted, no "unknown domain" warning)."""
    path = tmp_path / "policy.xml"
    path.write_text('<policymap><policy domain="Undefined" rights="none"/></policymap>')
    listed = [r for r in im.policy_rules(env=override_env(env, tmp_path)) if r.path == str(path)]
    assert [r.domain for r in listed] == ["undefined"] and not listed[0].is_security_rule
    shown = policy.show(im, env=override_env(env, tmp_path))
    assert not [r for r in shown.rules if r.path == str(path)]
    findings = policy.check(path, im)
    assert [f.level for f in findings if "undefined" in f.message.lower()] == ["info"]
    assert not [f for f in findings if f.level != "info"], findings


def test_the_system_policy_checks_clean_of_unknown_domains(im, env):
    files = policy.show(im, env=env).files
    if not files:
        pytest.skip("no system policy.xml here")
    for name in files:
        assert not [f for f in policy.check(name, im) if "unknown domain" in f.message]


def test_show_reports_the_exact_value_a_file_sets(im, env, tmp_path):
    """IM7 prints limits to 6 significant digits (10^10 bytes as 9.31323GiB); show gives the file's exact value."""
    policy.write(tmp_path, policy.render({"memory": 10**10, "disk": 10**10 + 12345}))
    shown = {s.name: s.value for s in policy.show(im, env=override_env(env, tmp_path)).resources}
    assert (shown["memory"], shown["disk"]) == (10**10, 10**10 + 12345)
    variable = {s.name: s.value for s in policy.show(im, env={**env, "MAGICK_AREA_LIMIT": "12345678"}).resources}
    assert variable["area"] == 12345678  # below the area cap of every stock policy (128MP and up)
