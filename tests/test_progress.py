"""The progress bars: `magicktune encode` shows one on a terminal and prints nothing extra elsewhere."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np

from magicktune.progress import Progress

REPO = Path(__file__).resolve().parent.parent


def raw_stream(path: Path, frames: int = 6, size: tuple[int, int] = (40, 30)) -> Path:
    width, height = size
    pixels = np.zeros((frames, height, width, 4), np.uint8)
    pixels[..., 3] = 255
    for i in range(frames):
        pixels[i, :, : (i + 1) * width // frames, 0] = 200
    path.write_bytes(pixels.tobytes())
    return path


def encode(args: list[str], *, stderr_tty: bool) -> tuple[str, str]:
    """Run `magicktune encode` in a child; its stderr a pseudo-terminal or a pipe. Returns (stdout, stderr)."""
    argv = [sys.executable, "-c", "import sys; from magicktune.cli import main; sys.exit(main())", "encode", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if not stderr_tty:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=True)
        return done.stdout, done.stderr
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal's size: 100 columns
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=follower, text=True, env=env) as child:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        out = child.stdout.read() if child.stdout else ""
        assert child.wait(timeout=120) == 0
    os.close(leader)
    return out, b"".join(chunks).decode(errors="replace")


def test_encode_on_a_terminal_shows_frames_rate_and_time_left(tmp_path):
    source = raw_stream(tmp_path / "in.rgba")
    out, err = encode(["--size", "40x30", "--fps", "10", str(source), str(tmp_path / "out.gif")], stderr_tty=True)
    assert "6/6" in err and "frame/s" in err and "encoding" in err and "100%" in err
    assert out.startswith("wrote ")


def test_encode_off_a_terminal_prints_no_bar(tmp_path):
    source = raw_stream(tmp_path / "in.rgba")
    out, err = encode(["--size", "40x30", "--fps", "10", str(source), str(tmp_path / "out.gif")], stderr_tty=False)
    assert err == "" and out.startswith("wrote ")


def test_a_phase_keeps_the_clock_running(capsys, monkeypatch):
    import time

    monkeypatch.setattr("magicktune.progress.TICK_S", 0.05)
    bar = Progress(3, "rendering", notebook=False, mininterval=0)
    bar.to(3)
    with bar.phase("finishing"):
        time.sleep(0.3)  # nothing updates the bar: only the phase's ticker redraws it
    bar.close()
    err = capsys.readouterr().err
    assert err.count("finishing") >= 3
