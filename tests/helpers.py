"""What several test modules need: a GIF read back (its composited frames, how close they are), the encoder's worker
processes, a condition waited for."""

from __future__ import annotations

import time

import numpy as np
import psutil
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


def wait_for(condition, timeout=60.0, what="the condition"):
    """What `condition()` returns once it is truthy, polled every 50 ms for `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def workers_of(pid=None):
    """The encoder's worker processes (magicktune.processpool) under process `pid` (None: this one)."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "from magicktune.processpool import serve" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found
