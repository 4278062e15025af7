"""The policy domains and the rights algebra: what a rights text grants and which rule decides for a name.

ImageMagick takes each right from the last rule that matches; patterns are its own globs (`glob_matches`).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

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


#: The most states the search for a name two patterns both match may visit; policy patterns are a few dozen
#: characters, so only a pattern built to be slow reaches it (the search then gives up, finding nothing).
_SEARCH_LIMIT = 200_000
_WILDCARDS = frozenset("*?[{")
#: A step's characters: ranges (low, high), or None for any character.
_Chars = tuple[tuple[str, str], ...] | None


@dataclass(frozen=True)
class _Automaton:
    """A policy pattern as a nondeterministic automaton: moves on characters, moves on nothing, the accepting state."""

    moves: tuple[tuple[tuple[_Chars, int], ...], ...]
    empty: tuple[tuple[int, ...], ...]
    accept: int

    def closure(self, states: Iterable[int]) -> frozenset[int]:
        todo, seen = list(states), set(states)
        while todo:
            for nxt in self.empty[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return frozenset(seen)

    def step(self, states: frozenset[int], char: str) -> frozenset[int]:
        return self.closure({t for s in states for chars, t in self.moves[s] if _takes(chars, char)})


def _takes(chars: _Chars, char: str) -> bool:
    return chars is None or any(low <= char <= high for low, high in chars)


@functools.lru_cache(maxsize=4096)
def _automaton(pattern: str) -> _Automaton:
    """Steps of ImageMagick's glob as seen in 6.9.11: * any run, ? one character, [F-H] a range ([!A] is no
    negation, and [ with no ] after it is a character), {a,b} literal alternatives, everything else itself."""
    moves: list[list[tuple[_Chars, int]]] = [[]]
    empty: list[list[int]] = [[]]

    def state() -> int:
        moves.append([])
        empty.append([])
        return len(moves) - 1

    current, j = 0, 0
    while j < len(pattern):
        c, after = pattern[j], state()
        if c == "*":
            moves[current].append((None, current))
            empty[current].append(after)
        elif c == "?":
            moves[current].append((None, after))
        elif c == "[" and pattern.find("]", j + 2) >= 0:
            close = pattern.find("]", j + 2)
            body, ranges, k = pattern[j + 1 : close], [], 0
            while k < len(body):
                if k + 2 < len(body) and body[k + 1] == "-":
                    ranges.append((body[k], body[k + 2]))
                    k += 3
                else:
                    ranges.append((body[k], body[k]))
                    k += 1
            moves[current].append((tuple(ranges), after))
            j = close
        elif c == "{" and pattern.find("}", j) >= 0:
            close = pattern.find("}", j)
            for alternative in pattern[j + 1 : close].split(","):
                at = current
                for char in alternative:
                    nxt = state()
                    moves[at].append((((char, char),), nxt))
                    at = nxt
                empty[at].append(after)
            j = close
        else:
            moves[current].append((((c, c),), after))
        current = after
        j += 1
    return _Automaton(tuple(map(tuple, moves)), tuple(map(tuple, empty)), current)


def glob_matches(name: str, pattern: str) -> bool:
    """Whether ImageMagick matches `name` with a policy pattern (case-sensitively, as for every policy rule).

    As ImageMagick 6.9.11 was seen to match coder rules (tests/test_policy_reading.py asks the real convert): an
    empty pattern matches everything, a backslash is an ordinary character, and see `_automaton`. Time is
    linear in the name times the pattern: no backtracking, and braces are never spelled out name by name.
    """
    if not _WILDCARDS & set(pattern):
        return pattern in ("", name)
    automaton = _automaton(pattern)
    states = automaton.closure({0})
    for char in name:
        states = automaton.step(states, char)
        if not states:
            return False
    return automaton.accept in states


def example(pattern: str, other: str | None = None, *, filler: str = "x") -> str | None:
    """A short name ImageMagick matches with `pattern` (and with `other` too, if given); None if there is none.

    A breadth-first search over the two patterns side by side, bounded by _SEARCH_LIMIT states, never by how
    many names a brace pattern spells out.
    """
    if pattern and not _WILDCARDS & set(pattern) and (other is None or glob_matches(pattern, other)):
        return pattern
    first, second = _automaton(pattern or "*"), _automaton(other or "*")
    start = (first.closure({0}), second.closure({0}))
    queue, seen, head = [(start, "")], {start}, 0
    while head < len(queue) and len(seen) < _SEARCH_LIMIT:
        (a, b), name = queue[head]
        head += 1
        if first.accept in a and second.accept in b:
            return name
        for char in _candidates(first, a) | _candidates(second, b) | {filler}:
            nxt = (first.step(a, char), second.step(b, char))
            if nxt[0] and nxt[1] and nxt not in seen:
                seen.add(nxt)
                queue.append((nxt, name + char))
    return None


def _candidates(automaton: _Automaton, states: frozenset[int]) -> set[str]:
    """The characters worth trying next from these states: each range's ends."""
    return {end for s in states for chars, _ in automaton.moves[s] if chars for pair in chars for end in pair}


#: How many of a pattern's brace alternatives `weakened` tries one by one ("{PS,EPS}" restated as "PS" drops EPS);
#: 24 groups of {A,B} spell out 16.7 million, so the rest are left to the searches pattern against pattern.
_SPELLED_OUT = 64


def _alternatives(pattern: str, limit: int) -> Iterator[str]:
    """The first `limit` patterns a brace pattern spells out, without making the rest."""
    parts = re.split(r"(\{[^{}]*\})", pattern)
    choices = [part[1:-1].split(",") if part.startswith("{") and part.endswith("}") else [part] for part in parts]
    return itertools.islice(("".join(combination) for combination in itertools.product(*choices)), limit)


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
    names tried are one for each of its first _SPELLED_OUT brace alternatives and, for each rule of `after` that
    grants something, one both match (so `path read @/tmp/*` after a restated `path none @*` is caught by
    `@/tmp/`).
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
        spelled = [(alternative, None) for alternative in _alternatives(rule.pattern, _SPELLED_OUT)]
        for pattern, other in [*spelled, *((rule.pattern, g) for g in dict.fromkeys(grants.get(rule.domain, [])))]:
            probe = example(pattern, other)
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
