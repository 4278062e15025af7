"""What several test modules need to read back a GIF: its composited frames, and how close they are."""

from __future__ import annotations

import numpy as np
from PIL import Image as PILImage
from PIL import ImageSequence


def decode(path):
    """Composited RGBA frames (Pillow honours disposal), their durations in ms, and the GIF's info (loop, comment)."""
    image = PILImage.open(path)
    frames, durations = [], []
    for frame in ImageSequence.Iterator(image):
        frames.append(np.asarray(frame.convert("RGBA")))
        durations.append(frame.info["duration"])
    return frames, durations, image.info


def psnr(a, b):
    """PSNR in dB of two uint8 arrays; 99 when they are equal."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)
