"""GifEncoder and encode_stream on real ImageMagick, checked by decoding the GIFs with Pillow."""

import io
import os
import subprocess
import sys
import threading
import tracemalloc

import numpy as np
import pytest
from helpers import decode, psnr
from PIL import Image as PILImage
from wand.image import Image

import magicktune.encoder as encoder_module
import magicktune.lzw as lzw_module
import magicktune.palette as palette_module
from magicktune.encoder import EncodeError, GifEncoder, encode_stream
from magicktune.gif import GifWriter, iter_frames

W, H = 64, 48


def scene(count, width=W, height=H):
    """Flat-colour frames: a static textured backdrop and a square moving across it."""
    y, x = np.mgrid[0:height, 0:width]
    backdrop = np.dstack([x * 255 // width, y * 255 // height, ((x // 4 + y // 4) % 2) * 200, np.full_like(x, 255)])
    frames = []
    for k in range(count):
        frame = backdrop.astype(np.uint8)
        left = (3 * k) % (width - 10)
        frame[10:20, left : left + 10, :3] = (255, 40, 40)
        frames.append(frame)
    return frames


def leftovers(directory):
    return sorted(os.listdir(directory))


def encode(path, frames, fps=30, **options):
    with GifEncoder(path, (frames[0].shape[1], frames[0].shape[0]), fps, **options) as encoder:
        for frame in frames:
            encoder.add_frame(frame)
    return encoder.stats


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"optimize": False},
        {"global_palette": True},
        {"dither": "floyd-steinberg"},
        {"dither": "riemersma"},
        {"colors": 16},
        {"workers": 1},
    ],
)
def test_frames_delays_loop_and_psnr(tmp_path, options):
    source = scene(20)
    out = tmp_path / "out.gif"
    stats = encode(out, source, **options)
    frames, durations, info = decode(out)
    loop = info.get("loop")
    assert len(frames) == 20 and stats.frames == 20 and stats.gif_frames == 20
    assert stats.bytes == out.stat().st_size
    assert frames[0].shape == (H, W, 4)
    assert loop == 0
    assert abs(sum(durations) - 20 / 30 * 1000) <= 10
    floor = 20 if options.get("colors") == 16 else 30
    assert min(psnr(got, want) for got, want in zip(frames, source)) > floor
    assert leftovers(tmp_path) == ["out.gif"]


def test_optimize_crops_and_shrinks(tmp_path):
    source = scene(30, 160, 120)
    small = encode(tmp_path / "a.gif", source)
    full = encode(tmp_path / "b.gif", source, optimize=False)
    assert small.bytes < full.bytes / 2
    frames, _, _ = decode(tmp_path / "a.gif")
    assert min(psnr(got, want) for got, want in zip(frames, source)) > 30


def test_identical_frames_merge_keeping_play_time(tmp_path):
    base = scene(3)
    source = [base[0]] * 4 + [base[1]] * 3 + [base[2]]
    stats = encode(tmp_path / "out.gif", source)
    frames, durations, _ = decode(tmp_path / "out.gif")
    assert stats.frames == 8 and stats.gif_frames == len(frames) == 3
    assert abs(sum(durations) - 8 / 30 * 1000) <= 10
    assert durations[0] > durations[2]
    for got, want in zip(frames, base):
        assert psnr(got, want) > 30


def test_merged_delay_splits_before_the_16_bit_limit(tmp_path):
    stats = encode(tmp_path / "out.gif", [scene(1)[0]] * 14, fps=0.02)
    frames, durations, _ = decode(tmp_path / "out.gif")
    assert stats.gif_frames == len(frames) == 2
    assert sum(durations) == 14 * 50 * 1000


def test_rgb_arrays_and_rgba_bytes_are_accepted(tmp_path):
    source = scene(4)
    with GifEncoder(tmp_path / "out.gif", (W, H), 10) as encoder:
        encoder.add_frame(source[0][..., :3])
        encoder.add_frame(source[1].tobytes())
        encoder.add_frame(bytearray(source[2].tobytes()))
        encoder.add_frame(source[3])
    frames, _, _ = decode(tmp_path / "out.gif")
    assert len(frames) == 4


def test_transparent_frames_decode_transparent(tmp_path):
    source = scene(12)
    for k in range(4, 8):
        source[k] = source[k].copy()
        source[k][:, 50:] = 0
        source[k][30:, :, 3] = 0
    encode(tmp_path / "out.gif", source)
    frames, _, _ = decode(tmp_path / "out.gif")
    for got, want in zip(frames, source):
        assert np.array_equal(got[..., 3] == 0, want[..., 3] == 0)
        opaque = want[..., 3] == 255
        assert psnr(got[opaque][:, :3], want[opaque][:, :3]) > 30


def test_static_detail_gets_diff_transparency(tmp_path):
    rng = np.random.default_rng(1)
    backdrop = rng.integers(0, 4, (H, W, 1), dtype=np.uint8) * np.array([60, 40, 20, 0], np.uint8)
    backdrop[..., 3] = 255
    source = []
    for k in range(10):
        frame = backdrop.copy()
        frame[2:6, 2 + k : 6 + k, :3] = 255
        frame[40:44, 50 - k : 54 - k, :3] = 255
        source.append(frame)
    encode(tmp_path / "out.gif", source)
    frames = [frame for frame, _, _ in iter_frames((tmp_path / "out.gif").read_bytes())]
    assert all(frame.transparency is not None for frame in frames[1:])
    assert all(frame.rect[2] < W for frame in frames[1:])
    frames, _, _ = decode(tmp_path / "out.gif")
    assert all(np.array_equal(got, want) for got, want in zip(frames, source))


def test_wrong_frame_size_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        with GifEncoder(tmp_path / "out.gif", (W, H), 30) as encoder:
            encoder.add_frame(scene(1)[0])
            encoder.add_frame(np.zeros((H, W + 1, 4), np.uint8))
    with pytest.raises(ValueError, match="bytes"):
        with GifEncoder(tmp_path / "out.gif", (W, H), 30) as encoder:
            encoder.add_frame(b"\0" * 100)
    with pytest.raises(ValueError, match="uint8"):
        with GifEncoder(tmp_path / "out.gif", (W, H), 30) as encoder:
            encoder.add_frame(np.zeros((H, W, 4), np.float32))
    assert leftovers(tmp_path) == []


def test_worker_failure_names_the_frame_and_leaves_nothing(tmp_path, monkeypatch):
    real = encoder_module.compress
    calls = []

    def failing(pixels, *args):
        calls.append(1)
        if len(calls) == 6:
            raise MemoryError("cache resources exhausted")
        return real(pixels, *args)

    monkeypatch.setattr(encoder_module, "compress", failing)
    with pytest.raises(EncodeError, match=r"frame 5 failed: MemoryError: cache resources exhausted"):
        encode(tmp_path / "out.gif", scene(30), workers=1)
    assert leftovers(tmp_path) == []


def _hold_the_first_frame(monkeypatch):
    """Make the worker's first frame wait until the returned event is set, as a starting child process does."""
    real = encoder_module.compress
    first_may_finish = threading.Event()

    def slow_first(pixels, *args):
        if not first_may_finish.is_set():
            first_may_finish.wait(30)
        return real(pixels, *args)

    monkeypatch.setattr(encoder_module, "compress", slow_first)
    return first_may_finish


def test_frames_queue_while_the_first_is_slow_then_two_a_worker(tmp_path, monkeypatch):
    """A worker slow to return its first frame (a child process starting) does not stall the frames drawn meanwhile;
    once one has come back, at most IN_FLIGHT_PER_WORKER a worker are in flight."""
    first_may_finish = _hold_the_first_frame(monkeypatch)
    frames = scene(40)
    encoder = GifEncoder(tmp_path / "out.gif", (W, H), 30, workers=1)
    adder = threading.Thread(target=lambda: [encoder.add_frame(frame) for frame in frames[:8]])
    adder.start()
    adder.join(10)
    stalled = adder.is_alive()
    first_may_finish.set()
    adder.join()
    assert not stalled, "add_frame waited for the first frame's worker"
    encoder._inflight[0].future.result(30)
    in_flight = []
    for frame in frames[8:]:
        encoder.add_frame(frame)
        in_flight.append(len(encoder._inflight))
    encoder.close()
    assert max(in_flight[1:]) <= encoder_module.IN_FLIGHT_PER_WORKER  # the first add_frame writes what came back
    assert len(decode(tmp_path / "out.gif")[0]) == 40


def test_frames_at_the_start_stay_within_starting_bytes(tmp_path, monkeypatch):
    """Large frames get no more in flight at the start than STARTING_BYTES of them hold (never under the steady
    limit): with the first held, adding one more frame than that waits."""
    monkeypatch.setattr(encoder_module, "STARTING_BYTES", 4 * (W * H * 4))
    first_may_finish = _hold_the_first_frame(monkeypatch)
    frames = scene(12)
    encoder = GifEncoder(tmp_path / "out.gif", (W, H), 30, workers=1)
    five = threading.Thread(target=lambda: [encoder.add_frame(frame) for frame in frames[:5]])  # 4 in flight
    five.start()
    five.join(10)
    stalled_at_four = five.is_alive()
    sixth = threading.Thread(target=encoder.add_frame, args=(frames[5],))  # a 5th in flight: one too many
    if not stalled_at_four:
        sixth.start()
        sixth.join(1)
    waited_at_five = sixth.is_alive()
    first_may_finish.set()
    five.join()
    if sixth.ident is not None:
        sixth.join()
    assert not stalled_at_four
    assert waited_at_five
    for frame in frames[6:]:
        encoder.add_frame(frame)
    encoder.close()
    assert len(decode(tmp_path / "out.gif")[0]) == 12


def test_keyboard_interrupt_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with GifEncoder(tmp_path / "out.gif", (W, H), 30) as encoder:
            for k, frame in enumerate(scene(20)):
                if k == 12:
                    raise KeyboardInterrupt
                encoder.add_frame(frame)
    assert leftovers(tmp_path) == []


def test_interrupt_in_progress_callback_leaves_nothing(tmp_path):
    def progress(done, total):
        if done >= 5:
            raise KeyboardInterrupt

    encoder = GifEncoder(tmp_path / "out.gif", (W, H), 30, progress=progress, workers=1)
    with pytest.raises(KeyboardInterrupt):
        for frame in scene(40):
            encoder.add_frame(frame)
        encoder.close()
    assert leftovers(tmp_path) == []


def test_existing_output_survives_a_failed_encode(tmp_path):
    out = tmp_path / "out.gif"
    out.write_bytes(b"old")
    with pytest.raises(ValueError):
        with GifEncoder(out, (W, H), 30) as encoder:
            encoder.add_frame(b"short")
    assert out.read_bytes() == b"old"
    assert leftovers(tmp_path) == ["out.gif"]


def test_close_without_frames_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        GifEncoder(tmp_path / "out.gif", (W, H), 30).close()
    assert leftovers(tmp_path) == []


def test_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match="dither"):
        GifEncoder(tmp_path / "out.gif", (W, H), 30, dither="ordered")
    with pytest.raises(ValueError, match="colors"):
        GifEncoder(tmp_path / "out.gif", (W, H), 30, colors=300)
    with pytest.raises(ValueError, match="fps"):
        GifEncoder(tmp_path / "out.gif", (W, H), 0)
    assert leftovers(tmp_path) == []


def test_encode_stream_from_path_with_progress(tmp_path):
    source = scene(15)
    raw = tmp_path / "frames.rgba"
    raw.write_bytes(b"".join(frame.tobytes() for frame in source))
    seen = []
    stats = encode_stream(
        raw, tmp_path / "out.gif", (W, H), 30, progress=lambda done, total: seen.append((done, total))
    )
    assert stats.frames == 15
    assert seen[-1] == (15, 15)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    frames, durations, _ = decode(tmp_path / "out.gif")
    assert len(frames) == 15 and abs(sum(durations) - 500) <= 10


def test_encode_stream_from_pipe_and_stdin(tmp_path, monkeypatch):
    data = b"".join(frame.tobytes() for frame in scene(6))
    with subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE) as proc:
        proc.stdin.write(data)
        proc.stdin.close()
        stats = encode_stream(proc.stdout, tmp_path / "pipe.gif", (W, H), 30)
    assert stats.frames == 6

    class Stdin:
        buffer = io.BytesIO(data)

    monkeypatch.setattr("sys.stdin", Stdin)
    assert encode_stream("-", tmp_path / "stdin.gif", (W, H), 30).frames == 6


def test_truncated_stream_is_a_clear_error(tmp_path):
    raw = tmp_path / "frames.rgba"
    raw.write_bytes(b"".join(frame.tobytes() for frame in scene(5))[:-7])
    with pytest.raises(EncodeError, match=r"truncated input: frame 4 has \d+ of 12288 bytes"):
        encode_stream(raw, tmp_path / "out.gif", (W, H), 30)
    assert leftovers(tmp_path) == ["frames.rgba"]


def _peak_traced(count):
    source = scene(64, 32, 32)
    tracemalloc.start()
    try:
        with open(os.devnull, "wb") as sink, GifEncoder(sink, (32, 32), 30) as encoder:
            for k in range(count):
                encoder.add_frame(source[k % 64])
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_frame_count():
    assert _peak_traced(3000) - _peak_traced(300) < 256 * 1024


def test_closer_than_convert_optimizeplus_and_its_octree_no_larger(tmp_path):
    """Issue 10's bar with convert as the anchor: the default is closer to the source than convert's GIF, and the
    size-first setting (ImageMagick's octree) is no larger at no lower PSNR. The default is not held to convert's
    bytes: on this scene IM7's convert writes 9,443 bytes at 33.0 dB, the default 9,582 at 34.9 (IM6's convert:
    11,935 at 31.0), as on the full run's field and seed workloads, where it spends bytes on fidelity."""
    source = scene(20, 120, 90)
    raw = b"".join(frame.tobytes() for frame in source)
    subprocess.run(
        [
            "convert",
            "-size",
            "120x90",
            "-depth",
            "8",
            "-delay",
            "3.33",
            "-loop",
            "0",
            "rgba:-",
            "-layers",
            "OptimizePlus",
            str(tmp_path / "im.gif"),
        ],
        input=raw,
        check=True,
        timeout=60,
    )

    def mean_psnr(path):
        frames, _, _ = decode(path)
        return np.mean([psnr(a, b) for a, b in zip(frames, source)])

    theirs = mean_psnr(tmp_path / "im.gif")
    encode(tmp_path / "ours.gif", source)
    assert mean_psnr(tmp_path / "ours.gif") >= theirs + 1
    octree = encode(tmp_path / "octree.gif", source, quantizer="imagemagick")
    assert octree.bytes <= (tmp_path / "im.gif").stat().st_size
    assert mean_psnr(tmp_path / "octree.gif") >= theirs


@pytest.mark.parametrize("dither", ["riemersma", "floyd-steinberg"])
def test_dithered_first_frame_keeps_every_colour(tmp_path, dither):
    source = scene(3, 160, 120)
    encode(tmp_path / "out.gif", source, dither=dither)
    frames, _, _ = decode(tmp_path / "out.gif")
    assert (frames[0][..., 3] == 255).all()
    assert min(psnr(got, want) for got, want in zip(frames, source)) > 28


def test_first_frame_with_few_colours_stays_opaque(tmp_path):
    source = [np.zeros((H, W, 4), np.uint8) + np.array([10 * k, 200, 30, 255], np.uint8) for k in range(3)]
    for frame in source:
        frame[5:9, 5:40, :3] = (250, 250, 250)
    encode(tmp_path / "out.gif", source, treedepth=6)
    frames, _, _ = decode(tmp_path / "out.gif")
    assert all((frame[..., 3] == 255).all() for frame in frames)
    assert min(psnr(got, want) for got, want in zip(frames, source)) > 40


def test_global_palette_is_one_table_from_the_first_frame(tmp_path):
    source = scene(8, 96, 64)
    encode(tmp_path / "out.gif", source, global_palette=True)
    blob = (tmp_path / "out.gif").read_bytes()
    assert blob[10] & 0x80
    assert all(blob_frame.palette == iter_frames(blob).__next__()[0].palette for blob_frame, _, _ in iter_frames(blob))
    frames, _, _ = decode(tmp_path / "out.gif")
    assert min(psnr(got, want) for got, want in zip(frames, source)) > 30


@pytest.mark.parametrize("fps", [60, 100, 120])
def test_above_50_fps_frames_are_dropped_and_play_time_kept(tmp_path, fps):
    """A GIF cannot show a frame for under 2 cs; such frames are dropped rather than played slow."""
    source = scene(60)
    stats = encode(tmp_path / "out.gif", source, fps=fps)
    frames, durations, _ = decode(tmp_path / "out.gif")
    assert min(durations) >= 20
    assert abs(sum(durations) - 60 / fps * 1000) <= 20
    assert stats.frames == 60 and stats.gif_frames == len(frames) < 60
    assert psnr(frames[0], source[0]) > 30


def test_two_encoders_closed_in_either_order_restore_the_process_settings(tmp_path):
    import wand.resource

    before = wand.resource.limits["thread"], sys.getswitchinterval()
    first = GifEncoder(io.BytesIO(), (W, H), 10, magick_threads=1)
    second = GifEncoder(io.BytesIO(), (W, H), 10, magick_threads=1)
    assert sys.getswitchinterval() == encoder_module.SWITCH_INTERVAL
    for encoder in (first, second):
        encoder.add_frame(scene(1)[0])
    first.close()
    assert sys.getswitchinterval() == encoder_module.SWITCH_INTERVAL
    second.close()
    assert (wand.resource.limits["thread"], sys.getswitchinterval()) == before
    with pytest.raises(ValueError, match="workers must be at least 1"):
        GifEncoder(io.BytesIO(), (W, H), 10, workers=-1)
    assert (wand.resource.limits["thread"], sys.getswitchinterval()) == before


@pytest.mark.parametrize("loop", [-1, 65536, 2.5])
def test_bad_loop_is_refused_before_any_work(tmp_path, loop):
    with pytest.raises(ValueError, match="loop must be"):
        GifEncoder(tmp_path / "out.gif", (W, H), 10, loop=loop)
    assert leftovers(tmp_path) == []


def test_bad_targets_fail_at_once_naming_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"directory {tmp_path / 'missing'} does not exist"):
        GifEncoder(tmp_path / "missing" / "out.gif", (W, H), 10)
    with pytest.raises(IsADirectoryError, match="is a directory"):
        GifEncoder(tmp_path, (W, H), 10)
    with pytest.raises(ValueError, match="1 to 65535 pixels"):
        GifEncoder(tmp_path / "out.gif", (70000, H), 10)
    assert leftovers(tmp_path) == []


def test_writes_through_a_symlink_and_keeps_the_file_mode(tmp_path):
    real = tmp_path / "real.gif"
    real.write_bytes(b"old")
    real.chmod(0o600)
    (tmp_path / "link.gif").symlink_to(real)
    encode(tmp_path / "link.gif", scene(3))
    assert (tmp_path / "link.gif").is_symlink()
    assert real.read_bytes()[:6] == b"GIF89a"
    assert real.stat().st_mode & 0o777 == 0o600
    assert leftovers(tmp_path) == ["link.gif", "real.gif"]


def solid(colour, width=W, height=H):
    frame = np.empty((height, width, 4), np.uint8)
    frame[...] = (*colour, 255)
    return frame


def test_global_palette_keeps_as_many_colours_as_asked(tmp_path):
    two = solid((255, 0, 0))
    two[10:20, 10:20, :3] = (0, 0, 255)
    encode(tmp_path / "out.gif", [two], colors=2, global_palette=True)
    frames, _, _ = decode(tmp_path / "out.gif")
    assert psnr(frames[0], two) == 99.0


def test_global_palette_after_a_wholly_transparent_first_frame(tmp_path):
    source = [np.zeros((H, W, 4), np.uint8), solid((200, 100, 50)), solid((20, 180, 90))]
    encode(tmp_path / "out.gif", source, global_palette=True)
    frames, _, _ = decode(tmp_path / "out.gif")
    assert (frames[0][..., 3] == 0).all()
    assert min(psnr(got, want) for got, want in zip(frames[1:], source[1:])) > 40


def test_global_palette_then_a_transparent_frame_decodes_transparent(tmp_path):
    source = [solid((30, 60, 90)) for _ in range(3)]
    source[1][5:10, 5:10, :3] = (250, 0, 0)
    source[2][0:15] = 0
    encode(tmp_path / "out.gif", source, global_palette=True)
    frames, _, _ = decode(tmp_path / "out.gif")
    for got, want in zip(frames, source):
        assert np.array_equal(got[..., 3] == 0, want[..., 3] == 0)
    assert (tmp_path / "out.gif").read_bytes()[10] & 0x80, "still one global table"


PEAK_RSS_OF_ENCODE = """
import resource, sys
import numpy as np
from magicktune.encoder import GifEncoder
count = int(sys.argv[1])
rng = np.random.default_rng(0)
frames = [rng.integers(0, 256, (48, 64, 4), dtype=np.uint8) for _ in range(16)]
for frame in frames:
    frame[..., 3] = 255
with GifEncoder(sys.argv[2], (64, 48), 30) as encoder:
    for k in range(count):
        encoder.add_frame(frames[k % 16])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_peak_rss_including_imagemagick_does_not_grow_with_frame_count(tmp_path):
    """tracemalloc sees Python's allocations only; the process's peak RSS also counts libMagickWand's."""

    def peak_kb(count):
        out = subprocess.run(
            [sys.executable, "-c", PEAK_RSS_OF_ENCODE, str(count), str(tmp_path / f"{count}.gif")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return int(out)

    assert peak_kb(3000) - peak_kb(300) < 8 * 1024


def soft_dots(width=160, height=120, count=1500, seed=0):
    """A scatter-like frame: translucent red and blue dots, antialiased, on white (thousands of colours, short runs)."""
    rng = np.random.default_rng(seed)
    frame = np.full((height, width, 3), 255.0)
    y, x = np.mgrid[-3:4, -3:4]
    for cx, cy, colour in zip(
        rng.uniform(3, width - 4, count),
        rng.uniform(3, height - 4, count),
        rng.choice([(0, 0, 255), (255, 0, 0)], count),
    ):
        left, top = int(cx) - 3, int(cy) - 3
        cover = 0.25 * np.exp(-((x + left - cx) ** 2 + (y + top - cy) ** 2) / 2)[..., None]
        window = frame[top : top + 7, left : left + 7]
        window[...] = window * (1 - cover) + np.array(colour) * cover
    rgba = np.empty((height, width, 4), np.uint8)
    rgba[..., :3] = np.round(frame)
    rgba[..., 3] = 255
    return rgba


def laid_out(pixels, operation):
    """What ImageMagick makes of the frame as laid out (the way the encoder's colours are checked against)."""
    with Image.from_array(np.ascontiguousarray(pixels[..., :3])) as image:
        operation(image)
        return np.array(image.export_pixels(channel_map="RGBA"), np.uint8).reshape(image.height, image.width, 4)


def test_colours_mapped_in_sorted_runs_are_imagemagicks_own():
    frame = soft_dots()
    assert len(np.unique(frame.reshape(-1, 4), axis=0)) > 500
    table, indexes = palette_module.map_colours(frame, 256, 5)
    ours = table.view(np.uint8).reshape(-1, 4)[indexes]
    theirs = laid_out(frame, lambda image: palette_module.quantize(image, 256, "none", 5))
    # The same colour tree; only rounding in ImageMagick's colour sums, which it adds up in another order, may
    # move a shade by a level or two.
    assert (ours != theirs).any(axis=2).mean() < 0.002
    assert abs(psnr(ours, frame) - psnr(theirs, frame)) < 0.01
    assert len(table) <= 256 and (ours[..., 3] == 255).all()


def test_remap_in_sorted_runs_is_imagemagicks_remap_exactly():
    frame, later = soft_dots(seed=1), soft_dots(seed=2)
    table, _ = palette_module.map_colours(frame, 64, 5)
    palette = np.zeros((1, len(table) + 1, 4), np.uint8)
    palette[0, :-1] = table.view(np.uint8).reshape(-1, 4)
    remapped, indexes = palette_module.map_colours(later, 64, 5, palette)

    def remap(image):
        with Image.from_array(palette) as affinity:
            image.remap(affinity, "no")

    assert np.array_equal(remapped.view(np.uint8).reshape(-1, 4)[indexes], laid_out(later, remap))


@pytest.mark.parametrize("entries", [1, 2, 3, 17, 256])
def test_lzw_keeps_indexes_table_order_and_transparency(entries):
    rng = np.random.default_rng(entries)
    table = np.zeros(entries, "<u4")
    table[1:] = rng.integers(0, 1 << 24, entries - 1) | 0xFF000000
    if entries > 2:
        table[2] = 0xFF000000  # opaque black beside the transparent entry 0: same RGB, two entries
    indexes = rng.integers(0, entries, (30, 41)).astype(np.uint8)
    frame = lzw_module.lzw(table, indexes, 0)
    buffer = io.BytesIO()
    writer = GifWriter(buffer, (41, 30))
    writer.write_frame(frame, 3)
    writer.close()
    decoded = PILImage.open(io.BytesIO(buffer.getvalue()))
    assert np.array_equal(np.asarray(decoded), indexes)
    assert decoded.getpalette()[: 3 * entries] == list(table.view(np.uint8).reshape(-1, 4)[:, :3].ravel())
    assert decoded.info["transparency"] == 0
    assert len(frame.palette) == 3 * max(2, 1 << (entries - 1).bit_length())


def test_spare_transparent_entry_does_not_pad_a_small_table_to_256(tmp_path):
    encode(tmp_path / "out.gif", scene(2), colors=16)
    first, _, _ = next(iter_frames((tmp_path / "out.gif").read_bytes()))
    assert first.transparency is not None
    assert len(first.palette) <= 3 * 32


def test_imagemagick_errors_name_the_step_and_imagemagicks_reason():
    with pytest.raises(EncodeError, match=r"ImageMagick failed to read MIFF: .+"):
        lzw_module.lzw(np.array([0xFF000000, 0xFFFFFFFF], "<u4"), np.zeros((0, 5), np.uint8), None)


DENY_MIFF_ENCODE = """
import sys
import numpy as np
from magicktune.encoder import EncodeError, GifEncoder
frame = np.full((48, 64, 4), 255, np.uint8)
try:
    with GifEncoder(sys.argv[1], (64, 48), 30, processes=sys.argv[2] == "processes") as encoder:
        encoder.add_frame(frame)
except EncodeError as error:
    print(error)
"""


@pytest.mark.parametrize("pool", ["threads", "processes"])
def test_a_policy_that_denies_miff_stops_the_encode_with_imagemagicks_reason(tmp_path, pool):
    """The frames reach ImageMagick's GIF coder as MIFF blobs, so a policy denying that coder must say so, also
    from a worker process (which reads the policy on MAGICK_CONFIGURE_PATH as it starts)."""
    (tmp_path / "policy.xml").write_text(
        '<policymap><policy domain="coder" rights="none" pattern="MIFF"/></policymap>\n'
    )
    result = subprocess.run(
        [sys.executable, "-c", DENY_MIFF_ENCODE, str(tmp_path / "out.gif"), pool],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "MAGICK_CONFIGURE_PATH": str(tmp_path)},
    )
    assert "frame 0 failed" in result.stdout and "security policy `MIFF'" in result.stdout
    assert leftovers(tmp_path) == ["policy.xml"]


#: Lowering a limit by its variable works under any policy (a policy caps what the variable may raise): 16KP is
#: Debian's width and height limit.
NARROW = {"MAGICK_WIDTH_LIMIT": "16KP", "MAGICK_HEIGHT_LIMIT": "16KP"}


def _encode_in_a_subprocess(tmp_path, size, *options, env=None):
    """`magicktune encode` in its own process: a frame ImageMagick cannot hold used to abort the interpreter."""
    width, height = size
    source = tmp_path / "frames.rgba"
    frames = np.zeros((2, height, width, 4), np.uint8)
    frames[..., 3] = 255
    frames[1, :, : width // 2, 0] = 255
    source.write_bytes(frames.tobytes())
    out = tmp_path / "out" / "x.gif"
    out.parent.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "magicktune.cli", "encode", "--size", f"{width}x{height}", "--fps", "10", *options]
        + [str(source), str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, **NARROW, **(env or {})},
        timeout=120,
    )
    return result, out


@pytest.mark.parametrize("options", [(), ("--dither", "riemersma"), ("--global-palette",)], ids=str)
@pytest.mark.parametrize("size", [(20000, 1), (1, 20000)], ids=str)
def test_frames_past_the_width_or_height_limit_are_refused_not_aborted(tmp_path, size, options):
    result, out = _encode_in_a_subprocess(tmp_path, size, *options)
    side = "width" if size[0] > size[1] else "height"
    assert result.returncode == 1, f"rc {result.returncode}: {result.stderr}"
    assert result.stderr.startswith("magicktune: error: a ") and result.stderr.count("\n") == 1, result.stderr
    assert f"past ImageMagick's {side} limit here of 16 KP" in result.stderr
    assert "Assertion" not in result.stderr
    assert leftovers(out.parent) == []


def test_a_frame_whose_cache_fits_neither_memory_nor_disk_is_refused_not_aborted(tmp_path):
    result, out = _encode_in_a_subprocess(
        tmp_path, (100, 100), env={"MAGICK_AREA_LIMIT": "100", "MAGICK_DISK_LIMIT": "1000"}
    )
    assert result.returncode == 1, f"rc {result.returncode}: {result.stderr}"
    assert "of pixel cache, more than ImageMagick's limits here allow" in result.stderr, result.stderr
    assert leftovers(out.parent) == []


def test_frames_at_the_limit_still_encode(tmp_path):
    result, out = _encode_in_a_subprocess(tmp_path, (16000, 1), "--dither", "riemersma")
    assert result.returncode == 0, result.stderr
    frames, _, _ = decode(out)
    assert len(frames) == 2 and frames[0].shape == (1, 16000, 4)


def test_a_65535_pixel_wide_figure_is_refused_by_the_writer_not_aborted(tmp_path):
    script = f"""
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib import animation
import magicktune
fig = plt.figure(figsize=(655.35, 0.01), dpi=100)
ani = animation.FuncAnimation(fig, lambda i: [], frames=2)
try:
    ani.save({str(tmp_path / "x.gif")!r}, writer="magicktune", fps=10)
except magicktune.MagickTuneError as error:
    print("refused:", error)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ, **NARROW}, timeout=120
    )
    assert result.returncode == 0, f"rc {result.returncode}: {result.stderr}"
    assert "refused: a 65535x1 frame is 65535 pixels in width, past ImageMagick's width limit" in result.stdout
    assert leftovers(tmp_path) == []


def test_workers_are_held_to_what_the_limits_hold_at_once(tmp_path):
    """Each frame fits alone, eight at once do not: more workers than that abort the process, so fewer run."""
    script = f"""
import numpy as np
from magicktune.encoder import GifEncoder
rng = np.random.default_rng(0)
with GifEncoder({str(tmp_path / "x.gif")!r}, (100, 100), 10, workers=8, optimize=False) as encoder:
    for _ in range(40):
        encoder.add_frame(rng.integers(0, 256, (100, 100, 4), dtype=np.uint8) | np.uint8(0))
print("workers", encoder.workers, "frames", encoder.stats.gif_frames)
"""
    env = {**os.environ, "MAGICK_AREA_LIMIT": "100", "MAGICK_DISK_LIMIT": "400000"}  # every cache on disk
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, f"rc {result.returncode}: {result.stderr}"
    assert result.stdout.split() == ["workers", "1", "frames", "40"]
