"""Child process for one end-to-end case: render a workload and save it with one writer, timing only the job.

Run as ``python -m benchmarks.child CASE WORKLOAD FRAMES OUT RESULT_JSON``. Imports (matplotlib, the
writer's module) happen before the clock starts, so interpreter start-up is not charged to any writer.
Writes {"status": "ok"|"failed"|"unavailable", "wall_s", "error"} to RESULT_JSON.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib import animation  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402

from benchmarks.workloads import WORKLOADS  # noqa: E402


class RawWriter(animation.AbstractMovieWriter):
    """Writes each frame's RGBA bytes, exactly as matplotlib pipes them, to a file (or /dev/null): savefig after
    Animation.save's draw_idle, two draws a frame, as every savefig-based writer pays."""

    def setup(self, fig: Any, outfile: Any, dpi: float | None = None) -> None:
        super().setup(fig, outfile, dpi=dpi)
        self._sink = open(outfile, "wb")

    def grab_frame(self, **savefig_kwargs: Any) -> None:
        self.fig.savefig(self._sink, **{**savefig_kwargs, "format": "rgba", "dpi": self.dpi})

    def finish(self) -> None:
        self._sink.close()


class FloorWriter(animation.AbstractMovieWriter):
    """The least any writer must do: per frame one canvas draw (animated artists too, as when saving) and a read of
    the buffer. ``Animation.save`` ends each update in ``canvas.draw_idle()``, which on Agg is a second full draw;
    this writer makes it a no-op while it saves, so the update and this writer's draw are all that is timed."""

    @contextlib.contextmanager
    def saving(self, fig: Any, outfile: Any, dpi: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        canvas = fig.canvas
        canvas.draw_idle = lambda *a, **k: None
        try:
            with super().saving(fig, outfile, dpi, *args, **kwargs) as writer:
                yield writer
        finally:
            del canvas.draw_idle

    def setup(self, fig: Any, outfile: Any, dpi: float | None = None) -> None:
        super().setup(fig, outfile, dpi=dpi)
        if self.dpi != fig.dpi:
            raise ValueError("the floor draws at the figure's dpi")
        self.checksum = 0

    def grab_frame(self, **savefig_kwargs: Any) -> None:
        canvas = self.fig.canvas
        FigureCanvasAgg.draw(canvas)  # Animation.save has set canvas._is_saving: animated artists are drawn
        self.checksum ^= hash(bytes(canvas.buffer_rgba()))  # read every byte, keep nothing

    def finish(self) -> None:
        pass


class Unavailable(Exception):
    """The writer's module does not exist yet."""


def make_writer(case: str, fps: int, frames: int) -> tuple[Any, str | None]:
    """(writer, forced outfile) for an end-to-end case; imports happen here, before timing."""
    if case == "render_only":
        return FloorWriter(fps=fps), os.devnull
    if case == "null_savefig":
        return RawWriter(fps=fps), os.devnull
    if case == "dump_raw":
        return RawWriter(fps=fps), None
    if case.startswith("mpl_imagemagick"):
        return animation.ImageMagickWriter(fps=fps), None
    if case == "mpl_pillow":
        return animation.PillowWriter(fps=fps), None
    if case == "mpl_ffmpeg":
        return animation.FFMpegWriter(fps=fps), None
    if case.startswith("mt_"):
        try:
            import magicktune.writers  # noqa: F401  (registers the writers)
        except ModuleNotFoundError as exc:
            if exc.name in ("magicktune", "magicktune.writers"):
                raise Unavailable(str(exc)) from exc
            raise
        name = case.removeprefix("mt_")
        variants = {"magicktune_blit": {"blit": True}, "magicktune_threads": {"processes": False}}
        if not animation.writers.is_available("magicktune" if name in variants else name):
            raise Unavailable(f"matplotlib writer {name!r} not registered by magicktune.writers")
        if name in variants:
            return animation.writers["magicktune"](fps=fps, **variants[name]), None
        cls = animation.writers[name]
        if "frames" in inspect.signature(cls).parameters:
            return cls(fps=fps, frames=frames), None  # lets the writer size its limits for the job
        return cls(fps=fps), None
    raise ValueError(f"unknown end-to-end case {case!r}")


def describe_error(exc: BaseException) -> str:
    """The encoder's own message first (a writer's CalledProcessError carries convert's stderr), then the type."""
    stderr = getattr(exc, "stderr", None)
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "replace")
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    if lines:
        return f"{lines[-1]} ({type(exc).__name__}, exit {getattr(exc, 'returncode', '?')})"[-2000:]
    return f"{type(exc).__name__}: {exc}"[-2000:]


def run(case: str, workload: str, frames: int, out: str) -> dict[str, Any]:
    """Build the animation and save it; the clock covers building the figure and ani.save()."""
    spec = WORKLOADS[workload]
    try:
        writer, forced = make_writer(case, spec.fps, frames)
    except Unavailable as exc:
        return {"status": "unavailable", "error": str(exc)}
    grabbed = 0
    grab = writer.grab_frame

    def counting_grab(**kwargs: Any) -> None:  # how far a failing writer got
        nonlocal grabbed
        grab(**kwargs)
        grabbed += 1

    writer.grab_frame = counting_grab
    start = time.perf_counter()
    try:
        ani = spec.build(frames)
        ani.save(forced or out, writer=writer)
    except Exception as exc:  # a failing anchor is a result, not a crash
        return {
            "status": "failed",
            "wall_s": time.perf_counter() - start,
            "frames_grabbed": grabbed,
            "error": describe_error(exc),
            "traceback": traceback.format_exc()[-4000:],
        }
    return {"status": "ok", "wall_s": time.perf_counter() - start, "frames_grabbed": grabbed}


def main(argv: list[str]) -> int:
    case, workload, frames, out, result = argv
    outcome = run(case, workload, int(frames), out)
    Path(result).write_text(json.dumps(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
