"""Figure -> frames: each frame drawn once, as the RGBA bytes `savefig(format='rgba')` would give.

`Animation.save` draws every frame twice: `_draw_next_frame` ends in `canvas.draw_idle()`, which draws at once
on Agg, and then every writer's `grab_frame` calls `savefig`, which draws again. While a `FrameCapture` is
`holding()`, `draw_idle` does nothing and `grab()` makes the one draw. It calls `savefig` only where savefig's
result would differ from the canvas as it is (`fallback_reason`); that still draws once. With `blit=True` it
draws the figure once with its animated artists laid out but not drawn, keeps that background, and per frame restores it and draws
only the animated artists (drawn above their axes' other artists, as matplotlib's on-screen blitting does).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from io import BytesIO
from typing import Any

import matplotlib as mpl
from matplotlib import colors as mcolors
from matplotlib.backends.backend_agg import FigureCanvasAgg

#: savefig keywords whose effect on a raw RGBA frame `fallback_reason` can judge; any other one is left to savefig.
JUDGED_KEYWORDS = frozenset({"facecolor", "edgecolor", "transparent"})


def _no_draw(*args: Any, **kwargs: Any) -> None:
    """Stands in for canvas.draw_idle while a capture holds the figure: grab() draws each frame instead."""


def _is_auto(color: Any) -> bool:
    return isinstance(color, str) and color == "auto"


def _same_face(patch: Any, color: Any) -> bool:
    """Would `patch.set_facecolor(color)` leave the colour it draws with unchanged? (Patch._set_facecolor's rule.)"""
    alpha = patch.get_alpha() if patch.get_fill() else 0
    return mcolors.to_rgba(color, alpha) == tuple(patch.get_facecolor())


def _same_edge(patch: Any, color: Any) -> bool:
    """Same for `set_edgecolor` (Patch._set_edgecolor's rule)."""
    return mcolors.to_rgba(color, patch.get_alpha()) == tuple(patch.get_edgecolor())


def _transparent_patches(figure: Any) -> Iterator[Any]:
    """The patches savefig(transparent=True) clears besides the figure's: subfigures', their axes' and child axes'."""
    stack = [*figure.subfigs, *figure.axes]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item.patch
        stack.extend(getattr(item, "subfigs", ()))
        stack.extend(getattr(item, "child_axes", ()))
        if hasattr(item, "subfigs"):
            stack.extend(item.axes)


def fallback_reason(figure: Any, dpi: float, savefig_kwargs: Mapping[str, Any]) -> str | None:
    """Why `savefig(format='rgba', dpi=dpi, **savefig_kwargs)` would give other bytes than drawing the canvas, or None.

    Mirrors what Figure.savefig and FigureCanvasBase.print_figure change before they draw (matplotlib 3.7-3.11):
    the dpi, the figure's face and edge colours, `transparent` (which also clears every axes' patch), a bounding
    box, and the canvas, which savefig swaps for an Agg one when it is not Agg.
    """
    canvas = figure.canvas
    if not isinstance(canvas, FigureCanvasAgg) or type(canvas).print_rgba is not FigureCanvasAgg.print_rgba:
        return f"the canvas is {type(canvas).__name__}, not Agg: savefig renders the frame on another canvas"
    if dpi != figure.dpi:
        return f"dpi {dpi} is not the figure's {figure.dpi}"
    unjudged = sorted(set(savefig_kwargs) - JUDGED_KEYWORDS)
    if unjudged:
        return f"savefig keyword {unjudged[0]!r} is left to savefig"
    if mpl.rcParams["savefig.bbox"]:
        return "savefig.bbox (bbox_inches) crops the frame"
    transparent = savefig_kwargs.get("transparent")
    if transparent is None:
        transparent = mpl.rcParams["savefig.transparent"]
    wanted = {}
    for prop, default in (
        ("facecolor", mpl.rcParams["savefig.facecolor"]),
        ("edgecolor", mpl.rcParams["savefig.edgecolor"]),
    ):
        color = savefig_kwargs.get(prop)
        if color is None:
            color = "none" if transparent else default
        if not _is_auto(color):
            wanted[prop] = color
    patch = figure.patch
    if "facecolor" in wanted and not _same_face(patch, wanted["facecolor"]):
        return f"facecolor {wanted['facecolor']!r} differs from the figure's"
    if "edgecolor" in wanted and not _same_edge(patch, wanted["edgecolor"]):
        return f"edgecolor {wanted['edgecolor']!r} differs from the figure's"
    if transparent:
        for other in _transparent_patches(figure):
            if not (_same_face(other, "none") and _same_edge(other, "none")):
                return "transparent=True clears the axes' and subfigures' patches"
    return None


@contextlib.contextmanager
def _not_drawn(artist: Any) -> Iterator[None]:
    """The artist's draw() does nothing inside: hiding it instead would move titles and change layouts."""
    own = vars(artist)
    had, previous = "draw" in own, own.get("draw")
    artist.draw = _no_draw
    try:
        yield
    finally:
        if had:
            artist.draw = previous
        else:
            del artist.draw


def _animated_in_draw_order(figure: Any) -> list[tuple[Any, Any]]:
    """(axes, artist) for each animated artist a saving Axes.draw would draw, in the order it would draw them.

    Only an Axes draws its animated children when saving (Figure.draw never draws its own animated artists), and
    only those it draws at all: no patch, no spines without axis and frame, no axis without axis.
    """
    axes = sorted(_all_axes(figure), key=lambda ax: ax.get_zorder())
    found: list[tuple[Any, Any]] = []
    for ax in axes:
        if not ax.get_visible():
            continue
        skip = {id(ax.patch)}
        if not (ax.axison and ax.get_frame_on()):
            skip.update(id(spine) for spine in ax.spines.values())
        if not ax.axison:
            skip.update(id(axis) for axis in ax._axis_map.values())
        mine = [a for a in ax.get_children() if a.get_animated() and id(a) not in skip]
        found.extend((ax, a) for a in sorted(mine, key=lambda a: a.get_zorder()))
    return found


def _all_axes(figure: Any) -> list[Any]:
    """Every Axes the figure draws: its own (subfigures' included) and, recursively, their child axes."""
    result: list[Any] = []
    stack, seen = list(figure.axes), set()
    while stack:
        ax = stack.pop(0)
        if id(ax) in seen:
            continue
        seen.add(id(ax))
        result.append(ax)
        stack.extend(ax.child_axes)
    return result


class FrameCapture:
    """Hands out a figure's frames as RGBA bytes, drawing each once; `draws`, `fallbacks` and `backgrounds` count."""

    def __init__(self, figure: Any, dpi: float, *, blit: bool = False) -> None:
        self.figure = figure
        self.dpi = dpi
        self.blit = blit
        self.draws = 0  # frames drawn on the canvas directly (blit frames included)
        self.fallbacks = 0  # frames taken through savefig
        self.backgrounds = 0  # blit backgrounds drawn
        self.last_fallback: str | None = None
        self._background: Any = None
        self._background_key: Any = None

    @contextlib.contextmanager
    def holding(self) -> Iterator[FrameCapture]:
        """Make the canvas's draw_idle a no-op for the duration: Animation.save's per-frame draw is left to grab()."""
        canvas = self.figure.canvas
        own = vars(canvas)
        had, previous = "draw_idle" in own, own.get("draw_idle")
        canvas.draw_idle = _no_draw
        try:
            yield self
        finally:
            if had:
                canvas.draw_idle = previous
            else:
                with contextlib.suppress(AttributeError):
                    del canvas.draw_idle
            self._background = None

    def grab(self, savefig_kwargs: Mapping[str, Any] | None = None) -> memoryview:
        """The current frame's RGBA bytes (valid until the next grab), as savefig(format='rgba', ...) would write."""
        kwargs = dict(savefig_kwargs or {})
        reason = fallback_reason(self.figure, self.dpi, kwargs)
        if reason is not None:
            self.last_fallback = reason
            self.fallbacks += 1
            self._background = None
            buffer = BytesIO()
            self.figure.savefig(buffer, **{**kwargs, "format": "rgba", "dpi": self.dpi})
            return buffer.getbuffer()
        canvas = self.figure.canvas
        saving = canvas._is_saving
        canvas._is_saving = True  # as savefig does: Axes.draw draws animated artists only while saving
        try:
            if self.blit:
                self._composite(canvas)
            else:
                FigureCanvasAgg.draw(canvas)
        finally:
            canvas._is_saving = saving
        self.draws += 1
        return canvas.buffer_rgba()

    def _composite(self, canvas: FigureCanvasAgg) -> None:
        """Restore the cached background (redrawn when the figure went stale) and draw the animated artists on it."""
        figure = self.figure
        animated = _animated_in_draw_order(figure)
        key = (canvas.get_width_height(physical=True), figure.dpi, [id(a) for _, a in animated])
        if self._background is None or figure.stale or key != self._background_key:
            with contextlib.ExitStack() as stack:
                for _, artist in animated:  # still visible and laid out as savefig would, just not drawn
                    stack.enter_context(_not_drawn(artist))
                FigureCanvasAgg.draw(canvas)
            self._background = canvas.copy_from_bbox(figure.bbox)
            self._background_key = key
            self.backgrounds += 1
        else:
            canvas.restore_region(self._background)
        for ax, artist in animated:
            ax.draw_artist(artist)
