"""policy.xml text from a preset, as an override for MAGICK_CONFIGURE_PATH or a standalone system policy, and saving it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .. import magick, units
from ..magick import PolicyRule
from .effective import system_policy
from .presets import Preset
from .rights import SECURITY_DOMAINS, TEMPORARY_PATH_RESOURCE, VALUE_DOMAINS, granted_rights
from .xml import render, write


def generate(
    preset: Preset,
    *,
    standalone: bool = False,
    keep_system_rules: bool = True,
    system_rules: list[PolicyRule] | None = None,
    imagemagick: magick.ImageMagick | None = None,
) -> str:
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
    preset_values = [
        rule for rule in preset.rules if rule.domain in VALUE_DOMAINS and (rule.domain, rule.name) not in named_values
    ]
    preset_rights = [rule for rule in preset.rules if rule.domain in SECURITY_DOMAINS]
    asked = ", ".join(f"{name} {size}" for name, size in preset.sizes.items())
    origin = f"magicktune preset {preset.name!r} ({preset.source}; {asked or 'no resources'})"
    if not standalone:
        added = (
            f"adds {len(preset_rights)} security rules, which the system's rules (loaded later, the last "
            f"match wins) overrule wherever they match"
            if preset_rights
            else "adds no security rule"
        )
        return render(
            preset.resources,
            temporary_path=preset.temporary_path,
            rules=[*preset_values, *preset_rights],
            comment=f"{origin}. Override for MAGICK_CONFIGURE_PATH: restates resources and {added}; "
            f"every rule of the system policy stays in force.",
        )
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
        restated = {(rule.domain, granted_rights(rule.rights), rule.pattern) for rule in system_rights}
        preset_rights = [
            rule for rule in preset_rights if (rule.domain, granted_rights(rule.rights), rule.pattern) not in restated
        ]
    files = ", ".join(dict.fromkeys(rule.path for rule in system)) or "none"
    kept = (
        f"then every security rule of the system policy ({files}), last, so each still has the last word"
        if keep_system_rules
        else "WITHOUT the system policy's security rules"
    )
    return render(
        resources,
        temporary_path=temp,
        rules=[*reversed(system_values), *preset_values, *preset_rights, *(system_rights if keep_system_rules else [])],
        comment=f"{origin}. Standalone policy: its resources and rules, {kept}.",
    )


def save(path: str | os.PathLike, text: str, *, private: bool | None = None) -> Path:
    """Write policy text atomically; by default owner-only when the directory is shared (others may write it)."""
    target = Path(path)
    directory = target if target.is_dir() else target.parent
    if private is None:
        private = directory.exists() and bool(directory.stat().st_mode & stat.S_IWOTH)
    return write(target, text, private=private)
