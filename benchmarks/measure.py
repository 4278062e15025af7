"""Run one command and measure it: wall time, peak memory of its whole process tree, CPU time, exit status.

Memory is sampled every ``interval`` seconds over the process and all its descendants (psutil), summed: a
pipe writer's cost is python + convert/ffmpeg together. Summed RSS counts a page shared by two processes
(the libraries a child interpreter maps, as the parent does) once in each; PSS splits such a page among
every process that maps it, so summed PSS counts the tree's shared pages once, and a little less than that
where a process outside it (this harness's Python) maps them too: compare it between cases, not with RSS.
Both are kept; PSS is read once a second (PSS_INTERVAL), as reading it costs the measured process. The
kernel's ru_maxrss is not used: Linux carries the forking parent's RSS high-water mark across fork+exec, so
it would charge the harness's own memory to every case.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

MIB = 1024 * 1024  # peak_rss_mb and peak_pss_mb are in MiB (the JSON keys predate the name)


@dataclass
class Measurement:
    """What one run cost. ``timed_out`` runs were killed (with their process group)."""

    returncode: int
    process_s: float
    peak_rss_mb: float
    peak_pss_mb: float
    cpu_s: float
    samples: int
    timed_out: bool
    stderr_tail: str


#: Seconds between PSS samples. Reading PSS (smaps_rollup) walks every page of a process under its memory-map
#: lock: 12.9 ms for a 2 GB process against 0.01 ms for RSS (a reviewer's timing), and read every 50 ms it
#: stretched the sampling of the 7-9 GB encoders to 72-81 ms and took CPU from them on a 2-core machine.
PSS_INTERVAL = 1.0


def _tree_memory(root: psutil.Process, with_pss: bool) -> tuple[int, int | None]:
    """Sums of RSS and (`with_pss`) of PSS over ``root`` and its live descendants; processes vanishing mid-scan
    count as 0."""
    rss, pss = 0, 0 if with_pss else None
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0, pss
    for proc in procs:
        try:
            memory = proc.memory_full_info() if with_pss else proc.memory_info()
        except psutil.Error:
            continue
        rss += memory.rss
        if pss is not None:
            pss += memory.pss
    return rss, pss


def run_measured(
    argv: list[str],
    *,
    env: dict[str, str],
    stdin: Path | None = None,
    log: Path,
    timeout: float,
    interval: float = 0.05,
    cwd: Path | None = None,
) -> Measurement:
    """Run ``argv`` (stdin from a file if given, output to ``log``) in its own session and sample it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out, open(stdin, "rb") if stdin else open(os.devnull, "rb") as inp:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv, stdin=inp, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
        root = psutil.Process(proc.pid)
        peak_rss = peak_pss = samples = 0
        timed_out = False
        next_pss = start
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            with_pss = time.perf_counter() >= next_pss
            rss, pss = _tree_memory(root, with_pss)
            peak_rss = max(peak_rss, rss)
            if pss is not None:
                peak_pss, next_pss = max(peak_pss, pss), time.perf_counter() + PSS_INTERVAL
            samples += 1
            if not timed_out and time.perf_counter() - start > timeout:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)  # our child's own group (start_new_session)
            time.sleep(interval)
        elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    tail = log.read_bytes()[-3000:].decode("utf-8", "replace")
    return Measurement(
        returncode=proc.returncode,
        process_s=elapsed,
        peak_rss_mb=peak_rss / MIB,
        peak_pss_mb=peak_pss / MIB,
        cpu_s=usage.ru_utime + usage.ru_stime,
        samples=samples,
        timed_out=timed_out,
        stderr_tail=tail,
    )
