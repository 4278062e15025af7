"""`make demo`: the job that started magicktune, saved end to end, with its time and memory.

A 6x10 inch scatter of 5000 translucent points converging to a ring (the Stack Overflow question's
animation), saved as an animated GIF at 30 fps with writer='magicktune'.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SEED_FPS = 30


def seed_animation(n_frames: int) -> Any:
    """6x10 in at 72 dpi (432x720), 5000 points (s=4, alpha=0.25, blue or red) converging to a ring with noise.

    Each frame is a pure function of its index, so every writer renders identical frames.
    """
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m magicktune.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000, help="frames to save (default 3000, the question's)")
    parser.add_argument("--output", default="seed.gif", help="the GIF to write (default seed.gif)")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import magicktune
    from magicktune import units

    plan = magicktune.plan(magicktune.Job(432, 720, args.frames, fps=SEED_FPS))
    print(f"{args.frames} frames of 432x720 at {SEED_FPS} fps: {units.human(plan.job.stream_bytes)} of raw RGBA.")
    print(
        f"writer='imagemagick' would need {units.human(plan.cache.peak_bytes)} of {plan.imagemagick} pixel cache"
        + (
            f"; this machine's limits hold about {plan.frames_that_fit_now} frames."
            if plan.frames_that_fit_now is not None
            else "."
        )
    )
    print(f"saving {args.output} with writer='magicktune' ...", flush=True)

    animation = seed_animation(args.frames)
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if sys.stdout.isatty():
            print(f"\r  {done + 1}/{total} frames", end="", flush=True)

    animation.save(args.output, writer="magicktune", fps=SEED_FPS, progress_callback=progress)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    size = Path(args.output).stat().st_size
    print(
        f"\rwrote {args.output}: {units.human(size)} in {seconds:.1f} s "
        f"({args.frames / seconds:.0f} frames/s, rendering included), peak memory {units.human(peak)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
