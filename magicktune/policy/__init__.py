"""Read, build, write and check ImageMagick policy.xml files.

An override written here restates resource values only. ImageMagick takes each resource value from the
first file that names it (so an override first on MAGICK_CONFIGURE_PATH wins) and each right from the
last rule that matches (so the system's coder, path, delegate and module rules, loaded after it, stay in
force untouched).

Modules, bottom up: xml (the file format), rights (domains and rights), presets (YAML presets, user config),
effective (what is in force), build (a policy from a preset), audit (checking a file).
"""

from __future__ import annotations

from ..errors import ConfigError, PolicyError, PolicySyntaxError
from .audit import Finding, check
from .build import generate, save
from .effective import EffectivePolicy, ResourceSetting, show, system_policy
from .presets import (
    Preset,
    available_presets,
    cache_dir,
    configured_preset,
    load_preset,
    override_dir,
    user_config_path,
    user_defaults,
)
from .rights import KNOWN_DOMAINS, SECURITY_DOMAINS, TEMPORARY_PATH_RESOURCE, VALUE_DOMAINS
from .xml import read, render, write

__all__ = [
    "read",
    "render",
    "write",
    "SECURITY_DOMAINS",
    "VALUE_DOMAINS",
    "KNOWN_DOMAINS",
    "TEMPORARY_PATH_RESOURCE",
    "Preset",
    "available_presets",
    "cache_dir",
    "load_preset",
    "override_dir",
    "user_config_path",
    "user_defaults",
    "configured_preset",
    "EffectivePolicy",
    "ResourceSetting",
    "show",
    "system_policy",
    "generate",
    "save",
    "Finding",
    "check",
    "PolicyError",
    "PolicySyntaxError",
    "ConfigError",
]
