"""GIF89a container: delays, splitting ImageMagick's blobs and re-wrapping them, checked by decoding with Pillow."""

import io

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageSequence
from wand.image import Image

from magicktune.gif import DISPOSE_BACKGROUND, GifWriter, delay_schedule, delays, pad_palette, split_gif


def im_blob(pixels: np.ndarray, colors: int = 16) -> bytes:
    with Image.from_array(pixels) as image:
        image.quantize(colors)
        return image.make_blob("gif")


def gradient(width: int = 40, height: int = 30) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.dstack([x * 6, y * 8, (x + y) * 3]).astype(np.uint8)


def test_delays_keep_exact_time():
    assert delays(6, 30) == [3, 3, 4, 3, 3, 4]
    assert sum(delays(3000, 30)) == 10000
    assert delays(4, 25) == [4, 4, 4, 4]
    assert abs(sum(delays(1000, 29.97)) - 1000 * 100 / 29.97) < 1


def test_delays_above_50_fps_are_time_shares_below_two_cs():
    assert delays(6, 60) == [1, 2, 2, 1, 2, 2]
    assert sum(delays(600, 60)) == 1000
    assert delays(6, 120) == [0, 1, 1, 1, 1, 1]


@pytest.mark.parametrize("fps", [0, -5, 1e-9, float("inf"), float("nan"), "fast"])
def test_delay_schedule_rejects_rates_a_gif_cannot_hold(fps):
    with pytest.raises(ValueError, match="fps must be"):
        next(delay_schedule(fps))


def test_delay_schedule_takes_numpy_rates():
    assert delays(3, np.float32(30)) == [3, 3, 4]


def test_pad_palette_to_power_of_two():
    assert len(pad_palette(bytes(3 * 5))) == 3 * 8
    assert len(pad_palette(b"\1\2\3")) == 6
    with pytest.raises(ValueError):
        pad_palette(bytes(3 * 257))


def test_split_imagemagick_blob():
    frame = split_gif(im_blob(gradient()))
    assert frame.rect == (0, 0, 40, 30)
    assert frame.transparency is None
    assert len(frame.palette) % 3 == 0 and len(frame.palette) <= 768
    assert 2 <= frame.lzw_min_code_size <= 8
    assert frame.lzw_blocks.endswith(b"\0")


def test_split_finds_transparency_index():
    rgba = np.dstack([gradient(), np.full((30, 40), 255, np.uint8)])
    rgba[:10] = 0
    blob = im_blob(rgba)
    frame = split_gif(blob)
    assert frame.transparency == PILImage.open(io.BytesIO(blob)).info["transparency"]


def test_split_rejects_garbage():
    with pytest.raises(ValueError):
        split_gif(b"PNG....")
    with pytest.raises(ValueError):
        split_gif(im_blob(gradient())[:40])


def test_rewrap_decodes_like_imagemagick_blob():
    blobs = [im_blob(np.roll(gradient(), k * 5, axis=1)) for k in range(3)]
    out = io.BytesIO()
    writer = GifWriter(out, (40, 30), loop=0, comment="made by magicktune")
    for blob in blobs:
        writer.write_frame(split_gif(blob), 3)
    writer.close()
    assert writer.bytes_written == len(out.getvalue())
    decoded = PILImage.open(io.BytesIO(out.getvalue()))
    assert decoded.info["loop"] == 0
    assert decoded.info["comment"] == b"made by magicktune"
    frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(decoded)]
    assert len(frames) == 3
    for blob, got in zip(blobs, frames):
        assert np.array_equal(got, np.asarray(PILImage.open(io.BytesIO(blob)).convert("RGB")))


def test_frame_offset_and_disposal_reach_the_decoder():
    background = split_gif(im_blob(np.full((30, 40, 3), 200, np.uint8)))
    patch = split_gif(im_blob(np.zeros((5, 6, 3), np.uint8)))
    out = io.BytesIO()
    writer = GifWriter(out, (40, 30), loop=None)
    writer.write_frame(background, 10)
    writer.write_frame(type(patch)(**{**patch.__dict__, "rect": (7, 9, 6, 5)}), 10, DISPOSE_BACKGROUND)
    writer.close()
    decoded = PILImage.open(io.BytesIO(out.getvalue()))
    assert "loop" not in decoded.info
    decoded.seek(1)
    second = np.asarray(decoded.convert("RGB"))
    assert (second[9:14, 7:13] == 0).all()
    assert (second[:9] == 200).all() and (second[14:] == 200).all()


def test_global_palette_drops_equal_local_tables():
    frame = split_gif(im_blob(gradient()))
    with_local, with_global = io.BytesIO(), io.BytesIO()
    for fp, table in ((with_local, None), (with_global, frame.palette)):
        writer = GifWriter(fp, (40, 30), global_palette=table)
        for _ in range(4):
            writer.write_frame(frame, 5)
        writer.close()
    assert len(with_local.getvalue()) - len(with_global.getvalue()) == 3 * len(pad_palette(frame.palette))
    first = np.asarray(PILImage.open(io.BytesIO(with_local.getvalue())).convert("RGB"))
    assert np.array_equal(first, np.asarray(PILImage.open(io.BytesIO(with_global.getvalue())).convert("RGB")))


def test_frame_outside_screen_is_refused():
    frame = split_gif(im_blob(gradient()))
    writer = GifWriter(io.BytesIO(), (20, 20))
    with pytest.raises(ValueError):
        writer.write_frame(frame, 3)
