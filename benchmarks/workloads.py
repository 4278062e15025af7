"""The animations being saved: ``seed`` (the Stack Overflow question's scatter) and ``field`` (a smooth imshow).

Each frame is a pure function of its index, so every case (and the raw dump used as the PSNR reference)
renders bit-identical frames, however often matplotlib calls the update function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from magicktune.demo import seed_animation as _seed_animation

FPS = 30


@dataclass(frozen=True)
class Workload:
    """A named animation: its pixel size (width, height), frame rate and a builder."""

    name: str
    size: tuple[int, int]
    fps: int
    description: str
    build: Callable[[int], Any]  # n_frames -> matplotlib FuncAnimation (imports pyplot lazily)


def _field_animation(n_frames: int) -> Any:
    """640x480 full-bleed viridis imshow of a smooth field whose phase drifts every frame."""
    import matplotlib.pyplot as plt
    from matplotlib import animation

    y, x = np.mgrid[0:1:240j, 0:1:320j]

    def field(i: int) -> np.ndarray:
        t = 2.0 * np.pi * i / 300.0  # one drift cycle per 300 frames, whatever the length
        return (np.sin(2 * np.pi * (1.3 * x + 0.3 * np.cos(t))) * np.cos(2 * np.pi * (1.1 * y - 0.2 * np.sin(t)))
                + 0.6 * np.sin(2 * np.pi * (x + 0.7 * y) + t) + 0.4 * np.cos(2 * np.pi * 2.2 * np.hypot(x - 0.5, y - 0.5) - t))

    fig = plt.figure(figsize=(6.4, 4.8), dpi=100)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    image = ax.imshow(field(0), cmap="viridis", vmin=-2.0, vmax=2.0, interpolation="bilinear", aspect="auto")

    def update(i: int) -> tuple[Any, ...]:
        image.set_data(field(i))
        return (image,)

    return animation.FuncAnimation(fig, update, frames=n_frames, blit=True)


WORKLOADS: dict[str, Workload] = {
    "seed": Workload("seed", (432, 720), FPS,
                     "6x10 in @72 dpi, axis equal, scatter of 5000 points (s=4, alpha=0.25) converging to a ring",
                     _seed_animation),
    "field": Workload("field", (640, 480), FPS,
                      "640x480 viridis imshow of a smooth drifting 2D field (palette-heavy)",
                      _field_animation),
}
