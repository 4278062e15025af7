"""Whether ImageMagick's quantizer depends on pixel order: PSNR of the test frame (tests/test_encoder.py's
soft_dots) at 256 colours, depth 5, quantized as laid out, through map_colours, as sorted runs, and shuffled.

    python -m benchmarks.quantize_order     # from the repo root; IM6 6.9.11: 46.46 dB for all four
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from wand.version import MAGICK_VERSION

from magicktune import palette

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import psnr  # noqa: E402
from test_encoder import laid_out, soft_dots  # noqa: E402


def _mapped(frame: np.ndarray) -> np.ndarray:
    table, indexes = palette.map_colours(frame, 256, 5)
    return table.view(np.uint8).reshape(-1, 4)[indexes]


def main() -> None:
    frame = soft_dots()
    own = laid_out(frame, lambda image: palette.quantize(image, 256, "none", 5))
    ours = _mapped(frame)
    version = palette.MAGICK_VERSION_NUMBER
    palette.MAGICK_VERSION_NUMBER = 0x6FF  # the sorted-runs path IM6 takes
    try:
        sorted_runs = _mapped(frame)
    finally:
        palette.MAGICK_VERSION_NUMBER = version
    order = np.random.default_rng(0).permutation(frame.shape[0] * frame.shape[1])
    shuffled = laid_out(
        frame.reshape(-1, 4)[order].reshape(frame.shape), lambda image: palette.quantize(image, 256, "none", 5)
    )
    unshuffled = np.empty_like(shuffled.reshape(-1, 4))
    unshuffled[order] = shuffled.reshape(-1, 4)
    print(MAGICK_VERSION)
    for name, got in (
        ("laid out (ImageMagick)", own),
        ("map_colours", ours),
        ("sorted runs", sorted_runs),
        ("shuffled", unshuffled.reshape(frame.shape)),
    ):
        print(f"{name:24s} {psnr(got, frame):.2f} dB")


if __name__ == "__main__":
    main()
