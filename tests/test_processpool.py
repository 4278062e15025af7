"""writer="magicktune" compresses in child processes (magicktune.processpool): the same GIF as threads give, errors
raised as a thread would raise them, and no child left behind on any exit."""

from __future__ import annotations

import ctypes.util
import os
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
from helpers import decode, wait_for, workers_of
from test_encoder import H, W, encode, leftovers, scene

import magicktune.encoder as encoder_module
from magicktune import processpool
from magicktune.encoder import EncodeError, GifEncoder
from magicktune.processpool import ProcessPool, _found_as

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def translucent(frames):
    for k, frame in enumerate(frames):
        if k % 3 == 1:
            frame[:8, :, 3] = 0
    return frames


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"optimize": False},
        {"global_palette": True},
        {"dither": "floyd-steinberg"},
        {"quantizer": "imagemagick"},
        {"quality": 60},
        {"workers": 2},
    ],
)
def test_processes_write_the_gif_threads_write(tmp_path, options):
    options = {"workers": 1, **options}
    frames = scene(24)
    encode(tmp_path / "threads.gif", frames, **options)
    with GifEncoder(tmp_path / "processes.gif", (W, H), 30, processes=True, **options) as encoder:
        for frame in frames:
            encoder.add_frame(frame)
        assert workers_of(), "no worker process"
    if options["workers"] == 1:
        assert (tmp_path / "processes.gif").read_bytes() == (tmp_path / "threads.gif").read_bytes()
    else:  # threads share what the GIF shows, children each know what they wrote: other bytes, the same frames
        got, expected = decode(tmp_path / "processes.gif")[0], decode(tmp_path / "threads.gif")[0]
        assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))


def test_processes_write_transparent_frames_as_threads_do(tmp_path):
    frames = translucent(scene(12))
    encode(tmp_path / "threads.gif", frames, workers=1)
    encode(tmp_path / "processes.gif", frames, processes=True, workers=1)
    assert (tmp_path / "processes.gif").read_bytes() == (tmp_path / "threads.gif").read_bytes()


def test_the_workers_run_while_encoding_and_are_gone_after_close(tmp_path):
    with GifEncoder(tmp_path / "out.gif", (W, H), 30, processes=True, workers=2) as encoder:
        for frame in scene(6):
            encoder.add_frame(frame)
        assert len(workers_of()) == 2
    assert workers_of() == []
    assert leftovers(tmp_path) == ["out.gif"]


def test_an_interrupted_encode_leaves_no_worker_and_no_file(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with GifEncoder(tmp_path / "out.gif", (W, H), 30, processes=True) as encoder:
            for k, frame in enumerate(scene(20)):
                if k == 12:
                    raise KeyboardInterrupt
                encoder.add_frame(frame)
    assert workers_of() == []
    assert leftovers(tmp_path) == []


def test_a_worker_ignores_ctrl_c_which_the_terminal_sends_to_the_whole_group():
    pool = ProcessPool(np.reshape, 1, 1)
    try:
        assert pool.submit(0, np.arange(8, dtype=np.uint8), (2, 4)).result(timeout=60).shape == (2, 4)  # started
        (worker,) = workers_of()
        worker.send_signal(signal.SIGINT)
        assert pool.submit(0, np.arange(8, dtype=np.uint8), (4, 2)).result(timeout=60).shape == (4, 2)
        assert worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE
    finally:
        pool.shutdown()
    assert workers_of() == []


def magick_libraries(process):
    """The files of ImageMagick's libraries `process` has mapped."""
    return sorted({m.path for m in process.memory_maps() if "libMagick" in os.path.basename(m.path)})


def test_a_worker_loads_the_imagemagick_libraries_this_process_loaded():
    pool = ProcessPool(np.reshape, 1, 1)
    try:
        assert pool.submit(0, np.arange(8, dtype=np.uint8), (2, 4)).result(timeout=60).shape == (2, 4)
        import wand.image  # noqa: F401  # the worker has imported wand by its first job

        (worker,) = workers_of()
        assert magick_libraries(worker) == magick_libraries(psutil.Process()) != []
    finally:
        pool.shutdown()


def test_a_worker_given_libraries_it_cannot_load_searches_as_wand_does(monkeypatch):
    """A relative MAGICK_HOME path, say, that the child cannot load: it finds ImageMagick itself and works."""
    missing = {"MagickWand": "libMagickWand-missing.so", "MagickCore": "libMagickCore-missing.so"}
    monkeypatch.setattr(processpool, "_magick_libraries", lambda: missing)
    pool = ProcessPool(np.reshape, 1, 1)
    try:
        assert pool.submit(0, np.arange(8, dtype=np.uint8), (2, 4)).result(timeout=60).shape == (2, 4)
        (worker,) = workers_of()
        assert magick_libraries(worker) == magick_libraries(psutil.Process())
    finally:
        pool.shutdown()


def test_a_worker_finds_the_parents_libraries_by_any_suffix_and_others_as_ctypes_does():
    search = ctypes.util.find_library
    with _found_as({"MagickWand": "libMagickWand-test.so", "MagickCore": "libMagickCore-test.so"}):
        assert ctypes.util.find_library("MagickWand-7.Q16HDRI") == "libMagickWand-test.so"
        assert ctypes.util.find_library("MagickCore") == "libMagickCore-test.so"
        assert ctypes.util.find_library("c") == search("c")
    assert ctypes.util.find_library is search


def test_a_module_in_the_working_directory_does_not_shadow_the_workers_standard_library(tmp_path, monkeypatch):
    """The child runs `python -I -c ...` with this process's sys.path: a queue.py where the user works used to
    break every save in processes and none in threads."""
    (tmp_path / "queue.py").write_text("raise ImportError('queue.py in the working directory')\n")
    (tmp_path / "signal.py").write_text("raise ImportError('signal.py in the working directory')\n")
    monkeypatch.chdir(tmp_path)
    encode(tmp_path / "out.gif", scene(6), processes=True)
    assert leftovers(tmp_path) == ["out.gif", "queue.py", "signal.py"]


def test_without_an_interpreter_to_start_the_encoder_warns_and_uses_threads(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    with pytest.warns(RuntimeWarning, match="compressing in threads of this process: a frozen application"):
        with GifEncoder(tmp_path / "out.gif", (W, H), 30, processes=True) as encoder:
            for frame in scene(6):
                encoder.add_frame(frame)
            assert workers_of() == []
    assert leftovers(tmp_path) == ["out.gif"]


def test_a_timeout_raised_by_the_work_itself_is_reported_as_its_error(tmp_path, monkeypatch):
    def times_out(*args):
        raise TimeoutError("the work's own timeout")

    monkeypatch.setattr(encoder_module, "compress", times_out)
    with pytest.raises(EncodeError, match=r"frame 0 failed: TimeoutError: the work's own timeout"):
        encode(tmp_path / "out.gif", scene(3))
    assert leftovers(tmp_path) == []


def test_an_error_in_a_worker_is_raised_as_a_thread_would_raise_it():
    pool = ProcessPool(np.reshape, 1, 1)
    try:
        future = pool.submit(0, np.zeros((2, 2, 4), np.uint8), (7,))
        with pytest.raises(ValueError, match="cannot reshape array of size 16 into shape"):
            future.result(timeout=60)
        assert pool.submit(0, np.arange(8, dtype=np.uint8), (2, 4)).result(timeout=60).shape == (2, 4)
    finally:
        pool.shutdown()
    assert workers_of() == []


def test_a_killed_worker_fails_the_encode_saying_so_and_leaves_nothing(tmp_path):
    encoder = GifEncoder(tmp_path / "out.gif", (W, H), 30, processes=True, workers=1)
    frames = scene(40)
    with pytest.raises(EncodeError, match=r"worker process ended \(signal 9.*pass processes=False"):
        for k, frame in enumerate(frames):
            if k == 3:
                (worker,) = workers_of()
                worker.kill()  # not worker.wait(): psutil would reap the child and take its exit status
                wait_for(lambda w=worker: not w.is_running() or w.status() == psutil.STATUS_ZOMBIE, what="the kill")
            encoder.add_frame(frame)
        encoder.close()
    assert workers_of() == []
    assert leftovers(tmp_path) == []


def test_a_worker_that_cannot_start_is_a_clear_error(tmp_path, monkeypatch):
    """A child interpreter that fails on import (here: a sys.path entry that shadows numpy) is reported with what
    it printed, and the encode leaves nothing."""
    shadow = tmp_path / "shadow"
    (shadow / "numpy").mkdir(parents=True)
    (shadow / "numpy" / "__init__.py").write_text("raise ImportError('numpy shadowed for the test')\n")
    monkeypatch.syspath_prepend(str(shadow))  # the child is given this process's sys.path
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(
        EncodeError,
        match=r"frame 0 failed: the encoder's worker process ended \(exit status 1\): ImportError: numpy shadowed",
    ):
        encode(out / "x.gif", scene(10), processes=True)
    assert workers_of() == []
    assert leftovers(out) == []


SAVE = """
import sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.animation import FuncAnimation
import magicktune

fig = plt.figure(figsize=(0.64, 0.48), dpi=100)
def update(i):
    fig.set_facecolor((i % 7 / 7, 0.5, 0.5))
ani = FuncAnimation(fig, update, frames=100000, cache_frame_data=False)
ani.save("out.gif", writer="magicktune", fps=10)
"""


def test_ctrl_c_to_the_terminals_process_group_ends_a_save_cleanly(tmp_path):
    """Ctrl-C reaches the worker as well as the save: the worker ignores it (no second traceback), the save aborts,
    and neither the worker nor a partial file is left."""
    script = tmp_path.parent / f"{tmp_path.name}-save.py"
    script.write_text(SAVE)
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ROOT},
        start_new_session=True,  # a process group of its own, as a terminal gives a job
    )
    try:
        (worker,) = wait_for(lambda: workers_of(process.pid), what="the save's worker process")
        wait_for(lambda: os.listdir(tmp_path), what="the partial file")
        time.sleep(0.5)
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        worker.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
    assert "KeyboardInterrupt" in stderr and stderr.count("Traceback") == 1, stderr
    assert os.listdir(tmp_path) == []


def test_a_frame_that_takes_too_long_stops_the_encode_and_its_worker(tmp_path, monkeypatch):
    monkeypatch.setattr(encoder_module, "WORKER_PROCESS_TIMEOUT", 0.001)
    big = np.random.default_rng(0).integers(0, 256, (600, 800, 4), np.uint8)  # some 0.1 s to quantize
    big[..., 3] = 255
    with pytest.raises(EncodeError, match=r"frame 0 took more than 0.001 s in a worker process"):
        encode(tmp_path / "out.gif", [big, big[::-1].copy()], processes=True, workers=1)
    assert workers_of() == []
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("failing", [1, 2])
def test_a_thread_that_cannot_start_leaves_no_worker_and_no_open_pipe(monkeypatch, failing):
    """Python raises RuntimeError ("can't start new thread") when the process is out of threads: the child and
    every pipe end go, whichever of the feeder (1) and reader (2) failed."""
    import threading

    real_start = threading.Thread.start
    calls = []

    def start(thread):
        calls.append(thread.name)
        if len(calls) == failing:
            raise RuntimeError("can't start new thread")
        real_start(thread)

    before = sorted(os.listdir("/proc/self/fd"))
    monkeypatch.setattr(threading.Thread, "start", start)
    with pytest.raises(RuntimeError, match="can't start new thread"):
        ProcessPool(np.reshape, 1, 1)
    monkeypatch.undo()
    assert workers_of() == []
    assert sorted(os.listdir("/proc/self/fd")) == before
