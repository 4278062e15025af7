"""Quality of an output GIF against the source frames: PSNR (mean, min) and total play time.

The reference is the raw RGBA stream matplotlib produced (dumped once per workload and size), composited
on white. The GIF is decoded with Pillow, frame by frame in order, so disposal and transparency are
honoured (Pillow composites each frame onto the previous canvas). Long animations are evaluated on a
strided subset of frames; every frame is still decoded, since a GIF frame depends on the ones before it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageSequence

PSNR_CAP = 100.0  # identical frames: report 100 dB rather than infinity (JSON has no inf)


@dataclass
class Quality:
    """PSNR over the evaluated frames and play time from the decoded frame delays."""

    psnr_mean: float | None
    psnr_min: float | None
    frames_evaluated: int
    stride: int
    frames_decoded: int
    frame_mapping: str
    play_s: float
    expected_play_s: float
    # Flicker: pixels equal in source frames k-1 and k whose decoded GIF pixel changes from k-1 to k, summed over
    # every frame (None when GIF frames do not match source frames one to one), and the most in one frame.
    static_changed: int | None = None
    static_changed_max: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def source_frames(raw: Path, size: tuple[int, int]) -> np.ndarray:
    """The raw RGBA stream as a read-only (frames, height, width, 4) uint8 memmap."""
    width, height = size
    data = np.memmap(raw, dtype=np.uint8, mode="r")
    return data.reshape(-1, height, width, 4)


def on_white(rgba: np.ndarray) -> np.ndarray:
    """Composite RGBA (uint8) over white, as float RGB in 0..255."""
    rgb = rgba[..., :3].astype(np.float32)
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    return rgb * alpha + 255.0 * (1.0 - alpha)


def psnr(reference: np.ndarray, decoded: np.ndarray) -> float:
    """PSNR in dB between two RGB arrays on the 0..255 scale (capped at PSNR_CAP)."""
    mse = float(np.mean((reference - decoded.astype(np.float32)) ** 2))
    return PSNR_CAP if mse == 0 else min(PSNR_CAP, 10.0 * math.log10(255.0**2 / mse))


def default_stride(n_frames: int, max_evaluated: int = 300) -> int:
    """Evaluate every frame up to ``max_evaluated`` frames, else every k-th frame."""
    return max(1, math.ceil(n_frames / max_evaluated))


def evaluate(gif: Path, raw: Path, size: tuple[int, int], fps: int, stride: int | None = None) -> Quality:
    """Decode ``gif`` and compare it to the source frames in ``raw``.

    Frames are matched by index when the GIF has as many frames as the source; otherwise (an encoder that
    merged or dropped frames) by position in time, each decoded frame standing for the source frames it
    covers proportionally.
    """
    source = source_frames(raw, size)
    n_source = source.shape[0]
    stride = stride or default_stride(n_source)
    durations: list[int] = []
    with Image.open(gif) as image:
        n_decoded = getattr(image, "n_frames", 1)
        by_index = n_decoded == n_source
        wanted: dict[int, list[int]] = {}
        for k in range(0, n_source, stride):
            d = k if by_index else min(n_decoded - 1, (k * n_decoded) // n_source)
            wanted.setdefault(d, []).append(k)
        scores: list[float] = []
        flicker: list[int] = []
        previous: np.ndarray | None = None
        for d, frame in enumerate(ImageSequence.Iterator(image)):
            durations.append(int(frame.info.get("duration", 0)))
            rgb = np.asarray(frame.convert("RGB")) if (d in wanted or by_index) else None
            if d in wanted:
                scores.extend(psnr(on_white(source[k]), rgb) for k in wanted[d])
            if by_index and rgb is not None:
                if previous is not None:
                    flicker.append(static_changes(source[d - 1], source[d], previous, rgb))
                previous = rgb
    return Quality(
        psnr_mean=float(np.mean(scores)) if scores else None,
        psnr_min=float(np.min(scores)) if scores else None,
        frames_evaluated=len(scores),
        stride=stride,
        frames_decoded=len(durations),
        frame_mapping="index" if by_index else "time-proportional",
        play_s=sum(durations) / 1000.0,
        expected_play_s=n_source / fps,
        static_changed=int(sum(flicker)) if by_index else None,
        static_changed_max=max(flicker, default=0) if by_index else None,
    )


def static_changes(src_before: np.ndarray, src_now: np.ndarray, gif_before: np.ndarray, gif_now: np.ndarray) -> int:
    """Pixels the source leaves unchanged from one frame to the next that change in the GIF: flicker."""
    static = (src_before == src_now).all(axis=2)
    moved = (gif_before != gif_now).any(axis=2)
    return int((static & moved).sum())
