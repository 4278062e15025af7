"""What the GIF shows, as each encoding worker knows it: pixels a frame leaves as they are may be written either
as transparency or as the colour already shown, and the choice is made for LZW's sake.

As gifsicle -O2 chooses (its transp_frame_data): a run of such pixels in scan order keeps its colour when it
has one, and becomes transparent when it spans several. Either way the decoded frame is the same. Over 30
frames of each workload, against leaving every unchanged pixel transparent: seed -8.9%, field -5.4%, photo
-3.9%, lines +0.4% (GifEncoder over benchmarks' frames, against the encoder before this module: a scratch
script, not kept; `python -m benchmarks --quick` gives the same comparison against every anchor).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .palette import entries_of


@dataclass(frozen=True)
class Over:
    """Where a frame lands on what the GIF shows: its crop's origin; which crop pixels the worker knows the shown
    colour of, packed one bit a pixel (np.packbits), or None for all of them; `whole`: a whole frame, which
    replaces what is known; `turn`: its place in the order frames are put on a canvas that workers share."""

    origin: tuple[int, int]
    known: np.ndarray | None = None
    whole: bool = False
    turn: int = 0


class Turns:
    """Threads sharing one canvas put their frames on it in order: frame n waits for frame n - 1."""

    def __init__(self) -> None:
        self._next = 0
        self._abandoned = False
        self._changed = threading.Condition()

    def wait_for(self, turn: int) -> bool:
        """Whether `turn` is now (False: it is past, or the encode was abandoned and the canvas is not to be
        touched)."""
        with self._changed:
            self._changed.wait_for(lambda: self._abandoned or self._next >= turn)
            return not self._abandoned and self._next == turn

    def done(self, turn: int) -> None:
        """Let the next frame go, if `turn` is now; a frame that failed before its turn still calls this."""
        with self._changed:
            if self._next == turn:
                self._next += 1
                self._changed.notify_all()

    def abandon(self) -> None:
        """Wake every waiting frame: jobs that will never run (cancelled) hold no turn up."""
        with self._changed:
            self._abandoned = True
            self._changed.notify_all()


class ShownCanvas:
    """The colours (32-bit RGBA numbers) this worker's frames put on screen; valid where the encoder says it knows."""

    def __init__(self, turns: Turns | None = None) -> None:
        self.colours: np.ndarray | None = None
        self.turns = turns

    def write(self, table: np.ndarray, indexes: np.ndarray, transparent: int | None, over: Over) -> np.ndarray:
        """The indexes to LZW-compress for a frame quantized to `table` (entry 0 is 0, transparent, where the
        crop leaves pixels as they are), with the unchanged pixels the worker knows written the cheaper way; the
        canvas then holds the frame's written pixels."""
        if self.turns is None:
            return self._write(table, indexes, transparent, over)
        if not self.turns.wait_for(over.turn):
            return indexes
        try:
            return self._write(table, indexes, transparent, over)
        finally:
            self.turns.done(over.turn)

    def _write(self, table: np.ndarray, indexes: np.ndarray, transparent: int | None, over: Over) -> np.ndarray:
        new = table[indexes]
        if over.whole or self.colours is None:
            self.colours = new.copy() if over.whole else None
            return indexes
        written = new != 0  # written colours carry their alpha bits, so never 0
        x0, y0 = over.origin
        height, width = indexes.shape
        shown = self.colours[y0 : y0 + height, x0 : x0 + width]
        if over.known is None:
            known = np.ones((height, width), bool)
        else:
            known = np.unpackbits(over.known, count=height * width).reshape(height, width).view(bool)
        chosen = indexes if transparent is None else _in_runs(table, indexes, new, written, shown, known, transparent)
        np.copyto(shown, new, where=written)
        return chosen


#: _in_runs looks up every pixel's shown colour where more than 1 / LOOK_UP_ALL_FROM of them are unchanged and known.
LOOK_UP_ALL_FROM = 2


def _in_runs(
    table: np.ndarray,
    indexes: np.ndarray,
    new: np.ndarray,
    written: np.ndarray,
    shown: np.ndarray,
    known: np.ndarray,
    transparent: int,
) -> np.ndarray:
    """gifsicle's rule over the pixels whose shown colour stays: a run of them with one value keeps it, a run with
    several becomes `transparent`. An unchanged pixel's value is its shown colour's entry, where the worker knows
    that colour and the table holds it; otherwise transparency. Those colours are looked up for every pixel where
    most are unchanged and known, else for those alone. Runs are found by their bounds and flagged whole (np.repeat).
    Against numbering each pixel's run by a cumulative sum and looking up the unchanged alone: a line-plot crop
    2.4-2.6 ms against 5.0-6.7, a field frame (nearly every pixel changes) 2.8 against 3.2 (`python -m
    benchmarks.hotspots --frame 30 [--workload field]`, a few runs an hour apart: the machine's speed drifts)."""
    asked = (~written & known).reshape(-1)
    if np.count_nonzero(asked) > asked.size // LOOK_UP_ALL_FROM:  # most: looking up every pixel costs less
        entry, held = entries_of(table, shown.reshape(-1))
        value = entry.astype(np.uint8)
        np.putmask(value, ~(asked & held), transparent)
    else:
        value = np.full(asked.size, transparent, np.uint8)
        ask = np.flatnonzero(asked)
        entry, held = entries_of(table, shown.reshape(-1)[ask])
        value[ask[held]] = entry[held]
    np.copyto(value, indexes.reshape(-1), where=written.reshape(-1))
    same = (~written | (known & (new == shown))).reshape(-1)
    bounds = np.concatenate(([0], np.flatnonzero(same[1:] != same[:-1]) + 1, [same.size]))  # of runs, both kinds
    inner_change = np.flatnonzero(same[1:] & same[:-1] & (value[1:] != value[:-1])) + 1
    mixed = np.zeros(len(bounds) - 1, bool)
    mixed[np.searchsorted(bounds, inner_change, side="right") - 1] = True
    np.putmask(value, np.repeat(mixed, np.diff(bounds)), transparent)
    return value.reshape(indexes.shape)
