"""The quantizer on one frame of each workload, whole and as the changed crop the encoder passes it: distinct
colours, PSNR over the opaque pixels and the best of `--repeat` times, as the quantizer chooses and by the
choice it passed over. The figures quantizer.py quotes.

    python -m benchmarks.quantizer_frames [--frame 30] [--repeat 5] [--workload lines ...]

Also times Ward's cost matrix at a few ROWS_AT_ONCE on the lines crop's colours, and `nearest` at a few
NEAREST_ROWS_AT_ONCE on the seed crop's (as ratios: the machines here are noisy).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from benchmarks.hotspots import frames, timed
from benchmarks.workloads import WORKLOADS
from magicktune import quantizer
from magicktune.frames import bbox
from magicktune.palette import SHOWN_OPAQUE, colours


def changed_crop(before: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """The crop of `frame` around what changed since `before`, unchanged pixels transparent (as the encoder)."""
    changed = colours(frame) != colours(before)
    x0, y0, x1, y1 = bbox(changed)
    kept = np.where(changed[y0:y1, x0:x1], colours(frame)[y0:y1, x0:x1], np.uint32(0))
    return kept.view(np.uint8).reshape(y1 - y0, x1 - x0, 4)


def psnr_opaque(got: np.ndarray, want: np.ndarray) -> float:
    """PSNR (dB) over the pixels of `want` that are shown (alpha at least 128)."""
    shown = want[..., 3] >= 128
    error = (got[..., :3].astype(np.float64) - want[..., :3])[shown]
    return float(10 * np.log10(255.0**2 / max(float((error**2).mean()), 1e-12)))


@contextmanager
def quantizer_constants(**values: int) -> Iterator[None]:
    """quantizer.py's module constants set to `values` for the block, restored after."""
    saved = {name: getattr(quantizer, name) for name in values}
    for name, value in values.items():
        setattr(quantizer, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(quantizer, name, value)


def _measured(pixels: np.ndarray, settings: dict[str, int], repeat: int) -> tuple[float, float]:
    """PSNR and best time of quantizing `pixels` to 256 entries (one spare) with quantizer.py's constants (and
    `passes`, `treedepth`) set as in `settings`."""
    passes = settings.get("passes", quantizer.PASSES)
    treedepth = settings.get("treedepth", quantizer.TREEDEPTH)
    with quantizer_constants(**{k: v for k, v in settings.items() if k not in ("passes", "treedepth")}):
        table, indexes = quantizer.quantize_frame(pixels, 256, True, passes, treedepth)
        ms = timed(repeat, lambda: quantizer.quantize_frame(pixels, 256, True, passes, treedepth))
    return psnr_opaque(table.view(np.uint8).reshape(-1, 4)[indexes], pixels), ms


#: What each choice the quantizer passes over means, as settings of its constants.
WARD_CHOICES = {"Ward": {}, "octree only": {"WARD_UP_TO": 0, "COARSE_CLUSTERS": 0}}
OCTREE_CHOICES = {
    "octree, Ward": {},
    "octree, Ward, no pass": {"passes": 0},
    "octree, Ward, depth 5": {"treedepth": 5},
    "octree only": {"COARSE_CLUSTERS": 0},
    "octree only, depth 5": {"COARSE_CLUSTERS": 0, "treedepth": 5},
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", action="append", choices=sorted(WORKLOADS))
    parser.add_argument("--frame", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    lines_colours = seed_crop = seed_colours = None
    for name in args.workload or sorted(WORKLOADS):
        before, frame = frames(name, args.frame)
        crop = changed_crop(before, frame)
        for kind, pixels in (("whole", frame), ("changed", crop)):
            keys = colours(np.ascontiguousarray(pixels)).reshape(-1)
            distinct = np.unique(keys[keys >= SHOWN_OPAQUE])
            if len(distinct) <= 255:
                choices: dict[str, dict[str, int]] = {"exact": {}}
            else:
                choices = WARD_CHOICES if len(distinct) <= quantizer.WARD_UP_TO else OCTREE_CHOICES
            for how, settings in choices.items():
                db, ms = _measured(pixels, settings, args.repeat)
                print(
                    f"{name:6s} frame {args.frame + 1} {kind:7s} {pixels.shape[1]}x{pixels.shape[0]}: "
                    f"{len(distinct):6d} colours, {how:22s} {db:6.2f} dB, {ms:7.1f} ms"
                )
            if name == "lines" and kind == "changed":
                lines_colours = distinct
            if name == "seed" and kind == "changed":
                seed_crop, seed_colours = pixels, distinct
    if lines_colours is not None:
        rgb = lines_colours.view(np.uint8).reshape(-1, 4)[:, :3].astype(np.float64)
        rgb -= rgb.mean(axis=0)
        weight = np.ones(len(rgb))
        rows = np.arange(len(rgb))
        for at_once in (16, 64, 256):
            with quantizer_constants(ROWS_AT_ONCE=at_once):
                ms = timed(args.repeat * 4, lambda: quantizer._cheapest_partners(rgb, weight, rows))
            print(f"Ward's cost matrix, {len(rgb)} colours, {at_once:3d} rows at once: {ms:6.2f} ms")
    if seed_crop is not None and seed_colours is not None:
        rgb = seed_colours.view(np.uint8).reshape(-1, 4)[:, :3].astype(np.float32)
        table, _ = quantizer.quantize_frame(seed_crop, 256, True)
        palette = table[1:].view(np.uint8).reshape(-1, 4)[:, :3].astype(np.float32)
        for at_once in (256, 1024, 4096):
            with quantizer_constants(NEAREST_ROWS_AT_ONCE=at_once):
                ms = timed(args.repeat * 4, lambda: quantizer.nearest(rgb, palette))
            print(
                f"nearest, seed's {len(rgb)} changed colours to {len(palette)} entries, {at_once:4d} rows: {ms:5.2f} ms"
            )


if __name__ == "__main__":
    main()
