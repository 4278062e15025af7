"""magicktune's quantizer and what the encoder does with it: exact where it can be, no flicker, one quality knob."""

import numpy as np
import pytest
from helpers import decode, psnr

from magicktune import palette, quantizer
from magicktune.encoder import GifEncoder
from magicktune.errors import InvalidValue
from magicktune.palette import map_colours
from magicktune.quantizer import WARD_UP_TO, quantize_frame
from magicktune.writers import parse_extra_args

W, H = 96, 64


def encode(path, frames, fps=30, **options):
    with GifEncoder(path, (frames[0].shape[1], frames[0].shape[0]), fps, **options) as encoder:
        for frame in frames:
            encoder.add_frame(frame)
    return encoder.stats


def rgba(rgb):
    out = np.empty((*rgb.shape[:2], 4), np.uint8)
    out[..., :3] = rgb
    out[..., 3] = 255
    return out


def palette_frames(count, colours=250, seed=1):
    """Frames of `colours` distinct colours close together (an octree merges them), a block moving on each."""
    rng = np.random.default_rng(seed)
    table = rng.integers(100, 140, (colours, 3), dtype=np.uint8)
    table[:, 0] = np.arange(colours) % 256  # distinct, and spread over one channel only
    base = table[rng.integers(0, colours, (H, W))]
    frames = []
    for k in range(count):
        frame = base.copy()
        frame[5:25, 4 * k : 4 * k + 20] = table[(np.arange(20) * 7 + k) % colours][None, :]
        frames.append(rgba(frame))
    return frames


def smooth_frames(count, levels=200):
    """A smooth field drifting through a colour map of `levels` neighbouring colours, as an imshow: most pixels
    change a little every frame."""
    y, x = np.mgrid[0:H, 0:W] / np.array([H, W])[:, None, None]
    ramp = np.linspace(0, 1, levels)[:, None]
    colour_map = (np.hstack([40 + 200 * ramp, 220 - 150 * ramp, 90 + 60 * np.sin(3 * ramp)])).astype(np.uint8)
    frames = []
    for k in range(count):
        t = k / 15
        value = 0.5 + 0.25 * np.sin(6 * x + t) * np.cos(4 * y) + 0.25 * np.sin(5 * y - t)
        frames.append(rgba(colour_map[np.clip((value * levels).astype(int), 0, levels - 1)]))
    return frames


def test_a_table_of_few_colours_is_the_frames_own():
    frame = palette_frames(1)[0]
    table, indexes = quantize_frame(frame, 256)
    assert len(table) == len(np.unique(frame.view("<u4")))
    assert np.array_equal(table.view(np.uint8).reshape(-1, 4)[indexes], frame)


def test_frames_with_at_most_256_colours_decode_to_their_source_pixels(tmp_path):
    source = palette_frames(12)
    out = tmp_path / "out.gif"
    encode(out, source)
    frames, _, _ = decode(out)
    assert len(frames) == len(source)
    for got, want in zip(frames, source):
        assert np.array_equal(got, want)


def test_transparent_pixels_take_one_entry_and_the_rest_stay_exact():
    frame = palette_frames(1, colours=255)[0]
    frame[:8, :8] = 0
    table, indexes = quantize_frame(frame, 256)
    assert table[0] == 0 and len(table) == 256
    assert np.all(indexes[:8, :8] == 0)
    shown = table.view(np.uint8).reshape(-1, 4)[indexes]
    assert np.array_equal(shown[8:], frame[8:])


def test_a_wholly_transparent_crop_is_one_transparent_entry():
    table, indexes = quantize_frame(np.zeros((3, 5, 4), np.uint8), 256)
    assert list(table) == [0] and indexes.shape == (3, 5) and not indexes.any()


def many_colours(distinct):
    """A 200x150 frame of `distinct` colours scattered around 40 centres."""
    rng = np.random.default_rng(distinct)
    centres = rng.integers(0, 256, (40, 3))
    table_of = np.clip(centres[rng.integers(0, 40, distinct)] + rng.normal(0, 12, (distinct, 3)), 0, 255)
    return rgba(table_of.astype(np.uint8)[rng.integers(0, distinct, (200, 150))])


@pytest.mark.parametrize("distinct", [1000, 6000])  # Ward's merge below WARD_UP_TO colours, the octree above
def test_many_colours_fill_the_table_and_beat_imagemagicks_octree(distinct):
    frame = many_colours(distinct)
    assert (len(np.unique(frame.view("<u4"))) <= WARD_UP_TO) == (distinct < WARD_UP_TO)
    table, indexes = quantize_frame(frame, 256)
    assert 240 <= len(table) <= 256
    ours = psnr(table.view(np.uint8).reshape(-1, 4)[indexes], frame)
    octree_table, octree_indexes = map_colours(frame, 256, 5)
    theirs = psnr(octree_table.view(np.uint8).reshape(-1, 4)[octree_indexes], frame)
    assert ours > theirs


def test_above_ward_up_to_the_octrees_clusters_merge_by_ward_for_a_closer_table(monkeypatch):
    frame = many_colours(6000)
    table, indexes = quantize_frame(frame, 256)
    with_ward = psnr(table.view(np.uint8).reshape(-1, 4)[indexes], frame)
    monkeypatch.setattr(quantizer, "COARSE_CLUSTERS", 0)  # the octree cuts straight to the table
    table, indexes = quantize_frame(frame, 256)
    assert with_ward > psnr(table.view(np.uint8).reshape(-1, 4)[indexes], frame) + 0.2


def test_a_frame_denser_than_depth_5s_cubes_is_pre_cut_at_depth_5(monkeypatch):
    """A frame with more distinct colours than DENSE_COLOURS gets depth 5's table whatever depth it is given; below
    that, the depth given counts."""
    rng = np.random.default_rng(5)
    centres = rng.integers(0, 256, (40, 3))
    frame = rgba(
        np.clip(centres[rng.integers(0, 40, (240, 240))] + rng.normal(0, 6, (240, 240, 3)), 0, 255).astype(np.uint8)
    )
    assert len(np.unique(frame.view("<u4"))) > quantizer.DENSE_COLOURS
    at = {depth: quantize_frame(frame, 256, treedepth=depth) for depth in (5, 6)}
    assert all(np.array_equal(a, b) for a, b in zip(at[5], at[6], strict=True))
    monkeypatch.setattr(quantizer, "DENSE_COLOURS", 10**6)
    table, _ = quantize_frame(frame, 256, treedepth=6)
    assert not np.array_equal(table, at[5][0])


@pytest.mark.parametrize("cleared", [False, True])
def test_colours_counted_by_hash_quantize_as_sorted_ones_do(monkeypatch, cleared):
    """An imshow-like frame (many pixels, a few hundred colours, some too rare for the sample to see) takes the hash
    path and gets what sorting its pixels gives."""
    rng = np.random.default_rng(11)
    common = rng.integers(0, 256, (300, 3))
    frame = rgba(common[rng.integers(0, 300, (400, 300))].astype(np.uint8))
    frame[rng.integers(0, 400, 40), rng.integers(0, 300, 40), :3] = rng.integers(0, 256, (40, 3))  # rare colours
    if cleared:
        frame[:50] = 0  # transparent: left as they are
    keys = frame.view("<u4").reshape(-1)
    assert quantizer._distinct_by_hash(keys[keys >= palette.SHOWN_OPAQUE] | np.uint32(palette.OPAQUE)) is not None
    hashed = quantize_frame(frame, 256)
    monkeypatch.setattr(quantizer, "HASH_FROM_PIXELS", 10**9)
    assert all(np.array_equal(a, b) for a, b in zip(hashed, quantize_frame(frame, 256), strict=True))


def test_a_colour_shown_at_two_alphas_is_one_opaque_entry():
    frame = rgba(np.zeros((4, 4, 3), np.uint8))
    frame[:, :2] = (10, 20, 30, 200)
    frame[:, 2:] = (10, 20, 30, 255)
    frame[0, 0] = (200, 0, 0, 220)  # a colour whose number sorts between the two
    table, indexes = quantize_frame(frame, 256)
    assert len(table) == 2 and (table >= palette.OPAQUE).all()
    assert len(np.unique(indexes[:, 1:])) == 1


def test_wards_cheapest_partners_are_those_of_the_whole_cost_matrix(monkeypatch):
    rng = np.random.default_rng(3)
    centre = rng.uniform(-100, 100, (150, 3))
    weight = rng.uniform(1, 50, 150)
    monkeypatch.setattr(quantizer, "ROWS_AT_ONCE", 16)  # several slices, the last one short
    rows = np.array([0, 5, 149, 17, 80] + list(range(20, 40)))
    partner, cost = quantizer._cheapest_partners(centre, weight, rows)
    whole = weight[:, None] * weight / (weight[:, None] + weight) * ((centre[:, None] - centre) ** 2).sum(axis=2)
    np.fill_diagonal(whole, np.inf)
    assert np.array_equal(partner, whole[rows].argmin(axis=1))
    assert np.allclose(cost, whole[rows].min(axis=1), rtol=1e-3)


def test_static_pixels_never_change_in_the_gif(tmp_path):
    source = smooth_frames(10, levels=3000)  # well over 256 colours a frame: each frame's table is a new compromise
    assert len(np.unique(source[0].view("<u4"))) > 300
    static = np.zeros((H, W), bool)  # a block in the middle stops after frame 0; around it the field drifts on
    static[H // 4 : 3 * H // 4, W // 3 : 2 * W // 3] = True
    for k in range(1, 10):
        source[k][static] = source[0][static]
    out = tmp_path / "out.gif"
    encode(out, source)
    frames, _, _ = decode(out)
    for before, now in zip(frames, frames[1:]):
        assert np.array_equal(before[static], now[static])
    assert min(psnr(got, want) for got, want in zip(frames, source)) > 35


def assert_static_pixels_stay(source, frames):
    """Each pixel the source leaves as it was decodes as it was: no flicker."""
    for k in range(1, len(source)):
        static = (source[k] == source[k - 1]).all(axis=2)
        assert np.array_equal(frames[k][static], frames[k - 1][static])


def test_lower_quality_makes_smaller_files_with_every_frame_near_its_error(tmp_path):
    source = smooth_frames(30)
    sizes, worst = [], []
    for quality in (100, 80, 70, 60):
        out = tmp_path / f"q{quality}.gif"
        stats = encode(out, source, quality=quality)
        frames, _, _ = decode(out)
        scores = [psnr(got[..., :3], want[..., :3]) for got, want in zip(frames, source)]
        assert scores[0] == 99, quality  # the whole first frame stays on screen: it keeps its own colours
        floor = quantizer.FLOOR_DB + quantizer.DB_PER_QUALITY * quality
        assert quality == 100 or min(scores) > floor - 1.5, (quality, floor, min(scores))
        sizes.append(stats.bytes)
        worst.append(min(scores))
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 4, sizes
    assert sizes[-1] < 0.7 * sizes[0], sizes
    assert worst == sorted(worst, reverse=True) and worst[0] == 99, worst  # 100: exact


def test_an_error_merges_colours_while_each_pixel_carries_no_more_than_it_on_average():
    frame = smooth_frames(1)[0]
    want = frame[..., :3].astype(np.int64)
    distinct = len(np.unique(frame.view("<u4")))
    entries = []
    for error in (0.0, 2.0, 10.0, 50.0):
        table, indexes = quantize_frame(frame, 256, error=error)
        got = table[indexes].view(np.uint8).reshape(frame.shape)[..., :3]
        carried = ((got - want) ** 2).sum(axis=2).mean()
        assert carried <= error + 0.75, (error, carried)  # + rounding each entry to whole levels: 3 x 1/4
        entries.append(len(table))
    assert entries[0] == distinct and entries == sorted(entries, reverse=True) and len(set(entries)) == 4, entries


def test_a_crops_error_is_the_whole_frames_spread_over_its_pixels_at_most_spread_times_each():
    frame = smooth_frames(1)[0]
    want = frame[..., :3].astype(np.int64)
    shown = frame.shape[0] * frame.shape[1]
    for frame_pixels, allowed in ((2 * shown, 2.0), (100 * shown, float(quantizer.SPREAD))):
        table, indexes = quantize_frame(frame, 256, error=2.0, frame_pixels=frame_pixels)
        got = table[indexes].view(np.uint8).reshape(frame.shape)[..., :3]
        carried = ((got - want) ** 2).sum(axis=2).mean()
        assert 0.5 * allowed * 2.0 < carried <= allowed * 2.0 + 0.75, (frame_pixels, carried)


def test_a_crop_spends_the_frames_error_on_its_shown_pixels_alone():
    frame = smooth_frames(1)[0].copy()
    frame[:, : W // 2, 3] = 0  # the left half left as it was: transparent
    shown = frame[..., 3] >= 128
    want = frame[..., :3].astype(np.int64)
    table, indexes = quantize_frame(frame, 256, error=2.0, frame_pixels=3 * int(shown.sum()))
    assert table[0] == 0 and (indexes[~shown] == 0).all() and (indexes[shown] != 0).all()
    got = table[indexes].view(np.uint8).reshape(frame.shape)[..., :3]
    carried = ((got - want) ** 2).sum(axis=2)[shown].mean()
    assert 3.0 < carried <= 3 * 2.0 + 0.75, carried


def test_an_error_leaves_a_frame_of_one_colour_or_of_none_as_it_is():
    clear = np.zeros((H, W, 4), np.uint8)
    table, indexes = quantize_frame(clear, 256, error=50.0, frame_pixels=H * W)
    assert list(table) == [0] and not indexes.any()
    flat = rgba(np.full((H, W, 3), (12, 200, 7), np.uint8))
    table, indexes = quantize_frame(flat, 256, error=50.0, frame_pixels=H * W)
    assert np.array_equal(table[indexes].view(np.uint8).reshape(flat.shape), flat)


@pytest.mark.parametrize("options", [{"quantizer": "imagemagick"}, {"dither": "floyd-steinberg"}])
def test_where_imagemagick_builds_the_table_quality_is_still_a_share_of_the_colours(tmp_path, options):
    source = smooth_frames(6, levels=3000)
    out = tmp_path / "q50.gif"
    encode(out, source, quality=50, **options)
    frames, _, _ = decode(out)
    own = [frames[0].reshape(-1, 4)] + [now[(now != before).any(axis=2)] for before, now in zip(frames, frames[1:])]
    assert max(len(np.unique(colours, axis=0)) for colours in own) <= 128


def test_wards_merge_past_the_slots_spends_no_more_than_its_budget():
    rng = np.random.default_rng(5)
    rgb = rng.uniform(0, 255, (300, 3))
    weights = rng.uniform(1, 40, 300)

    def added(label):
        total = 0.0
        for cluster in np.unique(label):
            members = label == cluster
            mean = np.average(rgb[members], axis=0, weights=weights[members])
            total += float((weights[members] * ((rgb[members] - mean) ** 2).sum(axis=1)).sum())
        return total

    forced = added(quantizer.ward_merge(rgb, weights, 100))  # the budget counts the merges down to the slots too
    clusters = [len(np.unique(quantizer.ward_merge(rgb, weights, 100, forced / 2)))]
    for budget in (2 * forced, 10 * forced):
        label = quantizer.ward_merge(rgb, weights, 100, budget)
        assert added(label) <= budget * 1.001
        clusters.append(len(np.unique(label)))
    assert clusters[0] == 100 and clusters == sorted(clusters, reverse=True) and len(set(clusters)) == 3, clusters
    assert len(np.unique(quantizer.ward_merge(rgb, weights, 100, 1e12))) == 1


def test_lower_quality_leaves_static_pixels_alone(tmp_path):
    source = smooth_frames(12)
    encode(tmp_path / "q50.gif", source, quality=50)
    frames, _, _ = decode(tmp_path / "q50.gif")
    assert_static_pixels_stay(source, frames)


def line_frames(count):
    """Antialiased sine curves moving over a static white background and grid, as a line plot: few pixels change."""
    y, x = np.mgrid[0:H, 0:W]
    frames = []
    for k in range(count):
        rgb = np.full((H, W, 3), 255, np.uint8)
        rgb[::16] = rgb[:, ::16] = 200
        for phase, colour in ((0.0, (31, 119, 180)), (2.0, (255, 127, 14))):
            curve = H / 2 + H / 3 * np.sin(x / 9 + phase + k / 4)
            cover = np.clip(1.5 - np.abs(y - curve), 0, 1)[..., None]
            rgb = (rgb * (1 - cover) + np.array(colour) * cover).astype(np.uint8)
        frames.append(rgba(rgb))
    return frames


@pytest.mark.parametrize("tolerance", [2, 8])
def test_a_tolerance_on_a_line_plot_is_no_larger_and_leaves_its_static_pixels_alone(tmp_path, tolerance):
    source = line_frames(12)
    exact = encode(tmp_path / "q100.gif", source).bytes
    lower = encode(tmp_path / "lower.gif", source, tolerance=tolerance).bytes
    assert lower <= exact
    frames, _, _ = decode(tmp_path / "lower.gif")
    assert_static_pixels_stay(source, frames)


def test_imagemagicks_octree_stays_available(tmp_path):
    source = palette_frames(4)
    out = tmp_path / "out.gif"
    encode(out, source, quantizer="imagemagick")
    frames, _, _ = decode(out)
    assert len(frames) == 4 and min(psnr(got, want) for got, want in zip(frames, source)) > 30


@pytest.mark.parametrize(
    "options",
    [
        {"quality": 101},
        {"quality": -1},
        {"quality": 2.5},
        {"quantizer": "median"},
        {"tolerance": 256},
        {"tolerance": -1},
    ],
)
def test_bad_quality_or_quantizer_is_refused(tmp_path, options):
    with pytest.raises(InvalidValue, match=next(iter(options))):
        GifEncoder(tmp_path / "out.gif", (W, H), 30, **options)
    assert list(tmp_path.iterdir()) == []


def test_a_tolerance_with_the_octree_is_refused(tmp_path):
    with pytest.raises(InvalidValue, match="tolerance=2 works only with quantizer='magicktune'"):
        GifEncoder(tmp_path / "out.gif", (W, H), 30, tolerance=2, quantizer="imagemagick")
    assert list(tmp_path.iterdir()) == []


def test_quality_tolerance_and_quantizer_from_extra_args():
    assert parse_extra_args(["quality=80", "tolerance=2", "quantizer=imagemagick"]) == {
        "quality": 80,
        "tolerance": 2,
        "quantizer": "imagemagick",
    }


@pytest.mark.parametrize("hashed", [True, False], ids=["hashed", "binary-search"])
@pytest.mark.parametrize("size", [1, 2, 255, 256])
def test_entries_of_finds_each_held_colour_first_entry_and_nothing_else(monkeypatch, hashed, size):
    if not hashed:  # no multiplier to try: the binary search answers
        monkeypatch.setattr(palette, "_HASH_MULTIPLIERS", palette._HASH_MULTIPLIERS[:0])
    rng = np.random.default_rng(size)
    for _ in range(20):
        table = rng.integers(0, 2**32, size, dtype=np.uint32)
        table[size // 2 :] = table[: size - size // 2]  # every colour of the second half stands twice
        wanted = np.concatenate((rng.choice(table, 500), rng.integers(0, 2**32, 500, dtype=np.uint32), table))
        entry, held = palette.entries_of(table, wanted)
        first = {}
        for index, colour in enumerate(table.tolist()):
            first.setdefault(colour, index)
        assert held.tolist() == [colour in first for colour in wanted.tolist()]
        assert entry[held].tolist() == [first[colour] for colour in wanted[held].tolist()]
