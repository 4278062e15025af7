"""GIF89a container bytes: split ImageMagick's single-frame blobs and stream them into one animation."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO

from . import options
from .errors import InvalidValue
from .options import MAX_DELAY_CS, MAX_SIDE

MIN_DELAY_CS = 2
DISPOSE_NONE = 1
DISPOSE_BACKGROUND = 2


@dataclass(frozen=True)
class GifFrame:
    """One compressed frame: its colour table, transparency, rectangle and LZW bytes, ready to re-wrap."""

    palette: bytes
    transparency: int | None
    rect: tuple[int, int, int, int]
    lzw_min_code_size: int
    lzw_blocks: bytes
    interlaced: bool = False


def delay_schedule(fps: float) -> Iterator[int]:
    """Each frame's share in cs of the exact running time, truncated (30 fps -> 3, 3, 4, ...).

    Above 50 fps some shares are 0 or 1 cs, less than players show (they play 0-1 cs as 10): the
    encoder drops those frames into the one before, which keeps the play time.
    """
    rate = options.fps(fps)
    return _delays(Fraction(100) / Fraction(rate).limit_denominator(10**6))


def _delays(step: Fraction) -> Iterator[int]:
    exact = Fraction(0)
    emitted = 0
    while True:
        exact += step
        delay = math.floor(exact) - emitted
        emitted += delay
        yield delay


def delays(count: int, fps: float) -> list[int]:
    """The first `count` delays of `delay_schedule(fps)`."""
    schedule = delay_schedule(fps)
    return [next(schedule) for _ in range(count)]


def _table_bits(palette: bytes) -> int:
    entries = len(palette) // 3
    if len(palette) % 3 or not 2 <= entries <= 256 or entries & (entries - 1):
        raise ValueError(f"colour table must hold 2, 4, ... 256 RGB entries, got {len(palette)} bytes")
    return entries.bit_length() - 2


def pad_palette(palette: bytes) -> bytes:
    """Pad an RGB table with black to the next power-of-two size GIF allows (2..256 entries)."""
    entries = max(2, len(palette) // 3)
    if entries > 256:
        raise ValueError(f"a GIF colour table holds at most 256 colours, got {entries}")
    return palette + bytes(3 * (1 << (entries - 1).bit_length()) - len(palette))


def _skip_sub_blocks(blob: bytes, pos: int) -> int:
    while True:
        size = blob[pos]
        pos += 1 + size
        if size == 0:
            return pos


def iter_frames(blob: bytes) -> Iterator[tuple[GifFrame, int, int]]:
    """Each image of a GIF blob as (frame, delay in cs, disposal), without decoding the LZW data."""
    try:
        if blob[:6] not in (b"GIF87a", b"GIF89a"):
            raise ValueError("not a GIF blob")
        flags = blob[10]
        pos = 13
        global_table = b""
        if flags & 0x80:
            global_table = blob[pos : pos + 3 * (2 << (flags & 7))]
            pos += len(global_table)
        transparency, delay, disposal = None, 0, 0
        while blob[pos] != 0x3B:
            introducer = blob[pos]
            if introducer == 0x21:
                if blob[pos + 1] == 0xF9 and blob[pos + 2] == 4:
                    packed, delay = blob[pos + 3], blob[pos + 4] | blob[pos + 5] << 8
                    disposal = packed >> 2 & 7
                    transparency = blob[pos + 6] if packed & 1 else None
                pos = _skip_sub_blocks(blob, pos + 2)
            elif introducer == 0x2C:
                left, top, width, height, iflags = struct.unpack_from("<4HB", blob, pos + 1)
                pos += 10
                palette = global_table
                if iflags & 0x80:
                    palette = blob[pos : pos + 3 * (2 << (iflags & 7))]
                    pos += len(palette)
                if not palette:
                    raise ValueError("GIF image has no colour table")
                min_code_size = blob[pos]
                end = _skip_sub_blocks(blob, pos + 1)
                frame = GifFrame(
                    palette=bytes(palette),
                    transparency=transparency,
                    rect=(left, top, width, height),
                    lzw_min_code_size=min_code_size,
                    lzw_blocks=blob[pos + 1 : end],
                    interlaced=bool(iflags & 0x40),
                )
                yield frame, delay, disposal
                pos = end
                transparency, delay, disposal = None, 0, 0
            else:
                raise ValueError(f"unexpected GIF block 0x{introducer:02x} at byte {pos}")
    except IndexError:
        raise ValueError("truncated GIF blob") from None


def split_gif(blob: bytes) -> GifFrame:
    """Take apart the first image of a GIF blob (as ImageMagick's make_blob('gif') writes it) without decoding."""
    for frame, _, _ in iter_frames(blob):
        return frame
    raise ValueError("GIF blob holds no image")


def _sub_blocks(data: bytes) -> bytes:
    return b"".join(bytes([len(data[i : i + 255])]) + data[i : i + 255] for i in range(0, len(data), 255)) + b"\0"


class GifWriter:
    """Streams a GIF89a: header, loop and comment at once, then one frame per call, trailer on close."""

    def __init__(
        self,
        fp: BinaryIO,
        size: tuple[int, int],
        loop: int | None = 0,
        comment: str | bytes | None = None,
        global_palette: bytes | None = None,
    ) -> None:
        width, height = size
        if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
            raise InvalidValue(f"GIF size must be 1..{MAX_SIDE} on each side, got {width}x{height}")
        self.fp = fp
        self.size = (width, height)
        self.global_palette = pad_palette(global_palette) if global_palette else None
        self.bytes_written = 0
        self.frames_written = 0
        flags = 0x70  # 8 bits of colour resolution
        if self.global_palette:
            flags |= 0x80 | _table_bits(self.global_palette)
        head = [b"GIF89a", struct.pack("<2H3B", width, height, flags, 0, 0)]
        if self.global_palette:
            head.append(self.global_palette)
        if loop is not None:
            head.append(b"\x21\xff\x0bNETSCAPE2.0" + struct.pack("<2BHB", 3, 1, loop, 0))
        if comment:
            text = comment.encode("utf-8") if isinstance(comment, str) else comment
            head.append(b"\x21\xfe" + _sub_blocks(text))
        self._write(b"".join(head))

    def _write(self, data: bytes) -> None:
        self.fp.write(data)
        self.bytes_written += len(data)

    def write_frame(self, frame: GifFrame, delay_cs: int, disposal: int = DISPOSE_NONE) -> None:
        """Append one frame with its graphic control extension; its local table is dropped when it equals the global one."""
        left, top, width, height = frame.rect
        if not 0 <= delay_cs <= MAX_DELAY_CS:
            raise InvalidValue(f"a GIF delay is 0..{MAX_DELAY_CS} cs, got {delay_cs}")
        if left + width > self.size[0] or top + height > self.size[1]:
            raise ValueError(f"frame rect {frame.rect} exceeds the {self.size[0]}x{self.size[1]} screen")
        packed = (disposal & 7) << 2
        if frame.transparency is not None:
            packed |= 1
        gce = struct.pack("<4BHBB", 0x21, 0xF9, 4, packed, delay_cs, frame.transparency or 0, 0)
        palette = pad_palette(frame.palette)
        iflags = 0x40 if frame.interlaced else 0
        local = palette != self.global_palette
        if local:
            iflags |= 0x80 | _table_bits(palette)
        descriptor = struct.pack("<B4HB", 0x2C, left, top, width, height, iflags)
        self._write(
            b"".join((gce, descriptor, palette if local else b"", bytes([frame.lzw_min_code_size]), frame.lzw_blocks))
        )
        self.frames_written += 1

    def close(self) -> None:
        """Write the trailer; the caller owns the file object."""
        self._write(b"\x3b")
