"""writer='magicktune' through Animation.save, decoded with Pillow and compared with the figure's own frames."""

import io
import os
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from helpers import decode, psnr
from matplotlib import animation

import magicktune.writers
from magicktune.writers import MagickTuneWriter, parse_extra_args

FRAMES = 12


def rendered(fig, **savefig_kwargs):
    buf = io.BytesIO()
    fig.savefig(buf, format="rgba", dpi=fig.dpi, **savefig_kwargs)
    width, height = fig.canvas.get_width_height()
    return np.frombuffer(buf.getvalue(), np.uint8).reshape(height, width, 4)


def scatter_figure():
    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(2.4, 1.8), dpi=50)
    ax.set_xlim(-1.2, 1.2)
    ax.set_ylim(-1.2, 1.2)
    points = rng.normal(size=(200, 2)) * 0.5
    colours = np.where(points[:, 0] > 0, "blue", "red")
    scatter = ax.scatter(points[:, 0], points[:, 1], s=4, alpha=0.25, c=colours)

    def update(i):
        scatter.set_offsets(points * (1 - i / 30))
        return (scatter,)

    return fig, update


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_registered_on_import():
    assert magicktune.writers is not None
    assert animation.writers.is_available("magicktune")
    assert animation.writers["magicktune"] is MagickTuneWriter


@pytest.mark.parametrize("blit", [False, True])
def test_func_animation_matches_rendered_frames(tmp_path, blit):
    fig, update = scatter_figure()
    expected = []
    for i in range(FRAMES):
        update(i)
        expected.append(rendered(fig).copy())
    anim = animation.FuncAnimation(fig, update, frames=FRAMES, blit=blit)
    progress = []
    out = tmp_path / "out.gif"
    anim.save(
        out,
        writer="magicktune",
        fps=30,
        metadata={"title": "ring"},
        progress_callback=lambda i, n: progress.append((i, n)),
    )
    frames, durations, info = decode(out)
    assert len(frames) == FRAMES
    assert frames[0].shape == expected[0].shape
    assert abs(sum(durations) - FRAMES / 30 * 1000) <= 10
    assert info["loop"] == 0 and info["comment"] == b"title: ring"
    assert progress[-1] == (FRAMES - 1, FRAMES)
    assert min(psnr(got[..., :3], want[..., :3]) for got, want in zip(frames, expected)) > 35
    assert os.listdir(tmp_path) == ["out.gif"]


def test_artist_animation(tmp_path):
    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=40)
    x = np.linspace(0, 6, 50)
    artists = [ax.plot(x, np.sin(x + k / 3), color="C0") for k in range(8)]
    anim = animation.ArtistAnimation(fig, artists)
    anim.save(tmp_path / "out.gif", writer=MagickTuneWriter(fps=10, colors=64, dither="floyd-steinberg"))
    frames, durations, _ = decode(tmp_path / "out.gif")
    assert len(frames) == 8 and frames[0].shape == (60, 80, 4)
    assert abs(sum(durations) - 800) <= 10


def test_transparent_savefig_keeps_alpha(tmp_path):
    fig, update = scatter_figure()
    update(3)
    expected_alpha = rendered(fig, transparent=True)[..., 3]
    anim = animation.FuncAnimation(fig, update, frames=range(3, 6))
    anim.save(tmp_path / "out.gif", writer="magicktune", fps=10, savefig_kwargs={"transparent": True})
    frames, _, _ = decode(tmp_path / "out.gif")
    assert np.array_equal(frames[0][..., 3] == 0, expected_alpha < 128)
    assert (frames[0][..., 3] == 0).mean() > 0.3


def test_facecolor_reaches_the_frames(tmp_path):
    fig, update = scatter_figure()
    anim = animation.FuncAnimation(fig, update, frames=3)
    anim.save(tmp_path / "out.gif", writer="magicktune", fps=10, savefig_kwargs={"facecolor": "#00ff00"})
    frames, _, _ = decode(tmp_path / "out.gif")
    corner = frames[1][0, 0]
    assert tuple(corner[:3]) == (0, 255, 0) and corner[3] == 255


def test_extra_args_select_options(tmp_path):
    assert parse_extra_args(["colors=32", "dither=riemersma", "optimize=false", "global-palette=yes"]) == {
        "colors": 32,
        "dither": "riemersma",
        "optimize": False,
        "global_palette": True,
    }
    with pytest.raises(ValueError):
        parse_extra_args(["-layers", "Optimize"])
    fig, update = scatter_figure()
    anim = animation.FuncAnimation(fig, update, frames=4)
    anim.save(tmp_path / "out.gif", writer="magicktune", fps=10, extra_args=["colors=8"])
    frames, _, _ = decode(tmp_path / "out.gif")
    assert len(np.unique(frames[0].reshape(-1, 4), axis=0)) <= 8


def test_failing_animation_leaves_no_file(tmp_path):
    fig, update = scatter_figure()

    def failing(i):
        if i == 5:
            raise RuntimeError("data source went away")
        return update(i)

    anim = animation.FuncAnimation(fig, failing, frames=10)
    with pytest.raises(RuntimeError, match="data source went away"):
        anim.save(tmp_path / "out.gif", writer="magicktune", fps=10)
    assert os.listdir(tmp_path) == []


def test_stats_after_save(tmp_path):
    fig, update = scatter_figure()
    writer = MagickTuneWriter(fps=20)
    animation.FuncAnimation(fig, update, frames=5).save(tmp_path / "out.gif", writer=writer)
    assert writer.stats.frames == 5
    assert writer.stats.bytes == (tmp_path / "out.gif").stat().st_size


def test_imagemagick_tuned_runs_convert_under_planned_limits(tmp_path):
    import os as _os

    fig, update = scatter_figure()
    seen = []

    def watch(i, n):
        seen.append(_os.environ.get("MAGICK_LIST_LENGTH_LIMIT"))

    before = dict(_os.environ)
    writer = animation.writers["imagemagick_tuned"](fps=10, frames=6)
    animation.FuncAnimation(fig, update, frames=6).save(tmp_path / "out.gif", writer=writer, progress_callback=watch)
    frames, durations, _ = decode(tmp_path / "out.gif")
    assert len(frames) == 6
    assert os.listdir(tmp_path) == ["out.gif"]
    assert seen and all(value == "7" for value in seen)
    assert writer.plan.job.frames == 6
    assert dict(_os.environ) == before


def test_imagemagick_tuned_sizes_for_matplotlibs_optimizeplus(tmp_path):
    fig, update = scatter_figure()
    layered = animation.writers["imagemagick_tuned"](fps=10, frames=4)
    animation.FuncAnimation(fig, update, frames=4).save(tmp_path / "a.gif", writer=layered)
    plain = animation.writers["imagemagick_tuned"](fps=10, frames=4, extra_args=[])
    animation.FuncAnimation(fig, update, frames=4).save(tmp_path / "b.gif", writer=plain)
    assert plain.plan.cache.peak_bytes == plain.plan.cache.gif_bytes
    optimizes = "-layers" in matplotlib.rcParams["animation.convert_args"]
    assert layered.plan.cache.optimize_layers is optimizes


def test_imagemagick_tuned_explains_a_security_refusal(tmp_path, monkeypatch):
    """Under a locked-down policy (which denies the pipe '-'), convert fails; the error says why and what to do."""
    from magicktune import policy
    from magicktune.writers import ImageMagickFailed

    locked = tmp_path / "locked"
    policy.write(locked / "policy.xml", policy.generate(policy.load_preset("locked-down")))
    monkeypatch.setenv("MAGICK_CONFIGURE_PATH", str(locked))
    fig, update = scatter_figure()
    writer = animation.writers["imagemagick_tuned"](fps=10, frames=3)
    with pytest.raises(ImageMagickFailed, match="forbids reading frames from a pipe.*writer='magicktune'"):
        animation.FuncAnimation(fig, update, frames=3).save(tmp_path / "out.gif", writer=writer)
    assert os.environ["MAGICK_CONFIGURE_PATH"] == str(locked)
    assert os.listdir(tmp_path) == ["locked"]


def test_imagemagick_tuned_leaves_no_file_when_rendering_fails(tmp_path):
    """matplotlib's own writer lets convert finish a GIF of the frames so far; the tuned one stops convert."""
    fig, update = scatter_figure()
    target = tmp_path / "out.gif"
    target.write_bytes(b"the previous animation")
    before = dict(os.environ)

    def failing(i):
        if i == 5:
            raise RuntimeError("data source went away")
        return update(i)

    writer = animation.writers["imagemagick_tuned"](fps=10, frames=10, temporary_path=str(tmp_path))
    with pytest.raises(RuntimeError, match="data source went away"):
        animation.FuncAnimation(fig, failing, frames=10).save(target, writer=writer)
    assert writer._proc.returncode is not None
    assert os.listdir(tmp_path) == ["out.gif"]
    assert target.read_bytes() == b"the previous animation"
    assert writer.outfile == str(target)
    assert dict(os.environ) == before


def test_explain_failure_names_the_limits_for_a_cache_failure():
    from magicktune import profile
    from magicktune.writers import explain_failure

    plan = profile.plan(profile.Job(432, 720, 3000))
    message = explain_failure("convert: no images defined `x.gif' @ error/convert.c/ConvertImageCommand/3234.\n", plan)
    assert message.startswith("ImageMagick ran out of pixel cache")
    assert "pass frames=N" in message and "writer='magicktune'" in message and "no images defined" in message


@pytest.mark.parametrize(
    ("keywords", "expected"),
    [
        ({}, 1),  # of 2 cores, one draws
        ({"blit": True}, 2),  # blitting draws little: every core encodes
        ({"blit": True, "workers": 1}, 1),
    ],
)
def test_writer_workers_follow_how_much_drawing_is_left(tmp_path, monkeypatch, keywords, expected):
    started = []

    class Recording(magicktune.writers.GifEncoder):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self.workers)

    monkeypatch.setattr(magicktune.writers, "GifEncoder", Recording)
    monkeypatch.setattr(magicktune.writers, "cores", lambda: 2)
    fig, update = scatter_figure()
    animation.FuncAnimation(fig, update, frames=3, blit=keywords.get("blit", False)).save(
        tmp_path / "out.gif", writer=MagickTuneWriter(fps=10, **keywords)
    )
    assert started == [expected]
    assert len(decode(tmp_path / "out.gif")[0]) == 3


def test_importing_magicktune_loads_no_canvas_until_a_save_starts() -> None:
    """The Agg canvas and its fonts (some 7 MB of RSS) load with the first save, not with `import magicktune`, which
    `magicktune encode` and `limits()` users pay too."""
    probe = "import sys, magicktune; print(sorted(m for m in sys.modules if m.endswith(('capture', 'backend_agg'))))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"
