"""The policy.xml file format: reading it (defused), rendering limits and rules in ImageMagick's syntax, writing it.

ImageMagick's policy reader knows no XML escapes, so every value written here is checked to need none.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import defusedxml.ElementTree as SafeElementTree

from .. import units
from ..atomic import AtomicOutput
from ..errors import PolicyError, PolicySyntaxError
from ..magick import PolicyRule

_FORBIDDEN_IN_VALUES = set("\"<>&'")


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


def render(
    resources: Mapping[str, units.Limit | None],
    *,
    temporary_path: str | None = None,
    rules: Iterable[PolicyRule] = (),
    comment: str | None = None,
) -> str:
    """A policy.xml restating these resource limits (and optional extra rules), in ImageMagick's own syntax."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>']
    if comment:
        lines.append(f"<!-- {checked_value(comment.replace('--', '-'), 'comment')} -->")
    lines.append("<policymap>")
    for name, value in resources.items():
        kind = units.RESOURCE_KINDS.get(name)
        if kind is None:
            raise PolicyError(f"unknown resource {name!r}: use one of {', '.join(units.RESOURCE_KINDS)}")
        lines.append(f'  <policy domain="resource" name="{name}" value="{units.to_magick(value, kind)}"/>')
    if temporary_path is not None:
        lines.append(
            f'  <policy domain="resource" name="temporary-path" '
            f'value="{checked_value(str(temporary_path), "temporary path")}"/>'
        )
    for rule in rules:
        attributes = {
            "domain": rule.domain,
            "name": rule.name,
            "value": rule.value,
            "rights": rule.rights,
            "pattern": rule.pattern,
        }
        text = " ".join(
            f'{key}="{checked_value(value, key)}"' for key, value in attributes.items() if value is not None
        )
        lines.append(f"  <policy {text}/>")
    lines.append("</policymap>")
    return "\n".join(lines) + "\n"


def checked_value(value: str, what: str) -> str:
    """ImageMagick's policy reader knows no XML escapes, so a value must not need any."""
    bad = _FORBIDDEN_IN_VALUES & set(value)
    if bad and what != "comment":
        raise PolicyError(
            f"the {what} {value!r} contains {''.join(sorted(bad))}, which ImageMagick's policy "
            f"reader cannot take: choose a value without quotes, <, > or &"
        )
    return value.replace("<", "(").replace(">", ")") if what == "comment" else value


def write(path: str | os.PathLike, text: str, *, private: bool = False) -> Path:
    """Write a policy file whole or not at all (atomic.AtomicOutput); private makes it owner-only."""
    target = Path(path)
    if target.is_dir():
        target = target / "policy.xml"
    target.parent.mkdir(parents=True, exist_ok=True)
    with AtomicOutput(target, mode=0o600 if private else 0o644) as output:
        output.open().write(text.encode("utf-8"))
    return target
