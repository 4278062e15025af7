"""Streaming animated-GIF encoder: ImageMagick quantizes and LZW-compresses frames in a pool, we write them in order."""

from __future__ import annotations

import os
import stat
import sys
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import BinaryIO, Union

import numpy as np
import wand.resource
from wand.image import Image

from . import options, wandlib
from .atomic import AtomicOutput
from .errors import EncodeError, InvalidValue, PolicyError
from .frames import (
    STATIC_DETAIL_FOR_TRANSPARENCY,
    as_rgba,
    bbox,
    binarize_alpha,
    changed_pixels,
    static_detail,
)
from .gif import (
    DISPOSE_BACKGROUND,
    DISPOSE_NONE,
    MAX_DELAY_CS,
    MIN_DELAY_CS,
    GifFrame,
    GifWriter,
    delay_schedule,
    split_gif,
)
from .lzw import lzw
from .palette import DEFAULT_TREEDEPTH, OPAQUE, colours, dither_image, entries_of, map_colours, table_size
from .processpool import ProcessPool, why_unavailable
from .quantizer import error_at, quantize_frame, treedepth_at
from .shown import Over, ShownCanvas, Turns
from .wandlib import CACHE_BYTES_PER_PIXEL, check_frame_fits, images_that_fit

__all__ = ["GifEncoder", "encode_stream", "EncodeError", "EncodeStats", "QUANTIZERS", "DEFAULT_QUALITY"]

QUANTIZERS = options.QUANTIZERS
#: 100 gives each frame a table of `colors` entries; lower, as few as keep the error it adds within
#: quantizer.error_at (where ImageMagick builds the table, that share of `colors`: palette.table_size).
DEFAULT_QUALITY = 100

Progress = Callable[[int, int | None], None]
EVERY = 0xFFFF  # GifEncoder._writer_of: a pixel every worker knows
PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class EncodeStats:
    """What an encode produced: source frames, GIF frames after merging, file bytes, wall seconds."""

    frames: int
    gif_frames: int
    bytes: int
    seconds: float


def compress(
    pixels: np.ndarray,
    colors: int,
    dither: str,
    palette: np.ndarray | None = None,
    treedepth: int = 0,
    spare_transparent: bool = False,
    quantizer: str = "imagemagick",
    error: float = 0.0,
    frame_pixels: int = 0,
    over: Over | None = None,
    canvas: ShownCanvas | None = None,
) -> GifFrame:
    """Quantize (or remap to `palette`, a 1xN RGBA image whose last entry is transparent) one (h, w, 4) uint8
    frame and LZW-compress it with ImageMagick's GIF coder.

    `spare_transparent` quantizes to at most 255 colours and adds a transparent entry, so decoders that fix
    their canvas mode from the first frame (Pillow) keep an alpha channel, and restore-to-background clears to
    transparent rather than to a colour. `quantizer` "magicktune" builds the table with quantizer.py (exact, with
    no `error`, when the pixels have few enough colours; `treedepth` is its octree pre-cut's), "imagemagick" with
    ImageMagick's octree at `treedepth`. With `over` and the worker's `canvas`, the "magicktune" quantizer's
    unchanged pixels are written the way LZW packs best. Its table shrinks while the squared error added stays
    within `error` per pixel of a frame of `frame_pixels` (quantizer.quantize_frame), but not a whole frame's that
    later frames draw over: its pixels stay on screen, and every frame after it shows their error. 60 line-plot
    frames at quality 90: 1.20 MB at 59.1 / 58.8 dB, against 1.19 MB at 57.6 / 56.4 with the whole frame held to
    the same error (`python -m benchmarks.quality_steps`, and the same with this rule taken out).
    """
    if dither != "none":
        return _compress_dithered(pixels, colors, dither, palette, treedepth, spare_transparent)
    if palette is None:
        if quantizer == "magicktune":
            if over is not None and over.whole:
                error = 0.0
            table, indexes = quantize_frame(
                pixels, colors, spare_transparent, treedepth=treedepth, error=error, frame_pixels=frame_pixels
            )
            if over is not None and canvas is not None:
                transparent = 0 if table[0] == 0 else len(table) if spare_transparent else None
                indexes = canvas.write(table, indexes, transparent, over)
        else:
            table, indexes = map_colours(pixels, min(colors, 255) if spare_transparent else colors, treedepth)
        if table[0] == 0:
            return lzw(table, indexes, 0)
        if spare_transparent:
            return lzw(np.append(table, np.uint32(0)), indexes, len(table))
        return lzw(table, indexes, None)
    table, indexes = map_colours(pixels, colors, treedepth, palette)
    entries = colours(np.ascontiguousarray(palette)).reshape(-1)
    found, held = entries_of(entries, table)
    if not held.all():
        raise EncodeError("ImageMagick remapped a colour outside the global palette")
    transparent = spare_transparent or table[0] == 0
    return lzw(entries, found.astype(np.uint8)[indexes], len(entries) - 1 if transparent else None)


class Compressor:
    """compress() as one worker runs it, with that worker's own knowledge of what the GIF shows (each child
    process unpickles a copy of its own; each thread has one)."""

    def __init__(self, canvas: ShownCanvas | None = None) -> None:
        self.canvas = canvas or ShownCanvas()

    def __call__(self, pixels: np.ndarray, *arguments: object) -> GifFrame:
        over = arguments[-1] if arguments else None
        if isinstance(over, Over) and over.whole and self.canvas.turns is None:
            self.canvas.colours = None  # this child knows its canvas again once the frame is on it, not if it fails
        try:
            return compress(pixels, *arguments, self.canvas)  # type: ignore[arg-type, call-arg]
        finally:
            turns = self.canvas.turns
            if turns is not None and isinstance(over, Over):  # failed before its turn: the frames after it go on
                turns.wait_for(over.turn)
                turns.done(over.turn)


class _Threads:
    """`workers` threads, each running the jobs given to it in order, as ProcessPool's children do; they share one
    canvas of what the GIF shows, and put frames on it in turn."""

    def __init__(self, workers: int) -> None:
        self._turns = Turns()
        canvas = ShownCanvas(self._turns)
        self._compressors = [Compressor(canvas) for _ in range(workers)]
        self._threads = [ThreadPoolExecutor(1, thread_name_prefix="magicktune-gif") for _ in range(workers)]

    def submit(self, worker: int, pixels: np.ndarray, *arguments: object) -> Future:
        return self._threads[worker].submit(self._compressors[worker], pixels, *arguments)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        if cancel_futures:
            self._turns.abandon()  # a cancelled frame never takes its turn
        for threads in self._threads:
            threads.shutdown(wait=False, cancel_futures=cancel_futures)
        if wait:
            for threads in self._threads:
                threads.shutdown(wait=True)


def _compress_dithered(
    pixels: np.ndarray, colors: int, dither: str, palette: np.ndarray | None, treedepth: int, spare_transparent: bool
) -> GifFrame:
    """Dithering spreads each pixel's error to its neighbours, so ImageMagick works on the frame as laid out."""
    with _image(pixels) as image:
        dither_image(image, min(colors, 255) if spare_transparent else colors, dither, palette, treedepth)
        frame = split_gif(image.make_blob("gif"))
    if spare_transparent and frame.transparency is None:
        if palette is None:
            frame = replace(frame, palette=frame.palette.ljust(768, b"\0"), transparency=255)
        elif frame.palette.startswith(palette[0, :, :3].tobytes()):  # remap keeps the palette's order
            frame = replace(frame, transparency=palette.shape[1] - 1)
    return frame


def _image(pixels: np.ndarray) -> Image:
    """An ImageMagick image of an (h, w, 4) uint8 frame, its alpha skipped ('P') when every pixel is opaque."""
    pixels = np.ascontiguousarray(pixels)
    opaque = bool((colours(pixels) >= OPAQUE).all())
    return Image.from_array(pixels, channel_map="RGBP" if opaque else "RGBA")


@dataclass
class _Pending:
    src: np.ndarray
    transparent: bool
    delay: int
    last_index: int
    changed: np.ndarray | None = None  # pixels that differ from the frame submitted before it (None: the first)


@dataclass
class _InFlight:
    future: Future
    origin: tuple[int, int]
    delay: int
    disposal: int
    first_index: int
    last_index: int

    @property
    def frames(self) -> str:
        """The source frames this GIF frame stands for, as an error message names them."""
        if self.first_index == self.last_index:
            return f"frame {self.first_index}"
        return f"frames {self.first_index}-{self.last_index}"


#: What one worker holds in ImageMagick at once: up to two frame-sized images (the frame, and what quantizing or
#: LZW makes of it), colormapped ones with 2 more bytes a pixel (IM6 Q16's index). Measured with 40 frames of
#: 100x100 noise, every cache on disk: one worker needs a disk limit between 170,000 and 200,000 bytes
#: (`MAGICK_AREA_LIMIT=100 MAGICK_DISK_LIMIT=200000` around `GifEncoder(..., workers=1, optimize=False)`).
IMAGES_PER_WORKER = 2
IMAGE_BYTES_PER_PIXEL = CACHE_BYTES_PER_PIXEL + 2

#: GIL switch interval while encoding. A worker gets the GIL back from a thread busy in Python (matplotlib
#: drawing the next frame) only after this long, some 15 times a frame; at Python's 5 ms the workers fell
#: behind and ani.save took 4-7% longer, at 1 ms it is back to within 1% of the old per-frame path.
SWITCH_INTERVAL = 0.001
#: Frames in flight a worker, once one has come back. Before, up to STARTING_FRAMES, as many as STARTING_BYTES of
#: whole frames hold, and never fewer than after. A child process takes about 0.15 s to start and its first frame
#: is whole: with 2 in flight, the slowest of a line-plot save's first frames took 93-106 ms more than the median
#: in two of three runs (31 in the third), against 11-31 ms with up to 8 (`python -m benchmarks.frame_times`, and
#: `--starting-frames 0` for 2). A 300-frame seed save peaked at 147 MiB either way (`python -m benchmarks --frames
#: seed=300 --cases mt_magicktune`, two runs each).
IN_FLIGHT_PER_WORKER = 2
STARTING_FRAMES = 8
STARTING_BYTES = 16 * 2**20
#: Seconds a worker process may take over one frame before the encode stops with an error (the process is ended
#: with it; a thread cannot be, so threads wait).
WORKER_PROCESS_TIMEOUT = 600.0


class _ProcessSettings:
    """Process-wide settings an encoder changes while it runs (ImageMagick's thread limit, the GIL switch
    interval): the first encoder to start saves them, the last to end restores them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._saved: tuple[int, float] | None = None

    def hold(self, threads: int) -> None:
        with self._lock:
            if self._holders == 0:
                self._saved = wand.resource.limits["thread"], sys.getswitchinterval()
                sys.setswitchinterval(min(SWITCH_INTERVAL, self._saved[1]))
            self._holders += 1
            wand.resource.limits["thread"] = threads

    def release(self) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders == 0:
                assert self._saved is not None
                wand.resource.limits["thread"], interval = self._saved
                sys.setswitchinterval(interval)


_process_settings = _ProcessSettings()


def check_may_write(given: PathLike, target: str) -> None:
    """Refuse a target the security policy's path rules deny, as convert would refuse to write it: checked on the
    name given, its absolute form and the file it resolves to, so no spelling of the path slips past a rule."""
    names = dict.fromkeys([os.fspath(given), os.path.abspath(os.fspath(given)), target])
    denied = next((name for name in names if not wandlib.may_write(name)), None)
    if denied is not None:
        # /dev/stdout on a pipe is denied by Debian's `@*` rule, as for convert: ImageMagick resolves it to pipe:[N]
        hint = "; for standard output give -" if os.path.realpath(denied).rsplit("/", 1)[-1].startswith("pipe:") else ""
        raise PolicyError(
            f"ImageMagick's security policy does not allow writing {denied} (a path rule in policy.xml; "
            f"`magicktune policy show` lists them): write the GIF elsewhere, or ask the admin to allow it{hint}"
        )


def _release(pool: _Threads | ProcessPool, output: AtomicOutput | None) -> None:
    """What an encoder holds, given back once, also when it is dropped without close() or abort()."""
    try:
        if output is not None:
            output.discard()
        pool.shutdown(wait=False, cancel_futures=True)
    finally:
        _process_settings.release()


def cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class GifEncoder:
    """Encode frames to an animated GIF as they arrive; memory stays bounded and the file appears only when complete."""

    def __init__(
        self,
        path: PathLike | BinaryIO,
        size: tuple[int, int],
        fps: float,
        colors: int = 256,
        dither: str = "none",
        optimize: bool = True,
        global_palette: bool = False,
        loop: int | None = 0,
        comment: str | None = None,
        workers: int | None = None,
        magick_threads: int | None = None,
        treedepth: int = DEFAULT_TREEDEPTH,
        progress: Progress | None = None,
        total_frames: int | None = None,
        quality: int = DEFAULT_QUALITY,
        tolerance: int = 0,
        quantizer: str = "magicktune",
        processes: bool = False,
    ) -> None:
        width, height = options.frame_size(size)
        self._delays = delay_schedule(fps)
        chosen = options.read(
            {
                "colors": colors,
                "dither": dither,
                "optimize": optimize,
                "global_palette": global_palette,
                "loop": loop,
                "workers": workers,
                "magick_threads": magick_threads,
                "treedepth": treedepth,
                "quality": quality,
                "tolerance": tolerance,
                "quantizer": quantizer,
                "processes": processes,
            },
            options.ENCODER_OPTIONS,
        )
        check_frame_fits(width, height)
        self.quality: int = chosen["quality"]
        self.quantizer: str = chosen["quantizer"]
        self.tolerance: int = chosen["tolerance"]
        if self.tolerance and self.quantizer != "magicktune":
            raise InvalidValue(
                f"tolerance={self.tolerance} works only with quantizer='magicktune', got {self.quantizer!r}: "
                "drop one of the two"
            )
        self._shown: np.ndarray | None = None  # the source colours the GIF shows now, where each was last written
        self.size = (width, height)
        self.colors: int = chosen["colors"]
        self.dither: str = chosen["dither"]
        self.optimize: bool = chosen["optimize"]
        self.treedepth: int = chosen["treedepth"]
        self.global_palette: bool = chosen["global_palette"]
        own_table = self.quantizer == "magicktune" and self.dither == "none" and not self.global_palette
        self._treedepth = treedepth_at(self.quality) if own_table else self.treedepth  # quantizer.py's, or the octree's
        self._pixel_error = error_at(self.quality) if own_table else 0.0
        self._table_size = self.colors if own_table else table_size(self.colors, self.quality)
        self.loop: int | None = chosen["loop"]
        self.comment = comment
        self.progress = progress
        self.total_frames = total_frames
        self.workers: int = chosen["workers"] or cores()
        room = images_that_fit(width, height, IMAGE_BYTES_PER_PIXEL)
        if room is not None:  # more workers than ImageMagick's limits hold would abort the process, not fail
            self.workers = max(1, min(self.workers, room // IMAGES_PER_WORKER))
        self.stats: EncodeStats | None = None
        self._started = time.perf_counter()
        self._frames_in = 0
        self._pending: _Pending | None = None
        self._prev: _Pending | None = None
        self._palette: np.ndarray | None = None
        self._inflight: deque[_InFlight] = deque()
        self._next_worker = 0
        self._shown_known = False  # since the last whole frame, every frame went over what the GIF showed
        self._turn = 0  # threads: the next frame's place on their shared canvas
        self._writer_of: np.ndarray | None = None  # processes: the child that wrote each pixel (EVERY: all know it)
        self._reuses_shown = self.optimize and own_table
        self._max_inflight = IN_FLIGHT_PER_WORKER * self.workers
        self._max_starting = max(self._max_inflight, min(STARTING_FRAMES, STARTING_BYTES // (width * height * 4)))
        self._writer: GifWriter | None = None
        self._closed = False
        self._output: AtomicOutput | None = None
        output = None if hasattr(path, "write") else AtomicOutput(path)
        if output is not None:
            check_may_write(path, output.target)  # type: ignore[arg-type]  # not a stream: a path
        magick_threads = chosen["magick_threads"] or max(1, cores() // self.workers)
        _process_settings.hold(magick_threads)
        self._pool: _Threads | ProcessPool
        try:
            cannot = why_unavailable() if chosen["processes"] else None
            if cannot is not None:
                warnings.warn(f"compressing in threads of this process: {cannot}", RuntimeWarning, stacklevel=2)
            if chosen["processes"] and cannot is None:
                self._pool = ProcessPool(Compressor(), self.workers, magick_threads)
            else:
                self._pool = _Threads(self.workers)
        except BaseException:
            _process_settings.release()
            raise
        # Dropped without close() or abort(), the encoder still removes its partial file and restores the switch
        # interval and Wand's thread limit; close() and abort() run this themselves.
        self._finalizer = weakref.finalize(self, _release, self._pool, output)
        if output is None:
            self._fp: BinaryIO = path  # type: ignore[assignment]
            return
        try:
            self._fp = output.open()
        except BaseException:
            self._shutdown()
            raise
        self._output = output

    def __enter__(self) -> GifEncoder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    @property
    def frames(self) -> int:
        """Source frames added so far."""
        return self._frames_in

    def add_frame(self, frame: bytes | bytearray | memoryview | np.ndarray) -> None:
        """Queue one RGBA bytes / (h, w, 4) or (h, w, 3) uint8 frame; finished frames are appended on the way."""
        if self._closed:
            raise ValueError("encoder is closed")
        try:
            src = as_rgba(frame, self.size)
            delay = next(self._delays)
            keys = colours(src)
            transparent = bool(keys.min() < OPAQUE)  # alpha is the high byte: some pixel's is below 255
            index = self._frames_in
            self._frames_in += 1
            pending = self._pending
            changed = None
            if pending is not None and self.optimize and pending.delay >= MIN_DELAY_CS:
                changed = keys != colours(pending.src)
            if (
                pending is not None
                and pending.delay + delay <= MAX_DELAY_CS
                and (pending.delay < MIN_DELAY_CS or (changed is not None and not changed.any()))
            ):
                # An identical frame, or one arriving before the pending frame has had the 2 cs a GIF can
                # show (above 50 fps): it adds its time to the pending frame and is not written.
                pending.delay += delay
                pending.last_index = index
                return
            if pending is not None:
                self._submit(pending, next_transparent=transparent)
            self._pending = _Pending(src, transparent, delay, index, changed)
            while self._inflight and self._inflight[0].future.done():
                self._write_head()
        except BaseException:
            self.abort()
            raise

    def close(self) -> EncodeStats:
        """Encode what is queued, write the trailer and move the GIF into place."""
        if self._closed:
            if self.stats is None:
                raise ValueError("encoder was aborted")
            return self.stats
        try:
            if self._pending is None:
                raise InvalidValue("no frames were added")
            self._pending.delay = max(self._pending.delay, MIN_DELAY_CS)
            self._submit(self._pending, next_transparent=False)
            self._pending = None
            while self._inflight:
                self._write_head()
            assert self._writer is not None
            self._writer.close()
            self._fp.flush()
            if self._output is not None:
                self._output.commit()  # fsync, the mode of the file it replaces, rename into place
                self._output = None
        except BaseException:
            self.abort()
            raise
        self.stats = EncodeStats(
            self._frames_in,
            self._writer.frames_written,
            self._writer.bytes_written,
            time.perf_counter() - self._started,
        )
        self._shutdown()
        return self.stats

    def abort(self) -> None:
        """Stop, drop queued work and remove the temporary file; safe to call twice."""
        if self._closed:
            return
        if self._output is not None:
            self._output.discard()  # first: whatever interrupts the rest, the partial file is gone
            self._output = None
        for item in self._inflight:
            item.future.cancel()
        self._inflight.clear()
        self._pending = self._prev = None
        self._shutdown()

    def _shutdown(self) -> None:
        self._closed = True
        try:
            self._pool.shutdown(wait=True, cancel_futures=True)
        finally:
            self._finalizer()

    def _submit(self, frame: _Pending, next_transparent: bool) -> None:
        prev = self._prev
        full = not self.optimize or prev is None or prev.transparent or frame.transparent or next_transparent
        disposal = DISPOSE_BACKGROUND if frame.transparent or next_transparent else DISPOSE_NONE
        written = None
        if frame.transparent:
            origin, pixels = (0, 0), binarize_alpha(frame.src)
            self._shown = None
        elif full:
            origin, pixels = (0, 0), frame.src
            self._shown = frame.src
        elif self.quantizer == "magicktune":
            origin, pixels, written = self._changed_only(frame)
        else:
            assert prev is not None and frame.changed is not None  # add_frame compared it with prev
            changed = frame.changed
            x0, y0, x1, y1 = bbox(changed) if changed.any() else (0, 0, 1, 1)
            origin, crop, changed = (x0, y0), frame.src[y0:y1, x0:x1], changed[y0:y1, x0:x1]
            if static_detail(crop, changed) < STATIC_DETAIL_FOR_TRANSPARENCY:
                pixels = crop
            else:
                pixels = np.empty_like(crop)  # unchanged ones transparent; see benchmarks.hotspots
                np.multiply(colours(crop), changed, out=colours(pixels), casting="unsafe")
        if self._writer is None:
            self._start(pixels)
        spare = prev is None or disposal == DISPOSE_BACKGROUND
        worker = self._next_worker
        self._next_worker = (worker + 1) % self.workers
        arguments = (
            self._table_size,
            self.dither,
            self._palette,
            self._treedepth,
            spare,
            self.quantizer,
            self._pixel_error,
            self.size[0] * self.size[1],
        )
        over = self._over(frame, full, disposal, origin, pixels, written, worker, arguments)
        future = self._pool.submit(worker, pixels, *arguments, over)
        first_index = prev.last_index + 1 if prev is not None else 0
        self._inflight.append(_InFlight(future, origin, frame.delay, disposal, first_index, frame.last_index))
        self._prev = frame
        first_back = self._writer is not None and self._writer.frames_written > 0
        while len(self._inflight) > (self._max_inflight if first_back else self._max_starting):
            self._write_head()

    def _over(
        self,
        frame: _Pending,
        full: bool,
        disposal: int,
        origin: tuple[int, int],
        pixels: np.ndarray,
        written: np.ndarray | None,
        worker: int,
        arguments: tuple,
    ) -> Over | None:
        """What `worker` knows of the GIF's pixels under this frame, and the bookkeeping of who wrote what: threads
        share one canvas and know it all; a child process knows the pixels it wrote last, and a whole frame, which
        every child is given."""
        if not self._reuses_shown or frame.transparent or disposal != DISPOSE_NONE:
            self._shown_known = False
            return None
        if not (full or self._shown_known):
            return None
        self._shown_known = True
        if isinstance(self._pool, _Threads):
            self._turn += 1
            return Over(origin, whole=full, turn=self._turn - 1)
        if self.workers == 1:  # one child wrote every pixel it is given: it knows them all
            return Over(origin, whole=full)
        if full:
            for other in range(self.workers):  # the others learn the whole frame too; their GIF frames are dropped
                if other != worker:
                    self._pool.submit(other, pixels, *arguments, Over(origin, whole=True))
            self._writer_of = np.full(pixels.shape[:2], EVERY, np.uint16)
            return Over(origin, whole=True)
        assert self._writer_of is not None and written is not None
        x0, y0 = origin
        height, width = pixels.shape[:2]
        writers = self._writer_of[y0 : y0 + height, x0 : x0 + width]
        known = np.packbits((writers == worker) | (writers == EVERY))
        writers[written] = worker
        return Over(origin, known)

    def _changed_only(self, frame: _Pending) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
        """The crop around the pixels to write and their mask, the others transparent over what the GIF shows: a pixel whose
        source does not change never changes in the GIF. Beyond the tolerance of what the GIF shows
        counts as changed (frames.changed_pixels); the shown colours follow what is written, so the error never
        builds up."""
        assert frame.changed is not None and self._shown is not None
        if self.tolerance:
            changed = changed_pixels(frame.src, self._shown, self.tolerance, frame.changed)
            self._shown = np.where(changed[..., None], frame.src, self._shown)
        else:
            changed = frame.changed  # against the frame before, which is all written
            self._shown = frame.src
        x0, y0, x1, y1 = bbox(changed) if changed.any() else (0, 0, 1, 1)
        # One pass over 32-bit pixels: a mask assignment into the (h, w, 4) crop was a fifth of lines' CPU time.
        written = changed[y0:y1, x0:x1]
        # np.multiply by the mask is 0.34 ms against np.where's 0.91 on a line-plot frame (timeit, 800x600).
        kept = np.multiply(colours(frame.src)[y0:y1, x0:x1], written, dtype=np.uint32, casting="unsafe")
        return (x0, y0), kept.view(np.uint8).reshape(y1 - y0, x1 - x0, 4), written

    def _start(self, first_pixels: np.ndarray) -> None:
        global_table = None
        if self.global_palette:
            opaque_colours = min(self._table_size, 255)  # and one transparent entry, last
            table, _ = map_colours(first_pixels, opaque_colours, self.treedepth)
            rgb = table[table >= OPAQUE].view(np.uint8).reshape(-1, 4)[:, :3]
            if len(rgb):  # a wholly transparent first frame has no colours to share: per-frame palettes then
                self._palette = np.zeros((1, len(rgb) + 1, 4), np.uint8)
                self._palette[0, :-1, :3] = rgb
                self._palette[0, :-1, 3] = 255
                global_table = self._palette[0, :, :3].tobytes()
        self._writer = GifWriter(self._fp, self.size, loop=self.loop, comment=self.comment, global_palette=global_table)

    def _write_head(self) -> None:
        item = self._inflight.popleft()
        # Future.result, not concurrent.futures.wait, which takes each future's lock in a Python loop: a Ctrl-C just
        # after the take leaves it held, and the thread reading the child's results, and the abort that joins it,
        # wait for ever. The likely cause of one hang of the Ctrl-C test in the ImageMagick 7 suite (60 s, then
        # killed), which 23 more runs did not repeat.
        timeout = WORKER_PROCESS_TIMEOUT if isinstance(self._pool, ProcessPool) else None
        try:
            frame = item.future.result(timeout)
        except EncodeError as exc:  # says what failed already
            raise EncodeError(f"encoding {item.frames} failed: {exc}") from exc
        except Exception as exc:
            if not item.future.done():  # result() timed out
                raise EncodeError(
                    f"encoding {item.frames} took more than {WORKER_PROCESS_TIMEOUT:g} s in a worker process: "
                    f"ImageMagick may be stuck, or the frame is too large for this machine"
                ) from None
            raise EncodeError(f"encoding {item.frames} failed: {type(exc).__name__}: {exc}") from exc
        assert self._writer is not None
        self._writer.write_frame(replace(frame, rect=(*item.origin, *frame.rect[2:])), item.delay, item.disposal)
        if self.progress is not None:
            self.progress(item.last_index + 1, self.total_frames)


def _read_exact(fp: BinaryIO, size: int) -> bytes:
    data = fp.read(size)
    if not data or len(data) == size:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = fp.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def encode_stream(
    source: BinaryIO | PathLike,
    output: PathLike | BinaryIO,
    size: tuple[int, int],
    fps: float,
    progress: Progress | None = None,
    **options,
) -> EncodeStats:
    """Encode a raw RGBA frame stream (a file, a path, or '-' for stdin) to an animated GIF at `output` ('-': stdout)."""
    width, height = size
    frame_bytes = width * height * 4
    fp: BinaryIO
    if not isinstance(source, (str, os.PathLike)):
        fp, owned = source, False
    elif os.fspath(source) == "-":
        fp, owned = sys.stdin.buffer, False
    else:
        fp, owned = open(source, "rb"), True
    try:
        total = None
        try:
            info = os.fstat(fp.fileno())
            if stat.S_ISREG(info.st_mode):
                total = max(0, info.st_size - fp.tell()) // frame_bytes
        except (AttributeError, OSError, ValueError):
            pass
        if not hasattr(output, "write") and os.fspath(output) == "-":
            output = sys.stdout.buffer
        with GifEncoder(output, size, fps, progress=progress, total_frames=total, **options) as encoder:
            while True:
                data = _read_exact(fp, frame_bytes)
                if not data:
                    break
                if len(data) < frame_bytes:
                    raise EncodeError(
                        f"truncated input: frame {encoder.frames} has {len(data)} of {frame_bytes} bytes "
                        f"({width}x{height} RGBA)"
                    )
                encoder.add_frame(data)
        assert encoder.stats is not None
        return encoder.stats
    finally:
        if owned:
            fp.close()
