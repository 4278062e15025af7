"""The policy domains and the rights algebra: what a rights text grants and which rule decides for a name.

ImageMagick takes each right from the last rule that matches; patterns are its own globs (`glob_matches`).
"""

from __future__ import annotations

import functools
import re

from ..magick import PolicyRule

SECURITY_DOMAINS = ("coder", "delegate", "filter", "module", "path")
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


#: The most states the product of two patterns may have while looking for a name both match; patterns of policy
#: files are a few dozen characters, so this is only reached by a pattern built to be slow.
_SEARCH_LIMIT = 200_000
_WILDCARDS = frozenset("*?[{")


def glob_matches(name: str, pattern: str) -> bool:
    """Whether ImageMagick matches `name` with a policy pattern (case-sensitively, as for every policy rule).

    As ImageMagick 6.9.11 was seen to match coder rules: an empty pattern matches everything, * and ? as usual,
    [F-H] a range but [!A] no negation (! is a character), {a,b} alternatives, \\ an ordinary character.
    The pattern becomes one regular expression, so braces are never spelled out one name at a time.
    """
    return pattern == "" or _compiled(pattern).fullmatch(name) is not None


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str]:
    expression, _ = _translate(pattern, 0, nested=False)
    return re.compile(expression, re.DOTALL)


def _translate(pattern: str, j: int, *, nested: bool) -> tuple[str, int]:
    """The regular expression for `pattern` from `j`, up to an unmatched , or } when inside braces."""
    out: list[str] = []
    while j < len(pattern):
        c = pattern[j]
        if nested and c in ",}":
            return "".join(out), j
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[" and pattern.find("]", j + 2) >= 0:
            close = pattern.find("]", j + 2)
            body = pattern[j + 1 : close]
            out.append("[" + "".join(_class_part(body, k) for k in range(len(body))) + "]")
            j = close
        elif c == "{" and "}" in pattern[j:]:
            alternatives, j = [], j + 1
            while True:
                part, j = _translate(pattern, j, nested=True)
                alternatives.append(part)
                if j >= len(pattern) or pattern[j] == "}":
                    break
                j += 1
            out.append("(?:" + "|".join(alternatives) + ")")
        else:
            out.append(re.escape(c))
        j += 1
    return "".join(out), j


def _class_part(body: str, k: int) -> str:
    """One character of a [...] body in Python's syntax: ranges kept, everything else literal (no negation)."""
    c = body[k]
    if c == "-" and 0 < k < len(body) - 1:
        return "-"
    return re.escape(c) if c in "\\^[]-" else c


_Chars = frozenset[str] | None  # the characters one step takes; None for any
_Move = tuple[_Chars, int]


def _steps(pattern: str) -> list[tuple[str, _Chars | list[str]]]:
    """A pattern as steps for the search in `example`: ("char", set or None for any), ("star", None),
    ("alt", [literal alternatives]). Approximate where ImageMagick is quirky; `example` checks what it finds."""
    steps: list[tuple[str, _Chars | list[str]]] = []
    j, m = 0, len(pattern)
    while j < m:
        c = pattern[j]
        if c == "*":
            steps.append(("star", None))
        elif c == "?":
            steps.append(("char", None))
        elif c == "[":
            close = pattern.find("]", j + 1)
            if close < 0:
                steps.append(("char", frozenset("[")))
            else:
                body, chars = pattern[j + 1 : close].replace("\\", ""), set[str]()
                k = 0
                while k < len(body):
                    if k + 2 < len(body) and body[k + 1] == "-":
                        chars |= {chr(o) for o in range(ord(body[k]), min(ord(body[k + 2]), ord(body[k]) + 64) + 1)}
                        k += 3
                    else:
                        chars.add(body[k])
                        k += 1
                steps.append(("char", frozenset(chars or "]")))
                j = close
        elif c == "{":
            close = pattern.find("}", j + 1)
            close = m if close < 0 else close
            steps.append(("alt", pattern[j + 1 : close].replace("\\", "").split(",")))
            j = close
        else:
            if c == "\\" and j + 1 < m:
                j += 1
            steps.append(("char", frozenset(pattern[j])))
        j += 1
    return steps


def _nfa(pattern: str) -> tuple[list[list[_Move]], list[list[int]], int]:
    """Transitions (a set of characters, None for any), epsilon moves and the accepting state of a pattern."""
    moves: list[list[_Move]] = [[]]
    empty: list[list[int]] = [[]]

    def state() -> int:
        moves.append([])
        empty.append([])
        return len(moves) - 1

    current = 0
    for kind, arg in _steps(pattern):
        after = state()
        if kind == "star":
            moves[current].append((None, current))
            empty[current].append(after)
        elif isinstance(arg, list):
            for alternative in arg:
                at = current
                for char in alternative[:-1]:
                    nxt = state()
                    moves[at].append((frozenset(char), nxt))
                    at = nxt
                if alternative:
                    moves[at].append((frozenset(alternative[-1]), after))
                else:
                    empty[at].append(after)
        else:
            moves[current].append((arg, after))
        current = after
    return moves, empty, current


def _closure(states: set[int], empty: list[list[int]]) -> frozenset[int]:
    todo, seen = list(states), set(states)
    while todo:
        for nxt in empty[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return frozenset(seen)


def example(pattern: str, other: str | None = None, *, filler: str = "x") -> str | None:
    """A short name ImageMagick matches with `pattern` (and with `other` too, if given), or None if none is found.

    A breadth-first search over the two patterns side by side: time is bounded by the product of their lengths
    (at most _SEARCH_LIMIT states), never by how many names a brace pattern spells out.
    """
    first, second = _nfa(pattern), _nfa("*" if other is None else other)
    start = (_closure({0}, first[1]), _closure({0}, second[1]))
    queue, seen, head = [(start, "")], {start}, 0
    while head < len(queue) and len(seen) < _SEARCH_LIMIT:
        (a, b), name = queue[head]
        head += 1
        if first[2] in a and second[2] in b:
            if glob_matches(name, pattern) and (other is None or glob_matches(name, other)):
                return name
        for char in _candidates(a, b, first[0], second[0], filler):
            nxt = (
                _closure({t for s in a for chars, t in first[0][s] if chars is None or char in chars}, first[1]),
                _closure({t for s in b for chars, t in second[0][s] if chars is None or char in chars}, second[1]),
            )
            if nxt[0] and nxt[1] and nxt not in seen:
                seen.add(nxt)
                queue.append((nxt, name + char))
    return None


def _candidates(
    a: frozenset[int], b: frozenset[int], first_moves: list[list[_Move]], second_moves: list[list[_Move]], filler: str
) -> list[str]:
    """The characters worth trying next: those either side names, and a filler for where both take any."""
    chars: set[str] = set()
    for states, moves in ((a, first_moves), (b, second_moves)):
        for s in states:
            for allowed, _ in moves[s]:
                if allowed is not None:
                    chars |= allowed
    return sorted(chars) + [filler]


class RightsIndex:
    """The security rules of a policy, indexed so that the rights for a name cost O(1) plus one test per wildcard rule.

    ImageMagick takes each right from the last rule whose pattern matches (IsRightsAuthorized). A pattern with
    no wildcard matches only itself, so those are looked up in a dict; wildcard patterns are tried from the end.
    """

    def __init__(self, rules: list[PolicyRule]) -> None:
        self._literal: dict[tuple[str, str], tuple[int, frozenset[str]]] = {}
        self._wildcard: dict[str, list[tuple[int, str, frozenset[str]]]] = {}
        for index, rule in enumerate(rules):
            if rule.domain not in SECURITY_DOMAINS or rule.pattern is None or rule.rights is None:
                continue
            granted = granted_rights(rule.rights) or frozenset()
            if rule.pattern and not _WILDCARDS & set(rule.pattern):
                self._literal[(rule.domain, rule.pattern)] = (index, granted)
            else:
                self._wildcard.setdefault(rule.domain, []).append((index, rule.pattern, granted))

    def decision(self, domain: str, name: str) -> frozenset[str]:
        """The rights ImageMagick grants `name` in `domain`: the last matching rule decides, else everything."""
        index, granted = self._literal.get((domain, name), (-1, _ALL_RIGHTS))
        for at, pattern, rights in reversed(self._wildcard.get(domain, [])):
            if at < index:
                break
            if glob_matches(name, pattern):
                return rights
        return granted


def decision(rules: list[PolicyRule], domain: str, name: str) -> frozenset[str]:
    """The rights ImageMagick grants `name` in `domain`: the last matching rule decides, else everything.

    Patterns match case-sensitively, as in ImageMagick (GlobExpression without case folding, IM6 and IM7).
    """
    return RightsIndex(rules).decision(domain, name)


def weakened(before: list[PolicyRule], after: list[PolicyRule]) -> list[tuple[PolicyRule, str, frozenset[str]]]:
    """Each security rule of `before` under which `after` grants a name a right `before` denied.

    A grant is judged by what it opens, not by its text: for each rule of `before` that denies something, the
    names tried are one it matches and, for each rule of `after` that grants something, one both match (so
    `path read @/tmp/*` after a restated `path none @*` is caught by `@/tmp/`).
    """
    before_index, after_index = RightsIndex(before), RightsIndex(after)
    grants: dict[str, list[str]] = {}
    for rule in after:
        if rule.domain in SECURITY_DOMAINS and rule.pattern is not None and granted_rights(rule.rights):
            grants.setdefault(rule.domain, []).append(rule.pattern)
    found = []
    for rule in before:
        if rule.domain not in SECURITY_DOMAINS or rule.pattern is None or rule.rights is None:
            continue
        if granted_rights(rule.rights) == _ALL_RIGHTS:
            continue
        tried = set()
        for other in [None, *dict.fromkeys(grants.get(rule.domain, []))]:
            probe = example(rule.pattern, other)
            if probe is None or probe in tried:
                continue
            tried.add(probe)
            extra = after_index.decision(rule.domain, probe) - before_index.decision(rule.domain, probe)
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
