"""Each `grab_frame` of a save with writer='magicktune', beside the floor's: where a save waits on its encoder.

    python -m benchmarks.frame_times [--workload lines] [--frames 60] [--starting-frames 8]

Prints the first frames' times and the worst one's excess over the median. `--starting-frames` sets
encoder.STARTING_FRAMES: 0 gives what came before it, 2 frames a worker in flight from the first frame on.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import matplotlib

matplotlib.use("Agg")

from benchmarks.child import FloorWriter  # noqa: E402
from benchmarks.workloads import WORKLOADS  # noqa: E402
from magicktune import encoder  # noqa: E402
from magicktune.writers import MagickTuneWriter  # noqa: E402

SHOWN = 12


def grab_times(workload: str, frames: int, writer: Any) -> list[float]:
    """Seconds each grab_frame took in one `ani.save` of `frames` frames of `workload` with `writer`."""
    times: list[float] = []
    grab = writer.grab_frame

    def timed(**savefig_kwargs: Any) -> None:
        started = time.perf_counter()
        try:
            grab(**savefig_kwargs)
        finally:
            times.append(time.perf_counter() - started)

    writer.grab_frame = timed
    WORKLOADS[workload].build(frames).save(os.devnull, writer=writer)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="lines", choices=sorted(WORKLOADS))
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--starting-frames", type=int, default=encoder.STARTING_FRAMES)
    args = parser.parse_args(argv)
    saved, encoder.STARTING_FRAMES = encoder.STARTING_FRAMES, args.starting_frames
    try:
        for label, writer in (("floor", FloorWriter(fps=30)), ("magicktune", MagickTuneWriter(fps=30))):
            times = grab_times(args.workload, args.frames, writer)
            median = statistics.median(times)
            first = " ".join(f"{1000 * t:.0f}" for t in times[:SHOWN])
            print(
                f"{label:10s} ms: {first} | median {1000 * median:.1f}, worst {1000 * max(times):.0f} "
                f"(frame {times.index(max(times)) + 1}), total {sum(times):.2f} s"
            )
    finally:
        encoder.STARTING_FRAMES = saved


if __name__ == "__main__":
    main()
