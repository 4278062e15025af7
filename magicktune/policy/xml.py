"""The policy.xml file format: reading it (defused), rendering limits and rules in ImageMagick's syntax, writing it.

ImageMagick's policy reader knows no XML escapes, so every value written here is checked to need none.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import defusedxml.ElementTree as SafeElementTree

from .. import safepaths, units
from ..atomic import AtomicOutput
from ..errors import InvalidValue, PolicyError, PolicySyntaxError
from ..magick import PolicyRule

_FORBIDDEN_IN_VALUES = set("\"<>&'")
#: Characters XML 1.0 does not allow in a document at all.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def read(path: str | os.PathLike) -> list[PolicyRule]:
    """The `<policy>` entries of one policy.xml, in file order (defused against XML attacks).

    Element and attribute names are read ignoring case, as ImageMagick's reader does (it enforces
    `<POLICY DOMAIN="coder" ...>`); names are lower-cased: ImageMagick looks them up ignoring case ("Memory"
    caps memory). Only a regular file of at most safepaths.SMALL_FILE_CAP bytes is read.
    """
    try:
        data = safepaths.read_small_file(path, "policy file")
    except OSError as error:
        raise PolicyError(f"cannot read policy file {path}: {error.strerror or error}") from None
    except InvalidValue as error:
        raise PolicyError(str(error)) from None
    return parse(data, str(path))


def parse(data: bytes, path: str) -> list[PolicyRule]:
    """The `<policy>` entries of policy.xml text read from `path` (see `read`)."""
    try:
        root = SafeElementTree.fromstring(data)
    except SafeElementTree.ParseError as error:
        raise PolicySyntaxError(f"{path} is not well-formed XML ({error})") from None
    except Exception as error:  # defusedxml's refusals (entities, DTD tricks) share no base class
        raise PolicyError(f"refused to read policy file {path}: {error}") from None
    if not isinstance(root.tag, str) or root.tag.lower() != "policymap":
        raise PolicyError(f"{path} is not an ImageMagick policy file: its root element is <{root.tag}>")
    rules = []
    for element in root.iter():
        if not isinstance(element.tag, str) or element.tag.lower() != "policy":
            continue
        attributes = {key.lower(): value for key, value in element.attrib.items()}  # the last spelling wins, as in IM
        rules.append(
            PolicyRule(
                path=path,
                domain=(attributes.get("domain") or "undefined").lower(),
                name=attributes.get("name", "").lower() or None,
                value=attributes.get("value"),
                rights=attributes.get("rights"),
                pattern=attributes.get("pattern"),
            )
        )
    return rules


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
        lines.append(f"<!-- {checked_value(comment, 'comment')} -->")
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
    """A value as written into policy.xml: ImageMagick's reader knows no XML escapes, so it must need none.

    A comment is made safe instead: `--` (not allowed inside an XML comment), < and > and characters XML 1.0
    does not allow are replaced, so generated XML is always well-formed.
    """
    if what == "comment":
        safe = _NOT_XML.sub("?", value).replace("<", "(").replace(">", ")")
        return re.sub(r"-{2,}", "-", safe).rstrip("-")
    bad = _FORBIDDEN_IN_VALUES & set(value)
    if bad:
        raise PolicyError(
            f"the {what} {value!r} contains {''.join(sorted(bad))}, which ImageMagick's policy "
            f"reader cannot take: choose a value without quotes, <, > or &"
        )
    if _NOT_XML.search(value) or "\n" in value or "\r" in value or "\t" in value:
        raise PolicyError(f"the {what} {value!r} contains a control character: choose a value without one")
    return value


def write(path: str | os.PathLike, text: str, *, private: bool = False) -> Path:
    """Write a policy file whole or not at all (atomic.AtomicOutput); private makes it owner-only."""
    target = Path(path)
    if target.is_dir():
        target = target / "policy.xml"
    target.parent.mkdir(parents=True, exist_ok=True)
    with AtomicOutput(target, mode=0o600 if private else 0o644) as output:
        output.open().write(text.encode("utf-8"))
    return target
