"""The job that started magicktune, at 700 frames of 432x720: it fails under Debian's stock policy and
succeeds under magicktune's limits, in Python, through `eval` in a shell, and through matplotlib's own
writer='imagemagick'. Each successful run costs ImageMagick about 100 s here."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import magicktune
from magicktune import magick

pytestmark = pytest.mark.slow

WIDTH, HEIGHT, FRAMES = 432, 720, 700
SEED_ARGS = ["-size", f"{WIDTH}x{HEIGHT}", "-depth", "8", "-delay", "3.33", "-loop", "0", "rgba:-"]


@pytest.fixture(scope="module")
def im():
    found = magick.find()
    plan = magicktune.plan(magicktune.Job(WIDTH, HEIGHT, FRAMES), found)
    if plan.frames_that_fit_now is None or plan.frames_that_fit_now >= FRAMES:
        pytest.skip(f"this machine's ImageMagick limits already hold {FRAMES} frames: nothing to show")
    return found


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    """700 frames of a red square crossing a white field, as matplotlib would pipe them (RGBA, 8 bits)."""
    path = tmp_path_factory.mktemp("stream") / "frames.rgba"
    with path.open("wb") as out:
        for i in range(FRAMES):
            frame = np.full((HEIGHT, WIDTH, 4), 255, np.uint8)
            top = (i * 3) % (HEIGHT - 40)
            frame[top : top + 40, 100:140, :3] = (200, 30, 30)
            out.write(frame.tobytes())
    return path


def frame_count(path) -> int:
    """Frames in a GIF written without -layers optimisation (the seed command has none)."""
    with Image.open(path) as gif:
        return gif.n_frames


def run_seed_command(im, stream, output, **kwargs):
    with stream.open("rb") as frames:
        return subprocess.run(
            [*im.convert, *SEED_ARGS, str(output)], stdin=frames, capture_output=True, text=True, **kwargs
        )


def test_seed_command_fails_stock_and_succeeds_inside_limits(im, stream, tmp_path):
    output = tmp_path / "out.gif"
    stock = run_seed_command(im, stream, output)
    assert stock.returncode != 0
    assert "no images defined" in stock.stderr or "cache resources exhausted" in stock.stderr
    assert not output.exists()

    plan = magicktune.plan(magicktune.Job(WIDTH, HEIGHT, FRAMES), im)
    with magicktune.limits(**plan.limit_arguments()):
        tuned = run_seed_command(im, stream, output)
    assert tuned.returncode == 0, tuned.stderr
    assert frame_count(output) == FRAMES


def test_seed_command_succeeds_after_eval_of_apply_shell(im, stream, tmp_path):
    output = tmp_path / "out.gif"
    script = (
        f'eval "$({sys.executable} -m magicktune.cli apply --frames {FRAMES} --size {WIDTH}x{HEIGHT} '
        f'--format shell --output {tmp_path / "policy"})" && '
        f"{' '.join(im.convert)} {' '.join(SEED_ARGS)} {output} < {stream}"
    )
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert frame_count(output) == FRAMES


def test_matplotlib_stock_writer_needs_magicktune_limits(im, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    fig, ax = plt.subplots(figsize=(6, 10), dpi=72)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    (dot,) = ax.plot([0.5], [0.5], "o", color="tab:red")

    def animation():
        # A fresh one each time: FuncAnimation replays the frames a failed save had cached.
        return FuncAnimation(fig, lambda i: dot.set_data([i / FRAMES], [0.5]) or (dot,), frames=FRAMES)

    output = tmp_path / "stock.gif"
    with pytest.raises(Exception):  # noqa: B017  (whatever matplotlib makes of convert failing)
        animation().save(output, writer="imagemagick", fps=30)
    assert not output.exists() or output.stat().st_size == 0

    plan = magicktune.plan(magicktune.Job(WIDTH, HEIGHT, FRAMES), im, optimize_layers=True)
    with magicktune.limits(**plan.limit_arguments()):
        animation().save(output, writer="imagemagick", fps=30)
    plt.close(fig)
    # matplotlib adds -layers OptimizePlus, which merges unchanged frames and adds up their delays; IM
    # writes each frame's 3.33 cs as 3 cs, so all 700 are there when the play time is 700 x 3 cs.
    with Image.open(output) as gif:
        durations = [gif.seek(i) or gif.info["duration"] for i in range(gif.n_frames)]
    assert sum(durations) == FRAMES * 30
