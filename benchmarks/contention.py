"""One frame's palette and LZW (`encoder.compress` on the changed crop) alone and beside a thread that spins in
Python, as matplotlib's drawing does during a save: what the GIL costs the encoder.

    python -m benchmarks.contention [--workload lines ...] [--repeat 6]

Each row is the median (and range) over `--repeat` runs at a few Ward and `nearest` slice sizes, alternated so
the machine's drift falls on every setting alike; the switch interval is the encoder's (encoder.SWITCH_INTERVAL).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time

from benchmarks.hotspots import frames
from benchmarks.quantizer_frames import changed_crop, quantizer_constants
from benchmarks.workloads import WORKLOADS
from magicktune.encoder import SWITCH_INTERVAL, compress

#: (ROWS_AT_ONCE, NEAREST_ROWS_AT_ONCE) pairs: fewer, larger numpy calls down the list.
SLICES = ((64, 1024), (256, 1024), (512, 4096), (2048, 4096))


def _spin(stop: threading.Event) -> None:
    while not stop.is_set():
        for _ in range(1000):
            pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", action="append", choices=sorted(WORKLOADS))
    parser.add_argument("--frame", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=6)
    args = parser.parse_args(argv)
    saved_interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        for name in args.workload or ["field", "lines", "seed"]:
            before, frame = frames(name, args.frame)
            crop = changed_crop(before, frame)
            alone: dict[int, list[float]] = {i: [] for i in range(len(SLICES))}
            beside: dict[int, list[float]] = {i: [] for i in range(len(SLICES))}
            for _ in range(args.repeat):
                for i, (rows, nearest_rows) in enumerate(SLICES):
                    with quantizer_constants(ROWS_AT_ONCE=rows, NEAREST_ROWS_AT_ONCE=nearest_rows):
                        start = time.perf_counter()
                        compress(crop, 256, "none", None, 5, True, "magicktune")
                        alone[i].append((time.perf_counter() - start) * 1000)
                        stop = threading.Event()
                        spinner = threading.Thread(target=_spin, args=(stop,))
                        spinner.start()
                        try:
                            start = time.perf_counter()
                            compress(crop, 256, "none", None, 5, True, "magicktune")
                            beside[i].append((time.perf_counter() - start) * 1000)
                        finally:
                            stop.set()
                            spinner.join()
            for i, (rows, nearest_rows) in enumerate(SLICES):
                print(
                    f"{name:6s} Ward rows {rows:4d}, nearest rows {nearest_rows:4d}: alone {statistics.median(alone[i]):6.1f} ms,"
                    f" beside Python {statistics.median(beside[i]):6.1f} ms ({min(beside[i]):.1f}-{max(beside[i]):.1f})"
                )
    finally:
        sys.setswitchinterval(saved_interval)


if __name__ == "__main__":
    main()
