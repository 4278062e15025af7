"""Read, build and write ImageMagick policy.xml files.

An override written here restates resource values only. ImageMagick takes each resource value from the
first file that names it (so an override first on MAGICK_CONFIGURE_PATH wins) and each right from the
last rule that matches (so the system's coder, path, delegate and module rules, loaded after it, stay in
force untouched).
"""

from __future__ import annotations

import fnmatch
import importlib.resources
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import defusedxml.ElementTree as SafeElementTree
import platformdirs
import psutil
import yaml

from . import environment, magick, profile, units
from .environment import CONFIGURE_PATH, limit_variable, prepend_configure_path, without_limit_variables
from .errors import ConfigError, PolicyError, PolicySyntaxError
from .magick import PolicyRule

_FORBIDDEN_IN_VALUES = set('"<>&\'')

def read(path: str | os.PathLike) -> list[PolicyRule]:
    """The `<policy>` entries of one policy.xml, in file order (defused against XML attacks).

    Names are lower-cased: ImageMagick looks them up ignoring case ("Memory" caps memory).
    """
    try:
        root = SafeElementTree.parse(path).getroot()
    except SafeElementTree.ParseError as error:
        raise PolicySyntaxError(f"{path} is not well-formed XML ({error})") from None
    except OSError as error:
        raise PolicyError(f"cannot read policy file {path}: {error}") from None
    except Exception as error:  # defusedxml's refusals (entities, DTD tricks) share no base class
        raise PolicyError(f"refused to read policy file {path}: {error}") from None
    if root.tag != "policymap":
        raise PolicyError(f"{path} is not an ImageMagick policy file: its root element is <{root.tag}>")
    return [
        PolicyRule(
            path=str(path),
            domain=(element.get("domain") or "undefined").lower(),
            name=element.get("name", "").lower() or None,
            value=element.get("value"),
            rights=element.get("rights"),
            pattern=element.get("pattern"),
        )
        for element in root.iter("policy")
    ]


def render(resources: Mapping[str, int | None], *, temporary_path: str | None = None,
           rules: Iterable[PolicyRule] = (), comment: str | None = None) -> str:
    """A policy.xml restating these resource limits (and optional extra rules), in ImageMagick's own syntax."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>']
    if comment:
        lines.append(f"<!-- {_checked(comment.replace('--', '-'), 'comment')} -->")
    lines.append("<policymap>")
    for name, value in resources.items():
        kind = units.RESOURCE_KINDS.get(name)
        if kind is None:
            raise PolicyError(f"unknown resource {name!r}: use one of {', '.join(units.RESOURCE_KINDS)}")
        lines.append(f'  <policy domain="resource" name="{name}" value="{units.to_magick(value, kind)}"/>')
    if temporary_path is not None:
        lines.append(f'  <policy domain="resource" name="temporary-path" '
                     f'value="{_checked(str(temporary_path), "temporary path")}"/>')
    for rule in rules:
        attributes = {"domain": rule.domain, "name": rule.name, "value": rule.value,
                      "rights": rule.rights, "pattern": rule.pattern}
        text = " ".join(f'{key}="{_checked(value, key)}"' for key, value in attributes.items() if value is not None)
        lines.append(f"  <policy {text}/>")
    lines.append("</policymap>")
    return "\n".join(lines) + "\n"


def _checked(value: str, what: str) -> str:
    """ImageMagick's policy reader knows no XML escapes, so a value must not need any."""
    bad = _FORBIDDEN_IN_VALUES & set(value)
    if bad and what != "comment":
        raise PolicyError(f"the {what} {value!r} contains {''.join(sorted(bad))}, which ImageMagick's policy "
                          f"reader cannot take: choose a value without quotes, <, > or &")
    return value.replace("<", "(").replace(">", ")") if what == "comment" else value


def write(path: str | os.PathLike, text: str, *, private: bool = False) -> Path:
    """Write a policy file atomically (temp file beside it, then rename); private makes it owner-only."""
    target = Path(path)
    if target.is_dir():
        target = target / "policy.xml"
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=".policy-", suffix=".xml.tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temp_name, 0o600 if private else 0o644)
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return target


# --- presets, generation, checks -------------------------------------------------------------------

SECURITY_DOMAINS = ("coder", "delegate", "filter", "module", "path")
VALUE_DOMAINS = ("cache", "system")
KNOWN_DOMAINS = ("resource", *VALUE_DOMAINS, *SECURITY_DOMAINS)
#: The policy resource that names the pixel cache's spill directory (a setting, not a limit).
TEMPORARY_PATH_RESOURCE = "temporary-path"
_RIGHTS = {"none": frozenset(), "read": frozenset({"read"}), "write": frozenset({"write"}),
           "execute": frozenset({"execute"}), "all": frozenset({"read", "write", "execute"})}
_ALL_RIGHTS = _RIGHTS["all"]
_PRESET_KEYS = {"description", "resources", "rules"}


@dataclass
class Preset:
    """A named set of resource limits (and, for locked-down presets, security rules) read from YAML."""

    name: str
    description: str
    resources: dict[str, int | None]
    rules: list[PolicyRule] = field(default_factory=list)
    temporary_path: str | None = None
    sizes: dict[str, str] = field(default_factory=dict)
    source: str = ""


@dataclass(frozen=True)
class Finding:
    """One thing `check` found: level is 'error', 'warning' or 'info'."""

    level: Literal["error", "warning", "info"]
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"


@dataclass(frozen=True)
class ResourceSetting:
    """A resource limit in force, and where its value comes from."""

    name: str
    value: int | None
    source: str

    def __str__(self) -> str:
        return f"{self.name}: {units.human(self.value, units.RESOURCE_KINDS[self.name])} ({self.source})"


@dataclass
class EffectivePolicy:
    """What ImageMagick obeys right now: limits with their sources, security rules with their files."""

    resources: list[ResourceSetting]
    temporary_path: tuple[str, str] | None
    rules: list[PolicyRule]
    files: list[str]

    def to_dict(self) -> dict:
        """The same, for --json: each limit with what sets it, each security rule with its file."""
        return {
            "policy_files": self.files,
            "limits": {s.name: {"value": s.value, "set_by": s.source} for s in self.resources},
            "temporary_path": None if self.temporary_path is None else
            {"path": self.temporary_path[0], "set_by": self.temporary_path[1]},
            "security_rules": [{"domain": r.domain, "rights": r.rights, "pattern": r.pattern, "file": r.path}
                               for r in self.rules],
        }

    def text(self) -> str:
        """A plain report for the terminal."""
        lines = ["Policy files, in search order:", *(f"  {name}" for name in self.files or ["(none)"]),
                 "Resources:", *(f"  {setting}" for setting in self.resources)]
        if self.temporary_path:
            lines.append(f"  temporary-path: {self.temporary_path[0]} ({self.temporary_path[1]})")
        lines.append("Security rules (the last match wins):")
        lines += [f"  {rule.domain} {rule.pattern} rights={rule.rights} ({rule.path})" for rule in self.rules]
        if not self.rules:
            lines.append("  (none: every coder, path, delegate and module is allowed)")
        return "\n".join(lines) + "\n"


def available_presets() -> list[str]:
    """The names of the presets shipped in magicktune.policies."""
    return sorted(entry.name[:-5] for entry in _preset_dir().iterdir() if entry.name.endswith(".yaml"))


def load_preset(name_or_path: str | os.PathLike, *, temporary_path: str | os.PathLike | None = None) -> Preset:
    """A shipped preset by name, or a YAML file by path; percentages resolve against this machine now."""
    candidate = Path(name_or_path)
    if str(name_or_path).endswith((".yaml", ".yml")) or candidate.parent != Path("."):
        if not candidate.is_file():
            raise ConfigError(f"preset file {candidate} does not exist")
        text, source, name = candidate.read_text(encoding="utf-8"), str(candidate), candidate.stem
    else:
        name = str(name_or_path)
        resource = _preset_dir() / f"{name}.yaml"
        if name not in available_presets():
            raise ConfigError(f"no preset named {name!r}: choose one of {', '.join(available_presets())} "
                             f"or give the path of a YAML file")
        text, source = resource.read_text(encoding="utf-8"), f"magicktune.policies/{name}.yaml"
    data = _yaml_mapping(text, source)
    unknown = set(data) - _PRESET_KEYS
    if unknown:
        raise ConfigError(f"{source}: unknown key {sorted(unknown)[0]!r}: "
                         f"a preset has {', '.join(sorted(_PRESET_KEYS))}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{source}: description: must be text")
    sizes, temp = _resource_texts(data.get("resources") or {}, source, "resources")
    temp = str(temporary_path) if temporary_path is not None else temp
    rules = _preset_rules(data.get("rules") or [], source)
    return Preset(name, description.strip(), _parsed(sizes, dict.fromkeys(sizes, source), temp), rules, temp, sizes,
                  source)


def override_dir() -> Path:
    """A per-user directory for an override policy.xml, to put first on MAGICK_CONFIGURE_PATH."""
    return Path(platformdirs.user_config_dir("magicktune")) / "imagemagick"


def user_config_path() -> Path:
    """Where the user's defaults live: $MAGICKTUNE_CONFIG, else config.yaml in the platform config dir."""
    override = os.environ.get(environment.CONFIG)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir("magicktune")) / "config.yaml"


def user_defaults(path: str | os.PathLike | None = None) -> dict:
    """The user's defaults ({'preset', 'temporary-path', 'resources'}); empty when there is no file."""
    config = Path(path) if path is not None else user_config_path()
    try:
        text = config.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise ConfigError(f"cannot read magicktune config {config}: {error}") from None
    data = _yaml_mapping(text, str(config), empty_ok=True)
    defaults: dict = {}
    if "preset" in data:
        if not isinstance(data["preset"], str) or not data["preset"]:
            raise ConfigError(f"{config}: preset: must be a preset name or a YAML file path")
        defaults["preset"] = data["preset"]
    sizes, temp = _resource_texts(data.get("resources") or {}, str(config), "resources")
    if TEMPORARY_PATH_RESOURCE in data:
        if not isinstance(data[TEMPORARY_PATH_RESOURCE], str) or not data[TEMPORARY_PATH_RESOURCE]:
            raise ConfigError(f"{config}: {TEMPORARY_PATH_RESOURCE}: must be a directory path")
        temp = data[TEMPORARY_PATH_RESOURCE]
    for name, size in sizes.items():
        _parse_one(name, size, str(config), whole=1)
    if sizes:
        defaults["resources"] = sizes
    if temp is not None:
        defaults[TEMPORARY_PATH_RESOURCE] = profile.checked_temporary_path(temp, f"{config}: {TEMPORARY_PATH_RESOURCE}")
    return defaults


def configured_preset(name_or_path: str | os.PathLike | None = None, *, defaults: Mapping | None = None,
                      resources: Mapping[str, str | int | None] | None = None,
                      temporary_path: str | os.PathLike | None = None) -> Preset:
    """The preset to use: named here, else the user's default, else 'animation'; then the user's and these overrides.

    Later wins: the preset's own values, the user's config, then `resources`/`temporary_path` given here.
    """
    defaults = user_defaults() if defaults is None else defaults
    chosen = name_or_path or defaults.get("preset") or "animation"
    temp = temporary_path if temporary_path is not None else defaults.get(TEMPORARY_PATH_RESOURCE)
    if temp is not None:
        temp = profile.checked_temporary_path(temp)
    try:
        preset = load_preset(chosen, temporary_path=temp)
    except ValueError as error:
        if name_or_path or not defaults.get("preset"):
            raise
        raise ConfigError(f"{user_config_path()}: preset: {error}") from None
    overrides = {name: value for name, value in (resources or {}).items() if value is not None}
    sizes = {**preset.sizes, **(defaults.get("resources") or {}), **overrides}
    sources = {**dict.fromkeys(preset.sizes, preset.source),
               **dict.fromkeys(defaults.get("resources") or {}, str(user_config_path())),
               **dict.fromkeys(overrides, "resource overrides")}
    extra, extra_temp = _resource_texts(sizes, "resource overrides", "resources")
    preset.temporary_path = str(temp) if temp is not None else (extra_temp or preset.temporary_path)
    preset.sizes = extra
    preset.resources = _parsed(extra, sources, preset.temporary_path)
    return preset


def system_policy(imagemagick: magick.ImageMagick | None = None,
                  env: Mapping[str, str] | None = None) -> list[PolicyRule]:
    """Every rule ImageMagick loads in this environment, read from its files in search order."""
    im = imagemagick or magick.find()
    return _from_files(im.policy_rules(env=env), env)


def _from_files(listed: list[PolicyRule], env: Mapping[str, str] | None) -> list[PolicyRule]:
    """The rules of the files a `-list policy` names, read as written (rights, order), listing as fallback."""
    rules: list[PolicyRule] = []
    for name in _search_order(magick.policy_files(listed), env):
        try:
            rules += read(name)
        except PolicyError:
            rules += [_from_listing(rule) for rule in listed if rule.path == name]
    return rules


def generate(preset: Preset, *, standalone: bool = False, keep_system_rules: bool = True,
             system_rules: list[PolicyRule] | None = None,
             imagemagick: magick.ImageMagick | None = None) -> str:
    """policy.xml text for this preset: an override for MAGICK_CONFIGURE_PATH, or a standalone system policy.

    Override (default): the file goes first on MAGICK_CONFIGURE_PATH. ImageMagick takes each resource and
    each system/cache value from the first file naming it, so the override's resources win; it takes each
    right from the LAST matching rule, and the system's files load after ours, so the preset's security
    rules only add denials where no system rule matches the same name and can never loosen a system rule.
    A system/cache value the system policy already names is left to the system (first-wins would let ours
    replace it). Nothing of the system policy is dropped: its files still load.

    Standalone (to install as /etc/ImageMagick-*/policy.xml): the preset's resources, the system's values
    for resources the preset leaves out, the system's system/cache values, the preset's rules, then every
    security rule of the current system policy in its order (unless keep_system_rules=False), so for any
    name a system rule matches the last match is still a system rule: nothing is dropped or weakened.
    """
    system = system_policy(imagemagick) if system_rules is None else system_rules
    named_values = {(rule.domain, rule.name) for rule in system if rule.domain in VALUE_DOMAINS}
    preset_values = [rule for rule in preset.rules if rule.domain in VALUE_DOMAINS
                     and (rule.domain, rule.name) not in named_values]
    preset_rights = [rule for rule in preset.rules if rule.domain in SECURITY_DOMAINS]
    asked = ", ".join(f"{name} {size}" for name, size in preset.sizes.items())
    origin = f"magicktune preset {preset.name!r} ({preset.source}; {asked or 'no resources'})"
    if not standalone:
        added = (f"adds {len(preset_rights)} security rules, which the system's rules (loaded later, the last "
                 f"match wins) overrule wherever they match" if preset_rights else "adds no security rule")
        return render(preset.resources, temporary_path=preset.temporary_path,
                      rules=[*preset_values, *preset_rights],
                      comment=f"{origin}. Override for MAGICK_CONFIGURE_PATH: restates resources and {added}; "
                              f"every rule of the system policy stays in force.")
    resources = dict(preset.resources)
    temp = preset.temporary_path
    for rule in system:
        if rule.domain != "resource" or not rule.name or rule.value is None:
            continue
        if rule.name == TEMPORARY_PATH_RESOURCE:
            temp = temp or rule.value
        elif rule.name in units.RESOURCE_KINDS and rule.name not in resources:
            read_as = units.as_imagemagick_reads(rule.value)
            resources[rule.name] = None if read_as >= units.UNLIMITED_AT else read_as
    system_values = list({(r.domain, r.name): r for r in reversed(system) if r.domain in VALUE_DOMAINS}.values())
    system_rights = [rule for rule in system if rule.domain in SECURITY_DOMAINS and rule.rights is not None]
    if keep_system_rules:
        restated = {(rule.domain, _rights(rule.rights), rule.pattern) for rule in system_rights}
        preset_rights = [rule for rule in preset_rights
                         if (rule.domain, _rights(rule.rights), rule.pattern) not in restated]
    files = ", ".join(dict.fromkeys(rule.path for rule in system)) or "none"
    kept = (f"then every security rule of the system policy ({files}), last, so each still has the last word"
            if keep_system_rules else "WITHOUT the system policy's security rules")
    return render(resources, temporary_path=temp,
                  rules=[*reversed(system_values), *preset_values, *preset_rights,
                         *(system_rights if keep_system_rules else [])],
                  comment=f"{origin}. Standalone policy: its resources and rules, {kept}.")


def save(path: str | os.PathLike, text: str, *, private: bool | None = None) -> Path:
    """Write policy text atomically; by default owner-only when the directory is shared (others may write it)."""
    target = Path(path)
    directory = target if target.is_dir() else target.parent
    if private is None:
        private = directory.exists() and bool(directory.stat().st_mode & stat.S_IWOTH)
    return write(target, text, private=private)


def check(path: str | os.PathLike, imagemagick: magick.ImageMagick | None = None, *,
          standalone: bool = False, load: bool = True) -> list[Finding]:
    """What a policy.xml means to ImageMagick: traps in its values, then what the real ImageMagick loads from it.

    `standalone` judges it as a replacement for the system policy (dropped system rules are errors);
    otherwise as an override first on MAGICK_CONFIGURE_PATH.
    """
    findings: list[Finding] = []
    try:
        rules = read(path)
    except PolicySyntaxError as error:
        rules = _listed_by_imagemagick(Path(path), imagemagick) if load else []
        if not rules:
            return [Finding("error", f"{error}; ImageMagick did not load any entry from it either")]
        findings.append(Finding("info", f"{error}; ImageMagick's own reader is lenient and loads it, so this check "
                                        f"uses the {len(rules)} entries ImageMagick lists for it"))
    except PolicyError as error:
        return [Finding("error", str(error))]
    findings += [finding for rule in rules for finding in _check_rule(rule)]
    if not load:
        return findings
    try:
        im = imagemagick or magick.find()
    except magick.ImageMagickNotFound as error:
        return findings + [Finding("warning", f"not loaded into ImageMagick: {error}")]
    return findings + _check_loaded(Path(path), rules, im, standalone)


def show(imagemagick: magick.ImageMagick | None = None, env: Mapping[str, str] | None = None) -> EffectivePolicy:
    """The policy in force for an ImageMagick started with this environment, and where each part comes from."""
    im = imagemagick or magick.find()
    environ = os.environ if env is None else env
    listed = im.policy_rules(env=env)
    rules = _from_files(listed, env)
    caps = magick.resource_caps(rules)
    settings = []
    for name, value in im.resources(env=env).items():
        variable = limit_variable(name)
        cap, kind = caps.get(name), units.RESOURCE_KINDS[name]
        if cap is not None and units.same_limit(value, cap[0], kind):
            source = cap[1]
        elif variable in environ:
            source = f"${variable}={environ[variable]}" + (f", below the cap in {cap[1]}" if cap else "")
        elif cap is not None:
            cap_text = units.human(cap[0], kind)
            source = f"ImageMagick's default, below the cap {cap_text} in {cap[1]}"
        else:
            source = "ImageMagick's default"
        settings.append(ResourceSetting(name, value, source))
    temp = next(((r.value, r.path) for r in rules if r.domain == "resource" and r.name == TEMPORARY_PATH_RESOURCE), None)
    if temp is None and environ.get(environment.TEMPORARY_PATH):
        temp = (environ[environment.TEMPORARY_PATH], f"${environment.TEMPORARY_PATH}")
    security = [rule for rule in rules if rule.domain in SECURITY_DOMAINS and rule.rights is not None]
    return EffectivePolicy(settings, temp, security, magick.policy_files(listed))


# --- helpers ---------------------------------------------------------------------------------------

def _preset_dir():
    return importlib.resources.files("magicktune.policies")


def _yaml_mapping(text: str, source: str, *, empty_ok: bool = False) -> dict:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML: {error}") from None
    if data is None and empty_ok:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: must be a YAML mapping of keys to values, not {type(data).__name__}")
    return data


def _resource_texts(section, source: str, key: str) -> tuple[dict[str, str], str | None]:
    """Check a resources mapping's names and value types; split off temporary-path."""
    if not isinstance(section, Mapping):
        raise ConfigError(f"{source}: {key}: must be a mapping of resource name to size")
    sizes, temp = {}, None
    for name, value in section.items():
        if name == TEMPORARY_PATH_RESOURCE:
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{source}: {key}.{name}: must be a directory path")
            temp = os.path.expanduser(value)
            continue
        if name not in units.RESOURCE_KINDS:
            raise ConfigError(f"{source}: {key}.{name}: unknown resource; use one of "
                             f"{', '.join([*units.RESOURCE_KINDS, TEMPORARY_PATH_RESOURCE])}")
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ConfigError(f"{source}: {key}.{name}: {value!r} is not a size")
        sizes[name] = str(value)
    return sizes, temp


def _parse_one(name: str, size: str, source: str, whole: int | None) -> int | None:
    try:
        return units.parse_limit(name, size, whole=whole)
    except ValueError as error:
        raise ConfigError(f"{source}: resources.{name}: {error}") from None


def _parsed(sizes: Mapping[str, str], sources: Mapping[str, str],
            temporary_path: str | None) -> dict[str, int | None]:
    """Each size read for its resource; an error names the file (or other source) the size came from."""
    ram = psutil.virtual_memory().total
    wholes = {"memory": ram, "map": ram}
    if "disk" in sizes:
        try:
            wholes["disk"] = shutil.disk_usage(temporary_path or tempfile.gettempdir()).free
        except OSError:
            pass
    return {name: _parse_one(name, size, sources[name], wholes.get(name)) for name, size in sizes.items()}


def _preset_rules(entries, source: str) -> list[PolicyRule]:
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: rules: must be a list of {{domain, rights, pattern}} or {{domain, name, value}}")
    rules = []
    for index, entry in enumerate(entries):
        where = f"{source}: rules[{index}]"
        if not isinstance(entry, Mapping) or set(entry) - {"domain", "rights", "pattern", "name", "value"}:
            raise ConfigError(f"{where}: must be a mapping with domain and rights+pattern or name+value")
        fields = {key: str(value) for key, value in entry.items() if value is not None}
        domain = fields.get("domain", "").lower()
        if domain in SECURITY_DOMAINS:
            if "rights" not in fields or "pattern" not in fields:
                raise ConfigError(f"{where}: a {domain} rule needs rights and pattern")
            if _rights(fields["rights"]) is None:
                raise ConfigError(f"{where}.rights: {fields['rights']!r} is not none, read, write, execute, "
                                 f"all or a | of them")
            rules.append(PolicyRule(source, domain, rights=fields["rights"], pattern=fields["pattern"]))
        elif domain in VALUE_DOMAINS:
            if "name" not in fields or "value" not in fields:
                raise ConfigError(f"{where}: a {domain} rule needs name and value")
            rules.append(PolicyRule(source, domain, name=fields["name"].lower(), value=fields["value"]))
        else:
            raise ConfigError(f"{where}.domain: {domain or None!r} is not one of "
                             f"{', '.join((*SECURITY_DOMAINS, *VALUE_DOMAINS))} (put limits under resources:)")
    for rule in rules:
        for value in (rule.name, rule.value, rule.rights, rule.pattern):
            if value is not None:
                _checked(value, f"rule value in {source}")
    return rules


def _rights(text: str | None) -> frozenset[str] | None:
    """The rights a rule grants ("read|write", "Read Write", "none"); None if any word is unknown."""
    if text is None:
        return None
    granted: set[str] = set()
    for word in re.split(r"[\s|,]+", text.strip().lower()):
        if word and word not in _RIGHTS:
            return None
        granted |= _RIGHTS.get(word, frozenset())
    return frozenset(granted)


def _from_listing(rule: PolicyRule) -> PolicyRule:
    """A `-list policy` entry in policy.xml syntax ("Read Write" becomes "read|write")."""
    if rule.rights is None:
        return rule
    granted = _rights(rule.rights) or frozenset()
    text = "|".join(right for right in ("read", "write", "execute") if right in granted) or "none"
    return PolicyRule(rule.path, rule.domain, rule.name, rule.value, text, rule.pattern)


def _search_order(files: list[str], env: Mapping[str, str] | None) -> list[str]:
    """Files of MAGICK_CONFIGURE_PATH directories first, in that order, then the rest as listed."""
    configured = (os.environ if env is None else env).get(CONFIGURE_PATH, "")
    first = []
    for directory in filter(None, configured.split(os.pathsep)):
        first += [name for name in files if Path(name).parent == Path(directory) and name not in first]
    return first + [name for name in files if name not in first]


def _expand(pattern: str) -> list[str]:
    """ImageMagick glob braces spelled out: "{PS,EPS}*" is ["PS*", "EPS*"]."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    return [expanded for choice in match.group(1).split(",")
            for expanded in _expand(pattern[:match.start()] + choice + pattern[match.end():])]


def _decision(rules: list[PolicyRule], domain: str, name: str) -> frozenset[str]:
    """The rights ImageMagick grants `name` in `domain`: the last matching rule decides, else everything.

    Patterns match case-sensitively, as in ImageMagick (GlobExpression without case folding, IM6 and IM7).
    """
    granted = _ALL_RIGHTS
    for rule in rules:
        if rule.domain == domain and rule.pattern is not None and rule.rights is not None and any(
                fnmatch.fnmatchcase(name, alternative) for alternative in _expand(rule.pattern)):
            granted = _rights(rule.rights) or frozenset()
    return granted


def _weakened(before: list[PolicyRule], after: list[PolicyRule]) -> list[tuple[PolicyRule, str, frozenset[str]]]:
    """Each security rule of `before` under which `after` grants a name a right `before` denied."""
    found = []
    for rule in before:
        if rule.domain not in SECURITY_DOMAINS or rule.pattern is None or rule.rights is None:
            continue
        for probe in _expand(rule.pattern):
            extra = _decision(after, rule.domain, probe) - _decision(before, rule.domain, probe)
            if extra:
                found.append((rule, probe, extra))
                break
    return found


def _describe(rule: PolicyRule) -> str:
    return f'{rule.domain} rights="{rule.rights}" pattern="{rule.pattern}" ({rule.path})'


def _check_rule(rule: PolicyRule) -> list[Finding]:
    """Static traps in one entry: values ImageMagick reads differently from what a person means, missing parts."""
    where = f"{Path(rule.path).name}: {rule.domain}" + (f" {rule.name}" if rule.name else "")
    if rule.domain not in KNOWN_DOMAINS:
        return [Finding("warning", f"{where}: unknown domain {rule.domain!r}; ImageMagick ignores it "
                                   f"(domains: {', '.join(KNOWN_DOMAINS)})")]
    if rule.domain in SECURITY_DOMAINS:
        missing = [key for key in ("rights", "pattern") if getattr(rule, key) is None]
        if missing:
            return [Finding("error", f"{where}: no {' or '.join(missing)}, so this rule matches nothing")]
        if _rights(rule.rights) is None:
            return [Finding("error", f"{where} {rule.pattern}: rights {rule.rights!r} is not none, read, write, "
                                     f"execute, all or a | of them")]
        if rule.domain == "coder" and rule.pattern != rule.pattern.upper():
            return [Finding("warning", f"{where} {rule.pattern}: ImageMagick matches patterns case-sensitively and "
                                       f"names its coders in upper case, so this rule matches no coder: write "
                                       f"{rule.pattern.upper()!r}")]
        return []
    if rule.name is None or rule.value is None:
        return [Finding("error", f"{where}: needs both name and value")]
    if rule.domain != "resource":
        return []
    if rule.name == TEMPORARY_PATH_RESOURCE:
        if not Path(rule.value).is_dir():
            return [Finding("warning", f"{where}: {rule.value} is not a directory here")]
        return []
    kind = units.RESOURCE_KINDS.get(rule.name)
    if kind is None:
        return [Finding("warning", f"{where}: unknown resource name; ImageMagick ignores it "
                                   f"(names: {', '.join([*units.RESOURCE_KINDS, TEMPORARY_PATH_RESOURCE])})")]
    reads = units.as_imagemagick_reads(rule.value)
    reads_text = units.human(None if reads >= units.UNLIMITED_AT else reads, kind)
    stripped = rule.value.strip()
    if stripped.startswith("-") and reads >= units.UNLIMITED_AT:
        effect = ("a pause of about 2^64 milliseconds: every command stalls; write 0 for no pause"
                  if rule.name == "throttle" else "no cap at all; write the limit you mean, or leave the resource out")
        return [Finding("error", f"{where}: {rule.value!r} is negative, which ImageMagick wraps around to {effect}")]
    if stripped.endswith("%"):
        return [Finding("error", f"{where}: {rule.value!r} is read by ImageMagick as {reads_text}, not a share "
                                 f"of anything; write an absolute size such as {units.to_magick(2**30, kind)}")]
    try:
        means = units.parse_limit(rule.name, rule.value)
    except ValueError as error:
        return [Finding("error", f"{where}: {error}; ImageMagick reads it as {reads_text}")]
    if means is None and reads < units.UNLIMITED_AT:
        return [Finding("error", f"{where}: {rule.value!r} is read by ImageMagick as {reads_text}, not unlimited; "
                                 f"write {units.to_magick(None, kind)} (or leave the resource out)")]
    if means is not None and not units.same_limit(reads, means, kind):
        return [Finding("error", f"{where}: {rule.value!r} is read by ImageMagick as {reads_text}, not "
                                 f"{units.human(means, kind)}; write {units.to_magick(means, kind)}")]
    return []


@contextmanager
def _loaded_first(path: Path, base: Mapping[str, str]) -> Iterator[tuple[dict[str, str], Path]]:
    """`base` with a copy of `path` first on MAGICK_CONFIGURE_PATH, named policy.xml as ImageMagick requires."""
    with tempfile.TemporaryDirectory(prefix="magicktune-check-") as directory:
        copy = Path(directory) / "policy.xml"
        shutil.copyfile(path, copy)
        yield {**base, CONFIGURE_PATH: prepend_configure_path(directory, base.get(CONFIGURE_PATH))}, copy


def _listed_by_imagemagick(path: Path, imagemagick: magick.ImageMagick | None) -> list[PolicyRule]:
    """The entries ImageMagick loads from `path`, as `-list policy` shows them; [] when it cannot tell."""
    try:
        im = imagemagick or magick.find()
        with _loaded_first(path, without_limit_variables()) as (env, copy):
            listed = im.policy_rules(env=env)
    except (magick.ImageMagickNotFound, magick.ImageMagickError, OSError):
        return []
    return [_relabelled(_from_listing(rule), copy, path) for rule in listed if rule.path == str(copy)]


def _check_loaded(path: Path, rules: list[PolicyRule], im: magick.ImageMagick, standalone: bool) -> list[Finding]:
    """Load the file first on MAGICK_CONFIGURE_PATH and compare what ImageMagick reads with the system alone."""
    findings: list[Finding] = []
    base = without_limit_variables()
    with _loaded_first(path, base) as (env, copy):
        try:
            in_force = im.resources(env=env)
            loaded_listing = im.policy_rules(env=env)
            loaded = system_policy(im, env)
            system = system_policy(im, base)
        except magick.ImageMagickError as error:
            return [Finding("error", f"ImageMagick failed with this policy loaded: {error}")]
        loaded_file_rules = [r for r in loaded_listing if r.path == str(copy)]
    if not loaded_file_rules and rules:
        findings.append(Finding("error", f"ImageMagick loaded none of the {len(rules)} entries of {path}"))
    system_caps = magick.resource_caps(system)
    named = {}
    for rule in rules:
        if rule.domain == "resource" and rule.name in units.RESOURCE_KINDS and rule.name not in named:
            named[rule.name] = rule
    for name, rule in named.items():
        kind = units.RESOURCE_KINDS[name]
        reads = units.as_imagemagick_reads(rule.value or "")
        reads = None if reads >= units.UNLIMITED_AT else reads
        got = in_force.get(name)
        message = f"{name}: value {rule.value!r}, ImageMagick runs with {units.human(got, kind)}"
        previous = system_caps.get(name)
        if previous is not None and not units.same_limit(previous[0], reads, kind):
            direction = "raises" if (reads is None or (previous[0] is not None and reads > previous[0])) else "lowers"
            message += f" ({direction} {units.human(previous[0], kind)} set by {previous[1]})"
        if units.same_limit(got, reads, kind) or (name == "throttle" and (got or 0) >= (reads or 0)):
            findings.append(Finding("info", message))
        else:
            reason = " (ImageMagick clamps threads to its OpenMP maximum)" if name == "thread" else ""
            findings.append(Finding("warning", f"{message}, not the {units.human(reads, kind)} the file sets{reason}"))
    system_values = {(r.domain, r.name): r for r in reversed(system) if r.domain in VALUE_DOMAINS}
    for rule in rules:
        earlier = system_values.get((rule.domain, rule.name))
        if rule.domain in VALUE_DOMAINS and earlier is not None and earlier.value != rule.value:
            findings.append(Finding("warning", f"{rule.domain} {rule.name}: this file's {rule.value!r} replaces "
                                               f"{earlier.value!r} from {earlier.path} (the first file wins)"))
    system_rights = [r for r in system if r.domain in SECURITY_DOMAINS and r.rights is not None]
    still = {(r.domain, _rights(r.rights), r.pattern) for r in loaded if r.path != str(copy)}
    for rule in system_rights:
        if (rule.domain, _rights(rule.rights), rule.pattern) not in still:
            findings.append(Finding("error", f"system rule {_describe(rule)} no longer loads with this file"))
    for rule, probe, extra in _weakened(system_rights, [_relabelled(r, copy, path) for r in loaded]):
        findings.append(Finding("error", f"loaded with this file, {rule.domain} {probe!r} gains "
                                         f"{'|'.join(sorted(extra))}, which {_describe(rule)} denies"))
    own = [r for r in rules if r.domain in SECURITY_DOMAINS and r.rights is not None]
    for rule in own:
        probe = _expand(rule.pattern or "")[0]
        final = _decision(loaded, rule.domain, probe)
        if final != _rights(rule.rights):
            findings.append(Finding("info", f"{_describe(rule)}: a later system rule decides {probe!r} instead "
                                            f"(the last match wins), granting {'|'.join(sorted(final)) or 'none'}"))
    dropped = [rule for rule in system_rights
               if (rule.domain, _rights(rule.rights), rule.pattern)
               not in {(r.domain, _rights(r.rights), r.pattern) for r in own}]
    weakened = _weakened(system_rights, own)
    if standalone:
        for rule, probe, extra in weakened:
            findings.append(Finding("error", f"installed in place of the system policy, this file weakens "
                                             f"{_describe(rule)}: {rule.domain} {probe!r} gains "
                                             f"{'|'.join(sorted(extra))}"))
        weakened_rules = {id(rule) for rule, _, _ in weakened}
        for rule in dropped:
            if id(rule) not in weakened_rules:
                findings.append(Finding("info", f"{_describe(rule)} is not restated, but this file's own rules "
                                                f"deny as much"))
    elif dropped:
        findings.append(Finding("info", f"as an override the system's {len(system_rights)} security rules stay in "
                                        f"force; installed in place of the system policy this file would drop "
                                        f"{len(dropped)} of them (use a standalone policy for that)"))
    return findings


def _relabelled(rule: PolicyRule, copy: Path, original: Path) -> PolicyRule:
    """A rule loaded from the temporary copy, named after the file being checked."""
    if rule.path != str(copy):
        return rule
    return PolicyRule(str(original), rule.domain, rule.name, rule.value, rule.rights, rule.pattern)
