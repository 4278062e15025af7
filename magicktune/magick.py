"""Find the real ImageMagick and ask it what it is and what it allows.

Detection goes by what `-version` prints, never by a path existing: a `convert` on PATH may be a
stand-in, Windows' disk tool, or IM7's deprecated shim.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import environment, units
from .errors import ImageMagickError, ImageMagickNotFound

#: Names tried in order: IM7 first, then IM6 and Debian's versioned IM6 names.
CANDIDATES = ("magick", "convert", "convert-im6.q16", "convert-im6", "convert-im6.q8", "convert-im6.q16hdri")

INSTALL_HINT = (
    "install it with one of: 'sudo apt-get install imagemagick' (Debian/Ubuntu), "
    "'brew install imagemagick' (macOS), 'conda install -c conda-forge imagemagick' (conda); "
    f"or point {environment.IMAGEMAGICK} at a magick or convert binary"
)

#: Seconds an ImageMagick command may take before we stop it. Listing takes well under a second; a command that
#: runs longer is stalled (IM7's bare `magick -list` obeys a policy's throttle and sleeps for ever on "-1").
COMMAND_TIMEOUT = 60.0

_LIST_RESOURCE_NAMES = {
    "width": "width",
    "height": "height",
    "list length": "list-length",
    "area": "area",
    "memory": "memory",
    "map": "map",
    "disk": "disk",
    "file": "file",
    "thread": "thread",
    "throttle": "throttle",
    "time": "time",
}


#: The domains whose rules grant or deny rights. IM7's stock policy.xml also holds `<policy domain="Undefined"
#: rights="none"/>`, a placeholder with no domain ImageMagick checks and no pattern: it matches nothing.
SECURITY_DOMAINS = ("coder", "delegate", "filter", "module", "path")
#: The domain of that placeholder, as `-list policy` and our reader name it.
PLACEHOLDER_DOMAIN = "undefined"


@dataclass(frozen=True)
class PolicyRule:
    """One `<policy>` entry as ImageMagick loaded it, with the file it came from."""

    path: str
    domain: str
    name: str | None = None
    value: str | None = None
    rights: str | None = None
    pattern: str | None = None

    @property
    def is_security_rule(self) -> bool:
        """Rules that grant or deny rights (coder, path, delegate, module, filter) rather than set values."""
        return self.rights is not None and self.domain in SECURITY_DOMAINS


@dataclass(frozen=True)
class ImageMagick:
    """One installed ImageMagick: how to run it and what its build is."""

    convert: tuple[str, ...]
    identify: tuple[str, ...]
    version: str
    major: int
    quantum_depth: int
    hdri: bool
    openmp: bool
    features: tuple[str, ...] = ()
    delegates: tuple[str, ...] = ()
    version_text: str = field(default="", repr=False, compare=False)

    @property
    def bytes_per_pixel(self) -> int:
        """Pixel-cache bytes for one RGBA pixel: 4 channels at the quantum's size (HDRI stores floats)."""
        return 4 * (4 if self.hdri else self.quantum_depth // 8)

    @property
    def build(self) -> str:
        """The build as ImageMagick names it: Q8, Q16, Q16-HDRI."""
        return f"Q{self.quantum_depth}{'-HDRI' if self.hdri else ''}"

    @property
    def label(self) -> str:
        return f"ImageMagick {self.version} {self.build}"

    def run(
        self,
        args: list[str],
        *,
        env: Mapping[str, str] | None = None,
        tool: str = "convert",
        check: bool = True,
        timeout: float = COMMAND_TIMEOUT,
        **kwargs,
    ) -> subprocess.CompletedProcess:
        """Run `convert` (or `identify`) with these arguments; raise ImageMagickError with its stderr on failure,
        or when it is still running after `timeout` seconds (then it is killed)."""
        command = [*(self.identify if tool == "identify" else self.convert), *args]
        try:
            result = subprocess.run(
                command,
                env=None if env is None else dict(env),
                capture_output=True,
                text=True,
                timeout=timeout,
                **kwargs,
            )
        except subprocess.TimeoutExpired:
            raise ImageMagickError(
                f"{' '.join(command)} was still running after {timeout:g} s and was stopped: a policy throttle or "
                f"time limit may stall it (see `magicktune policy show`)"
            ) from None
        if check and result.returncode != 0:
            raise ImageMagickError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def resources(self, env: Mapping[str, str] | None = None) -> dict[str, int | None]:
        """The limits in force for a process started with this environment (None = unlimited)."""
        return parse_list_resource(self.run(["-list", "resource"], env=env, tool="identify").stdout)

    def policy_rules(self, env: Mapping[str, str] | None = None) -> list[PolicyRule]:
        """Every policy entry ImageMagick loads with this environment, in load order.

        Listed through `identify`, like the resources: IM7's bare `magick -list` opens a pixel cache, so a policy's
        throttle, memory or disk limit can stall or fail it; `magick identify -list` never does (IM6 takes either).
        """
        return parse_list_policy(self.run(["-list", "policy"], env=env, tool="identify").stdout)


def parse_version(text: str) -> dict:
    """Read version, quantum depth, HDRI and OpenMP from `-version` output (IM6 and IM7)."""
    match = re.search(r"^Version: ImageMagick (\d+)\.(\S+) (Q(\d+)(-HDRI)?)", text, re.MULTILINE)
    if not match:
        raise ValueError("not ImageMagick -version output")
    features_line = re.search(r"^Features:(.*)$", text, re.MULTILINE)
    delegates_line = re.search(r"^Delegates \(built-in\):(.*)$", text, re.MULTILINE)
    features = tuple(features_line.group(1).split()) if features_line else ()
    return {
        "version": f"{match.group(1)}.{match.group(2)}",
        "major": int(match.group(1)),
        "quantum_depth": int(match.group(4)),
        "hdri": bool(match.group(5)) or "HDRI" in features,
        "openmp": any(f.startswith("OpenMP") for f in features),
        "features": features,
        "delegates": tuple(delegates_line.group(1).split()) if delegates_line else (),
    }


def parse_list_resource(text: str) -> dict[str, int | None]:
    """Read `identify -list resource` (IM6 or IM7) into {resource: value}, None meaning unlimited."""
    limits: dict[str, int | None] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        name = _LIST_RESOURCE_NAMES.get(key.strip().lower())
        if sep and name:
            limits[name] = units.from_magick(value, units.RESOURCE_KINDS[name])
    if not limits:
        raise ValueError("no resource limits found in ImageMagick's -list resource output")
    return limits


def parse_list_policy(text: str) -> list[PolicyRule]:
    """Read `-list policy` into rules in load order; each carries the file it came from.

    Names are lower-cased: ImageMagick looks them up ignoring case ("Memory" caps memory).
    """
    rules: list[PolicyRule] = []
    path, entry = "", None
    for line in text.splitlines():
        stripped = line.strip()
        if line.startswith("Path:"):
            path = line.partition(":")[2].strip()
        elif stripped.startswith("Policy:"):
            if entry is not None:
                rules.append(PolicyRule(**entry))
            entry = {"path": path, "domain": stripped.partition(":")[2].strip().lower()}
        elif entry is not None and ":" in stripped:
            key, _, value = stripped.partition(":")
            if key in ("name", "value", "rights", "pattern"):
                entry[key] = value.strip().lower() if key == "name" else value.strip()
    if entry is not None:
        rules.append(PolicyRule(**entry))
    return rules


def policy_files(rules: list[PolicyRule]) -> list[str]:
    """The policy files ImageMagick loaded, in search order (built-in entries left out)."""
    return list(dict.fromkeys(rule.path for rule in rules if rule.path and not rule.path.startswith("[")))


def resource_caps(rules: list[PolicyRule]) -> dict[str, tuple[int | None, str]]:
    """For each resource a policy names: (value as ImageMagick reads it, file). The first file wins."""
    caps: dict[str, tuple[int | None, str]] = {}
    for rule in rules:
        if rule.domain != "resource" or not rule.name or rule.value is None or rule.name in caps:
            continue
        if rule.name not in units.RESOURCE_KINDS:  # temporary-path and the like are settings, not caps
            continue
        value = units.as_imagemagick_reads(rule.value)
        caps[rule.name] = (None if value >= units.UNLIMITED_AT else value, rule.path)
    return caps


def find(path: str | os.PathLike | None = None) -> ImageMagick:
    """The ImageMagick to drive: `path`, else $MAGICKTUNE_IMAGEMAGICK, else the first working name on PATH."""
    chosen = path or os.environ.get(environment.IMAGEMAGICK)
    if chosen:
        found = _probe(str(chosen))
        if found is None:
            raise ImageMagickNotFound(
                f"{chosen} does not run as ImageMagick ('-version' did not say so); " + INSTALL_HINT
            )
        return found
    return _find_on_path(os.environ.get("PATH", os.defpath))


@functools.lru_cache(maxsize=8)
def _find_on_path(search_path: str) -> ImageMagick:
    tried = []
    for name in CANDIDATES:
        binary = shutil.which(name, path=search_path)
        if binary is None:
            continue
        found = _probe(binary)
        if found is not None:
            return found
        tried.append(binary)
    where = f" (tried {', '.join(tried)}: none printed an ImageMagick version)" if tried else ""
    raise ImageMagickNotFound(f"ImageMagick was not found{where}; {INSTALL_HINT}")


def _probe(binary: str) -> ImageMagick | None:
    """Run `binary -version`; an ImageMagick when it says it is one, else None.

    The output is read as bytes and decoded leniently: a stand-in that prints bytes that are not UTF-8 is not
    ImageMagick, and must not stop the search before the real one.
    """
    try:
        result = subprocess.run([binary, "-version"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    stdout = result.stdout.decode("utf-8", "replace")
    try:
        facts = parse_version(stdout)
    except ValueError:
        return None
    identify: tuple[str, ...]
    if Path(binary).name.startswith("magick"):
        identify = (binary, "identify")
    else:
        identify = (_sibling(binary, "identify"),)
    convert = (binary,)
    return ImageMagick(convert=convert, identify=identify, version_text=stdout, **facts)


def _sibling(binary: str, tool: str) -> str:
    """`identify` beside this `convert`, keeping Debian's suffixes (convert-im6.q16 -> identify-im6.q16)."""
    path = Path(binary)
    candidate = path.with_name(path.name.replace("convert", tool, 1))
    if candidate.exists():
        return str(candidate)
    return shutil.which(tool) or str(candidate)
