"""Per-frame pixel work before the palette: checking a frame in, binarizing alpha, and finding what changed."""

from __future__ import annotations

import numpy as np

from .errors import InvalidValue
from .palette import OPAQUE, SHOWN_OPAQUE, colours

# Unchanged pixels inside a crop become transparent only when they carry this share of its colour edges:
# measured 0.80-0.98 on line plots (transparency 3-17x smaller), 0.00-0.01 on scatter and imshow (5-15% larger).
STATIC_DETAIL_FOR_TRANSPARENCY = 0.3


def as_rgba(frame: bytes | bytearray | memoryview | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """RGBA bytes or an (h, w, 4) / (h, w, 3) uint8 array of `size` (width, height) as an (h, w, 4) array of our own."""
    width, height = size
    if isinstance(frame, (bytes, bytearray, memoryview)):
        nbytes = memoryview(frame).nbytes
        if nbytes != width * height * 4:
            raise InvalidValue(f"frame has {nbytes} bytes, expected {width * height * 4} for {width}x{height} RGBA")
        src = np.frombuffer(frame, np.uint8).reshape(height, width, 4)
        return src if isinstance(frame, bytes) else src.copy()
    array = np.asarray(frame)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[:2] != (height, width) or array.shape[2] not in (3, 4):
        raise InvalidValue(
            f"frame must be uint8 of shape ({height}, {width}, 4) or ({height}, {width}, 3), "
            f"got {array.dtype} {array.shape}"
        )
    if array.shape[2] == 3:
        rgba = np.empty((height, width, 4), np.uint8)
        rgba[..., :3] = array
        rgba[..., 3] = 255
        return rgba
    return np.array(array, copy=True, order="C")


def binarize_alpha(src: np.ndarray) -> np.ndarray:
    """A copy with alpha below 128 as transparent black and the rest opaque: what a GIF can show."""
    keys = colours(src)
    shown = keys >= SHOWN_OPAQUE
    out = np.empty_like(src)
    np.multiply(keys | OPAQUE, shown, out=colours(out), casting="unsafe")
    return out


def static_detail(crop: np.ndarray, changed: np.ndarray) -> float:
    """Share of the crop's colour edges that lie between unchanged pixels: what diff transparency would save."""
    colour = colours(crop)
    edges = colour[:, 1:] != colour[:, :-1]
    static = edges & ~changed[:, 1:] & ~changed[:, :-1]
    return float(static.sum()) / max(1, int(edges.sum()))


#: Above tolerance 0 a changed pixel rewrites its whole block of BLOCK x BLOCK pixels: whole blocks of
#: transparency and of colour are what LZW packs well (per pixel, the written pixels scattered like noise over a
#: drifting imshow and the file barely shrank: field 100 frames 9.45 MB at tolerance 0, 9.33 MB at 2). Not where
#: blocks would write more pixels than changed (thin lines moving): by blocks, lines 300 frames were 7.97 MB at
#: tolerance 2 against 6.44 MB at 0, and flickered (benchmarks/results/full.json, then mt_encode_q90 and mt_encode).
BLOCK = 8


def changed_pixels(src: np.ndarray, shown: np.ndarray, tolerance: int, moved: np.ndarray) -> np.ndarray:
    """(h, w) mask of the pixels to write: every pixel of each BLOCK x BLOCK block where some pixel of `src` is more
    than `tolerance` levels from `shown` in some channel, unless that is more pixels than the `moved` ones (those
    that changed since the frame before): then those of them that are beyond the tolerance."""
    height, width = src.shape[:2]
    far = np.abs(src.astype(np.int16) - shown.astype(np.int16)).max(axis=2) > tolerance
    rows, cols = -(-height // BLOCK), -(-width // BLOCK)
    padded = np.zeros((rows * BLOCK, cols * BLOCK), bool)
    padded[:height, :width] = far
    blocks = padded.reshape(rows, BLOCK, cols, BLOCK).any(axis=(1, 3))
    if int(blocks.sum()) * BLOCK * BLOCK >= int(np.count_nonzero(moved)):
        return moved & far
    return np.repeat(np.repeat(blocks, BLOCK, axis=0), BLOCK, axis=1)[:height, :width]


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the True pixels of a mask that has some."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1] + 1), int(rows[-1] + 1)
