"""The policy in force for an ImageMagick run: the rules of its files in search order, and where each limit comes from."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .. import environment, magick, units
from ..environment import CONFIGURE_PATH, limit_variable
from ..errors import PolicyError
from ..magick import PolicyRule
from .rights import SECURITY_DOMAINS, TEMPORARY_PATH_RESOURCE, from_listing
from .xml import read


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
            "temporary_path": None
            if self.temporary_path is None
            else {"path": self.temporary_path[0], "set_by": self.temporary_path[1]},
            "security_rules": [
                {"domain": r.domain, "rights": r.rights, "pattern": r.pattern, "file": r.path} for r in self.rules
            ],
        }

    def text(self) -> str:
        """A plain report for the terminal."""
        lines = [
            "Policy files, in search order:",
            *(f"  {name}" for name in self.files or ["(none)"]),
            "Resources:",
            *(f"  {setting}" for setting in self.resources),
        ]
        if self.temporary_path:
            lines.append(f"  temporary-path: {self.temporary_path[0]} ({self.temporary_path[1]})")
        lines.append("Security rules (the last match wins):")
        lines += [f"  {rule.domain} {rule.pattern} rights={rule.rights} ({rule.path})" for rule in self.rules]
        if not self.rules:
            lines.append("  (none: every coder, path, delegate and module is allowed)")
        return "\n".join(lines) + "\n"


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
    temp = next(
        (
            (r.value, r.path)
            for r in rules
            if r.domain == "resource" and r.name == TEMPORARY_PATH_RESOURCE and r.value is not None
        ),
        None,
    )
    if temp is None and environ.get(environment.TEMPORARY_PATH):
        temp = (environ[environment.TEMPORARY_PATH], f"${environment.TEMPORARY_PATH}")
    security = [rule for rule in rules if rule.domain in SECURITY_DOMAINS and rule.rights is not None]
    return EffectivePolicy(settings, temp, security, _search_order(magick.policy_files(listed), env))


def system_policy(
    imagemagick: magick.ImageMagick | None = None, env: Mapping[str, str] | None = None
) -> list[PolicyRule]:
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
            rules += [from_listing(rule) for rule in listed if rule.path == name]
    return rules


def _search_order(files: list[str], env: Mapping[str, str] | None) -> list[str]:
    """Files of MAGICK_CONFIGURE_PATH directories first, in that order, then the rest as listed."""
    configured = (os.environ if env is None else env).get(CONFIGURE_PATH, "")
    first = []
    for directory in filter(None, configured.split(os.pathsep)):
        first += [name for name in files if Path(name).parent == Path(directory) and name not in first]
    return first + [name for name in files if name not in first]
