"""matplotlib movie writers: writer='magicktune' streams frames into GifEncoder; importing this module registers it.

Both writers take their frames through FrameCapture (magicktune.capture): one draw a frame instead of
Animation.save's two, the bytes savefig would give.
"""

from __future__ import annotations

import contextlib
import subprocess
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
from matplotlib import animation
from matplotlib.animation import AbstractMovieWriter

from .atomic import AtomicOutput
from .capture import FrameCapture
from .encoder import EncodeStats, GifEncoder, cores
from .errors import ImageMagickFailed, InvalidValue, WandStartedWarning

if TYPE_CHECKING:
    from .profile import Plan
    from .resources import AppliedLimits

_OPTIONS = {
    "colors": int,
    "dither": str,
    "optimize": bool,
    "global_palette": bool,
    "loop": int,
    "workers": int,
    "magick_threads": int,
    "treedepth": int,
    "quality": int,
    "quantizer": str,
}
#: Options of the writer itself rather than of its encoder, also accepted in extra_args.
_WRITER_OPTIONS = {
    "blit": bool,  # composite the animated artists on a cached background (FrameCapture)
    "progress": bool,  # a progress bar on stderr or in the notebook
    "frames": int,  # frames to come, for the bar's time left (found from the animation when it can be)
}
_KNOWN = {**_OPTIONS, **_WRITER_OPTIONS}


def _parse_value(kind: type, text: str) -> Any:
    if kind is bool:
        lowered = text.strip().lower()
        if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise InvalidValue(f"expected a boolean, got {text!r}")
        return lowered in ("1", "true", "yes", "on")
    return kind(text)


def parse_extra_args(extra_args: list[str] | tuple[str, ...] | None) -> dict[str, Any]:
    """Read Animation.save(extra_args=['colors=128', 'dither=riemersma', 'blit=yes', ...]) into writer options."""
    options: dict[str, Any] = {}
    for arg in extra_args or ():
        key, sep, value = str(arg).partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or key not in _KNOWN:
            raise InvalidValue(f"extra_args entries must be key=value with key in {sorted(_KNOWN)}, got {arg!r}")
        options[key] = _parse_value(_KNOWN[key], value)
    return options


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
        self.setup(fig, outfile, dpi, *args, **kwargs)
        try:
            assert self._capture is not None, "setup() made no FrameCapture"
            with self._capture.holding(), mpl.rc_context({"savefig.bbox": None}):
                yield self
        except BaseException:
            self.abort()
            raise
        self.finish()

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

    Rendering keeps one core busy, so the pool gets the others (at least one worker, one ImageMagick thread).
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
        **options: Any,
    ) -> None:
        super().__init__(fps=fps, metadata=metadata, codec=codec, bitrate=bitrate)  # type: ignore[arg-type]  # a float rate is fine
        unknown = set(options) - set(_KNOWN)
        if unknown:
            raise TypeError(f"unknown MagickTuneWriter options {sorted(unknown)}; known: {sorted(_KNOWN)}")
        merged = {**parse_extra_args(extra_args), **options}
        self.blit = bool(merged.pop("blit", False))
        self.progress = bool(merged.pop("progress", False))
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
        options = {"workers": max(1, cores() - 1), "magick_threads": 1, **self.options}
        self._capture = FrameCapture(fig, self.dpi, blit=self.blit)
        self._start_progress(fig, self.frames, self.progress)
        try:
            self._encoder = GifEncoder(
                outfile,
                self.frame_size,
                self.fps,
                comment=metadata_comment(self.metadata),
                progress=self._progress.to if self._progress else None,
                **options,
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


def explain_failure(stderr: str, plan: Any) -> str:
    """Turn convert's stderr into what went wrong and what to do, in terms of this job's plan."""
    from .units import human

    lines = stderr.strip().splitlines() or ["no message"]
    last = lines[-1]
    streaming = "or use writer='magicktune', which streams frames in constant memory"
    refusal = next((line for line in lines if "security policy" in line or "not authorized" in line), None)
    if refusal:
        return (
            f"the system policy.xml forbids what this command does (policy-secure and websafe deny the pipe "
            f"'-'); magicktune never loosens a security rule: ask the admin, {streaming} [{refusal}]"
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


@animation.writers.register("imagemagick_tuned")
class ImageMagickTunedWriter(_AbortOnError, animation.ImageMagickWriter):
    """matplotlib's pipe-to-convert GIF writer, with convert started under the limits magicktune.profile plans.

    `frames` (if known) lets the plan size the pixel cache and list length, else it is sized to the machine;
    the limits stay in force until finish(), since convert reads its policy.xml some time after it starts.
    convert writes beside the target and the file is moved into place only when it succeeds: a failed or
    interrupted save leaves no file. Failures raise ImageMagickFailed, saying which limit or rule was hit
    and what to do.
    """

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

    def setup(self, fig, outfile, dpi=None) -> None:
        from .profile import Job, plan
        from .resources import apply_resources

        dpi = fig.dpi if dpi is None else dpi
        width, height = (int(side * dpi + 1e-8) for side in fig.get_size_inches())
        fps = self.fps if 0 < self.fps <= 100 else None
        extra = self.extra_args if self.extra_args is not None else mpl.rcParams[self._args_key]  # type: ignore[attr-defined]
        self.plan = job_plan = plan(
            Job(width, height, self.frames, 4, fps),
            temporary_path=self.temporary_path,
            optimize_layers="-layers" in extra,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", WandStartedWarning)  # the limits are for convert, not this process
            self._applied = apply_resources(job_plan.limits, temporary_path=job_plan.temporary_path, verify=False)
        try:
            self._output = AtomicOutput(outfile)
            super().setup(fig, self._output.partial, dpi)
            self._capture = FrameCapture(fig, self.dpi)
            self._start_progress(fig, self.frames, self.progress)
        except BaseException:
            self._release()
            raise

    def grab_frame(self, **savefig_kwargs) -> None:
        """Pipe the frame to convert: drawn once (FrameCapture), the bytes matplotlib's own grab_frame would write."""
        try:
            if self.frame_format in ("rgba", "raw") and self._capture is not None:
                _check_grab_kwargs(savefig_kwargs)
                _keep_size(self.fig, (self._w, self._h))  # type: ignore[attr-defined]  # set by MovieWriter.setup
                self._proc.stdin.write(self._capture.grab(savefig_kwargs))  # type: ignore[attr-defined]
            else:
                super().grab_frame(**savefig_kwargs)
            if self._progress is not None:
                self._progress.to(self._progress.bar.n + 1)
        except BrokenPipeError:
            _, stderr = self._proc.communicate()  # type: ignore[attr-defined]  # matplotlib's convert process
            raise ImageMagickFailed(explain_failure(stderr.decode(errors="replace"), self.plan)) from None

    def finish(self) -> None:
        """Wait for convert; move its GIF into place, or raise ImageMagickFailed and leave nothing."""
        try:
            with self._progress.phase("convert is writing the GIF") if self._progress else contextlib.nullcontext():
                super().finish()
            assert self._output is not None, "setup() was not called"
            self._output.commit()
        except subprocess.CalledProcessError as error:
            raise ImageMagickFailed(explain_failure(error.stderr or "", self.plan)) from error
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
