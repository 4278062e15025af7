"""LZW: a colour table and index image to a GifFrame, compressed by ImageMagick's GIF coder (palette -> container)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .gif import GifFrame, split_gif
from .wandlib import MagickWand


def lzw(table: np.ndarray, indexes: np.ndarray, transparency: int | None) -> GifFrame:
    """LZW-compress an index image with ImageMagick's GIF coder.

    It goes in as a colormapped MIFF (ImageMagick's own format), which the GIF coder writes index for index,
    table entry for table entry, instead of quantizing it again.
    """
    height, width = indexes.shape
    rgb = table.view(np.uint8).reshape(-1, 4)[:, :3]
    header = (
        f"id=ImageMagick\nclass=PseudoClass colors={len(rgb)} matte=False\n"
        f"columns={width} rows={height} depth=8\n\f\n:\x1a"
    ).encode("ascii")
    with MagickWand() as image:
        image.read(header + rgb.tobytes() + np.ascontiguousarray(indexes).tobytes(), "MIFF")
        frame = split_gif(image.blob("GIF"))
    return replace(frame, transparency=transparency)
