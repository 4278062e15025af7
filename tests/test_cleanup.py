"""Nothing is left behind however a write ends (issue 12, items 8, 11 and 15): signals, a second Ctrl-C, a full disk,
a dropped encoder, a killed save, stale files of earlier runs, overlapping limits(), and failures the tuned writer
must explain as what they are."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import wand.resource
from helpers import wait_for, workers_of

import magicktune
from magicktune import atomic, resources
from magicktune.encoder import GifEncoder

ROOT = Path(__file__).parent.parent
SIZE = (64, 48)
FRAME = SIZE[0] * SIZE[1] * 4


def noise(seed=0):
    frame = np.random.default_rng(seed).integers(0, 256, (SIZE[1], SIZE[0], 4), np.uint8)
    frame[..., 3] = 255
    return frame


def partials(directory):
    return [name for name in os.listdir(directory) if ".partial" in name]


def start_encode(tmp_path):
    """`magicktune encode - out.gif` fed a few frames, waiting for more, its partial file on disk."""
    process = subprocess.Popen(
        [sys.executable, "-m", "magicktune.cli", "encode", "--size", "64x48", "--fps", "10", "-", "out.gif"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        # At their default action whatever this run inherited (under nohup SIGHUP is ignored, and the CLI rightly
        # leaves an ignored signal ignored).
        preexec_fn=lambda: [signal.signal(number, signal.SIG_DFL) for number in (signal.SIGTERM, signal.SIGHUP)],
    )
    for seed in range(4):
        process.stdin.write(noise(seed).tobytes())
    process.stdin.flush()
    wait_for(lambda: partials(tmp_path), what="the partial file")
    time.sleep(0.3)
    return process


# --- item 8: signals ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_end_encode_like_ctrl_c(tmp_path, number):
    process = start_encode(tmp_path)
    process.send_signal(number)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + number, stderr
    assert f"terminated by {signal.Signals(number).name}" in stderr.decode()
    assert os.listdir(tmp_path) == []


def test_a_second_ctrl_c_cannot_leave_the_partial(tmp_path):
    """Big frames keep the pool busy, so the first Ctrl-C's abort waits for it: a second one 50 ms later used to
    land there, before the partial file was removed."""
    import threading

    big = np.random.default_rng(0).integers(0, 256, (600, 800, 4), np.uint8)
    big[..., 3] = 255
    data = big.tobytes()
    for attempt in range(3):
        process = subprocess.Popen(
            [sys.executable, "-m", "magicktune.cli", "encode", "--size", "800x600", "--fps", "10", "-", "out.gif"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
        )

        def feed(stdin=process.stdin):
            try:
                while True:
                    stdin.write(data)
            except (BrokenPipeError, ValueError, OSError):
                pass

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        wait_for(lambda: partials(tmp_path), what="the partial file")
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        with contextlib.suppress(OSError):
            process.stdin.close()
        feeder.join(10)
        assert os.listdir(tmp_path) == [], f"attempt {attempt}: {os.listdir(tmp_path)}"


SLOW_SAVE = """
import sys, time
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.animation import FuncAnimation
import magicktune

fig = plt.figure(figsize=(0.64, 0.48), dpi=100)
def update(i):
    fig.set_facecolor((i % 7 / 7, 0.5, 0.5))
    time.sleep(0.05)
ani = FuncAnimation(fig, update, frames=100000, cache_frame_data=False)
ani.save("out.gif", writer=sys.argv[1], fps=10)
"""


_started: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _end_what_a_test_started():
    """A test that fails half-way must not leave its 100,000-frame save running."""
    yield
    while _started:
        process = _started.pop()
        if process.poll() is None:
            process.kill()
            process.wait(30)


def start_save(tmp_path, writer):
    script = tmp_path.parent / f"{tmp_path.name}-save.py"
    script.write_text(SLOW_SAVE)
    process = subprocess.Popen(
        [sys.executable, str(script), writer],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    _started.append(process)
    return process


@pytest.mark.parametrize("writer", ["magicktune", "imagemagick_tuned"])
def test_sigterm_to_a_save_cleans_up_and_ends_by_sigterm(tmp_path, writer):
    process = start_save(tmp_path, writer)
    if writer == "magicktune":
        (worker,) = wait_for(lambda: workers_of(process.pid), what="the save's worker process")
        wait_for(lambda: partials(tmp_path), what="the partial file")
    else:
        convert = wait_for(lambda: convert_of(process), what="convert")
        policy_dir = convert.environ()["MAGICK_CONFIGURE_PATH"].split(os.pathsep)[0]  # the save's override
        assert os.path.isdir(policy_dir)
    time.sleep(0.5)
    process.terminate()
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGTERM  # cleaned up, then ended as the signal asked
    if writer == "imagemagick_tuned":
        convert.wait(timeout=30)
        assert not os.path.exists(policy_dir)
    else:
        worker.wait(timeout=30)  # the signal went to the save alone; its worker goes with it
    assert os.listdir(tmp_path) == []


def convert_of(process):
    """The convert reading frames from the save's pipe (not the short-lived ones the plan asks for its limits)."""
    for child in psutil.Process(process.pid).children():
        try:
            if "rgba:-" in child.cmdline():
                return child
        except psutil.NoSuchProcess:
            continue
    return None


def test_a_killed_tuned_save_takes_convert_with_it(tmp_path):
    """SIGKILL leaves Python no chance to clean up: the kernel ends convert (PR_SET_PDEATHSIG), so it writes no GIF
    of the frames so far; the policy directory left behind goes at the next apply once it is old."""
    process = start_save(tmp_path, "imagemagick_tuned")
    convert = wait_for(lambda: convert_of(process), what="convert")
    time.sleep(1.0)  # some frames piped
    process.kill()
    process.communicate(timeout=60)
    convert.wait(timeout=30)
    time.sleep(0.5)
    assert partials(tmp_path) == [] and os.listdir(tmp_path) == []


def test_stale_policy_dirs_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = Path(tempfile.mkdtemp(prefix=f"magicktune-policy-{dead.pid}-"))
    fresh = Path(tempfile.mkdtemp(prefix=f"magicktune-policy-{dead.pid}-"))
    alive = Path(tempfile.mkdtemp(prefix=f"magicktune-policy-{os.getppid()}-"))
    try:
        (stale / "policy.xml").write_text("<policymap/>")
        old = time.time() - 3600
        for path in (stale, alive):
            os.utime(path, (old, old))
        with magicktune.limits(memory="300MB", verify=False):
            pass
        assert not stale.exists()
        assert fresh.exists() and alive.exists()  # too young; its process alive
    finally:
        for path in (stale, fresh, alive):
            shutil.rmtree(path, ignore_errors=True)


def test_stale_partials_of_ours_beside_the_target_are_removed_and_only_those(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    names = {
        "stale": f".out.0123abcd-{dead.pid}.partial.gif",
        "recent": f".out.4567abcd-{dead.pid}.partial.gif",
        "alive": f".out.89abcdef-{os.getppid()}.partial.gif",
        "other target": f".other.0123abcd-{dead.pid}.partial.gif",
        "not ours": ".out.partial.gif",
    }
    old = time.time() - 7200  # older than atomic.STALE_AFTER, an hour
    for key, name in names.items():
        (tmp_path / name).write_bytes(b"GIF89a")
        if key != "recent":
            os.utime(tmp_path / name, (old, old))
    with atomic.AtomicOutput(tmp_path / "out.gif") as output:
        output.open().write(b"GIF89a")
    left = set(os.listdir(tmp_path))
    assert names["stale"] not in left
    assert left == {"out.gif", *(name for key, name in names.items() if key != "stale")}


# --- item 8: a full disk, a dropped encoder ------------------------------------------------------------------------


def test_a_full_disk_cannot_stop_the_partial_from_going(tmp_path):
    """On a 1 MB tmpfs of our own (unshare -m), the encoder hits ENOSPC; close() raises it again while aborting,
    which used to come before the unlink."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare to mount a small tmpfs in a private mount namespace")
    disk = tmp_path / "disk"
    disk.mkdir()
    script = textwrap.dedent(
        f"""
        import os, numpy as np
        from magicktune.encoder import GifEncoder
        disk = {str(disk)!r}
        with open(os.path.join(disk, "filler"), "wb", buffering=0) as filler:
            try:
                while True:
                    filler.write(bytes(4096))
            except OSError:
                pass
        encoder = GifEncoder(os.path.join(disk, "out.gif"), (8, 8), 10)
        for seed in range(3):  # a few hundred bytes: they wait in the file's buffer
            frame = np.random.default_rng(seed).integers(0, 256, (8, 8, 4), np.uint8)
            frame[..., 3] = 255
            encoder.add_frame(frame)
        try:
            encoder.add_frame(b"not a frame")  # aborts: close() then flushes onto the full disk
        except Exception as error:
            print("error", type(error).__name__, getattr(error, "errno", None))
        print("left", sorted(os.listdir(disk)))
        """
    )
    result = subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            f'mount -t tmpfs -o size=1m tmpfs "{disk}" && exec "$0" -c "$1"',
            sys.executable,
            script,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if "mount" in result.stderr and "left" not in result.stdout:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    assert "error InvalidValue" in result.stdout, result.stdout + result.stderr  # the real error, not ENOSPC
    assert "left ['filler']" in result.stdout, result.stdout + result.stderr


def test_a_dropped_encoder_removes_its_partial_and_restores_process_settings(tmp_path):
    interval, threads = sys.getswitchinterval(), wand.resource.limits["thread"]
    encoder = GifEncoder(tmp_path / "out.gif", SIZE, 10, workers=2, magick_threads=1)
    encoder.add_frame(noise(0))
    encoder.add_frame(noise(1))
    assert partials(tmp_path)
    del encoder
    gc.collect()
    assert os.listdir(tmp_path) == []
    assert sys.getswitchinterval() == interval
    assert wand.resource.limits["thread"] == threads


# --- item 11: overlapping limits() ------------------------------------------------------------------------------------


def test_overlapping_limits_restore_whatever_the_order(monkeypatch):
    """A enters, B enters, A exits, B exits (two threads, or two tuned saves): each exit leaves what is still in
    force, and the last leaves the environment as it was."""
    monkeypatch.delenv("MAGICK_MEMORY_LIMIT", raising=False)
    monkeypatch.setenv("MAGICK_CONFIGURE_PATH", "/opt/theirs")
    a = magicktune.limits(memory="300MB", verify=False)
    b = magicktune.limits(memory="400MB", disk="2GB", verify=False)
    applied_a = a.__enter__()
    applied_b = b.__enter__()
    assert os.environ["MAGICK_MEMORY_LIMIT"] == "400MB"
    a.__exit__(None, None, None)
    assert os.environ["MAGICK_MEMORY_LIMIT"] == "400MB"  # B is still in force
    paths = os.environ["MAGICK_CONFIGURE_PATH"].split(os.pathsep)
    assert paths[-1] == "/opt/theirs"
    assert str(applied_a.policy_dir) not in paths and not applied_a.policy_dir.exists()
    if applied_b.policy_dir is not None:
        assert paths[0] == str(applied_b.policy_dir) and applied_b.policy_dir.exists()
    b.__exit__(None, None, None)
    assert "MAGICK_MEMORY_LIMIT" not in os.environ and "MAGICK_DISK_LIMIT" not in os.environ
    assert os.environ["MAGICK_CONFIGURE_PATH"] == "/opt/theirs"


def test_overlapping_limits_in_two_threads(monkeypatch):
    import threading

    monkeypatch.delenv("MAGICK_MEMORY_LIMIT", raising=False)
    before = os.environ.get("MAGICK_CONFIGURE_PATH")
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def thread_a():
        with magicktune.limits(memory="300MB", verify=False):
            a_in.set()
            b_in.wait(30)
        a_out.set()

    def thread_b():
        a_in.wait(30)
        with magicktune.limits(memory="400MB", verify=False):
            b_in.set()
            a_out.wait(30)
            assert os.environ["MAGICK_MEMORY_LIMIT"] == "400MB"

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert "MAGICK_MEMORY_LIMIT" not in os.environ
    assert os.environ.get("MAGICK_CONFIGURE_PATH") == before
    assert not resources._in_force._stacks


# --- item 15: the tuned writer says what went wrong ---------------------------------------------------------------


def tuned_save(path, figsize, dpi, frames):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    fig = plt.figure(figsize=figsize, dpi=dpi)
    try:
        FuncAnimation(fig, lambda i: [], frames=frames, cache_frame_data=False).save(
            str(path), writer="imagemagick_tuned", fps=5
        )
    finally:
        plt.close(fig)


@pytest.mark.parametrize(
    "figsize, dpi, frames, message",
    [
        ((0.4, 0.4), 10, 0, "the animation gave no frames"),
        ((1, 1), 1, 2, "the figure is 1x1 pixels, which matplotlib rounds down to 0x0 frames"),
        ((655.35, 0.01), 100, 2, "the figure is 65535x1 pixels, which matplotlib rounds down to 65534x0 frames"),
    ],
)
def test_tuned_writer_explains_what_is_wrong_not_the_pixel_cache(tmp_path, figsize, dpi, frames, message):
    with pytest.raises(magicktune.MagickTuneError) as raised:
        tuned_save(tmp_path / "out.gif", figsize, dpi, frames)
    assert message in str(raised.value)
    assert "pixel cache" not in str(raised.value)
    assert os.listdir(tmp_path) == []


def test_a_frame_past_the_width_limit_is_explained_as_that(tmp_path):
    """What convert says for frames wider than Debian's 16KP width, explained as the width limit."""
    from magicktune.profile import Job, plan
    from magicktune.writers import explain_failure

    result = subprocess.run(
        ["convert", "-size", "20000x1", "-depth", "8", "rgba:-", str(tmp_path / "out.gif")],
        input=bytes(20000 * 4),
        capture_output=True,
    )
    if b"width or height exceeds limit" not in result.stderr:
        pytest.skip("this ImageMagick's policy allows 20000-pixel-wide frames")
    message = explain_failure(result.stderr.decode(), plan(Job(20000, 1, 1, 4, 5)))
    assert message.startswith("the frames are wider or taller than ImageMagick allows (width 16 KP")
    assert "pixel cache" not in message


def test_an_interrupt_while_the_pool_stops_cannot_leave_the_partial(tmp_path):
    """A second Ctrl-C lands while abort() waits for the pool to stop (here raised there on purpose, every time):
    the partial file is already gone and the process settings are back."""
    interval = sys.getswitchinterval()
    encoder = GifEncoder(tmp_path / "out.gif", SIZE, 10, workers=2)
    for seed in range(4):
        encoder.add_frame(noise(seed))
    pool = encoder._pool
    real_shutdown = pool.shutdown

    def interrupted_shutdown(*args, **kwargs):
        pool.shutdown = real_shutdown
        raise KeyboardInterrupt

    pool.shutdown = interrupted_shutdown
    with pytest.raises(KeyboardInterrupt):
        encoder.abort()
    assert os.listdir(tmp_path) == []
    assert sys.getswitchinterval() == interval
