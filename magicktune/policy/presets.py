"""The YAML presets shipped in magicktune.policies and the user's config.yaml, read into a Preset.

Percentages resolve against this machine when a preset is loaded.
"""

from __future__ import annotations

import importlib.resources
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs
import psutil
import yaml

from .. import environment, profile, safepaths, units
from ..errors import ConfigError
from ..magick import PolicyRule
from .rights import SECURITY_DOMAINS, TEMPORARY_PATH_RESOURCE, VALUE_DOMAINS, granted_rights
from .xml import checked_value

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


def available_presets() -> list[str]:
    """The names of the presets shipped in magicktune.policies."""
    return sorted(entry.name[:-5] for entry in _preset_dir().iterdir() if entry.name.endswith(".yaml"))


def load_preset(name_or_path: str | os.PathLike, *, temporary_path: str | os.PathLike | None = None) -> Preset:
    """A shipped preset by name, or a YAML file by path; percentages resolve against this machine now."""
    candidate = Path(name_or_path)
    if str(name_or_path).endswith((".yaml", ".yml")) or candidate.parent != Path("."):
        try:
            raw = safepaths.read_small_file(candidate, "preset file")
        except FileNotFoundError:
            raise ConfigError(f"preset file {candidate} does not exist") from None
        except ValueError as error:
            raise ConfigError(str(error)) from None
        text, source, name = _decoded(raw, str(candidate)), str(candidate), candidate.stem
    else:
        name = str(name_or_path)
        resource = _preset_dir() / f"{name}.yaml"
        if name not in available_presets():
            raise ConfigError(
                f"no preset named {name!r}: choose one of {', '.join(available_presets())} "
                f"or give the path of a YAML file"
            )
        text, source = resource.read_text(encoding="utf-8"), f"magicktune.policies/{name}.yaml"
    data = _yaml_mapping(text, source)
    unknown = set(data) - _PRESET_KEYS
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {sorted(unknown)[0]!r}: a preset has {', '.join(sorted(_PRESET_KEYS))}"
        )
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{source}: description: must be text")
    sizes, temp = _resource_texts(data.get("resources") or {}, source, "resources")
    temp = str(temporary_path) if temporary_path is not None else temp
    rules = _preset_rules(data.get("rules") or [], source)
    return Preset(
        name, description.strip(), _parsed(sizes, dict.fromkeys(sizes, source), temp), rules, temp, sizes, source
    )


def cache_dir(key: str) -> Path:
    """A private directory in the user cache for a policy named by `key`: XDG_CACHE_HOME/magicktune/policy/KEY.

    Created 0700; one that is not ours alone (another user made it, or others may write it) is refused, since
    a directory on MAGICK_CONFIGURE_PATH decides ImageMagick's limits and supplies its delegates.xml.
    """
    directory = Path(platformdirs.user_cache_dir("magicktune")) / "policy" / key
    environment.configurable(directory, "the policy cache directory")
    return safepaths.private_directory(directory, "policy cache directory", levels=3)


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
        text = _decoded(safepaths.read_small_file(config, "magicktune config"), str(config))
    except FileNotFoundError:
        return {}
    except ValueError as error:
        raise ConfigError(str(error)) from None
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


def configured_preset(
    name_or_path: str | os.PathLike | None = None,
    *,
    defaults: Mapping | None = None,
    resources: Mapping[str, str | int | None] | None = None,
    temporary_path: str | os.PathLike | None = None,
) -> Preset:
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
    sources = {
        **dict.fromkeys(preset.sizes, preset.source),
        **dict.fromkeys(defaults.get("resources") or {}, str(user_config_path())),
        **dict.fromkeys(overrides, "resource overrides"),
    }
    extra, extra_temp = _resource_texts(sizes, "resource overrides", "resources")
    preset.temporary_path = str(temp) if temp is not None else (extra_temp or preset.temporary_path)
    preset.sizes = extra
    preset.resources = _parsed(extra, sources, preset.temporary_path)
    return preset


def _preset_dir():
    return importlib.resources.files("magicktune.policies")


def _decoded(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{source}: not UTF-8 text (byte {error.start}): save it as UTF-8") from None


def _yaml_mapping(text: str, source: str, *, empty_ok: bool = False) -> dict:
    """The YAML text as a mapping; any error in one line, naming the file, the line and the column."""
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(error.problem or error.context or "syntax error").split())
        raise ConfigError(f"{source}: not valid YAML{where}: {problem}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML: {' '.join(str(error).split())}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to read (a preset is a few levels deep)") from None
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
            raise ConfigError(
                f"{source}: {key}.{name}: unknown resource; use one of "
                f"{', '.join([*units.RESOURCE_KINDS, TEMPORARY_PATH_RESOURCE])}"
            )
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ConfigError(f"{source}: {key}.{name}: {value!r} is not a size")
        sizes[name] = str(value)
    return sizes, temp


def _parse_one(name: str, size: str, source: str, whole: int | None) -> int | None:
    try:
        return units.parse_limit(name, size, whole=whole)
    except ValueError as error:
        raise ConfigError(f"{source}: resources.{name}: {error}") from None


def _parsed(sizes: Mapping[str, str], sources: Mapping[str, str], temporary_path: str | None) -> dict[str, int | None]:
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
            if granted_rights(fields["rights"]) is None:
                raise ConfigError(
                    f"{where}.rights: {fields['rights']!r} is not none, read, write, execute, all or a | of them"
                )
            rules.append(PolicyRule(source, domain, rights=fields["rights"], pattern=fields["pattern"]))
        elif domain in VALUE_DOMAINS:
            if "name" not in fields or "value" not in fields:
                raise ConfigError(f"{where}: a {domain} rule needs name and value")
            rules.append(PolicyRule(source, domain, name=fields["name"].lower(), value=fields["value"]))
        else:
            raise ConfigError(
                f"{where}.domain: {domain or None!r} is not one of "
                f"{', '.join((*SECURITY_DOMAINS, *VALUE_DOMAINS))} (put limits under resources:)"
            )
    for rule in rules:
        for value in (rule.name, rule.value, rule.rights, rule.pattern):
            if value is not None:
                checked_value(value, f"rule value in {source}")
    return rules
