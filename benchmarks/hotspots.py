"""Per-frame hot spots of the encoder, timed on two consecutive `lines` frames: the figures its comments quote.

    python -m benchmarks.hotspots [--workload lines] [--frame 10] [--repeat 20]

Each row times one way of doing a step the encoder does per frame, the way it does it now beside the one it
replaced, so a comment's number can be checked on any machine (as a ratio: the machines here are noisy).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from benchmarks.workloads import WORKLOADS  # noqa: E402
from magicktune.capture import FrameCapture  # noqa: E402
from magicktune.encoder import compress  # noqa: E402
from magicktune.frames import bbox, binarize_alpha  # noqa: E402
from magicktune.palette import OPAQUE, colours, entries_of, map_colours  # noqa: E402
from magicktune.quantizer import _distinct_by_hash, quantize_frame  # noqa: E402
from magicktune.shown import _in_runs  # noqa: E402


def drawn_frames(workload: str, count: int, first: int = 0) -> np.ndarray:
    """Frames `first` to `count - 1` of a workload, drawn as a save draws them: (frames, height, width, 4) uint8."""
    animation = WORKLOADS[workload].build(count)
    figure = animation._fig
    animation._init_draw()
    capture = FrameCapture(figure, figure.dpi)
    drawn = []
    with capture.holding():
        for i in range(count):
            animation._draw_next_frame(i, blit=False)
            if i >= first:
                drawn.append(np.asarray(capture.grab()).copy())
    return np.stack(drawn)


def frames(workload: str, first: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames `first` and `first + 1` of a workload, drawn as a save draws them."""
    before, after = drawn_frames(workload, first + 2, first)
    return before, after


def in_runs_by_cumsum(
    table: np.ndarray,
    indexes: np.ndarray,
    new: np.ndarray,
    written: np.ndarray,
    shown: np.ndarray,
    known: np.ndarray,
    transparent: int,
) -> np.ndarray:
    """shown._in_runs as it was before 2026-12-07: each pixel's run numbered by a cumulative sum, and the unchanged
    pixels looked up by index."""
    value = np.where(written, indexes, np.uint8(transparent)).reshape(-1)
    unchanged = ~written
    ask = np.flatnonzero((unchanged & known).reshape(-1))
    if ask.size:
        entry, held = entries_of(table, shown.reshape(-1)[ask])
        value[ask[held]] = entry[held]
    same = (unchanged | (known & (new == shown))).reshape(-1)
    starts = same.copy()
    starts[1:] &= ~same[:-1]
    run = np.cumsum(starts, dtype=np.int32)
    inner_change = same[1:] & same[:-1] & (value[1:] != value[:-1])
    mixed = np.zeros(int(run[-1]) + 1, bool)
    mixed[run[1:][inner_change]] = True
    value[same & mixed[run]] = transparent
    return value.reshape(indexes.shape)


def timed(repeat: int, step: Callable[[], Any]) -> float:
    """Best of `repeat` runs, in ms: the least the step costs."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="lines", choices=sorted(WORKLOADS))
    parser.add_argument("--frame", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    before, frame = frames(args.workload, args.frame)
    changed = colours(frame) != colours(before)
    x0, y0, x1, y1 = bbox(changed)
    crop, mask = frame[y0:y1, x0:x1], changed[y0:y1, x0:x1]
    cleared = np.empty_like(crop)
    np.multiply(colours(crop), mask, out=colours(cleared), casting="unsafe")
    keys = colours(np.ascontiguousarray(crop)).reshape(-1)
    cleared_keys = colours(cleared).reshape(-1)

    def masked_by_index() -> None:
        pixels = crop.copy()
        pixels[~mask] = 0

    def masked_by_multiply() -> None:
        pixels = np.empty_like(crop)
        np.multiply(colours(crop), mask, out=colours(pixels), casting="unsafe")

    def binarized_by_index() -> None:
        out = frame.copy()
        clear = frame[..., 3] < 128
        out[clear] = 0
        out[~clear, 3] = 255

    table, indexes = quantize_frame(cleared, 256)
    new = table[indexes]
    runs_of = (table, indexes, new, new != 0, colours(before)[y0:y1, x0:x1], np.ones(mask.shape, bool), 0)
    assert np.array_equal(_in_runs(*runs_of), in_runs_by_cumsum(*runs_of))

    opaque_keys = keys | np.uint32(OPAQUE)
    hashed = _distinct_by_hash(opaque_keys) is not None

    print(f"{args.workload} frame {args.frame + 1}: changed crop {x1 - x0}x{y1 - y0}, {len(np.unique(keys))} colours")
    rows = [
        ("unchanged pixels cleared: pixels[~changed] = 0", masked_by_index),
        ("unchanged pixels cleared: uint32 multiply (now)", masked_by_multiply),
        ("alpha binarized: boolean indexing", binarized_by_index),
        ("alpha binarized: uint32 multiply (now)", lambda: binarize_alpha(frame)),
        ("colour sort: argsort quicksort (now, few cleared)", lambda: np.argsort(keys)),
        ("colour sort: argsort stable, radix", lambda: np.argsort(keys, kind="stable")),
        ("colour sort, unchanged cleared: quicksort", lambda: np.argsort(cleared_keys)),
        ("colour sort, unchanged cleared: stable (now, many)", lambda: np.argsort(cleared_keys, kind="stable")),
        ("map_colours, 256 colours, tree depth 5", lambda: map_colours(crop, 256, 5)),
        ("compress (map_colours + LZW)", lambda: compress(crop, 256, "none", None, 5, False)),
        ("distinct colours: argsort (where many)", lambda: np.argsort(opaque_keys)),
        (
            f"distinct colours: sample + hash (where few: {'yes' if hashed else 'no'})",
            lambda: _distinct_by_hash(opaque_keys),
        ),
        ("unchanged pixels in runs: numbered by cumsum", lambda: in_runs_by_cumsum(*runs_of)),
        ("unchanged pixels in runs: bounds, np.repeat (now)", lambda: _in_runs(*runs_of)),
    ]
    for label, step in rows:
        print(f"  {label:52s} {timed(args.repeat, step):8.2f} ms")


if __name__ == "__main__":
    main()
