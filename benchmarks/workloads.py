"""The animations being saved: ``seed`` (the Stack Overflow question's scatter) and ``field`` (a smooth imshow).

Each frame is a pure function of its index, so every case (and the raw dump used as the PSNR reference)
renders bit-identical frames, however often matplotlib calls the update function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

FPS = 30


@dataclass(frozen=True)
class Workload:
    """A named animation: its pixel size (width, height), frame rate and a builder."""

    name: str
    size: tuple[int, int]
    fps: int
    description: str
    build: Callable[[int], Any]  # n_frames -> matplotlib FuncAnimation (imports pyplot lazily)


def _seed_animation(n_frames: int) -> Any:
    """6x10 in at 72 dpi, 5000 translucent points converging to a ring with small per-frame noise."""
    import matplotlib.pyplot as plt
    from matplotlib import animation

    rng = np.random.default_rng(20150927)
    n = 5000
    start = np.column_stack([rng.uniform(-1.2, 1.2, n), rng.uniform(-1.0, 3.0, n)])
    theta = rng.uniform(0.0, 2.0 * np.pi, n)
    target = np.column_stack([0.8 * np.cos(theta), 1.0 + 0.8 * np.sin(theta)])
    colors = np.where(rng.random(n) > 0.5, "blue", "red")
    decay = 0.05 ** (1.0 / max(n_frames, 1))  # 5% of the start offset is left at the last frame

    fig = plt.figure(figsize=(6, 10), dpi=72)
    plt.axis("equal")
    plt.xlim(-1.2, 1.2)
    plt.ylim(-1, 3)
    scat = plt.scatter(start[:, 0], start[:, 1], s=4, color=colors, marker="o", alpha=0.25)

    def update(i: int) -> tuple[Any, ...]:
        noise = np.random.default_rng(i).normal(0.0, 0.004, (n, 2))
        scat.set_offsets(target + (start - target) * decay**i + noise)
        return (scat,)

    return animation.FuncAnimation(fig, update, frames=n_frames, blit=True)


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
