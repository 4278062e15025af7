"""The policy domains and the rights algebra: what a rights text grants and which rule decides for a name.

ImageMagick takes each right from the last rule that matches; patterns are globs with {a,b} braces.
"""

from __future__ import annotations

import fnmatch
import re

from ..magick import SECURITY_DOMAINS, PolicyRule

VALUE_DOMAINS = ("cache", "system")
KNOWN_DOMAINS = ("resource", *VALUE_DOMAINS, *SECURITY_DOMAINS)
#: The policy resource that names the pixel cache's spill directory (a setting, not a limit).
TEMPORARY_PATH_RESOURCE = "temporary-path"
_RIGHTS = {
    "none": frozenset(),
    "read": frozenset({"read"}),
    "write": frozenset({"write"}),
    "execute": frozenset({"execute"}),
    "all": frozenset({"read", "write", "execute"}),
}
_ALL_RIGHTS = _RIGHTS["all"]


def granted_rights(text: str | None) -> frozenset[str] | None:
    """The rights a rule grants ("read|write", "Read Write", "none"); None if any word is unknown."""
    if text is None:
        return None
    granted: set[str] = set()
    for word in re.split(r"[\s|,]+", text.strip().lower()):
        if word and word not in _RIGHTS:
            return None
        granted |= _RIGHTS.get(word, frozenset())
    return frozenset(granted)


def expand_braces(pattern: str) -> list[str]:
    """ImageMagick glob braces spelled out: "{PS,EPS}*" is ["PS*", "EPS*"]."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    return [
        expanded
        for choice in match.group(1).split(",")
        for expanded in expand_braces(pattern[: match.start()] + choice + pattern[match.end() :])
    ]


def decision(rules: list[PolicyRule], domain: str, name: str) -> frozenset[str]:
    """The rights ImageMagick grants `name` in `domain`: the last matching rule decides, else everything.

    Patterns match case-sensitively, as in ImageMagick (GlobExpression without case folding, IM6 and IM7).
    """
    granted = _ALL_RIGHTS
    for rule in rules:
        if (
            rule.domain == domain
            and rule.pattern is not None
            and rule.rights is not None
            and any(fnmatch.fnmatchcase(name, alternative) for alternative in expand_braces(rule.pattern))
        ):
            granted = granted_rights(rule.rights) or frozenset()
    return granted


def weakened(before: list[PolicyRule], after: list[PolicyRule]) -> list[tuple[PolicyRule, str, frozenset[str]]]:
    """Each security rule of `before` under which `after` grants a name a right `before` denied."""
    found = []
    for rule in before:
        if rule.domain not in SECURITY_DOMAINS or rule.pattern is None or rule.rights is None:
            continue
        for probe in expand_braces(rule.pattern):
            extra = decision(after, rule.domain, probe) - decision(before, rule.domain, probe)
            if extra:
                found.append((rule, probe, extra))
                break
    return found


def from_listing(rule: PolicyRule) -> PolicyRule:
    """A `-list policy` entry in policy.xml syntax ("Read Write" becomes "read|write")."""
    if rule.rights is None:
        return rule
    granted = granted_rights(rule.rights) or frozenset()
    text = "|".join(right for right in ("read", "write", "execute") if right in granted) or "none"
    return PolicyRule(rule.path, rule.domain, rule.name, rule.value, text, rule.pattern)
