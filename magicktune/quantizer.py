"""magicktune's quantizer: a frame's colours to at most N table entries, exact where the frame allows it.

One sort of the frame's pixels by colour gives its distinct colours and their counts (for many pixels of few
colours, a hash does, at a fraction of the cost: _distinct_by_hash). A frame (or the changed
pixels of one) with no more distinct colours than the table holds keeps every one of them, unless an error is
allowed (quality below 100): lossless, no ImageMagick call. Up to WARD_UP_TO colours, they merge greedily by
Ward's cost (the least squared error each merge adds); beyond that ImageMagick's octree first cuts them to
COARSE_CLUSTERS clusters, which merge the same way. Each entry then moves to the weighted mean of its colours,
and `passes` weighted k-means steps over the distinct colours (not the pixels) refine it.

Every figure here is from `python -m benchmarks.quantizer_frames` (frame 31 of each workload, one run on a
2-core machine): field 519 colours, Ward 60.5 dB against the octree's 52.8; lines 1,514, 62.6 against 59.8;
seed 11,399, octree then Ward 50.6 against the octree's 49.8; photo 105,899, 38.2 against 37.6.
"""

from __future__ import annotations

import numpy as np

from .palette import HASH_UP_TO, OPAQUE, SHOWN_OPAQUE, colours, entries_of, run_starts
from .wandlib import MagickWand

#: Octree depth for its cut to COARSE_CLUSTERS. Cutting straight to 256, 5 left 22 of 256 entries empty on seed
#: frame 37 and 178 on field frame 37 (a scratch script, not kept); with Ward after it, see the benchmark.
TREEDEPTH = 6
#: The same cut below quality 100. Depth 5 merges the colours of each 8-level cube first, which LZW packs far
#: better: 30 seed frames were 1.26 MB at 50.7 / 50.5 dB against 1.43 MB at 52.4 / 51.0 with depth 6, and
#: 30 photo frames 4.60 MB against 4.86 at the same 38.2 / 38.2 (GifEncoder over the benchmark's frames, a
#: scratch script). Depth 6 stays the default: seed's mean PSNR at 5 is below pngquant's 51.5.
LOWER_QUALITY_TREEDEPTH = 5
#: More distinct colours than depth 5's octree has leaves (cubes 8 levels a side, 32**3 of them) are denser than
#: that grid, and the palette's error is well above a cube's: such a frame (a photograph: 38,900 to 106,600 a
#: frame; seed's scatter has at most 11,600) is pre-cut at depth 5 at every quality. 60 photo frames at quality 100:
#: 9,385,805 bytes at 38.27 / 38.18 dB, against 9,925,110 at 38.28 / 38.18 with depth 6 (`python -m
#: benchmarks.quality_steps --workload photo --quality 100`, and the same with DENSE_COLOURS raised past 106,600);
#: depth 4, 8.28 MB at 37.91 / 37.84 (a scratch script).
DENSE_COLOURS = 32**3
#: Weighted k-means passes after the mean step: one adds 0.6 dB on seed and photo frames, at up to a third more
#: time (photo 178 ms against 143).
PASSES = 1
#: Up to this many distinct colours Ward's merge takes them all. Its work grows as the square of the colours
#: (2,048 colours: 4 million costs a pass, in ROWS_AT_ONCE slices); the octree's pre-cut grows as the colours.
WARD_UP_TO = 2048
#: Rows of Ward's cost matrix computed at once: small enough to stay in cache, large enough that numpy's per-call
#: cost stays small. The whole matrix of lines' 1,327 changed colours: 16 rows 5.6 ms, 64 rows 4.3, 256 rows 5.3
#: (`python -m benchmarks.quantizer_frames`, one run; 7.7 ms at 64 rows when the distances took four passes
#: after a 3-column product instead of one 5-column product).
ROWS_AT_ONCE = 64
#: Above WARD_UP_TO colours the octree first cuts them to this many clusters, which Ward's merge takes to the
#: table: 0.8 dB above the octree cutting straight to 256 on seed and 0.6 on photo, for up to a third more time
#: (seed's changed crop 24.9 ms against 18.3).
COARSE_CLUSTERS = 512
#: Colours matched to the table at once by `nearest`, into one score buffer reused for each slice (1 MB for 256
#: entries): seed's 11,166 changed colours to 255 entries, 1,024 rows 3.3 ms, 4,096 rows 4.2 ms (the benchmark's
#: "nearest" rows). A fresh 4 MB score array for each 4,096 rows, as before, took 7.5 ms for 9,500 random colours
#: (a scratch timing, one run).
NEAREST_ROWS_AT_ONCE = 1024


#: A frame's distinct colours are counted by hash (_distinct_by_hash) from this many shown pixels, where a sample of
#: about HASH_SAMPLE of them has at most palette.HASH_UP_TO colours: field's whole frames (225,000-307,000 pixels
#: of 434-623 colours) yes; seed's and the photograph's many colours, and lines' crops (24,000 pixels), no.
HASH_FROM_PIXELS = 65536
HASH_SAMPLE = 2048


def treedepth_at(quality: int) -> int:
    """The octree depth of the pre-cut at `quality` (0-100)."""
    return TREEDEPTH if quality >= 100 else LOWER_QUALITY_TREEDEPTH


#: Below quality 100 a frame's colours merge while the squared error it adds stays within that of a PSNR of
#: FLOOR_DB + DB_PER_QUALITY * quality dB over the whole frame (56 at 90, 52 at 80, 44 at 60, 36 at 40), spread
#: over the pixels it writes. 60 frames of each (`python -m benchmarks.quality_steps`), PSNR mean / min at 90, 70
#: and 50: field 54.2 / 53.8, 47.5 / 46.8, 40.1 / 39.0; seed 50.6 / 50.4 (below 56 dB, but the octree's cut to
#: 512 clusters already spends more than the budget, and nothing merges), 49.0 / 48.4, 41.2 / 40.4; lines
#: 59.1 / 58.8, 51.9 / 51.4, 43.5 / 42.5 (its unchanged pixels, exact, lift it). Rounding each merged entry to
#: whole levels adds about 0.25 a pixel the budget does not count: field at 90 is 1.8 dB under 56.
#: Against the fixed share of the table quality meant before, at the same bytes: lines +1 dB, seed +0.7 / +0.9;
#: photo, whose every pixel carries the error of the frames before, -0.2 / -1.7 (7.9 MB at quality 40).
FLOOR_DB = 20.0
DB_PER_QUALITY = 0.4
#: ... but no pixel a frame writes carries on average more than SPREAD times that: a frame that redraws a few
#: pixels (a changing title) does not spend the whole frame's error on them. On 60 frames, seed at about 2.4 MB:
#: SPREAD 4, 49.9 / 48.1 dB; 8, 49.4 / 48.9; 16, 49.2 / 49.1; the line plot's curve is the same at each.
SPREAD = 8


def error_at(quality: int) -> float:
    """The squared RGB error (summed over R, G and B) a frame may add at `quality` (0-100), per pixel of the
    frame; 0 at 100, where every frame keeps all the colours it has room for."""
    if quality >= 100:
        return 0.0
    return 3 * 255.0**2 / 10 ** ((FLOOR_DB + DB_PER_QUALITY * quality) / 10)


def quantize_frame(
    pixels: np.ndarray,
    colors: int,
    spare_transparent: bool = False,
    passes: int = PASSES,
    treedepth: int = TREEDEPTH,
    error: float = 0.0,
    frame_pixels: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Quantize an (h, w, 4) uint8 frame to (table of RGBA numbers, transparent as 0 and first if any;
    (h, w) uint8 indexes into it).

    Pixels with alpha below 128 become the one transparent entry, every other pixel is opaque. With
    `spare_transparent` one entry stays free for a transparent colour the caller adds. With an `error`, colours keep
    merging past `colors` while the squared error added stays within `error` times `frame_pixels` (the whole
    frame's, where these pixels are a crop of it), and within SPREAD times `error` a shown pixel on average.
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
        keys |= np.uint32(OPAQUE)  # in place: indexing made a copy
    else:
        keys = keys | np.uint32(OPAQUE)  # a copy: the caller's pixels stay as they are
    hashed = _distinct_by_hash(keys)
    if hashed is not None:
        distinct, counts, inverse = hashed
        runs = order = None
    else:
        order = np.argsort(keys).astype(np.int32)
        runs = keys[order]
        starts = run_starts(runs)
        counts = np.diff(starts, append=runs.size)
        distinct = runs[starts]
    shown_pixels = keys.size
    del keys
    slots = colors - 1 if (clear or spare_transparent) else colors
    if len(distinct) <= slots and not (error and len(distinct) > 1):
        table, entry = distinct, np.arange(len(distinct), dtype=np.uint8)
    else:
        budget = error * min(frame_pixels or shown_pixels, SPREAD * shown_pixels)
        table, entry = _reduce(runs, distinct, counts, slots, passes, treedepth, budget)
    del runs
    if clear:
        table = np.concatenate((np.zeros(1, "<u4"), table))
        entry = entry + np.uint8(1)
    if order is None and not clear:
        indexes = entry[inverse]
    else:
        indexes = np.zeros(height * width, np.uint8)
        if order is None:
            indexes[where] = entry[inverse]
        else:
            indexes[where[order] if clear else order] = np.repeat(entry, counts)
    return table.astype("<u4"), indexes.reshape(height, width)


def _distinct_by_hash(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """`keys`' distinct colours (sorted, as a sort finds them), their counts and each key's place among them, for
    many pixels of few colours (an imshow's whole frame) at a fraction of a sort's cost: a sample's colours are
    looked up by hash (palette.entries_of), and only the pixels of colours the sample missed are sorted. None
    where the sample has more colours than a hash holds, or the frame more than WARD_UP_TO: sort them all then."""
    if keys.size < HASH_FROM_PIXELS:
        return None
    sampled = np.unique(keys[:: max(1, keys.size // HASH_SAMPLE)])
    if len(sampled) > HASH_UP_TO:
        return None
    entry, held = entries_of(sampled, keys)
    missed_at = np.flatnonzero(~held)
    missed, missed_entry = np.unique(keys[missed_at], return_inverse=True)
    entry[missed_at] = len(sampled) + missed_entry.reshape(-1)
    both = np.concatenate((sampled, missed))
    if len(both) > WARD_UP_TO:  # the octree wants the pixels sorted
        return None
    by_colour = np.argsort(both)
    rank = np.empty(len(both), np.intp)
    rank[by_colour] = np.arange(len(both))
    inverse = rank[entry]
    return both[by_colour], np.bincount(inverse, minlength=len(both)), inverse


def _reduce(
    runs: np.ndarray | None,
    distinct: np.ndarray,
    counts: np.ndarray,
    slots: int,
    passes: int,
    treedepth: int,
    budget: float,
) -> tuple[np.ndarray, np.ndarray]:
    """A table of at most `slots` opaque RGBA numbers for the sorted opaque pixels `runs` (whose distinct colours
    and counts are `distinct`, `counts`), fewer where the merges' squared error stays within `budget`, and each
    distinct colour's entry (uint8). `runs` is None where the colours were counted by hash: at most WARD_UP_TO of
    them, which the octree never takes."""
    rgb = distinct.view(np.uint8).reshape(-1, 4)[:, :3].astype(np.float32)
    weights = counts.astype(np.float64)
    if len(distinct) <= WARD_UP_TO:
        assign = ward_merge(rgb, weights, slots, budget)
    else:
        assert runs is not None, "colours counted by hash are at most WARD_UP_TO"
        if len(distinct) > DENSE_COLOURS:
            treedepth = min(treedepth, LOWER_QUALITY_TREEDEPTH)
        coarse = _octree(runs, distinct, counts, max(slots, COARSE_CLUSTERS), treedepth)
        total, sums = _sums(rgb, weights, coarse)
        if budget:  # the octree's cut spent some: each colour's squared distance to its cluster's mean
            spread = weights @ (rgb.astype(np.float64) ** 2).sum(axis=1) - ((sums**2).sum(axis=1) / total).sum()
            budget = max(0.0, budget - spread)
        assign = ward_merge(sums / total[:, None], total, slots, budget)[coarse]
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


def ward_merge(rgb: np.ndarray, weights: np.ndarray, slots: int, budget: float = 0.0) -> np.ndarray:
    """Merge colours greedily by Ward's cost (the squared error a merge adds) until `slots` clusters are left, and
    on while the merges' summed cost stays within `budget`; returns each colour's cluster number.

    In rounds: the mutual cheapest pairs merge at once, the cheapest first and at most half of the merges still
    needed a round (past the slots, those the budget affords, at most half the clusters), so it stays close to
    one merge at a time (the naive sketch in issue 10 took 4.6 s for one frame) in a dozen rounds. Ward's cost is
    reducible (a merged cluster costs no less to any other than the cheaper of its parts did), so only the
    clusters that merged, or whose cheapest partner did, look again.
    """
    centre = rgb.astype(np.float64)
    centre -= centre.mean(axis=0)  # smaller squares: float32 distances lose less to cancellation
    weight = weights.astype(np.float64)
    label = np.arange(len(rgb))
    if len(centre) <= slots and not budget:
        return label
    partner, partner_cost = _cheapest_partners(centre, weight, np.arange(len(centre)))
    spent = 0.0
    fewest = 1 if budget else slots
    while len(centre) > fewest:
        n = len(centre)
        ids = np.arange(n)
        first = np.flatnonzero((partner[partner] == ids) & (ids < partner))
        if not first.size:  # float32 costs that differ a little each way can leave no pair mutual
            first = np.array([np.argmin(partner_cost)])
        first = first[np.argsort(partner_cost[first], kind="stable")]
        if n > slots:
            first = first[: max(1, (n - slots) // 2)]
        else:
            affordable = np.cumsum(partner_cost[first], dtype=np.float64) <= budget - spent
            first = first[: max(1, min(int(affordable.sum()), n // 2))] if affordable[0] else first[:0]
            if not first.size:
                break
        spent += float(partner_cost[first].sum(dtype=np.float64))
        second = partner[first]
        total = weight[first] + weight[second]
        centre[first] = (centre[first] * weight[first, None] + centre[second] * weight[second, None]) / total[:, None]
        weight[first] = total
        merged = np.zeros(n, bool)
        merged[first] = merged[second] = True
        stale = merged[partner]
        keep = np.ones(n, bool)
        keep[second] = False
        into = ids
        into[second] = first
        renumbered = np.cumsum(keep) - 1
        label = renumbered[into[label]]
        partner = renumbered[into[partner]]
        centre, weight, partner, partner_cost, stale = (a[keep] for a in (centre, weight, partner, partner_cost, stale))
        again = np.flatnonzero(stale)
        if len(centre) > fewest and again.size:
            partner[again], partner_cost[again] = _cheapest_partners(centre, weight, again)
    return label


def _cheapest_partners(centre: np.ndarray, weight: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each cluster in `rows`, the other cluster whose merge with it costs least by Ward's measure, and that
    cost: w_i w_j / (w_i + w_j) |c_i - c_j|^2, over every cluster, ROWS_AT_ONCE rows at a time."""
    points = centre.astype(np.float32)
    squares = (points * points).sum(axis=1)
    ones = np.ones_like(squares)
    # |c_i - c_j|^2 = [-2 c_i, |c_i|^2, 1] . [c_j, 1, |c_j|^2]: one matrix product gives it, no passes after.
    left = np.column_stack((-2 * points, squares, ones))
    right = np.ascontiguousarray(np.column_stack((points, ones, squares)).T)
    inverse = 1 / weight.astype(np.float32)  # w_i w_j / (w_i + w_j) = 1 / (1 / w_i + 1 / w_j)
    partner = np.empty(len(rows), np.intp)
    cost_of = np.empty(len(rows), np.float32)
    span = min(ROWS_AT_ONCE, len(rows))
    cost_buffer = np.empty((span, len(points)), np.float32)
    factor_buffer = np.empty_like(cost_buffer)
    for start in range(0, len(rows), ROWS_AT_ONCE):
        chunk = rows[start : start + ROWS_AT_ONCE]
        within = np.arange(len(chunk))
        cost, factor = cost_buffer[: len(chunk)], factor_buffer[: len(chunk)]
        np.matmul(left[chunk], right, out=cost)
        np.maximum(cost, 0.0, out=cost)
        np.add(inverse[chunk, None], inverse, out=factor)
        cost /= factor
        cost[within, chunk] = np.inf
        best = cost.argmin(axis=1)
        partner[start : start + len(chunk)] = best
        cost_of[start : start + len(chunk)] = cost[within, best]
    return partner, cost_of


def _sums(rgb: np.ndarray, weights: np.ndarray, assign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each cluster's total weight (k,) and weighted sum of colours (k, 3), float64."""
    k = int(assign.max()) + 1
    total = np.bincount(assign, weights, k)
    sums = np.stack([np.bincount(assign, weights * rgb[:, c], k) for c in range(3)], axis=1)
    return total, sums


def _means(rgb: np.ndarray, weights: np.ndarray, assign: np.ndarray) -> np.ndarray:
    """Each entry as the weighted mean of the colours assigned to it, rounded: (entries, 3) float32."""
    total, sums = _sums(rgb, weights, assign)
    return np.rint(sums / np.maximum(total, 1e-12)[:, None]).clip(0, 255).astype(np.float32)


def nearest(rgb: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Index of the nearest `palette` row (squared RGB distance) for each row of `rgb`, both (n, 3) of whole numbers.

    |x - p|^2 / 2 = |x|^2 / 2 - x.p + |p|^2 / 2, with |x|^2 dropped (the same for every entry): one matrix product,
    exact in float32 for whole-number colours (every term a multiple of 1/2 below 2^18). 0.5 ms for 2,048 random
    colours to 256 entries against 1.7 for a k-d tree (scipy's; one loaded run, OPENBLAS_NUM_THREADS=1).
    """
    entries = palette.astype(np.float32)
    halves = 0.5 * (entries * entries).sum(axis=1)
    across = np.ascontiguousarray(entries.T)
    points = rgb.astype(np.float32)
    found = np.empty(len(points), np.intp)
    score_buffer = np.empty((min(NEAREST_ROWS_AT_ONCE, len(points)), len(entries)), np.float32)
    for start in range(0, len(points), NEAREST_ROWS_AT_ONCE):
        chunk = points[start : start + NEAREST_ROWS_AT_ONCE]
        score = score_buffer[: len(chunk)]
        np.matmul(chunk, across, out=score)
        np.subtract(halves, score, out=score)
        found[start : start + NEAREST_ROWS_AT_ONCE] = score.argmin(axis=1)
    return found
