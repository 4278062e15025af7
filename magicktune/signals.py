"""Signals around a file being written: SIGTERM and SIGHUP end a save the way Ctrl-C does, so its cleanup runs,
and a cleanup runs to its end before any signal is acted on."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from .errors import Terminated

#: The signals that end a program and that Python can turn into an exception.
ENDING = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
#: Of those, the ones Python leaves at the default action (ending the process on the spot, no cleanup).
TERMINATING = tuple(number for number in ENDING if number != signal.SIGINT)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


@contextmanager
def terminate_as_interrupt(redeliver: bool = True) -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP left at their default action raise Terminated (a
    KeyboardInterrupt) instead of ending the process at once, so `finally` and `except` clauses clean up.

    With `redeliver`, a Terminated that leaves the block is sent again once the default action is back, and the
    process ends as the sender meant; without, it propagates for the caller (the CLI) to report. Outside the main
    thread Python cannot take signals, and nothing changes."""
    installed = {}
    if _in_main_thread():
        for number in TERMINATING:
            try:
                if signal.getsignal(number) == signal.SIG_DFL:
                    installed[number] = signal.signal(number, _raise_terminated)
            except (ValueError, OSError):  # not the main interpreter
                break
    try:
        yield
    except Terminated as ended:
        _restore(installed)
        installed = {}
        if redeliver and ended.signum in TERMINATING:
            os.kill(os.getpid(), ended.signum)
        raise
    finally:
        _restore(installed)


def _restore(installed: dict) -> None:
    for number, handler in installed.items():
        signal.signal(number, handler)


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP until the block is done (in the main thread; elsewhere Python runs no
    handlers), then act on the first that came: a second Ctrl-C cannot cut a cleanup short."""
    if not _in_main_thread():
        yield
        return
    caught: list[int] = []
    previous = {}
    try:
        for number in ENDING:
            previous[number] = signal.signal(number, lambda signum, frame: caught.append(signum))
    except (ValueError, OSError):
        pass
    try:
        yield
    finally:
        _restore(previous)
        if caught:
            os.kill(os.getpid(), caught[0])
