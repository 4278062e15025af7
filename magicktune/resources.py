"""Apply ImageMagick resource limits the way ImageMagick obeys them.

A MAGICK_*_LIMIT variable can only lower a limit that a policy.xml caps, and a policy value can only
lower a limit below ImageMagick's built-in default. So every requested limit is set as its variable,
and those a policy caps are also restated in a private policy.xml put first on MAGICK_CONFIGURE_PATH:
ImageMagick then starts with min(variable, our policy) = the requested value, while the system's
security rules, loaded after our file, stay in force.

This changes the process environment (os.environ), so it is process-wide, not thread-local; it reaches
every ImageMagick started afterwards, not an in-process Wand that has already loaded its policies.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import psutil

from . import atomic, environment, magick, policy, profile, units
from .environment import CONFIGURE_PATH, limit_variable, prepend_configure_path
from .errors import InvalidValue, LimitsWarning, WandStartedWarning


@dataclass
class AppliedLimits:
    """What `apply` changed, so that `restore` can put it back exactly."""

    requested: dict[str, int | None]
    temporary_path: str | None
    via_environment: list[str]
    via_policy: list[str]
    policy_dir: Path | None
    saved: dict[str, str | None] = field(repr=False)
    environ: MutableMapping[str, str] = field(repr=False)
    restored: bool = field(default=False, repr=False)


@dataclass(frozen=True)
class Route:
    """Where each limit must go: every one into its variable, and those a policy caps into an override too."""

    variables: dict[str, str]
    policy_resources: dict[str, int | None]
    policy_temporary_path: str | None

    @classmethod
    def of(cls, requested: dict[str, int | None], temporary_path: str | None, rules: list[magick.PolicyRule]) -> Route:
        caps = magick.resource_caps(rules)
        variables = {
            limit_variable(name): units.to_magick(value, units.RESOURCE_KINDS[name])
            for name, value in requested.items()
        }
        if temporary_path is not None:
            variables[environment.TEMPORARY_PATH] = temporary_path
        policy_names_temp = any(r.domain == "resource" and r.name == "temporary-path" for r in rules)
        return cls(
            variables,
            {name: value for name, value in requested.items() if name in caps},
            temporary_path if policy_names_temp else None,
        )

    @property
    def needs_policy(self) -> bool:
        return bool(self.policy_resources) or self.policy_temporary_path is not None

    def policy_text(self) -> str:
        return policy.render(
            self.policy_resources,
            temporary_path=self.policy_temporary_path,
            comment="magicktune override: restates resource limits only; every other rule "
            "comes from the policy files loaded after this one.",
        )


#: A mapping of limits: resource name ("memory", "list-length", ...) to a limit; a resource left out is left as
#: it is. Values are numbers in the resource's unit, UNLIMITED, or text units.parse reads ("10GB", "50%").
Limits = Mapping[str, units.Limit | str]
#: The keyword fronts' names, in ImageMagick's resource names (list_length is "list-length").
_KEYWORDS = {name.replace("-", "_"): name for name in units.RESOURCE_KINDS}


def parse_request(resources: Limits, *, temporary_path: str | os.PathLike[str] | None = None) -> dict[str, int | None]:
    """Read a mapping of limits into {resource: value}, None meaning unlimited; "50%" of RAM for memory and map,
    of free temp disk for disk."""
    temp = tempfile.gettempdir() if temporary_path is None else profile.checked_temporary_path(temporary_path)
    ram = psutil.virtual_memory().total
    wholes = {"memory": ram, "map": ram, "disk": _free_space(temp)}
    parsed = {}
    for name, value in resources.items():
        if name not in units.RESOURCE_KINDS:
            raise InvalidValue(f"unknown resource {name!r}: use one of {', '.join(units.RESOURCE_KINDS)}")
        try:
            parsed[name] = units.parse_limit(name, value, whole=wholes.get(name))
        except ValueError as error:
            raise InvalidValue(f"{name.replace('-', '_')}: {error}") from None
    return parsed


def apply_resources(
    resources: Limits,
    *,
    temporary_path: str | os.PathLike[str] | None = None,
    imagemagick: magick.ImageMagick | None = None,
    environ: MutableMapping[str, str] | None = None,
    verify: bool = True,
) -> AppliedLimits:
    """Set these limits for every ImageMagick started from now on; undo with `restore`.

    `resources` maps resource names to limits (a plan's `limits` as it is). `verify` asks ImageMagick
    afterwards and warns about any limit that is not in force.
    """
    environ = os.environ if environ is None else environ
    temp = None if temporary_path is None else profile.checked_temporary_path(temporary_path)
    requested = parse_request(resources, temporary_path=temp)
    im = imagemagick or magick.find()
    route = Route.of(requested, temp, im.policy_rules(env=environ))
    _warn_beyond_machine(requested, temp)
    _warn_if_wand_loaded()

    saved = {name: environ.get(name) for name in [*route.variables, CONFIGURE_PATH]}
    applied = AppliedLimits(
        requested,
        temp,
        [n for n in requested if n not in route.policy_resources],
        list(route.policy_resources),
        None,
        saved,
        environ,
    )
    try:
        if route.needs_policy:
            parent, note = environment.configurable_temp_dir()
            _remove_stale_policy_dirs(parent)
            if note:
                warnings.warn(note, LimitsWarning, stacklevel=_caller_level())
            applied.policy_dir = Path(tempfile.mkdtemp(prefix=f"{_POLICY_DIR_PREFIX}{os.getpid()}-", dir=parent))
            policy.write(applied.policy_dir, route.policy_text(), private=True)
        _in_force.enter(applied, route.variables)
        if verify:
            _warn_if_not_in_force(applied, im)
    except BaseException:  # a warning turned into an error included: nothing is left half-applied
        restore(applied)
        raise
    return applied


def restore(applied: AppliedLimits) -> None:
    """Undo `apply`: the variables it set go back to what the applications still in force ask for (or to what they
    were before any), and its policy directory is removed. Safe to call twice, and in any order: A applied, B
    applied, A restored, B restored leaves the environment as it was."""
    if applied.restored:
        return
    try:
        _in_force.leave(applied)
    finally:
        if applied.policy_dir is not None:
            shutil.rmtree(applied.policy_dir, ignore_errors=True)
        applied.restored = True


class _InForce:
    """The applications in force on each environment, oldest first, and what their variables were before them.

    limits() and the tuned writer apply and restore from any thread in any order, so each exit recomputes the
    variables from what is still in force rather than putting back what one application saw when it began:
    for each variable, the value the newest application still in force sets, else the one from before all of
    them; MAGICK_CONFIGURE_PATH is the original with each application's directory put in front, in order.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._stacks: dict[int, tuple[MutableMapping[str, str], list[tuple[AppliedLimits, dict[str, str]]]]] = {}
        self._before: dict[int, dict[str, str | None]] = {}

    def enter(self, applied: AppliedLimits, variables: dict[str, str]) -> None:
        environ = applied.environ
        with self._lock:
            _, stack = self._stacks.setdefault(id(environ), (environ, []))
            before = self._before.setdefault(id(environ), {})
            names = [*variables, CONFIGURE_PATH] if applied.policy_dir is not None else list(variables)
            for name in names:
                before.setdefault(name, environ.get(name))
            stack.append((applied, variables))
            self._recompute(environ, stack, before, names)

    def leave(self, applied: AppliedLimits) -> None:
        environ = applied.environ
        with self._lock:
            if id(environ) not in self._stacks:
                return
            _, stack = self._stacks[id(environ)]
            before = self._before[id(environ)]
            mine = next((variables for entry, variables in stack if entry is applied), None)
            if mine is None:
                return
            stack[:] = [(entry, variables) for entry, variables in stack if entry is not applied]
            names = [*mine, CONFIGURE_PATH] if applied.policy_dir is not None else list(mine)
            self._recompute(environ, stack, before, names)
            for name in names:  # a variable no application sets any more is back as it was: forget it
                if name == CONFIGURE_PATH:
                    if not any(entry.policy_dir is not None for entry, _ in stack):
                        before.pop(name, None)
                elif not any(name in variables for _, variables in stack):
                    before.pop(name, None)
            if not stack:
                del self._stacks[id(environ)], self._before[id(environ)]

    @staticmethod
    def _recompute(
        environ: MutableMapping[str, str],
        stack: list[tuple[AppliedLimits, dict[str, str]]],
        before: dict[str, str | None],
        names: list[str],
    ) -> None:
        values: dict[str, str | None] = {}
        for name in names:
            if name == CONFIGURE_PATH:
                value = before.get(name)
                for entry, _ in stack:
                    if entry.policy_dir is not None:
                        value = prepend_configure_path(entry.policy_dir, value)
                values[name] = value
            else:
                values[name] = next(
                    (variables[name] for _, variables in reversed(stack) if name in variables), before.get(name)
                )
        _restore_environment(environ, values)


_in_force = _InForce()

_POLICY_DIR_PREFIX = "magicktune-policy-"
#: A policy directory whose process is gone is removed once it is this old (seconds): convert reads it at start.
_STALE_POLICY_DIR = 60


def _remove_stale_policy_dirs(root: str | None = None) -> None:
    """Remove policy directories that a killed magicktune left in `root` (the temp dir): ours, old, their process
    gone."""
    root = root or tempfile.gettempdir()
    pattern = re.compile(rf"^{_POLICY_DIR_PREFIX}(\d+)-[A-Za-z0-9_]+$")
    for path in atomic.stale_entries(root, pattern, stat.S_ISDIR, _STALE_POLICY_DIR):
        shutil.rmtree(path, ignore_errors=True)


Size = units.Limit | str | None


def keyword_limits(
    memory: Size = None,
    map: Size = None,
    disk: Size = None,
    area: Size = None,
    width: Size = None,
    height: Size = None,
    list_length: Size = None,
    thread: Size = None,
    time: Size = None,
    file: Size = None,
    throttle: Size = None,
) -> dict[str, units.Limit | str]:
    """The keyword fronts' arguments as a mapping of limits: None (the default) leaves a resource out."""
    given = {
        "memory": memory,
        "map": map,
        "disk": disk,
        "area": area,
        "width": width,
        "height": height,
        "list_length": list_length,
        "thread": thread,
        "time": time,
        "file": file,
        "throttle": throttle,
    }
    return {_KEYWORDS[key]: value for key, value in given.items() if value is not None}


def apply(
    memory: Size = None,
    map: Size = None,
    disk: Size = None,
    area: Size = None,
    width: Size = None,
    height: Size = None,
    list_length: Size = None,
    thread: Size = None,
    time: Size = None,
    file: Size = None,
    throttle: Size = None,
    *,
    temporary_path: str | os.PathLike[str] | None = None,
    imagemagick: magick.ImageMagick | None = None,
    environ: MutableMapping[str, str] | None = None,
    verify: bool = True,
) -> AppliedLimits:
    """`apply_resources` with one keyword a resource; None leaves it alone, "unlimited" lifts its cap.

    Sizes take units.parse forms ("10GB", "8GiB", "50%", "unlimited").
    """
    requested = keyword_limits(memory, map, disk, area, width, height, list_length, thread, time, file, throttle)
    return apply_resources(
        requested, temporary_path=temporary_path, imagemagick=imagemagick, environ=environ, verify=verify
    )


@contextmanager
def limits(
    memory: Size = None,
    map: Size = None,
    disk: Size = None,
    area: Size = None,
    width: Size = None,
    height: Size = None,
    list_length: Size = None,
    thread: Size = None,
    time: Size = None,
    file: Size = None,
    throttle: Size = None,
    *,
    temporary_path: str | os.PathLike[str] | None = None,
    imagemagick: magick.ImageMagick | None = None,
    verify: bool = True,
) -> Iterator[AppliedLimits]:
    """`with limits(memory="10GB", disk="50GB"): ani.save(..., writer="imagemagick")` — restored on exit.

    Nests; changes os.environ for the whole process while active (not thread-local).
    """
    requested = keyword_limits(memory, map, disk, area, width, height, list_length, thread, time, file, throttle)
    applied = apply_resources(requested, temporary_path=temporary_path, imagemagick=imagemagick, verify=verify)
    try:
        yield applied
    finally:
        restore(applied)


def _restore_environment(environ: MutableMapping[str, str], saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value


def _free_space(directory: str | os.PathLike) -> int | None:
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return None


def _warn_beyond_machine(requested: dict[str, int | None], temp: str | None) -> None:
    ram = psutil.virtual_memory().total
    memory = requested.get("memory")
    if memory is not None and memory > ram:
        warnings.warn(
            f"memory limit {units.human(memory)} is more than this machine's "
            f"{units.human(ram)} of RAM: ImageMagick may swap or be killed before it reaches it",
            LimitsWarning,
            stacklevel=_caller_level(),
        )
    disk, free = requested.get("disk"), _free_space(temp or tempfile.gettempdir())
    if disk is not None and free is not None and disk > free:
        warnings.warn(
            f"disk limit {units.human(disk)} is more than the {units.human(free)} free in "
            f"{temp or tempfile.gettempdir()}: a spilled pixel cache would fill it",
            LimitsWarning,
            stacklevel=_caller_level(),
        )


def _wand_started() -> bool:
    """True once MagickWandGenesis has run in this process (policy.xml and limits are then fixed)."""
    api = sys.modules.get("wand.api")
    started = getattr(getattr(api, "library", None), "IsMagickWandInstantiated", None)
    return bool(started and started())


def _warn_if_wand_loaded() -> None:
    if _wand_started():
        warnings.warn(
            "Wand has started ImageMagick in this process: it read policy.xml and the "
            "MAGICK_*_LIMIT variables at start-up, so these limits reach only ImageMagick "
            "processes started from now on (use wand.resource.limits to lower in-process limits)",
            WandStartedWarning,
            stacklevel=_caller_level(),
        )


def _warn_if_not_in_force(applied: AppliedLimits, im: magick.ImageMagick) -> None:
    in_force = im.resources(env=applied.environ)
    for name, wanted in applied.requested.items():
        got, kind = in_force.get(name, wanted), units.RESOURCE_KINDS[name]
        if not units.same_limit(got, wanted, kind):
            warnings.warn(
                f"{name} limit {units.human(wanted, kind)} did not take effect: "
                f"ImageMagick reports {units.human(got, kind)}",
                LimitsWarning,
                stacklevel=_caller_level(),
            )


def _caller_level() -> int:
    """The stacklevel that points a warning at the first frame outside magicktune (and contextlib)."""
    frame: FrameType | None = sys._getframe(1)
    level = 1
    package = str(Path(__file__).parent)
    while frame is not None and (
        frame.f_code.co_filename.startswith(package) or frame.f_code.co_filename.endswith("contextlib.py")
    ):
        frame, level = frame.f_back, level + 1
    return level
