"""Through Animation.save: the frames the writers hand on are matplotlib's own, and each is drawn once.

The reference is matplotlib's own save loop (draw_idle after each update, then savefig) with a writer that
records what savefig gives; the writers under test run on a twin animation built the same way. Figure.draw
is counted with the real method still running.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib import animation
from matplotlib.figure import Figure

import magicktune.writers
from magicktune.writers import MagickTuneWriter

FRAMES = 5


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


class SavefigRecorder(animation.AbstractMovieWriter):
    """What matplotlib's savefig-based writers see: savefig(format='rgba') of each frame."""

    def setup(self, fig, outfile, dpi=None):
        super().setup(fig, outfile, dpi=dpi)
        self.frames = []

    def grab_frame(self, **savefig_kwargs):
        buffer = io.BytesIO()
        self.fig.savefig(buffer, **{**savefig_kwargs, "format": "rgba", "dpi": self.dpi})
        self.frames.append(buffer.getvalue())

    def finish(self):
        pass

    def _supports_transparency(self):
        return True


def scatter(blit=False, **figure_kwargs):
    rng = np.random.default_rng(2)
    fig, ax = plt.subplots(figsize=(2.4, 1.8), dpi=50, **figure_kwargs)
    points = rng.normal(size=(300, 2)) * 0.5
    dots = ax.scatter(points[:, 0], points[:, 1], s=6, alpha=0.3, c=np.where(points[:, 0] > 0, "blue", "red"))
    ax.set_xlim(-1.5, 1.5)
    ax.set_ylim(-1.5, 1.5)

    def update(i):
        dots.set_offsets(points * (1 - i / 10))
        return (dots,)

    return animation.FuncAnimation(fig, update, frames=FRAMES, blit=blit)


def imshow_colorbar(blit=False):
    fig, ax = plt.subplots(figsize=(3.2, 2.4), dpi=50)
    y, x = np.mgrid[0:1:30j, 0:1:40j]
    image = ax.imshow(np.sin(6 * x) * np.cos(4 * y), cmap="viridis", vmin=-1, vmax=1)
    fig.colorbar(image, ax=ax)
    title = ax.set_title("frame 0")

    def update(i):
        image.set_data(np.sin(6 * x + i) * np.cos(4 * y - i / 2))
        title.set_text(f"frame {i}")
        return image, title

    return animation.FuncAnimation(fig, update, frames=FRAMES, blit=blit)


def text_and_legend(blit=False):
    fig, ax = plt.subplots(figsize=(3.0, 2.2), dpi=50)
    x = np.linspace(0, 6, 80)
    lines = [ax.plot(x, np.sin(x + k), label=f"phase {k}")[0] for k in range(3)]
    ax.legend(loc="upper right")
    ax.grid(True)
    note = fig.text(0.02, 0.02, "t = 0", fontsize=8)

    def update(i):
        for k, line in enumerate(lines):
            line.set_ydata(np.sin(x + k - i / 3))
        note.set_text(f"t = {i}")
        return (*lines, note)

    return animation.FuncAnimation(fig, update, frames=FRAMES, blit=blit)


def transparent_patch(blit=False):
    anim = scatter(blit, facecolor="none")
    anim._fig.axes[0].set_facecolor((0.2, 0.4, 0.8, 0.3))
    return anim


def artists(blit=False):
    fig, ax = plt.subplots(figsize=(2.4, 1.8), dpi=50)
    x = np.linspace(0, 6, 60)
    frames = [
        [ax.plot(x, np.sin(x - i), color="C0")[0], ax.text(0.1, 0.9, f"{i}", transform=ax.transAxes)]
        for i in range(FRAMES)
    ]
    return animation.ArtistAnimation(fig, frames, blit=blit)


def two_animations(blit=False):
    fig, (left, right) = plt.subplots(1, 2, figsize=(3.2, 1.6), dpi=50)
    x = np.linspace(0, 6, 60)
    a = left.plot(x, np.sin(x))[0]
    b = right.plot(x, np.cos(x))[0]
    first = animation.FuncAnimation(fig, lambda i: (a.set_ydata(np.sin(x - i)), a)[1:], frames=FRAMES, blit=blit)
    second = animation.FuncAnimation(fig, lambda i: (b.set_ydata(np.cos(x + i)), b)[1:], frames=FRAMES, blit=blit)
    return first, second


def save(build, writer, tmp_path, name, blit=False, **save_kwargs):
    made = build(blit)
    anim, extra = (made[0], [made[1]]) if isinstance(made, tuple) else (made, None)
    anim.save(tmp_path / name, writer=writer, extra_anim=extra, **save_kwargs)


@pytest.fixture
def handed_to_encoder(monkeypatch):
    """Every frame MagickTuneWriter hands its encoder, as bytes."""
    frames: list[bytes] = []
    real = magicktune.writers.GifEncoder.add_frame

    def add_frame(self, frame):
        frames.append(bytes(frame))
        return real(self, frame)

    monkeypatch.setattr(magicktune.writers.GifEncoder, "add_frame", add_frame)
    return frames


@pytest.fixture
def figure_draws(monkeypatch):
    calls: list[Figure] = []
    real = Figure.draw

    def draw(self, renderer):
        calls.append(self)
        return real(self, renderer)

    monkeypatch.setattr(Figure, "draw", draw)
    return calls


MATRIX = {
    "scatter": (scatter, {}),
    "imshow, colorbar, title": (imshow_colorbar, {}),
    "text and legend": (text_and_legend, {}),
    "transparent figure patch": (transparent_patch, {}),
    "ArtistAnimation": (artists, {}),
    "two animations (extra_anim)": (two_animations, {}),
    "facecolor (fallback)": (scatter, {"savefig_kwargs": {"facecolor": "orange"}}),
    "edgecolor (fallback)": (lambda blit: scatter(blit, linewidth=5), {"savefig_kwargs": {"edgecolor": "blue"}}),
    "transparent (fallback)": (scatter, {"savefig_kwargs": {"transparent": True}}),
    "dpi other than the figure's (fallback)": (scatter, {"dpi": 80}),
}


@pytest.mark.parametrize("blit", [False, True], ids=["animation blit off", "animation blit on"])
@pytest.mark.parametrize("case", list(MATRIX))
def test_magicktune_gets_matplotlibs_frames_drawn_once_each(case, blit, tmp_path, handed_to_encoder, figure_draws):
    build, save_kwargs = MATRIX[case]
    reference = SavefigRecorder(fps=30)
    save(build, reference, tmp_path, "ref.raw", blit, **save_kwargs)
    del figure_draws[:]
    made = build(blit)  # building a blitting animation draws the figure once: not part of the save
    anim, extra = (made[0], [made[1]]) if isinstance(made, tuple) else (made, None)
    del figure_draws[:]
    anim.save(tmp_path / "out.gif", writer="magicktune", fps=30, extra_anim=extra, **save_kwargs)
    assert handed_to_encoder == reference.frames
    assert len(figure_draws) == FRAMES


def test_matplotlibs_own_save_draws_twice_a_frame(tmp_path, figure_draws):
    """What the single draw saves: the reference loop draws every frame twice."""
    anim = scatter()
    del figure_draws[:]
    anim.save(tmp_path / "ref.raw", writer=SavefigRecorder(fps=30))
    assert len(figure_draws) == 2 * FRAMES


def test_draw_idle_is_restored_after_a_save_and_after_a_failure(tmp_path):
    anim = scatter()
    anim.save(tmp_path / "a.gif", writer="magicktune", fps=30)
    assert "draw_idle" not in vars(anim._fig.canvas)

    def boom(i):
        raise RuntimeError("update failed")

    failing = animation.FuncAnimation(anim._fig, boom, frames=3)
    with pytest.raises(RuntimeError, match="update failed"):
        failing.save(tmp_path / "b.gif", writer="magicktune", fps=30)
    assert "draw_idle" not in vars(anim._fig.canvas) and not (tmp_path / "b.gif").exists()


@pytest.mark.parametrize("how", ["keyword", "extra_args"])
def test_blit_draws_the_background_once(how, tmp_path, handed_to_encoder, figure_draws):
    def on_top(blit):  # dots above spines and ticks: blitting changes nothing
        anim = scatter(blit)
        anim._fig.axes[0].collections[0].set_zorder(5)
        return anim

    reference = SavefigRecorder(fps=30)
    save(on_top, reference, tmp_path, "ref.raw", True)
    anim = on_top(True)
    del figure_draws[:]
    if how == "keyword":
        anim.save(tmp_path / "out.gif", writer=MagickTuneWriter(fps=30, blit=True))
    else:
        anim.save(tmp_path / "out.gif", writer="magicktune", fps=30, extra_args=["blit=yes"])
    assert handed_to_encoder == reference.frames
    assert len(figure_draws) == 1


def test_imagemagick_tuned_pipes_the_same_bytes_as_matplotlibs_writer(tmp_path, figure_draws):
    stock = tmp_path / "stock.gif"
    save(imshow_colorbar, animation.ImageMagickWriter(fps=10), tmp_path, "stock.gif")
    anim = imshow_colorbar()
    del figure_draws[:]
    anim.save(tmp_path / "tuned.gif", writer=magicktune.writers.ImageMagickTunedWriter(fps=10, frames=FRAMES))
    assert len(figure_draws) == FRAMES
    assert (tmp_path / "tuned.gif").read_bytes() == stock.read_bytes()  # convert is deterministic: same input


def test_progress_shows_frames_and_the_finish_phase_only_when_asked(tmp_path, capsys):
    scatter().save(tmp_path / "quiet.gif", writer="magicktune", fps=30)
    assert capsys.readouterr().err == ""
    scatter().save(tmp_path / "loud.gif", writer="magicktune", fps=30, extra_args=["progress=yes"])
    err = capsys.readouterr().err
    assert f"{FRAMES}/{FRAMES}" in err and "frame/s" in err and "encoding the last frames" in err
    tuned = magicktune.writers.ImageMagickTunedWriter(fps=10, progress=True)  # frames found from the animation
    scatter().save(tmp_path / "tuned.gif", writer=tuned)
    err = capsys.readouterr().err
    assert f"{FRAMES}/{FRAMES}" in err and "convert is writing the GIF" in err
