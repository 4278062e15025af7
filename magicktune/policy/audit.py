"""Checking a policy.xml: traps in its values, then what the real ImageMagick loads from it next to the system policy."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .. import environment, magick, safepaths, units
from ..environment import CONFIGURE_PATH, prepend_configure_path, without_limit_variables
from ..errors import InvalidValue, PolicyError, PolicySyntaxError
from ..magick import PolicyRule
from .effective import system_policy
from .rights import (
    KNOWN_DOMAINS,
    SECURITY_DOMAINS,
    TEMPORARY_PATH_RESOURCE,
    VALUE_DOMAINS,
    RightsIndex,
    example,
    from_listing,
    granted_rights,
    weakened,
)
from .xml import parse


@dataclass(frozen=True)
class Finding:
    """One thing `check` found: level is 'error', 'warning' or 'info'."""

    level: Literal["error", "warning", "info"]
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"


def check(
    path: str | os.PathLike,
    imagemagick: magick.ImageMagick | None = None,
    *,
    standalone: bool = False,
    load: bool = True,
) -> list[Finding]:
    """What a policy.xml means to ImageMagick: traps in its values, then what the real ImageMagick loads from it.

    `standalone` judges it as a replacement for the system policy (dropped system rules are errors);
    otherwise as an override first on MAGICK_CONFIGURE_PATH.
    """
    findings: list[Finding] = []
    try:
        data = safepaths.read_small_file(path, "policy file")
    except OSError as error:
        return [Finding("error", f"cannot read policy file {path}: {error.strerror or error}")]
    except InvalidValue as error:
        return [Finding("error", str(error))]
    try:
        rules = parse(data, str(path))
    except PolicySyntaxError as error:
        rules = _listed_by_imagemagick(Path(path), data, imagemagick) if load else []
        if not rules:
            return [Finding("error", f"{error}; ImageMagick did not load any entry from it either")]
        findings.append(
            Finding(
                "info",
                f"{error}; ImageMagick's own reader is lenient and loads it, so this check "
                f"uses the {len(rules)} entries ImageMagick lists for it",
            )
        )
    except PolicyError as error:
        return [Finding("error", str(error))]
    findings += [finding for rule in rules for finding in _check_rule(rule)]
    if not load:
        return findings
    try:
        im = imagemagick or magick.find()
    except magick.ImageMagickNotFound as error:
        return findings + [Finding("warning", f"not loaded into ImageMagick: {error}")]
    _, note = environment.configurable_temp_dir()
    return findings + ([Finding("info", note)] if note else []) + _check_loaded(Path(path), data, rules, im, standalone)


def _check_rule(rule: PolicyRule) -> list[Finding]:
    """Static traps in one entry: values ImageMagick reads differently from what a person means, missing parts."""
    where = f"{Path(rule.path).name}: {rule.domain}" + (f" {rule.name}" if rule.name else "")
    if rule.domain not in KNOWN_DOMAINS:
        return [
            Finding(
                "warning",
                f"{where}: unknown domain {rule.domain!r}; ImageMagick ignores it "
                f"(domains: {', '.join(KNOWN_DOMAINS)})",
            )
        ]
    if rule.domain in SECURITY_DOMAINS:
        missing = [key for key in ("rights", "pattern") if getattr(rule, key) is None]
        if missing or rule.pattern is None:
            return [Finding("error", f"{where}: no {' or '.join(missing)}, so this rule matches nothing")]
        if granted_rights(rule.rights) is None:
            return [
                Finding(
                    "error",
                    f"{where} {rule.pattern}: rights {rule.rights!r} is not none, read, write, "
                    f"execute, all or a | of them",
                )
            ]
        if rule.domain == "coder" and rule.pattern != rule.pattern.upper():
            return [
                Finding(
                    "warning",
                    f"{where} {rule.pattern}: ImageMagick matches patterns case-sensitively and "
                    f"names its coders in upper case, so this rule matches no coder: write "
                    f"{rule.pattern.upper()!r}",
                )
            ]
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
        return [
            Finding(
                "warning",
                f"{where}: unknown resource name; ImageMagick ignores it "
                f"(names: {', '.join([*units.RESOURCE_KINDS, TEMPORARY_PATH_RESOURCE])})",
            )
        ]
    reads = units.as_imagemagick_reads(rule.value)
    reads_text = units.human(None if reads >= units.UNLIMITED_AT else reads, kind)
    stripped = rule.value.strip()
    if stripped.startswith("-") and reads >= units.UNLIMITED_AT:
        effect = (
            "a pause of about 2^64 milliseconds: every command stalls; write 0 for no pause"
            if rule.name == "throttle"
            else "no cap at all; write the limit you mean, or leave the resource out"
        )
        return [Finding("error", f"{where}: {rule.value!r} is negative, which ImageMagick wraps around to {effect}")]
    if rule.name == "throttle" and reads >= units.UNLIMITED_AT:
        return [
            Finding(
                "error",
                f"{where}: {rule.value!r} is read by ImageMagick as a pause of 2^63 milliseconds or more "
                f"after every 32 pixel-cache requests: every command stalls; write 0 for no pause",
            )
        ]
    if stripped.endswith("%"):
        return [
            Finding(
                "error",
                f"{where}: {rule.value!r} is read by ImageMagick as {reads_text}, not a share "
                f"of anything; write an absolute size such as {units.to_magick(2**30, kind)}",
            )
        ]
    try:
        means = units.parse_limit(rule.name, rule.value)
    except ValueError as error:
        return [Finding("error", f"{where}: {error}; ImageMagick reads it as {reads_text}")]
    if means is None and reads < units.UNLIMITED_AT:
        return [
            Finding(
                "error",
                f"{where}: {rule.value!r} is read by ImageMagick as {reads_text}, not unlimited; "
                f"write {units.to_magick(None, kind)} (or leave the resource out)",
            )
        ]
    if means is not None and not units.same_limit(reads, means, kind):
        return [
            Finding(
                "error",
                f"{where}: {rule.value!r} is read by ImageMagick as {reads_text}, not "
                f"{units.human(means, kind)}; write {units.to_magick(means, kind)}",
            )
        ]
    return []


def _describe(rule: PolicyRule) -> str:
    return f'{rule.domain} rights="{rule.rights}" pattern="{rule.pattern}" ({rule.path})'


@contextmanager
def _loaded_first(data: bytes, base: Mapping[str, str]) -> Iterator[tuple[dict[str, str], Path]]:
    """`base` with the checked bytes first on MAGICK_CONFIGURE_PATH, as a policy.xml (the name ImageMagick requires).

    The bytes already read are written, not the file copied again: what is loaded is what was checked.
    """
    parent, _ = environment.configurable_temp_dir()
    with tempfile.TemporaryDirectory(prefix="magicktune-check-", dir=parent) as directory:
        copy = Path(directory) / "policy.xml"
        copy.write_bytes(data)
        yield {**base, CONFIGURE_PATH: prepend_configure_path(directory, base.get(CONFIGURE_PATH))}, copy


def _listed_by_imagemagick(path: Path, data: bytes, imagemagick: magick.ImageMagick | None) -> list[PolicyRule]:
    """The entries ImageMagick loads from `path`, as `-list policy` shows them; [] when it cannot tell."""
    try:
        im = imagemagick or magick.find()
        with _loaded_first(data, without_limit_variables()) as (env, copy):
            listed = im.policy_rules(env=env)
    except (magick.ImageMagickNotFound, magick.ImageMagickError, OSError):
        return []
    return [_relabelled(from_listing(rule), copy, path) for rule in listed if rule.path == str(copy)]


def _check_loaded(
    path: Path, data: bytes, rules: list[PolicyRule], im: magick.ImageMagick, standalone: bool
) -> list[Finding]:
    """Load the file first on MAGICK_CONFIGURE_PATH and compare what ImageMagick reads with the system alone.

    Linear in the file's rules: each rule's rights are looked up in a RightsIndex, never by rescanning every rule.
    """
    findings: list[Finding] = []
    base = without_limit_variables()
    with _loaded_first(data, base) as (env, copy):
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
        read_as = units.as_imagemagick_reads(rule.value or "")
        reads = None if read_as >= units.UNLIMITED_AT else read_as
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
            findings.append(
                Finding(
                    "warning",
                    f"{rule.domain} {rule.name}: this file's {rule.value!r} replaces "
                    f"{earlier.value!r} from {earlier.path} (the first file wins)",
                )
            )
    system_rights = [r for r in system if r.domain in SECURITY_DOMAINS and r.rights is not None]
    still = {(r.domain, granted_rights(r.rights), r.pattern) for r in loaded if r.path != str(copy)}
    for rule in system_rights:
        if (rule.domain, granted_rights(rule.rights), rule.pattern) not in still:
            findings.append(Finding("error", f"system rule {_describe(rule)} no longer loads with this file"))
    for rule, probe, extra in weakened(system_rights, [_relabelled(r, copy, path) for r in loaded]):
        findings.append(
            Finding(
                "error",
                f"loaded with this file, {rule.domain} {probe!r} gains "
                f"{'|'.join(sorted(extra))}, which {_describe(rule)} denies",
            )
        )
    own = [r for r in rules if r.domain in SECURITY_DOMAINS and r.rights is not None]
    loaded_index = RightsIndex(loaded)
    for rule in own:
        witness = example(rule.pattern or "")
        if witness is None:
            continue
        final = loaded_index.decision(rule.domain, witness)
        if final != granted_rights(rule.rights):
            findings.append(
                Finding(
                    "info",
                    f"{_describe(rule)}: a later system rule decides {witness!r} instead "
                    f"(the last match wins), granting {'|'.join(sorted(final)) or 'none'}",
                )
            )
    restated = {(r.domain, granted_rights(r.rights), r.pattern) for r in own}
    dropped = [
        rule for rule in system_rights if (rule.domain, granted_rights(rule.rights), rule.pattern) not in restated
    ]
    weakened_by_own = weakened(system_rights, own)
    if standalone:
        for rule, probe, extra in weakened_by_own:
            findings.append(
                Finding(
                    "error",
                    f"installed in place of the system policy, this file weakens "
                    f"{_describe(rule)}: {rule.domain} {probe!r} gains "
                    f"{'|'.join(sorted(extra))}",
                )
            )
        weakened_rules = {id(rule) for rule, _, _ in weakened_by_own}
        for rule in dropped:
            if id(rule) not in weakened_rules:
                findings.append(
                    Finding("info", f"{_describe(rule)} is not restated, but this file's own rules deny as much")
                )
    elif dropped:
        findings.append(
            Finding(
                "info",
                f"as an override the system's {len(system_rights)} security rules stay in "
                f"force; installed in place of the system policy this file would drop "
                f"{len(dropped)} of them (use a standalone policy for that)",
            )
        )
    return findings


def _relabelled(rule: PolicyRule, copy: Path, original: Path) -> PolicyRule:
    """A rule loaded from the temporary copy, named after the file being checked."""
    if rule.path != str(copy):
        return rule
    return PolicyRule(str(original), rule.domain, rule.name, rule.value, rule.rights, rule.pattern)
