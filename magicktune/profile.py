"""Size a job, read what this machine and this ImageMagick allow, and plan limits, engine and temp dir.

Facts in (job, ImageMagick build and limits, machine), plan out: nothing here changes anything.
"""

from __future__ import annotations

import math
import os
import shutil
import stat
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from . import environment, magick, options, units
from .errors import InvalidValue

#: Headroom over the computed pixel cache: ImageMagick keeps a few other buffers per image.
CACHE_HEADROOM = 1.10
#: Share of available RAM the plan lets ImageMagick's memory limit take.
RAM_SHARE = 0.85
#: The streaming encoder's memory beyond its in-flight frames (interpreter, numpy, libMagickWand).
STREAMING_BASE_BYTES = 48 * 10**6


@dataclass(frozen=True)
class Job:
    """An animation to encode: frames of width x height pixels with this many 8-bit channels."""

    width: int
    height: int
    frames: int | None = None
    channels: int = 4
    fps: float | None = None

    def __post_init__(self) -> None:
        """Read every field as the encoder would (magicktune.options), so a job planned here can be encoded."""
        width, height = options.frame_size((self.width, self.height), "frame size")
        read = {
            "width": width,
            "height": height,
            "frames": None if self.frames is None else options.whole(self.frames, "frames", 1),
            "channels": options.whole(self.channels, "channels (bytes a pixel)", 1, 4),
            "fps": None if self.fps is None else options.fps(self.fps),
        }
        for name, value in read.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_stream(
        cls, path: str | os.PathLike, width: int, height: int, channels: int = 4, fps: float | None = None
    ) -> Job:
        """A job for a raw stream already on disk: the frame count comes from its size."""
        width, height = options.frame_size((width, height), "frame size")
        channels = options.whole(channels, "channels (bytes a pixel)", 1, 4)
        info = Path(path).stat()
        if not stat.S_ISREG(info.st_mode):
            raise InvalidValue(
                f"{path} is not a regular file: give the raw stream's own file, whose size gives the frame count"
            )
        size = info.st_size
        frame = width * height * channels
        frames, extra = divmod(size, frame)
        if extra or not frames:
            raise InvalidValue(
                f"{path} holds {size} bytes, not a whole number of {width}x{height} frames of "
                f"{channels} bytes a pixel ({frame} bytes each; {extra} bytes left over)"
            )
        return cls(width, height, frames, channels, fps)

    @property
    def pixels_per_frame(self) -> int:
        return self.width * self.height

    @property
    def frame_bytes(self) -> int:
        return self.pixels_per_frame * self.channels

    @property
    def stream_bytes(self) -> int | None:
        return None if self.frames is None else self.frame_bytes * self.frames


def matplotlib_optimizes_layers() -> bool:
    """Whether matplotlib's ImageMagickWriter adds `-layers OptimizePlus` here (rcParams animation.convert_args)."""
    import matplotlib

    return "-layers" in matplotlib.rcParams["animation.convert_args"]


def parse_geometry(text: str) -> tuple[int, int]:
    """'432x720' -> (432, 720), each side 1 to 65535 (a GIF's), with an error that says what a size looks like."""
    return options.frame_size(text)


@dataclass(frozen=True)
class Machine:
    """What this machine has for the job: RAM, cores, and the temp dir with the most room."""

    ram_total: int
    ram_available: int
    cpus: int
    temp_dir: str
    temp_free: int

    @classmethod
    def read(cls, temp_dir: str | os.PathLike | None = None, needed_on_disk: int = 0) -> Machine:
        memory = psutil.virtual_memory()
        directory, free = choose_temp_dir(temp_dir, needed_on_disk)
        return cls(memory.total, memory.available, os.cpu_count() or 1, directory, free)


def checked_temporary_path(path: str | os.PathLike, what: str = "temporary_path") -> str:
    """`path` with ~ expanded, made absolute, and checked to be a directory we can write; `what` names it in errors."""
    options.plain_path(path, what)
    directory = Path(path).expanduser().resolve()
    options.plain_path(directory, what)
    if not directory.is_dir():
        raise InvalidValue(f"{what} {str(path)!r} is not a directory: create it or choose another")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InvalidValue(f"{what} {str(path)!r} is not writable: choose a directory you can write to")
    return str(directory)


def choose_temp_dir(preferred: str | os.PathLike | None = None, needed: int = 0) -> tuple[str, int]:
    """The preferred dir if given; else the first usual temp dir with `needed` bytes free, else the roomiest."""
    if preferred is not None:
        directory = checked_temporary_path(preferred)
        return directory, shutil.disk_usage(directory).free
    candidates = [
        os.environ.get(environment.TEMPORARY_PATH),
        os.environ.get(environment.TMPDIR),
        tempfile.gettempdir(),
        "/var/tmp",
    ]
    usable = []
    for directory in dict.fromkeys(filter(None, candidates)):
        options.plain_path(directory, "the temp dir from the environment (MAGICK_TEMPORARY_PATH or TMPDIR)")
        if os.path.isdir(directory) and os.access(directory, os.W_OK | os.X_OK):
            usable.append((directory, shutil.disk_usage(directory).free))
    if not usable:
        raise InvalidValue("no writable temp dir found: set TMPDIR or pass temporary_path")
    return next(((d, f) for d, f in usable if f >= needed), max(usable, key=lambda item: item[1]))


@dataclass(frozen=True)
class Cache:
    """Pixel cache ImageMagick needs for a job: while reading, and while writing GIF (palettized)."""

    bytes_per_pixel: int
    read_bytes: int | None
    gif_bytes: int | None
    per_frame_read: int
    per_frame_gif: int

    optimize_layers: bool = False

    @classmethod
    def of(cls, job: Job, bytes_per_pixel: int, optimize_layers: bool = False) -> Cache:
        """RGBA at the quantum size, plus one index quantum per pixel once palettized for GIF."""
        per_read = job.pixels_per_frame * bytes_per_pixel
        per_gif = job.pixels_per_frame * (bytes_per_pixel + bytes_per_pixel // 4)
        frames = job.frames
        return cls(
            bytes_per_pixel,
            None if frames is None else per_read * frames,
            None if frames is None else per_gif * frames,
            per_read,
            per_gif,
            optimize_layers,
        )

    @property
    def peak_bytes(self) -> int | None:
        """The most the job can hold at once. `-layers OptimizePlus` (matplotlib's default convert_args) builds
        an optimized copy of the frame list while the one read stays: both lists when every pixel changes.
        The copy is cropped to what changed, so most jobs hold less (the seed job: 9.3 GB measured)."""
        if self.gif_bytes is None or self.read_bytes is None:
            return None
        return self.gif_bytes + (self.read_bytes if self.optimize_layers else 0)


@dataclass
class Plan:
    """What the job needs and what to do about it."""

    job: Job
    imagemagick: str
    machine: Machine
    cache: Cache
    current_limits: dict[str, int | None]
    frames_that_fit_now: int | None
    limits: dict[str, units.Limit]
    temporary_path: str
    engine: str
    convert_fits: str
    streaming_bytes: int
    warnings: list[str] = field(default_factory=list)

    def limit_arguments(self) -> dict[str, Any]:
        """Keyword arguments for magicktune.limits: `with limits(**plan.limit_arguments()): ...`."""
        arguments: dict[str, Any] = {name.replace("-", "_"): value for name, value in self.limits.items()}
        return {**arguments, "temporary_path": self.temporary_path}

    def to_dict(self) -> dict[str, Any]:
        """The plan for --json: unlimited as null, like every other reading."""
        data = asdict(self)
        data["job"]["stream_bytes"] = self.job.stream_bytes
        data["cache"]["peak_bytes"] = self.cache.peak_bytes
        data["limits"] = {name: units.reading(value) for name, value in self.limits.items()}
        return data


def plan(
    job: Job,
    imagemagick: magick.ImageMagick | None = None,
    *,
    temporary_path: str | os.PathLike | None = None,
    current_limits: dict[str, int | None] | None = None,
    machine: Machine | None = None,
    workers: int | None = None,
    optimize_layers: bool = False,
) -> Plan:
    """Plan limits, engine and temp dir for `job` on this machine with this ImageMagick.

    `optimize_layers`: the command adds `-layers OptimizePlus`, as matplotlib's ImageMagickWriter does.
    """
    im = imagemagick or magick.find()
    cache = Cache.of(job, im.bytes_per_pixel, optimize_layers)
    need = None if cache.peak_bytes is None else math.ceil(cache.peak_bytes * CACHE_HEADROOM)
    machine = machine or Machine.read(temporary_path, needed_on_disk=need or 0)
    current = im.resources() if current_limits is None else current_limits
    workers = workers or machine.cpus
    streaming = STREAMING_BASE_BYTES + 4 * (2 * workers + 2) * job.frame_bytes

    memory_budget = int(machine.ram_available * RAM_SHARE)
    if need is None:
        memory, disk, fits = memory_budget, int(machine.temp_free * RAM_SHARE), "unknown"
    elif need <= memory_budget:
        memory, disk, fits = need, need, "memory"
    elif need - memory_budget <= machine.temp_free:
        memory, disk, fits = memory_budget, need, "disk"
    else:
        memory, disk, fits = memory_budget, need, "no"
    limits: dict[str, units.Limit] = {
        "memory": _round_up(memory),
        "map": _round_up(max(memory, need or 0)),
        "disk": _round_up(disk),
        "list-length": units.UNLIMITED if job.frames is None else job.frames + 1,
        "thread": machine.cpus,
    }
    for name, needed in (("area", job.pixels_per_frame), ("width", job.width), ("height", job.height)):
        limit = current.get(name)
        if limit is not None and limit < needed:
            limits[name] = needed

    result = Plan(
        job,
        im.label,
        machine,
        cache,
        current,
        frames_that_fit(cache, current),
        limits,
        machine.temp_dir,
        "magicktune",
        fits,
        streaming,
    )
    result.warnings = _warnings(result, need)
    return result


def frames_that_fit(cache: Cache, current: dict[str, int | None]) -> int | None:
    """How many frames `convert` can hold under these limits before the cache runs out (None: no bound).

    Memory first, then disk; a memory-mapped cache counts against disk, so map adds nothing.
    """
    bounds = []
    memory, disk = current.get("memory"), current.get("disk")
    if memory is not None and disk is not None:
        bounds.append((memory + disk) // cache.per_frame_read)
    list_length = current.get("list-length")
    if list_length is not None:
        bounds.append(list_length - 1)
    return min(bounds) if bounds else None


def _round_up(value: int, step: int = 10**6) -> int:
    """Round a byte count up to whole megabytes, so limits read as '9330MB' rather than 23 digits."""
    return -(-value // step) * step


def _warnings(p: Plan, need: int | None) -> list[str]:
    notes = []
    human = units.human
    streaming = f"the streaming engine (writer='magicktune') needs about {human(p.streaming_bytes)}"
    if need is None:
        notes.append(
            f"frame count unknown: limits sized to this machine ({human(p.limits['memory'])} memory, "
            f"{human(p.limits['disk'])} disk in {p.temporary_path}); {streaming} whatever the count"
        )
        return notes
    layers = ", with the copy -layers OptimizePlus makes when every pixel changes" if p.cache.optimize_layers else ""
    cache = (
        f"needs {'up to ' if p.cache.optimize_layers else ''}{human(p.cache.peak_bytes)} of pixel cache ({p.imagemagick}, {p.cache.bytes_per_pixel} bytes "
        f"a pixel reading, {p.cache.per_frame_gif // p.job.pixels_per_frame} while writing GIF{layers})"
    )
    free = f"{human(p.machine.ram_available)} of RAM is free"
    if p.convert_fits == "memory":
        notes.append(f"{cache}; {free}: convert fits in memory under the planned limits; {streaming}")
    elif p.convert_fits == "disk":
        notes.append(
            f"{cache}; {free}: the tuned convert will spill to disk in {p.temporary_path} and run slowly; {streaming}"
        )
    else:
        notes.append(
            f"{cache}; {free} and {human(p.machine.temp_free)} free in {p.temporary_path}: convert "
            f"cannot finish here; {streaming}"
        )
    if p.frames_that_fit_now is not None and p.job.frames is not None and p.frames_that_fit_now < p.job.frames:
        notes.append(
            f"under the current limits ImageMagick holds about {p.frames_that_fit_now} of these frames "
            f"and the job has {p.job.frames}: plain convert fails with 'no images defined' or "
            f"'cache resources exhausted' unless the limits are raised"
        )
    return notes
