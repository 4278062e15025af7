"""Pixels the GIF already shows are written as transparency or as their colour, whichever packs better; the
decoded animation is the same either way."""

import numpy as np
import pytest
from helpers import decode

import magicktune.encoder as encoder_module
from magicktune import shown
from magicktune.encoder import EncodeError, GifEncoder
from magicktune.shown import Over, ShownCanvas


def scatter(count, width=160, height=120, dots=60):
    """A white backdrop and dots of many colours drifting over it: the seed scatter in small."""
    rng = np.random.default_rng(7)
    start = rng.uniform((0, 0), (width - 4, height - 4), (dots, 2))
    step = rng.uniform(-1.5, 1.5, (dots, 2))
    colour = rng.integers(0, 256, (dots, 3))
    frames = []
    for k in range(count):
        frame = np.full((height, width, 4), 255, np.uint8)
        for (x, y), rgb in zip((start + k * step) % (width - 4, height - 4), colour, strict=True):
            frame[int(y) : int(y) + 3, int(x) : int(x) + 3, :3] = rgb
        frames.append(frame)
    return frames


def drifting_field(count, width=96, height=64):
    """A smooth field whose phase drifts: more colours than a palette holds, every pixel changing a little."""
    y, x = np.mgrid[0 : 1 : height * 1j, 0 : 1 : width * 1j]
    frames = []
    for k in range(count):
        value = np.sin(2 * np.pi * (1.3 * x + 0.02 * k)) * np.cos(2 * np.pi * (1.1 * y - 0.015 * k))
        level = ((value + 1) * 127.5).astype(np.uint8)
        frames.append(np.dstack([level, 255 - level, (level // 2) + 60, np.full_like(level, 255)]))
    return frames


def encode(path, frames, **options):
    with GifEncoder(path, (frames[0].shape[1], frames[0].shape[0]), 30, **options) as encoder:
        for frame in frames:
            encoder.add_frame(frame)
    return path.stat().st_size


def every_unchanged_pixel_transparent(monkeypatch):
    """The encoder as it was: what the GIF shows is not looked at."""
    monkeypatch.setattr(ShownCanvas, "_write", lambda self, table, indexes, transparent, over: indexes)


@pytest.mark.parametrize(("frames", "at_least"), [(scatter(20), 0.015), (drifting_field(20), 0.005)])
@pytest.mark.parametrize("workers", [1, 2])
def test_a_gif_written_over_what_it_shows_is_smaller_and_decodes_the_same(
    tmp_path, monkeypatch, frames, at_least, workers
):
    size = encode(tmp_path / "over.gif", frames, workers=workers)
    with monkeypatch.context() as patch:
        every_unchanged_pixel_transparent(patch)
        before = encode(tmp_path / "before.gif", frames, workers=workers)
    assert size < (1 - at_least) * before
    got, _, _ = decode(tmp_path / "over.gif")
    expected, _, _ = decode(tmp_path / "before.gif")
    assert len(got) == len(expected) and all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))


def test_child_processes_write_over_what_they_show_as_threads_do(tmp_path):
    frames = scatter(16)
    threads = encode(tmp_path / "threads.gif", frames, workers=2)
    one_child = encode(tmp_path / "one.gif", frames, workers=1, processes=True)
    two_children = encode(tmp_path / "two.gif", frames, workers=2, processes=True)
    assert (tmp_path / "one.gif").read_bytes() == (tmp_path / "threads.gif").read_bytes()
    # Two children each know only the pixels they wrote last: smaller than nothing known, larger than all.
    assert threads < two_children
    expected, _, _ = decode(tmp_path / "threads.gif")
    for name in ("one.gif", "two.gif"):
        got, _, _ = decode(tmp_path / name)
        assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True)), name
    assert one_child == threads


@pytest.mark.parametrize("look_up_all_from", [1, 100])  # the unchanged pixels' colours alone, every one
def test_runs_keep_one_colour_and_turn_transparent_where_they_span_several(monkeypatch, look_up_all_from):
    monkeypatch.setattr(shown, "LOOK_UP_ALL_FROM", look_up_all_from)
    red, green, blue = 0xFF0000FF, 0xFF00FF00, 0xFFFF0000
    table = np.array([0, red, green, blue], "<u4")
    canvas = ShownCanvas()
    canvas.write(table, np.array([[1, 1, 1, 2, 3, 1, 2, 3]], np.uint8), 0, Over((0, 0), whole=True))
    # Written: pixel 2 red over red (stays shown), 3 blue over green, 5 green over red; the rest unchanged.
    chosen = canvas.write(table, np.array([[0, 0, 1, 3, 0, 2, 0, 0]], np.uint8), 0, Over((0, 0)))
    # Runs of pixels whose colour stays: 0-2 all red (kept red), 4 blue (kept), 6-7 green and blue (transparent).
    assert chosen.tolist() == [[1, 1, 1, 3, 3, 2, 0, 0]]
    assert canvas.colours.tolist() == [[red, red, red, blue, blue, green, green, blue]]


@pytest.mark.parametrize("look_up_all_from", [1, 100])  # the unchanged pixels' colours alone, every one
def test_unknown_pixels_and_colours_outside_the_table_stay_transparent(monkeypatch, look_up_all_from):
    monkeypatch.setattr(shown, "LOOK_UP_ALL_FROM", look_up_all_from)
    table = np.array([0, 0xFF0000FF, 0xFF00FF00], "<u4")
    canvas = ShownCanvas()
    canvas.write(
        np.array([0, 0xFF0000FF, 0xFF00FF00, 0xFFFF0000], "<u4"),
        np.array([[1, 3, 1]], np.uint8),
        0,
        Over((0, 0), whole=True),
    )
    known = np.packbits(np.array([True, True, False]))
    chosen = canvas.write(table, np.array([[0, 0, 0]], np.uint8), 0, Over((0, 0), known))
    assert chosen.tolist() == [[0, 0, 0]]  # red known but alone in a run with blue (not in the table), unknown


@pytest.mark.timeout(120)
def test_a_frame_that_fails_does_not_hold_up_the_frames_after_it(tmp_path, monkeypatch):
    real = encoder_module.quantize_frame
    calls = []

    def failing(pixels, *args, **kwargs):
        calls.append(1)
        if len(calls) == 6:
            raise MemoryError("cache resources exhausted")
        return real(pixels, *args, **kwargs)

    monkeypatch.setattr(encoder_module, "quantize_frame", failing)
    with pytest.raises(EncodeError, match="MemoryError: cache resources exhausted"):
        encode(tmp_path / "out.gif", scatter(30), workers=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
