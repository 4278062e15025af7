"""Progress bars (tqdm) for saves and encodes: frames, rate and time left, then the finish phase.

matplotlib's `progress_callback` stops at the last frame drawn; what comes after (the encoder draining its
queue, or convert reading every frame before it writes a byte) is shown here as a phase whose clock keeps
running. `tqdm.auto` draws a widget in Jupyter and text elsewhere.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

#: Seconds between redraws of a phase's clock while nothing else updates the bar.
TICK_S = 0.5


class Progress:
    """One bar over `total` frames (None: unknown, no time left shown), drawn to stderr or a notebook widget."""

    def __init__(self, total: int | None, description: str, *, notebook: bool = True, **tqdm_kwargs: Any) -> None:
        if notebook:
            from tqdm.auto import tqdm
        else:
            from tqdm import tqdm
        self.bar = tqdm(total=total, desc=description, unit="frame", dynamic_ncols=True, **tqdm_kwargs)

    def to(self, done: int, _total: int | None = None) -> None:
        """Move the bar to `done` frames (the signature of an encoder's or matplotlib's progress callback)."""
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)

    @contextlib.contextmanager
    def phase(self, description: str) -> Iterator[Progress]:
        """Name what runs inside, and keep the bar's clock moving while it runs, from a thread of its own."""
        self.bar.set_description_str(description)
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(TICK_S):
                self.bar.refresh()

        ticker = threading.Thread(target=tick, name="magicktune-progress", daemon=True)
        ticker.start()
        try:
            yield self
        finally:
            stop.set()
            ticker.join()

    def close(self) -> None:
        self.bar.close()


def animation_frames(figure: Any) -> int | None:
    """The frame count of the figure's animation when it has exactly one whose length is known, else None.

    matplotlib does not tell a writer how many frames are coming; an Animation connects its methods to the
    figure's canvas, so the canvas's callback registry leads to it. Best effort: a writer's frames=N wins.
    """
    from matplotlib.animation import Animation, ArtistAnimation

    found = set()
    try:
        for callbacks in figure.canvas.callbacks.callbacks.values():
            for ref in callbacks.values():
                owner = getattr(ref(), "__self__", None)
                if isinstance(owner, Animation):
                    found.add(owner)
    except (AttributeError, TypeError):
        return None
    if len(found) != 1:
        return None
    (animation,) = found
    if isinstance(animation, ArtistAnimation):
        return len(getattr(animation, "_framedata", ()))
    count = getattr(animation, "_save_count", None)
    return count if isinstance(count, int) else None
