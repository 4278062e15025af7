"""FrameCapture against the real matplotlib: each frame drawn once, byte for byte what savefig(format='rgba') gives.

Every comparison is between twin figures built the same way, one captured, one saved with savefig, so both see
the same history of draws (a layout engine's result depends on it). Each fallback has a case whose canvas
differs from savefig's output, so the comparison would fail if `fallback_reason` let the fast path through.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import FigureCanvasPdf
from matplotlib.figure import Figure

from magicktune.capture import FrameCapture, fallback_reason

FRAMES = 4


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def savefig_rgba(fig, dpi=None, **kwargs) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="rgba", dpi=fig.dpi if dpi is None else dpi, **kwargs)
    return buffer.getvalue()


def canvas_rgba(fig) -> bytes:
    """What the fast path would hand out for this figure: the canvas drawn as it is."""
    FigureCanvasAgg.draw(fig.canvas)
    return bytes(fig.canvas.buffer_rgba())


# Each builder makes a figure and an update(i) that changes it; called twice, it makes twins.
def scatter(**figure_kwargs):
    rng = np.random.default_rng(1)
    fig, ax = plt.subplots(figsize=(2.4, 1.8), dpi=50, **figure_kwargs)
    points = rng.normal(size=(300, 2)) * 0.5
    dots = ax.scatter(points[:, 0], points[:, 1], s=6, alpha=0.3, c=np.where(points[:, 0] > 0, "blue", "red"))
    ax.set_xlim(-1.5, 1.5)
    ax.set_ylim(-1.5, 1.5)

    def update(i):
        dots.set_offsets(points * (1 - i / 10))

    return fig, update


def imshow_colorbar():
    fig, ax = plt.subplots(figsize=(3.2, 2.4), dpi=60)
    y, x = np.mgrid[0:1:40j, 0:1:50j]
    image = ax.imshow(np.sin(6 * x) * np.cos(4 * y), cmap="viridis", vmin=-1, vmax=1, interpolation="bilinear")
    fig.colorbar(image, ax=ax)
    title = ax.set_title("frame 0")

    def update(i):
        image.set_data(np.sin(6 * x + i) * np.cos(4 * y - i / 2))
        title.set_text(f"frame {i}")

    return fig, update


def text_and_legend():
    fig, ax = plt.subplots(figsize=(3.0, 2.2), dpi=60)
    x = np.linspace(0, 6, 80)
    lines = [ax.plot(x, np.sin(x + k), label=f"phase {k}")[0] for k in range(3)]
    ax.legend(loc="upper right")
    ax.grid(True)
    note = fig.text(0.02, 0.02, "t = 0", fontsize=8)

    def update(i):
        for k, line in enumerate(lines):
            line.set_ydata(np.sin(x + k - i / 3))
        note.set_text(f"t = {i}")

    return fig, update


def transparent_patch():
    fig, update = scatter(facecolor="none", edgecolor="none")
    fig.axes[0].set_facecolor((0.2, 0.4, 0.8, 0.3))
    return fig, update


def constrained_layout(layout="constrained"):
    fig, axes = plt.subplots(2, 2, figsize=(3.2, 2.6), dpi=60, layout=layout)
    for k, ax in enumerate(axes.flat):
        ax.plot(np.arange(10) ** (k / 2))
    fig.colorbar(axes[0, 0].imshow(np.arange(16).reshape(4, 4)), ax=axes[0, 0])

    def update(i):  # titles and labels of changing length move the layout
        axes[0, 1].set_title("x" * (3 * i))
        axes[1, 0].set_ylabel("y" * (2 * i))

    return fig, update


def tight_layout():
    return constrained_layout("tight")


BUILDERS = {
    f.__name__: f
    for f in (scatter, imshow_colorbar, text_and_legend, transparent_patch, constrained_layout, tight_layout)
}


def captured_and_saved(build, kwargs=None, *, dpi=None, blit=False, prepare=None):
    """Frames of twin figures: one through FrameCapture.grab, one through savefig; plus the capture."""
    fig_a, update_a = build()
    fig_b, update_b = build()
    for fig in (fig_a, fig_b):
        if prepare is not None:
            prepare(fig)
    capture = FrameCapture(fig_a, fig_a.dpi if dpi is None else dpi, blit=blit)
    got, want = [], []
    for i in range(FRAMES):
        update_a(i)
        update_b(i)
        got.append(bytes(capture.grab(kwargs or {})))
        want.append(savefig_rgba(fig_b, dpi, **(kwargs or {})))
    return got, want, capture


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_fast_path_is_savefig_byte_for_byte(name):
    got, want, capture = captured_and_saved(BUILDERS[name])
    assert capture.fallbacks == 0 and capture.draws == FRAMES, capture.last_fallback
    assert got == want


@pytest.mark.parametrize(
    "kwargs",
    [
        {"facecolor": "auto", "edgecolor": "auto"},
        {"facecolor": "white"},  # the figure's own colour: nothing to change
        {"facecolor": (1.0, 1.0, 1.0)},  # what Animation.save passes a writer without transparency
        {"transparent": False},
    ],
)
def test_kwargs_that_change_nothing_keep_the_fast_path(kwargs):
    got, want, capture = captured_and_saved(scatter, kwargs)
    assert capture.fallbacks == 0, capture.last_fallback
    assert got == want


def test_transparent_on_a_figure_already_clear_keeps_the_fast_path():
    def clear(fig):
        fig.patch.set_facecolor("none")
        fig.patch.set_edgecolor("none")
        fig.axes[0].patch.set_facecolor("none")
        fig.axes[0].patch.set_edgecolor("none")

    got, want, capture = captured_and_saved(scatter, {"transparent": True}, prepare=clear)
    assert capture.fallbacks == 0, capture.last_fallback
    assert got == want


FALLBACKS = {
    "facecolor": (scatter, {"facecolor": "red"}, None, None),
    "edgecolor": (lambda: scatter(linewidth=6), {"edgecolor": "blue"}, None, None),
    "transparent": (scatter, {"transparent": True}, None, None),
    "transparent axes only": (transparent_patch, {"transparent": True}, None, None),
    "rc savefig.facecolor": (scatter, None, {"savefig.facecolor": "yellow"}, None),
    "rc savefig.edgecolor": (lambda: scatter(linewidth=6), None, {"savefig.edgecolor": "green"}, None),
    "rc savefig.transparent": (scatter, None, {"savefig.transparent": True}, None),
    "rc savefig.bbox": (text_and_legend, None, {"savefig.bbox": "tight"}, None),
    "dpi": (scatter, None, None, 80),
}


@pytest.mark.parametrize("case", sorted(FALLBACKS))
def test_each_fallback_gives_savefigs_bytes_where_the_canvas_would_not(case):
    build, kwargs, rc, dpi = FALLBACKS[case]
    with matplotlib.rc_context(rc or {}):
        fig, _ = build()
        assert fallback_reason(fig, fig.dpi if dpi is None else dpi, kwargs or {}) is not None
        assert canvas_rgba(fig) != savefig_rgba(fig, dpi, **(kwargs or {})), "the case would not test the fallback"
        got, want, capture = captured_and_saved(build, kwargs, dpi=dpi)
    assert capture.fallbacks == FRAMES and capture.draws == 0
    assert got == want


def test_a_non_agg_canvas_falls_back_to_savefig():
    def pdf_canvas():
        fig, update = scatter()
        FigureCanvasPdf(fig)
        return fig, update

    fig, _ = pdf_canvas()
    with pytest.raises(AttributeError):  # what the fast path would do with it
        FigureCanvasAgg.draw(fig.canvas)
    got, want, capture = captured_and_saved(pdf_canvas)
    assert capture.fallbacks == FRAMES and "FigureCanvasPdf" in capture.last_fallback
    assert got == want


def test_keywords_it_cannot_judge_are_left_to_savefig():
    fig, _ = scatter()
    capture = FrameCapture(fig, fig.dpi)
    with pytest.raises(ValueError, match="metadata"):  # savefig refuses metadata for raw frames; so must we
        capture.grab({"metadata": {"Title": "x"}})
    assert capture.fallbacks == 1


def test_holding_silences_draw_idle_and_restores_it_on_every_exit(monkeypatch):
    fig, _ = scatter()
    draws = count_figure_draws(monkeypatch)
    capture = FrameCapture(fig, fig.dpi)
    with capture.holding():
        fig.canvas.draw_idle()
        assert draws == []
    assert "draw_idle" not in vars(fig.canvas)
    with pytest.raises(RuntimeError), capture.holding():
        raise RuntimeError("update failed")
    assert "draw_idle" not in vars(fig.canvas)
    fig.canvas.draw_idle()
    assert len(draws) == 1


def count_figure_draws(monkeypatch) -> list[Figure]:
    """Record every Figure.draw call (the real one still runs)."""
    calls: list[Figure] = []
    real = Figure.draw

    def draw(self, renderer):
        calls.append(self)
        return real(self, renderer)

    monkeypatch.setattr(Figure, "draw", draw)
    return calls


# -- blit: the background drawn once, the animated artists on it --------------------------------------------


def lines_on_top(raise_animated: bool):
    """Three animated lines under a grid and a legend; with raise_animated, their zorder puts them on top."""

    def build():
        fig, ax = plt.subplots(figsize=(3.2, 2.4), dpi=60)
        x = np.linspace(0, 6, 120)
        lines = [ax.plot(x, np.sin(x + k), label=f"phase {k}", linewidth=3)[0] for k in range(3)]
        ax.grid(True)
        ax.legend(loc="center")
        ax.set_xlim(0, 6)
        ax.set_ylim(-1.5, 1.5)
        title = ax.set_title("t = 0")
        for artist in (*lines, title):
            artist.set_animated(True)
            if raise_animated:
                artist.set_zorder(100 + artist.get_zorder())

        def update(i):
            for k, line in enumerate(lines):
                line.set_ydata(np.sin(x + k - i / 2))
            title.set_text(f"t = {i}")
            if i == 2:
                ax.set_xlim(0, 5)  # a non-animated change: the background must be redrawn

        return fig, update

    return build


def test_blit_is_savefig_with_the_animated_artists_on_top():
    got = captured_and_saved(lines_on_top(False), blit=True)
    want = captured_and_saved(lines_on_top(True))
    assert got[2].backgrounds == 2 and got[2].draws == FRAMES  # first frame, and the frame that moved the limits
    assert got[0] == want[1]
    unblitted = captured_and_saved(lines_on_top(False))
    assert unblitted[0] != got[0]  # the one documented difference is real here: grid and legend were above


def test_blit_background_is_drawn_once_when_only_animated_artists_change(monkeypatch):
    fig, update = scatter()
    twin, twin_update = scatter()
    for figure in (fig, twin):
        figure.axes[0].collections[0].set_zorder(5)  # above spines and ticks, where blitting draws it anyway
    fig.axes[0].collections[0].set_animated(True)
    capture = FrameCapture(fig, fig.dpi, blit=True)
    draws = count_figure_draws(monkeypatch)
    for i in range(6):
        update(i)
        twin_update(i)
        assert bytes(capture.grab({})) == savefig_rgba(twin)  # nothing above the dots: no difference at all
    assert len(draws) - 6 == 1 and capture.backgrounds == 1  # six savefigs of the twin, one background


def test_blit_redraws_whatever_changed_outside_the_animated_artists():
    got, want, capture = captured_and_saved(text_and_legend, blit=True)  # nothing animated, all of it changing
    assert got == want and capture.backgrounds == FRAMES
