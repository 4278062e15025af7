"""magicktune's quantizer: a frame's colours to at most N table entries, exact where the frame allows it.

One sort of the frame's pixels by colour gives its distinct colours and their counts. A frame (or the changed
pixels of one) with no more distinct colours than the table holds keeps every one of them: lossless, no
ImageMagick call. Beyond that ImageMagick's octree, at a depth that fills the table, proposes the entries and
which colours each one stands for; each entry then moves to the weighted mean of its colours (the least-error
colour for that assignment, which the octree's own rounding misses), and `passes` weighted k-means steps over
the distinct colours (not the pixels) refine it further.

Measured on frame 37 (one run on a loaded 2-core machine, by a scratch script over the benchmark's raw streams
that was not kept: re-measure before relying on these): seed 6,034 colours, octree depth 5 49.4 dB, depth 6 51.6 dB with the mean step, 52.2 dB after
one k-means pass.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from .palette import OPAQUE, SHOWN_OPAQUE, colours
from .wandlib import MagickWand

#: Octree depth when the frame has more colours than the table: 6 leaves a 256 table nearly full (5 left
#: 22 of 256 entries empty on seed frame 37 and 178 on field frame 37).
TREEDEPTH = 6
#: Weighted k-means passes after the octree's proposal and the mean step: one pass added 0.3-0.6 dB on seed
#: frames and cost more than the octree (seed 300 frames, CPU 5.5 s without, 7.4 s with; today's 4.5 s).
PASSES = 0
#: Up to this many distinct colours, merging them greedily by Ward's cost beats the octree by far: frame 37 of
#: field (565 colours) 59.4 dB against 52.9 dB, of lines (1,524) 62.5 against 59.0, in 25-40 ms; on seed
#: (6,034) the octree wins, 51.9 dB in 24 ms against 51.9 dB in 320 ms (one loaded run of a scratch script, not kept).
WARD_UP_TO = 2048
#: Neighbours each cluster looks among for its cheapest merge: 4 against 8 lost 0.1 dB on field and lines
#: frame 37 and was up to 2x faster on lines (one loaded run of a scratch script, not kept).
NEIGHBOURS = 4


def quantize_frame(
    pixels: np.ndarray, colors: int, spare_transparent: bool = False, passes: int = PASSES, treedepth: int = TREEDEPTH
) -> tuple[np.ndarray, np.ndarray]:
    """Quantize an (h, w, 4) uint8 frame to (table of RGBA numbers, transparent as 0 and first if any;
    (h, w) uint8 indexes into it).

    Pixels with alpha below 128 become the one transparent entry, every other pixel is opaque. With
    `spare_transparent` one entry stays free for a transparent colour the caller adds.
    """
    height, width = pixels.shape[:2]
    keys = colours(np.ascontiguousarray(pixels)).reshape(-1)
    shown = keys >= SHOWN_OPAQUE
    clear = not bool(shown.all())
    if clear:  # sorting only the shown pixels: a crop's many transparent ones made the sort 5x slower
        where = np.flatnonzero(shown).astype(np.int32)
        if not where.size:
            return np.zeros(1, "<u4"), np.zeros((height, width), np.uint8)
        keys = keys[where]
    order = np.argsort(keys).astype(np.int32)
    runs = keys[order] | np.uint32(OPAQUE)
    del keys
    starts = np.flatnonzero(runs[1:] != runs[:-1]) + 1
    starts = np.concatenate((np.zeros(1, starts.dtype), starts))
    counts = np.diff(starts, append=runs.size)
    distinct = runs[starts]
    slots = colors - 1 if (clear or spare_transparent) else colors
    if len(distinct) <= slots:
        table, entry = distinct, np.arange(len(distinct), dtype=np.uint8)
    else:
        table, entry = _reduce(runs, distinct, counts, slots, passes, treedepth)
    del runs
    sorted_entries = np.repeat(entry, counts)
    indexes = np.zeros(height * width, np.uint8)
    if clear:
        table = np.concatenate((np.zeros(1, "<u4"), table))
        indexes[where[order]] = sorted_entries + np.uint8(1)
    else:
        indexes[order] = sorted_entries
    return table.astype("<u4"), indexes.reshape(height, width)


def _reduce(
    runs: np.ndarray, distinct: np.ndarray, counts: np.ndarray, slots: int, passes: int, treedepth: int
) -> tuple[np.ndarray, np.ndarray]:
    """A table of at most `slots` opaque RGBA numbers for the sorted opaque pixels `runs` (whose distinct colours
    and counts are `distinct`, `counts`), and each distinct colour's entry (uint8)."""
    rgb = distinct.view(np.uint8).reshape(-1, 4)[:, :3].astype(np.float32)
    weights = counts.astype(np.float64)
    if len(distinct) <= WARD_UP_TO:
        assign = ward_merge(rgb, weights, slots)
        passes = max(passes, 1)
    else:
        assign = _octree(runs, distinct, counts, slots, treedepth)
    palette = _means(rgb, weights, assign)
    for _ in range(passes):
        assign = nearest(rgb, palette)
        palette = _means(rgb, weights, assign)
    used, entry = np.unique(assign, return_inverse=True)
    table = np.full(len(used), OPAQUE, "<u4")
    table.view(np.uint8).reshape(-1, 4)[:, :3] = palette[used].astype(np.uint8)
    return table, entry.astype(np.uint8)


def _octree(runs: np.ndarray, distinct: np.ndarray, counts: np.ndarray, slots: int, treedepth: int) -> np.ndarray:
    """ImageMagick's octree over the sorted pixels: for each distinct colour, the number of its entry.

    ImageMagick classifies a run of equal pixels in one step, so sorted pixels cost it one step a distinct colour.
    They go in as rows of 1024 (under any width limit a policy sets), the last row padded with the last colour.
    """
    row = 1024
    rows = -(-runs.size // row)
    padded = np.empty(rows * row, "<u4")
    padded[: runs.size] = runs
    padded[runs.size :] = runs[-1]
    starts = np.concatenate(([0], np.cumsum(counts[:-1])))
    with MagickWand() as image:
        image.constitute(padded.view(np.uint8).reshape(rows, row, 4), "RGBP")
        image.quantize(slots, treedepth)
        mapped = colours(image.export_rgba(rows, row)).reshape(-1)[starts]
    del padded
    _, assign = np.unique(mapped, return_inverse=True)
    return assign.reshape(-1)


def ward_merge(rgb: np.ndarray, weights: np.ndarray, slots: int) -> np.ndarray:
    """Merge colours greedily by Ward's cost (the squared error a merge adds) until `slots` clusters are left;
    returns each colour's cluster number.

    In rounds: each cluster finds its cheapest merge among its NEIGHBOURS nearest clusters, and the cheapest
    mutual pairs merge at once, at most half of the merges still needed a round, so it stays close to one
    merge at a time (the naive sketch in issue 10 took 4.6 s for one frame) in a few dozen rounds.
    """
    centre = rgb.astype(np.float64)
    weight = weights.astype(np.float64)
    label = np.arange(len(rgb))
    while len(centre) > slots:
        n = len(centre)
        _, near = cKDTree(centre).query(centre, k=min(NEIGHBOURS + 1, n))
        near = near[:, 1:]
        cost = weight[:, None] * weight[near] / (weight[:, None] + weight[near])
        cost *= ((centre[:, None, :] - centre[near]) ** 2).sum(axis=2)
        best = np.argmin(cost, axis=1)
        partner = near[np.arange(n), best]
        partner_cost = cost[np.arange(n), best]
        first = np.flatnonzero((partner[partner] == np.arange(n)) & (np.arange(n) < partner))
        if not first.size:
            first = np.array([int(np.argmin(partner_cost))])
            partner[first] = near[first, best[first]]
        first = first[np.argsort(partner_cost[first])[: max(1, (n - slots) // 2)]]
        second = partner[first]
        total = weight[first] + weight[second]
        centre[first] = (centre[first] * weight[first, None] + centre[second] * weight[second, None]) / total[:, None]
        weight[first] = total
        keep = np.ones(n, bool)
        keep[second] = False
        into = np.arange(n)
        into[second] = first
        label = (np.cumsum(keep) - 1)[into[label]]
        centre, weight = centre[keep], weight[keep]
    return label


def _means(rgb: np.ndarray, weights: np.ndarray, assign: np.ndarray) -> np.ndarray:
    """Each entry as the weighted mean of the colours assigned to it, rounded: (entries, 3) float32."""
    k = int(assign.max()) + 1
    total = np.bincount(assign, weights, k)
    sums = np.stack([np.bincount(assign, weights * rgb[:, c], k) for c in range(3)], axis=1)
    return np.rint(sums / np.maximum(total, 1e-12)[:, None]).clip(0, 255).astype(np.float32)


def nearest(rgb: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Index of the nearest `palette` row (squared RGB distance) for each row of `rgb`, both (n, 3) of whole numbers.

    |x - p|^2 / 2 = |x|^2 / 2 - x.p + |p|^2 / 2, with |x|^2 dropped (the same for every entry): one matrix product,
    exact in float32 for whole-number colours (every term a multiple of 1/2 below 2^18). 0.5 ms for 2,048 random
    colours to 256 entries against 1.7 for a scipy k-d tree (one loaded run, OPENBLAS_NUM_THREADS=1).
    """
    entries = palette.astype(np.float32)
    score = rgb.astype(np.float32) @ entries.T
    np.subtract(0.5 * (entries * entries).sum(axis=1), score, out=score)
    return score.argmin(axis=1)
