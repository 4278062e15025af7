"""The quantizer: ImageMagick's colour reduction of a frame to a colour table and indexes, and the dithers.

Palette work goes here; it reaches ImageMagick through wandlib (and Wand's Image for the dithered path).
"""

from __future__ import annotations

import numpy as np
from wand.image import DITHER_METHODS, Image
from wand.version import MAGICK_VERSION_NUMBER

from .wandlib import MagickWand, quantize_im6

#: Each of options.DITHERS as Wand names ImageMagick's DitherMethod.
WAND_DITHERS = {"none": "no", "floyd-steinberg": "floyd_steinberg", "riemersma": "riemersma"}
# IM's automatic depth for 256 RGB colours is 6; 5 matched `convert -layers OptimizePlus` in size at higher PSNR.
DEFAULT_TREEDEPTH = 5


def table_size(colors: int, quality: int) -> int:
    """Entries a frame's colour table may use at `quality` (0-100) where ImageMagick builds it (a dither, a global
    palette, quantizer='imagemagick'): that share of `colors`, at least 2. magicktune's own quantizer merges by
    error instead (quantizer.error_at).

    A smaller table moves every workload along its size/fidelity curve and never flickers. At about the same
    bytes, quality by colour tolerance (frames.changed_pixels, now the `tolerance` option) was 2 to 7 dB lower on
    seed, lines and field; only on the photograph was it better. 30 frames of each, from GifEncoder over the
    benchmark's frames (a scratch script).
    """
    return max(2, round(colors * quality / 100))


def quantize(image: Image, colors: int, dither: str, treedepth: int = 0) -> None:
    """Reduce `image` to at most `colors` colours with ImageMagick's quantizer and the named dither."""
    if MAGICK_VERSION_NUMBER >= 0x700:
        image.quantize(colors, treedepth=treedepth, dither=WAND_DITHERS[dither])
    elif dither == "floyd-steinberg":
        quantize_im6(image, colors, DITHER_METHODS.index(WAND_DITHERS[dither]), treedepth)
    else:
        image.quantize(colors, treedepth=treedepth, dither=dither == "riemersma")


def dither_image(image: Image, colors: int, dither: str, palette: np.ndarray | None, treedepth: int) -> None:
    """Quantize `image` to at most `colors` colours, or remap it to `palette` (a 1xN RGBA image), with the named
    dither, in place: dithering spreads each pixel's error to its neighbours, so it works on the frame as laid out."""
    if palette is None:
        quantize(image, colors, dither, treedepth)
    else:
        with Image.from_array(palette) as affinity:
            image.remap(affinity, WAND_DITHERS[dither])


#: An RGBA pixel read as one little-endian 32-bit number is opaque when it is at least this (alpha is the top byte).
OPAQUE = 0xFF000000
#: ... and shown opaque in a GIF when it is at least this (alpha 128 or more).
SHOWN_OPAQUE = 0x80000000


def colours(rgba: np.ndarray) -> np.ndarray:
    """An (h, w, 4) uint8 frame as (h, w) 32-bit RGBA numbers, a view: one comparison a pixel instead of four."""
    return rgba.view("<u4")[..., 0]


#: entries_of hashes a table's colours into 2**HASH_BITS slots: the top bits of colour times an odd multiplier.
#: One multiplier leaves 256 colours without a shared slot about 3 times in 5; HASH_TRIES of them fail together
#: about once in 10^13 tables, and then the binary search does the work. 400,000 colours looked up in a table of
#: 256: 1.4 ms against 22 ms for the binary search alone (best of 20, a scratch timing). Past HASH_UP_TO colours
#: nearly every multiplier fails (1,024: one in 3,000 succeeds), so larger tables go straight to the search.
HASH_BITS = 16
HASH_TRIES = 32
HASH_UP_TO = 512
_HASH_MULTIPLIERS = np.random.default_rng(0).integers(0, 2**31, HASH_TRIES, dtype=np.uint32) * np.uint32(2) + 1


def run_starts(runs: np.ndarray) -> np.ndarray:
    """Where each run of equal values begins in sorted `runs`, which has some: one run per distinct colour."""
    return np.concatenate(([0], np.flatnonzero(runs[1:] != runs[:-1]) + 1))


def entries_of(table: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each colour in `wanted`, an entry of `table` (a 1-D array of colour numbers; where a colour stands twice,
    its first) and whether that entry holds it."""
    wanted = np.asarray(wanted)
    if len(table) <= HASH_UP_TO:
        distinct, first = np.unique(table, return_index=True)
        colours, keys = distinct.astype(np.uint32), wanted.astype(np.uint32, copy=False)
        shift = np.uint32(32 - HASH_BITS)
        for multiplier in _HASH_MULTIPLIERS:
            slots = (colours * multiplier) >> shift
            if np.unique(slots).size == slots.size:  # a perfect hash of the table: one slot, one colour
                lookup = np.zeros(1 << HASH_BITS, np.uint16)  # 128 KB stays in cache; intp's 512 KB was 2x slower
                lookup[slots] = first
                # numpy converts a uint32 index to intp slower than astype does: 1.04 ms against 1.27 for a
                # line-plot crop's 270,000 pixels (timeit, one run)
                entry = lookup[((keys * multiplier) >> shift).astype(np.intp)].astype(np.intp)
                return entry, table[entry] == wanted
    order = np.argsort(table, kind="stable")
    entry = order[np.searchsorted(table, wanted, sorter=order).clip(max=len(table) - 1)]
    return entry, table[entry] == wanted


def map_colours(
    pixels: np.ndarray, colors: int, treedepth: int = 0, palette: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """ImageMagick's undithered quantization (or remap to `palette`) of an (h, w, 4) uint8 frame, as
    (colour table of RGBA numbers, transparent ones as 0 and first; (h, w) uint8 indexes into it).

    ImageMagick classifies and maps a run of equal pixels in one step. Sorted by colour, a frame is one run per
    distinct colour, each as long as its count: the same colour tree and the same nearest colours as for the
    frame itself, at a fraction of the cost, since antialiased edges break a plot's rows into tens of
    thousands of runs. That holds for IM6, whose quantizer ignores pixel order; IM7's does not (on the test frame
    at depth 5: 51.48 dB laid out, 46.64 sorted, 51.49 shuffled; IM6 46.46 for all, by
    `python -m benchmarks.quantize_order`), so under IM7 the frame is quantized as laid out, as IM7's `convert` does.
    """
    if MAGICK_VERSION_NUMBER >= 0x700:
        return _map_as_laid_out(pixels, colors, treedepth, palette)
    height, width = pixels.shape[:2]
    keys = colours(np.ascontiguousarray(pixels)).reshape(-1)
    # numpy's quicksort is slow on many equal keys, such as the cleared (0) pixels of a diff crop; its stable sort
    # (a radix sort for uint32) is not, but is slower on varied ones (`python -m benchmarks.hotspots`: lines crop
    # with unchanged pixels cleared, 17 ms against 3; field frame, 7 against 16). Order within a run is immaterial.
    many_cleared = np.count_nonzero(keys == 0) > keys.size // 4
    order = np.argsort(keys, kind="stable" if many_cleared else None).astype(np.int32)  # int32: half the memory
    runs = keys[order]
    del keys
    starts = run_starts(runs)
    with MagickWand() as image:
        image.constitute(runs.view(np.uint8).reshape(height, width, 4), "RGBP" if runs[0] >= OPAQUE else "RGBA")
        del runs  # ImageMagick holds its own copy
        _reduce(image, colors, treedepth, palette)
        mapped = colours(image.export_rgba(height, width)).reshape(-1)[starts]
    mapped = np.where(mapped >= SHOWN_OPAQUE, mapped | OPAQUE, 0).astype("<u4")
    table, lookup = np.unique(mapped, return_inverse=True)
    indexes = np.empty(order.size, np.uint8)
    indexes[order] = np.repeat(lookup.astype(np.uint8), np.diff(starts, append=order.size))
    return table, indexes.reshape(height, width)


def _reduce(image: MagickWand, colors: int, treedepth: int, palette: np.ndarray | None) -> None:
    """ImageMagick's undithered quantization of `image`, or its remap to `palette` (a 1xN RGBA image)."""
    if palette is None:
        image.quantize(colors, treedepth)
    else:
        with MagickWand() as affinity:
            affinity.constitute(np.ascontiguousarray(palette), "RGBA")
            image.remap(affinity)


def _map_as_laid_out(
    pixels: np.ndarray, colors: int, treedepth: int, palette: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """map_colours for IM7: the frame itself goes to ImageMagick, in its own pixel order."""
    height, width = pixels.shape[:2]
    frame = np.ascontiguousarray(pixels)
    with MagickWand() as image:
        image.constitute(frame, "RGBP" if colours(frame).min() >= OPAQUE else "RGBA")
        _reduce(image, colors, treedepth, palette)
        mapped = colours(image.export_rgba(height, width)).reshape(-1)
    mapped = np.where(mapped >= SHOWN_OPAQUE, mapped | OPAQUE, 0).astype("<u4")
    table, lookup = np.unique(mapped, return_inverse=True)
    return table, lookup.astype(np.uint8).reshape(height, width)
