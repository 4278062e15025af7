"""The `quality` knob on a few frames of each workload: GIF bytes, PSNR mean / min and flicker at each setting,
encoded as `magicktune encode` does (GifEncoder, two threads). The figures quantizer.py and encoder.py quote.

    python -m benchmarks.quality_steps [--frames 60] [--quality 100 --quality 75 ...] [--workload lines ...]

Bytes and PSNR do not depend on the machine's speed; the full benchmark measures the same on every frame.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from benchmarks.hotspots import drawn_frames  # noqa: E402
from benchmarks.quality import evaluate  # noqa: E402
from benchmarks.workloads import WORKLOADS  # noqa: E402
from magicktune.encoder import GifEncoder  # noqa: E402


def measure(frames: np.ndarray, quality: int, scratch: Path, raw: Path) -> str:
    """One encode at `quality`: bytes, PSNR mean / min and flicker, as a line of the report."""
    height, width = frames.shape[1:3]
    gif = scratch / "steps.gif"
    with GifEncoder(gif, (width, height), 30, workers=2, quality=quality) as encoder:
        for frame in frames:
            encoder.add_frame(frame)
    result = evaluate(gif, raw, (width, height), 30)
    return (
        f"q{quality:<4d} {gif.stat().st_size:>12,d} B  {result.psnr_mean:6.2f} / {result.psnr_min:6.2f} dB  "
        f"static pixels that change {result.static_changed}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", action="append", choices=sorted(WORKLOADS))
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--quality", action="append", type=int)
    args = parser.parse_args(argv)
    qualities = args.quality or [100, 90, 70, 50]
    with tempfile.TemporaryDirectory(prefix="magicktune-steps-") as directory:
        scratch = Path(directory)
        for name in args.workload or ["seed", "field", "lines", "photo"]:
            frames = drawn_frames(name, args.frames)
            raw = scratch / f"{name}.raw"
            frames.tofile(raw)
            for quality in qualities:
                print(f"{name} {len(frames)} frames: {measure(frames, quality, scratch, raw)}", flush=True)


if __name__ == "__main__":
    main()
