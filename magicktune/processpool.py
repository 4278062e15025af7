"""Frames compressed in child interpreters, so matplotlib drawing in this one never waits on their GIL.

One frame's compress takes 22-32 ms alone and 54-72 ms beside a thread busy in Python
(`python -m benchmarks.contention`), and the drawing thread loses what the encoder's thread holds. A child
process has its own GIL: the drawing thread keeps this one. Each child runs `serve`: it
reads jobs (a pickled header and the frame's raw pixels) from one pipe and writes pickled GifFrames to another, in
order. It ignores Ctrl-C, which reaches the whole process group: this process decides, and a child ends when its
job pipe closes. No file is shared: nothing is left behind when either side dies.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from queue import SimpleQueue
from typing import Any

import numpy as np

from .errors import EncodeError

_LENGTH = struct.Struct("<Q")
_PACKAGE = os.path.dirname(os.path.abspath(__file__))
#: Run with -I (no current directory on sys.path: a queue.py there must not shadow the standard library's), then
#: given this process's sys.path. Ctrl-C is ignored from the first line. The child loads this package's modules
#: without its __init__, which imports matplotlib to register the writers: 41 MB and 0.5 s a child instead of 70 MB
#: and 1.1 s (`/usr/bin/time -f "%e s %M KB" python -c ...` on each). Given the libraries its parent loaded
#: (_found_as), a GifEncoder with one child encodes a 20x20 frame and closes in 0.15 s against 0.44 (5 runs each
#: of `with GifEncoder(io.BytesIO(), (20, 20), 30, processes=True, workers=1) as e: e.add_frame(frame)`).
_CHILD = f"""
import signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
import json, sys, types
sys.path[:] = json.loads(sys.argv[4])
package = types.ModuleType("magicktune")
package.__path__ = [{_PACKAGE!r}]
sys.modules["magicktune"] = package
from magicktune.processpool import serve
serve(*(int(value) for value in sys.argv[1:4]), json.loads(sys.argv[5]))
"""
#: Seconds a child has to exit after its job pipe closes before it is killed (it finishes the frame it is on).
EXIT_TIMEOUT = 10.0
#: Bytes read from the end of a child's stderr for an error message, which quotes their last line.
STDERR_TAIL = 2000


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, size: int) -> bytearray | None:
    """`size` bytes from `fd`, or None at end of file before the first byte; a message cut short is an error."""
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        count = os.readv(fd, [view[got:]])
        if count == 0:
            if got == 0:
                return None
            raise EOFError(f"pipe closed {got} bytes into a {size}-byte message")
        got += count
    return buffer


def _send(fd: int, header: Any, payload: np.ndarray | None = None) -> None:
    """A pickled header, then (when given) the array's bytes, each after its length."""
    message = pickle.dumps(header, protocol=pickle.HIGHEST_PROTOCOL)
    _write_all(fd, _LENGTH.pack(len(message)) + message)
    if payload is not None:
        _write_all(fd, _LENGTH.pack(payload.nbytes))
        _write_all(fd, np.ascontiguousarray(payload).data)


def _read_message(fd: int) -> bytearray | None:
    """One message `_send` wrote (its length, then its body), or None at end of file before it."""
    length = _read_exact(fd, _LENGTH.size)
    if length is None:
        return None
    body = _read_exact(fd, _LENGTH.unpack(length)[0])
    if body is None:
        raise EOFError("pipe closed between a message's length and its body")
    return body


def _receive(fd: int) -> Any:
    message = _read_message(fd)
    return None if message is None else pickle.loads(message)


def _receive_pixels(fd: int, shape: tuple[int, ...]) -> np.ndarray:
    data = _read_message(fd)
    if data is None:
        raise EOFError("pipe closed before a frame's pixels")
    return np.frombuffer(data, np.uint8).reshape(shape)


class _Worker:
    """One child interpreter, a thread that feeds it jobs and one that reads its results, in order."""

    def __init__(self, function: Callable[..., Any], magick_threads: int) -> None:
        job_read, self._job_write = os.pipe()
        self._result_read, result_write = os.pipe()
        self._stderr = tempfile.TemporaryFile()  # unlinked already: read for an error message, gone on close
        try:
            self.process = subprocess.Popen(
                [
                    _interpreter(),
                    *subprocess._args_from_interpreter_flags(),  # type: ignore[attr-defined]  # as multiprocessing
                    "-I",
                    "-c",
                    _CHILD,
                    str(job_read),
                    str(result_write),
                    str(magick_threads),
                    json.dumps(sys.path),
                    json.dumps(_magick_libraries()),
                ],
                stdin=subprocess.DEVNULL,
                stdout=self._stderr,
                stderr=self._stderr,
                pass_fds=(job_read, result_write),
            )
        except BaseException as exc:
            for fd in (self._job_write, self._result_read):
                os.close(fd)
            self._stderr.close()
            if isinstance(exc, OSError):
                raise EncodeError(
                    f"could not start the encoder's worker process ({_interpreter()}: {exc}); to encode in this "
                    f"process instead, pass processes=False"
                ) from exc
            raise
        finally:
            os.close(job_read)  # the child's ends: the reader sees end of file once the child has gone
            os.close(result_write)
        self.pending: deque[Future] = deque()
        self._failure: EncodeError | None = None
        self._lock = threading.Lock()
        self._jobs: SimpleQueue[tuple[Any, np.ndarray | None] | None] = SimpleQueue()
        self._jobs.put((function, None))  # first: its module loads in the child while the first frame is drawn
        self._feeder = threading.Thread(target=self._feed, name="magicktune-gif-feed", daemon=True)
        self._reader = threading.Thread(target=self._read, name="magicktune-gif-read", daemon=True)
        try:
            self._feeder.start()
            self._reader.start()
        except BaseException:
            self.process.kill()
            self._jobs.put(None)
            for thread, fd in ((self._feeder, self._job_write), (self._reader, self._result_read)):
                if thread.ident is None:
                    os.close(fd)  # a started thread closes its own end
                else:
                    thread.join()
            self.process.wait()
            self._stderr.close()
            raise

    def submit(self, pixels: np.ndarray, arguments: tuple) -> Future:
        future: Future = Future()
        future.set_running_or_notify_cancel()  # it cannot be taken back once queued for the child
        with self._lock:
            if self._failure is not None:
                future.set_exception(self._failure)
                return future
            self.pending.append(future)
        self._jobs.put(((pixels.shape, arguments), pixels))
        return future

    def _feed(self) -> None:
        try:
            while (job := self._jobs.get()) is not None:
                header, pixels = job
                _send(self._job_write, header, pixels)
        except OSError:
            pass  # the child has gone: the reader reports why
        finally:
            os.close(self._job_write)  # end of jobs: the child exits once it has sent what it holds

    def _read(self) -> None:
        error: BaseException | None = None
        try:
            while (message := _receive(self._result_read)) is not None:
                with self._lock:
                    future = self.pending.popleft()
                if message[0] == "ok":
                    future.set_result(message[1])
                else:
                    future.set_exception(message[1])
        except BaseException as exc:  # a result that does not unpickle here (the child's code changed on disk)...
            error = exc
            self.process.kill()  # ...ends the child: no later result can be matched to its job
        finally:
            os.close(self._result_read)
        failure = self._died(error)
        with self._lock:
            self._failure = failure  # what a job submitted from now on fails with
            left, self.pending = list(self.pending), deque()
        for future in left:
            future.set_exception(failure)

    def _died(self, error: BaseException | None) -> EncodeError:
        try:
            code = self.process.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
        self._stderr.seek(0, os.SEEK_END)
        self._stderr.seek(max(0, self._stderr.tell() - STDERR_TAIL))
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        said = lines[-1].strip() if lines else ""  # a traceback's last line: the error
        how = f"exit status {code}" if code is not None and code >= 0 else f"signal {-code}" if code else "no exit"
        return EncodeError(
            f"the encoder's worker process ended ({how}{f'; {type(error).__name__}: {error}' if error else ''})"
            f"{': ' + said if said else ''}; to encode in this process instead, pass processes=False"
        )

    def ask_to_stop(self, now: bool) -> None:
        """No more jobs: the child exits after those it has, or (`now`) at once."""
        self._jobs.put(None)
        if now and self.process.poll() is None:
            self.process.terminate()

    def wait(self) -> None:
        """Wait for the child (killed after EXIT_TIMEOUT) and the threads; safe to call twice."""
        try:
            self.process.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._feeder.join()
        self._reader.join()
        self._stderr.close()


class ProcessPool:
    """`function` (module-level, so it pickles by name) of a frame and other arguments, run in `workers` child
    processes, each job to the child it names, run in the order given; a Future each, as ThreadPoolExecutor.submit
    gives. `function` may be an instance of a module-level class: each child then has a copy of its own."""

    def __init__(self, function: Callable[..., Any], workers: int, magick_threads: int) -> None:
        self._workers: list[_Worker] = []
        try:
            for _ in range(workers):
                self._workers.append(_Worker(function, magick_threads))
        except BaseException:
            self.shutdown(wait=False, cancel_futures=True)
            raise

    def submit(self, worker: int, pixels: np.ndarray, *arguments: Any) -> Future:
        """The pool's function of `pixels` (a uint8 array) and `arguments`, in child number `worker`."""
        if not self._workers:
            raise RuntimeError("cannot submit to a pool that has been shut down")
        return self._workers[worker].submit(pixels, arguments)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Stop every child, once their jobs are done or at once with `cancel_futures`, and wait for them all
        (`wait` is taken for ThreadPoolExecutor's signature). Every child is told before any is waited for, and a
        child leaves the pool only once it has ended, so an interrupted shutdown can be run again."""
        for worker in self._workers:
            worker.ask_to_stop(now=cancel_futures)
        while self._workers:
            self._workers[0].wait()
            self._workers.pop(0)


def _magick_libraries() -> dict[str, str]:
    """The MagickWand and MagickCore libraries wand loaded in this process, as ctypes was given them."""
    import wand.api

    wand_library, core_library = wand.api.libraries
    return {"MagickWand": wand_library._name, "MagickCore": core_library._name}


@contextlib.contextmanager
def _found_as(libraries: dict[str, str]) -> Iterator[None]:
    """ctypes.util.find_library answering each name that starts with a key of `libraries` with its value, so a child
    loads the libraries its parent did without wand's search, which runs ldconfig for each name it tries: 0.24 s of a
    child's 0.4 s start (`python -X importtime` on the child's imports)."""
    search = ctypes.util.find_library

    def find_library(name: str) -> str | None:
        return next((path for prefix, path in libraries.items() if name.startswith(prefix)), None) or search(name)

    ctypes.util.find_library = find_library
    try:
        yield
    finally:
        ctypes.util.find_library = search


def serve(job_fd: int, result_fd: int, magick_threads: int, libraries: dict[str, str]) -> None:
    """A child's loop: read the function, then run it on each job read from `job_fd` and write its result to
    `result_fd`, until the pipe closes. `libraries`: those wand loaded in the parent (_magick_libraries)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for fd in (job_fd, result_fd):
        os.set_inheritable(fd, False)  # not to ImageMagick's delegates
    try:
        with _found_as(libraries):
            import wand.resource
    except ImportError:  # the parent's libraries do not load here: wand searches for them as it would
        for name in [name for name in sys.modules if name == "wand" or name.startswith("wand.")]:
            del sys.modules[name]
        import wand.resource

    wand.resource.limits["thread"] = magick_threads
    function = _receive(job_fd)
    while (header := _receive(job_fd)) is not None:
        shape, arguments = header
        pixels = _receive_pixels(job_fd, shape)
        try:
            reply: tuple = ("ok", function(pixels, *arguments))
        except Exception as exc:
            reply = ("error", _portable(exc))
        _send(result_fd, reply)


def _interpreter() -> str:
    """The Python that runs children, as multiprocessing would start it (multiprocessing.set_executable counts)."""
    import multiprocessing.spawn

    return multiprocessing.spawn.get_executable() or ""


def why_unavailable() -> str | None:
    """Why child processes cannot run here (None: they can): a frozen app or an embedding host has no Python
    interpreter to start."""
    if os.name != "posix":
        return "worker processes are written for POSIX pipes"
    if getattr(sys, "frozen", False):
        return "a frozen application has no Python interpreter to start"
    executable = _interpreter()
    if not executable or not os.access(executable, os.X_OK):
        return f"sys.executable ({executable!r}) is not a Python interpreter this process can start"
    return None


def _portable(error: Exception) -> Exception:
    """The error itself where it survives pickling, as a thread pool would raise it; else its type and text."""
    try:
        return pickle.loads(pickle.dumps(error, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:
        return EncodeError(f"{type(error).__name__}: {error}")
