"""matplotlib movie writers: writer='magicktune' streams frames into GifEncoder; importing this module registers it.

Both writers take their frames through FrameCapture (magicktune.capture): one draw a frame instead of
Animation.save's two, the bytes savefig would give.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
from matplotlib import animation
from matplotlib.animation import AbstractMovieWriter

from . import options, signals
from .atomic import AtomicOutput
from .encoder import EncodeStats, GifEncoder, check_may_write, cores
from .errors import ImageMagickFailed, InvalidValue, WandStartedWarning

if TYPE_CHECKING:
    from .capture import FrameCapture
    from .profile import Plan
    from .resources import AppliedLimits

#: The encoder's options and the writer's own (blit: composite the animated artists on a cached background;
#: progress: a bar on stderr or in the notebook; frames: frames to come, for the bar's time left), as keywords
#: or in extra_args, each read by magicktune.options.
_KNOWN = {**options.ENCODER_OPTIONS, **options.WRITER_OPTIONS}


def parse_extra_args(extra_args: list[str] | tuple[str, ...] | None) -> dict[str, Any]:
    """Read Animation.save(extra_args=['colors=128', 'dither=riemersma', 'blit=yes', ...]) into writer options."""
    return options.parse_extra_args(extra_args, _KNOWN)


def metadata_comment(metadata: dict[str, Any] | None) -> str | None:
    """matplotlib's movie metadata as a GIF comment, one 'key: value' line each."""
    if not metadata:
        return None
    return "\n".join(f"{key}: {value}" for key, value in metadata.items())


class _AbortOnError:
    """matplotlib's `saving` calls finish() even when rendering raised, which completes a GIF of the frames so far;
    these writers abort instead, so a failed save leaves no file. While saving, the canvas's draw_idle is a no-op
    (FrameCapture.holding): each frame is drawn once, by grab_frame."""

    _capture: FrameCapture | None = None
    _progress: Any = None

    if TYPE_CHECKING:  # provided by the matplotlib writer this is mixed into

        def setup(self, fig: Any, outfile: Any, dpi: Any = None, *args: Any, **kwargs: Any) -> None: ...
        def finish(self) -> None: ...
        def abort(self) -> None: ...

    @contextlib.contextmanager
    def saving(self, fig, outfile, dpi, *args, **kwargs) -> Iterator[Any]:
        with signals.terminate_as_interrupt():  # SIGTERM, SIGHUP: abort as for Ctrl-C, then end as asked
            self.setup(fig, outfile, dpi, *args, **kwargs)
            try:
                assert self._capture is not None, "setup() made no FrameCapture"
                with self._capture.holding(), mpl.rc_context({"savefig.bbox": None}):
                    yield self
            except BaseException:
                self.abort()
                raise
            self.finish()

    def _start_capture(self, fig, dpi: float, blit: bool = False) -> None:
        # Imported here, not with this module: the Agg canvas and its fonts are some 7 MB that `import magicktune`
        # would cost every process that never saves an animation (`import magicktune` 79 -> 72 MB; `magicktune
        # encode` of 60 seed frames peaked at 105 MB with it, 98 MB without: /usr/bin/time -f %M).
        from .capture import FrameCapture

        self._capture = FrameCapture(fig, dpi, blit=blit)

    def _start_progress(self, fig, frames: int | None, wanted: bool) -> None:
        from .progress import Progress, animation_frames

        self._progress = Progress(frames or animation_frames(fig), "rendering") if wanted else None

    def _stop_progress(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None


def _keep_size(fig, size_inches: tuple[float, float]) -> None:
    """Put the figure back to the movie's size if the animation changed it; setting the same size would mark the
    figure stale and make a blitting capture redraw its background every frame."""
    if tuple(fig.get_size_inches()) != tuple(size_inches):
        fig.set_size_inches(*size_inches)


def _check_grab_kwargs(savefig_kwargs: dict[str, Any]) -> None:
    """What matplotlib's writers refuse: every frame must have the writer's size and format."""
    for key in ("dpi", "bbox_inches", "format"):
        if key in savefig_kwargs:
            raise TypeError(f"grab_frame got an unexpected keyword argument {key!r}")


@animation.writers.register("magicktune")
class MagickTuneWriter(_AbortOnError, AbstractMovieWriter):
    """Animated GIF writer that quantizes frames in ImageMagick while matplotlib renders the next ones.

    Rendering keeps one core busy, so the pool gets the others (at least one worker, one ImageMagick thread; with
    `blit=True`, whose drawing is light, every core), in
    child processes so that drawing and encoding do not share a GIL (`processes=False`: threads of this one).
    Each frame is drawn once (magicktune.capture); `blit=True` draws only the animated artists on a cached
    background. `progress=True` shows a bar; `frames=N` gives it the time left when the animation does not.
    """

    def __init__(
        self,
        fps: float = 5,
        metadata: dict[str, Any] | None = None,
        codec: str | None = None,
        bitrate: int | None = None,
        extra_args: list[str] | None = None,
        **keywords: Any,
    ) -> None:
        super().__init__(fps=fps, metadata=metadata, codec=codec, bitrate=bitrate)  # type: ignore[arg-type]  # a float rate is fine
        unknown = set(keywords) - set(_KNOWN)
        if unknown:
            raise TypeError(f"unknown MagickTuneWriter options {sorted(unknown)}; known: {sorted(_KNOWN)}")
        merged = {**parse_extra_args(extra_args), **options.read(keywords, _KNOWN)}
        self.blit = merged.pop("blit", False)
        self.progress = merged.pop("progress", False)
        self.frames: int | None = merged.pop("frames", None)
        self.options = merged
        self.stats: EncodeStats | None = None
        self._encoder: GifEncoder | None = None

    @classmethod
    def isAvailable(cls) -> bool:
        return True

    def _supports_transparency(self) -> bool:
        return True

    def setup(self, fig, outfile, dpi=None) -> None:
        super().setup(fig, outfile, dpi=dpi)
        self._size_inches = tuple(fig.get_size_inches())
        self.stats = None
        # Blitting leaves the drawing core mostly idle, so it encodes too. 300 line-plot frames on 2 cores: 10.0 s
        # with two workers against the floor's 20.0 (`python -m benchmarks --frames lines=300 --cases
        # render_only,mt_magicktune_blit --no-cap`); with one, 16.1 s in a save timed by hand the same hour.
        workers = cores() if self.blit else max(1, cores() - 1)
        chosen = {"workers": workers, "magick_threads": 1, "processes": True, **self.options}
        self._start_capture(fig, self.dpi, blit=self.blit)
        self._start_progress(fig, self.frames, self.progress)
        try:
            self._encoder = GifEncoder(
                outfile,
                self.frame_size,
                self.fps,
                comment=metadata_comment(self.metadata),
                progress=self._progress.to if self._progress else None,
                **chosen,
            )
        except BaseException:
            self._stop_progress()
            raise

    def grab_frame(self, **savefig_kwargs) -> None:
        _check_grab_kwargs(savefig_kwargs)
        assert self._encoder is not None and self._capture is not None, "setup() was not called"
        _keep_size(self.fig, self._size_inches)
        self._encoder.add_frame(self._capture.grab(savefig_kwargs))  # add_frame copies what it keeps

    def finish(self) -> None:
        """Wait for the pool, write the trailer and move the GIF into place."""
        if self._encoder is not None:
            try:
                with self._progress.phase("encoding the last frames") if self._progress else contextlib.nullcontext():
                    self.stats = self._encoder.close()
            finally:
                self._encoder = None
                self._stop_progress()

    def abort(self) -> None:
        """Drop the half-written GIF."""
        self._stop_progress()
        if self._encoder is not None:
            self._encoder.abort()
            self._encoder = None


def explain_failure(stderr: str, plan: Any, frame_size: tuple[int, int] | None = None) -> str:
    """Turn convert's stderr into what went wrong and what to do, in terms of this job's plan."""
    from .units import human

    lines = stderr.strip().splitlines() or ["no message"]
    last = lines[-1]
    streaming = "or use writer='magicktune', which streams frames in constant memory"
    refusal = next((line for line in lines if "security policy" in line or "not authorized" in line), None)
    if refusal:
        if "`-'" in refusal:
            what = "reading frames from a pipe (the policy denies the path '-', as policy-secure and -websafe do)"
            advice = f"ask the admin, {streaming}"
        else:
            what = "what this command does"
            advice = "ask the admin or write elsewhere"
        return f"the system policy.xml forbids {what}; magicktune never loosens a security rule: {advice} [{refusal}]"
    if "width or height exceeds limit" in stderr:
        size = "the frames" if frame_size is None else "frames of {}x{}".format(*frame_size)
        limits = plan.current_limits
        return (
            f"{size} are wider or taller than ImageMagick allows (width {human(limits.get('width'), 'pixels')}, "
            f"height {human(limits.get('height'), 'pixels')}, from policy.xml): make the figure smaller "
            f"(figsize x dpi), or raise them with magicktune.limits(width=..., height=...) around the save [{last}]"
        )
    if "cache resources exhausted" in stderr or "no images defined" in stderr or "memory allocation failed" in stderr:
        needs = "" if plan.cache.peak_bytes is None else f"; the job needs about {human(plan.cache.peak_bytes)}"
        return (
            f"ImageMagick ran out of pixel cache (memory {human(plan.limits['memory'])}, disk "
            f"{human(plan.limits['disk'])} in {plan.temporary_path}{needs}): pass frames=N so the plan can size "
            f"it, free space or pass temporary_path= a roomier directory, {streaming} [{last}]"
        )
    if "exceeds limit" in stderr or "ListLength" in stderr or "too many" in stderr:
        return f"an ImageMagick limit that magicktune did not raise stopped convert: {last}; {streaming}"
    return f"convert failed: {last}"


def _die_with_parent(parent: int) -> Callable[[], None]:
    """A preexec_fn that has the kernel send convert SIGTERM when the thread that started it dies, so a killed
    save cannot leave convert running on to write a GIF of the frames so far (Linux's PR_SET_PDEATHSIG)."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork: the child only calls it
    except (AttributeError, OSError):
        prctl = None

    def preexec() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the line above took effect
            os._exit(1)

    return preexec


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@animation.writers.register("imagemagick_tuned")
class ImageMagickTunedWriter(_AbortOnError, animation.ImageMagickWriter):
    """matplotlib's pipe-to-convert GIF writer, with convert started under the limits magicktune.profile plans.

    `frames` (if known) lets the plan size the pixel cache and list length, else it is sized to the machine;
    the limits stay in force until finish(), since convert reads its policy.xml some time after it starts.
    convert writes beside the target and the file is moved into place only when it succeeds: a failed or
    interrupted save leaves no file. Failures raise ImageMagickFailed, saying which limit or rule was hit
    and what to do.
    """

    _proc: subprocess.Popen[bytes]  # convert, started by _run

    def __init__(
        self,
        *args: Any,
        frames: int | None = None,
        temporary_path: str | None = None,
        progress: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.frames = frames
        self.progress = progress
        self.temporary_path = temporary_path
        self.plan: Plan | None = None
        self._applied: AppliedLimits | None = None
        self._output: AtomicOutput | None = None
        self._grabbed = 0
        self._figure_pixels: tuple[int, int] | None = None

    def setup(self, fig, outfile, dpi=None) -> None:
        from .profile import Job, plan
        from .resources import apply_resources

        dpi = fig.dpi if dpi is None else dpi
        width, height = (int(side * dpi + 1e-8) for side in fig.get_size_inches())
        fps = self.fps if options.MIN_FPS <= self.fps <= 100 else None
        extra = self.extra_args if self.extra_args is not None else mpl.rcParams[self._args_key]  # type: ignore[attr-defined]
        self.plan = job_plan = plan(
            Job(width, height, self.frames, 4, fps),
            temporary_path=self.temporary_path,
            optimize_layers="-layers" in extra,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", WandStartedWarning)  # the limits are for convert, not this process
            self._applied = apply_resources(job_plan.limits, temporary_path=job_plan.temporary_path, verify=False)
        self._grabbed = 0
        self._figure_pixels = (width, height)
        try:
            # The partial takes its name from the name given, so `link.gif -> target.dat` is still written as GIF.
            self._output = AtomicOutput(outfile, name=outfile)
            check_may_write(outfile, self._output.target)
            super().setup(fig, self._output.partial, dpi)
            self._start_capture(fig, self.dpi)
            self._start_progress(fig, self.frames, self.progress)
        except BaseException:
            self.abort()
            raise

    def _run(self) -> None:
        """Start convert as matplotlib does, but tied to this process: it dies with us."""
        width, height = self.frame_size
        if width < 1 or height < 1:
            raise InvalidValue(
                "the figure is {}x{} pixels, which matplotlib rounds down to {}x{} frames (even sides, for its "
                "codec {!r}): make it at least 2 pixels on each side".format(
                    *(self._figure_pixels or self.frame_size), width, height, self.codec
                )
            )
        pipe = subprocess.PIPE
        self._proc = subprocess.Popen(
            self._args(),  # type: ignore[attr-defined]  # matplotlib's ImageMagickBase
            stdin=pipe,
            stdout=pipe,
            stderr=pipe,
            preexec_fn=_die_with_parent(os.getpid()),
        )

    def grab_frame(self, **savefig_kwargs) -> None:
        """Pipe the frame to convert: drawn once (FrameCapture), the bytes matplotlib's own grab_frame would write."""
        try:
            if self.frame_format in ("rgba", "raw") and self._capture is not None:
                _check_grab_kwargs(savefig_kwargs)
                _keep_size(self.fig, (self._w, self._h))  # type: ignore[attr-defined]  # set by MovieWriter.setup
                assert self._proc.stdin is not None
                self._proc.stdin.write(self._capture.grab(savefig_kwargs))
            else:
                super().grab_frame(**savefig_kwargs)
            self._grabbed += 1
            if self._progress is not None:
                self._progress.to(self._progress.bar.n + 1)
        except BrokenPipeError:
            _, stderr = self._proc.communicate()
            raise ImageMagickFailed(
                explain_failure(stderr.decode(errors="replace"), self.plan, self.frame_size)
            ) from None

    def finish(self) -> None:
        """Wait for convert; move its GIF into place, or raise ImageMagickFailed and leave nothing."""
        if self._grabbed == 0:
            self.abort()
            raise InvalidValue("the animation gave no frames, and a GIF needs at least one: nothing was written")
        try:
            with self._progress.phase("convert is writing the GIF") if self._progress else contextlib.nullcontext():
                super().finish()
            assert self._output is not None, "setup() was not called"
            self._output.commit()
        except subprocess.CalledProcessError as error:
            raise ImageMagickFailed(explain_failure(error.stderr or "", self.plan, self.frame_size)) from error
        finally:
            self._release()

    def abort(self) -> None:
        """Stop convert without letting it write the frames it has, and remove whatever it wrote."""
        process = getattr(self, "_proc", None)
        if process is not None and process.poll() is None:
            process.terminate()  # ImageMagick's signal handler removes its own temporary cache files
            try:
                process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
        self._release()

    def _release(self) -> None:
        from .resources import restore

        self._stop_progress()
        if self._output is not None:
            self._output.discard()
            self.outfile, self._output = self._output.target, None
        if self._applied is not None:
            restore(self._applied)
            self._applied = None
