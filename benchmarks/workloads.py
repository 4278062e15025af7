"""The animations being saved: ``seed`` (the Stack Overflow question's scatter), ``field`` (a smooth imshow),
``lines`` (a line plot with legend, grid and a changing title) and ``photo`` (a photograph panned and zoomed).

Each frame is a pure function of its index, so every case (and the raw dump used as the PSNR reference)
renders bit-identical frames, however often matplotlib calls the update function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


def _drifting_field(rows: int, columns: int) -> Callable[[int], np.ndarray]:
    """Frame i's values of a smooth field on a rows x columns grid, its phase drifting one cycle per 300 frames."""
    y, x = np.mgrid[0 : 1 : rows * 1j, 0 : 1 : columns * 1j]

    def field(i: int) -> np.ndarray:
        t = 2.0 * np.pi * i / 300.0  # one drift cycle per 300 frames, whatever the length
        return (
            np.sin(2 * np.pi * (1.3 * x + 0.3 * np.cos(t))) * np.cos(2 * np.pi * (1.1 * y - 0.2 * np.sin(t)))
            + 0.6 * np.sin(2 * np.pi * (x + 0.7 * y) + t)
            + 0.4 * np.cos(2 * np.pi * 2.2 * np.hypot(x - 0.5, y - 0.5) - t)
        )

    return field


def _field_animation(n_frames: int) -> Any:
    """640x480 full-bleed viridis imshow of a smooth field whose phase drifts every frame."""
    import matplotlib.pyplot as plt
    from matplotlib import animation

    field = _drifting_field(240, 320)
    fig = plt.figure(figsize=(6.4, 4.8), dpi=100)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    image = ax.imshow(field(0), cmap="viridis", vmin=-2.0, vmax=2.0, interpolation="bilinear", aspect="auto")

    def update(i: int) -> tuple[Any, ...]:
        image.set_data(field(i))
        return (image,)

    return animation.FuncAnimation(fig, update, frames=n_frames, blit=True)


def _heatmap_animation(n_frames: int) -> Any:
    """640x480 figure: the drifting field on a 200x200 grid in axes with ticks, a colorbar and a title (the figure
    issue 11 measured blitting on: only the image is animated)."""
    import matplotlib.pyplot as plt
    from matplotlib import animation

    field = _drifting_field(200, 200)
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    image = ax.imshow(field(0), cmap="viridis", vmin=-2.0, vmax=2.0)
    fig.colorbar(image, ax=ax, label="value")
    ax.set_title("a drifting field, 200 x 200")

    def update(i: int) -> tuple[Any, ...]:
        image.set_data(field(i))
        return (image,)

    return animation.FuncAnimation(fig, update, frames=n_frames, blit=True)


def _lines_animation(n_frames: int) -> Any:
    """800x600 line plot: three sine waves travelling, a legend, a grid and a title that changes every frame."""
    import matplotlib.pyplot as plt
    from matplotlib import animation

    x = np.linspace(0.0, 4.0 * np.pi, 400)
    fig, ax = plt.subplots(figsize=(8, 6), dpi=100)
    lines = [ax.plot(x, np.sin(x + k), label=f"phase {k}")[0] for k in range(3)]
    ax.set_xlim(0.0, 4.0 * np.pi)
    ax.set_ylim(-1.6, 1.6)
    ax.grid(True)
    ax.legend(loc="upper right")
    ax.set_xlabel("x")
    ax.set_ylabel("amplitude")
    title = ax.set_title("t = 0.000 s")

    def update(i: int) -> tuple[Any, ...]:
        t = i / FPS
        for k, line in enumerate(lines):
            line.set_ydata((1.0 + 0.3 * k) * np.sin(x - 2.0 * t + k) * np.exp(-0.05 * x))
        title.set_text(f"t = {t:.3f} s")
        return (*lines, title)

    return animation.FuncAnimation(fig, update, frames=n_frames, blit=True)


def _photo_animation(n_frames: int) -> Any:
    """640x480 full-bleed imshow of matplotlib's sample photograph, panned and slowly zoomed: many colours."""
    import matplotlib.pyplot as plt
    from matplotlib import animation, cbook

    with cbook.get_sample_data("grace_hopper.jpg") as stream:
        photo = plt.imread(stream)
    height, width = photo.shape[:2]
    fig = plt.figure(figsize=(6.4, 4.8), dpi=100)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    ax.imshow(photo, interpolation="bilinear", aspect="auto")

    def view(i: int) -> None:
        s = i / 300.0  # one pan-and-zoom cycle per 300 frames, whatever the length
        zoom = 1.0 + 0.6 * (0.5 - 0.5 * np.cos(2.0 * np.pi * s))
        span_x, span_y = width / zoom, height / zoom
        cx = width / 2 + 0.5 * (width - span_x) * np.sin(2.0 * np.pi * s)
        cy = height / 2 + 0.5 * (height - span_y) * np.sin(4.0 * np.pi * s)
        ax.set_xlim(cx - span_x / 2, cx + span_x / 2)
        ax.set_ylim(cy + span_y / 2, cy - span_y / 2)

    view(0)

    def update(i: int) -> tuple[Any, ...]:
        view(i)
        return ()

    return animation.FuncAnimation(fig, update, frames=n_frames)


WORKLOADS: dict[str, Workload] = {
    "seed": Workload(
        "seed",
        (432, 720),
        FPS,
        "6x10 in @72 dpi, axis equal, scatter of 5000 points (s=4, alpha=0.25) converging to a ring",
        _seed_animation,
    ),
    "field": Workload(
        "field",
        (640, 480),
        FPS,
        "640x480 viridis imshow of a smooth drifting 2D field (palette-heavy)",
        _field_animation,
    ),
    "heatmap": Workload(
        "heatmap",
        (640, 480),
        FPS,
        "640x480 imshow of the field on a 200x200 grid, with axes, a colorbar and a title",
        _heatmap_animation,
    ),
    "lines": Workload(
        "lines",
        (800, 600),
        FPS,
        "800x600 line plot: three travelling waves, legend, grid, a title that changes every frame",
        _lines_animation,
    ),
    "photo": Workload(
        "photo",
        (640, 480),
        FPS,
        "640x480 imshow of matplotlib's sample photograph, panned and zoomed (many colours)",
        _photo_animation,
    ),
}
