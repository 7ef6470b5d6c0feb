"""A second process that builds some of a batch's Results while this one builds the others.

A batch ends with one Result per parameter set: its tables, round trips and metrics, about 20 ms
of polars work per set that holds the GIL, so a 64-set sweep spent 1.4 s on one core while the
other idled. `backtest sweep` and `backtest walk-forward` therefore start this helper first thing
(`started()`): it imports polars and the Result builder (result_build.py, numba-free) while the
command plans, says "ready" and waits. At the end of a batch (batch.py) this process hands the
helper sets from the back of the batch, a few at a time, while it builds the others from the
front: each set's output rows and the manifest read from its compiled state (engine.run_manifest)
go down a pipe, as data (a JSON header and the raw records); the helper builds the Result, writes
its run folder (atomically, as `Result.save`, on a thread while it builds the next) and sends back
the manifest. The folders are byte-identical to the ones this process writes
(tests/test_batch_helper.py).

The helper never holds a batch up. A set it has not answered for within REPLY_WAIT_S (a helper
the host starves, a hung one), a helper that ended, or a reply that is an unexpected exception
(not a CascadeError): the helper is stopped and the sets it held are built here, its temporary
folders removed. Only batches that keep manifests, not tables (the sweep's), use it; a library
`run_batch` builds every Result in its own process.
"""
from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path

from .child import start_child

READY = b"ready\n"
REPLY_WAIT_S = 5.0  # a set takes ~20 ms to build; this long without a reply: build them here
_current: ResultHelper | None = None  # the helper the running command started (started())


class ResultHelper:
    """The parent's handle on the helper process. Sets go down the pipe from a writer thread, so
    that handing one over never blocks the batch (a set's rows can exceed the pipe's buffer)."""

    def __init__(self):
        self._proc: subprocess.Popen | None = None
        self._jobs: queue.Queue = queue.Queue()
        self._replies: queue.Queue = queue.Queue()
        self._ready = threading.Event()
        self._broken = threading.Event()  # the pipe to the helper failed

    def start(self) -> ResultHelper:
        self._proc = start_child(__name__)
        if self._proc is None:
            return self
        for target in (self._read, self._write):
            threading.Thread(target=target, args=(self._proc,), daemon=True,
                             name=f"cascade-result-helper{target.__name__}").start()
        return self

    def _read(self, proc: subprocess.Popen) -> None:
        with proc.stdout:
            if proc.stdout.readline() == READY:
                self._ready.set()
                with contextlib.suppress(EOFError, OSError, ValueError):
                    while True:
                        head, _ = _receive(proc.stdout)
                        self._replies.put((head["k"], head["status"], head["value"]))
        self._replies.put(None)  # the helper ended

    def _write(self, proc: subprocess.Popen) -> None:
        import numpy as np

        from .result_build import joined

        try:
            with proc.stdin:
                while (job := self._jobs.get()) is not None:
                    k, rows, manifest, out = job
                    blobs = [joined(rows[name], dtype).view(np.uint8) for name, dtype in _buffers()]
                    _send(proc.stdin, {"k": k, "out": out, "manifest": manifest}, blobs)
        except (OSError, ValueError):  # the helper ended or was stopped
            self._broken.set()

    def wait_ready(self, timeout: float) -> bool:
        """Wait at most `timeout` s for the helper's imports; is it usable?"""
        self._ready.wait(timeout)
        return self.usable

    @property
    def usable(self) -> bool:
        """Running, done with its imports, and its pipe whole."""
        return (self._proc is not None and self._ready.is_set() and not self._broken.is_set()
                and self._proc.poll() is None)

    def send(self, k: int, rows: dict, manifest: dict, out: Path) -> bool:
        """Hand the helper set k (its rows, manifest and run folder); False if it cannot take it."""
        if not self.usable:
            return False
        self._jobs.put((k, rows, manifest, str(Path(out).resolve())))
        return True

    def reply(self, timeout: float):
        """(k, "ok", manifest), (k, "error", message) or (k, "failed", traceback); None if
        nothing came within `timeout` s (0: only what has come) or the helper has ended."""
        try:
            got = self._replies.get(timeout=timeout) if timeout > 0 else self._replies.get_nowait()
        except queue.Empty:
            return None
        if got is None:
            self._replies.put(None)  # stays: the helper has ended
        return got

    def stop(self, outs=()) -> None:
        """Stop the helper now, and remove the temporary folders it may have left for `outs`."""
        p, self._proc = self._proc, None
        if p is None:
            return
        p.kill()
        p.wait()
        self._jobs.put(None)
        from .atomic import remove_leftovers

        for out in outs:
            remove_leftovers(out, p.pid)

    def close(self) -> None:
        """No more sets: the helper ends once it has answered the sets it was given."""
        p, self._proc = self._proc, None
        if p is None:
            return
        if not self._ready.is_set():
            p.kill()  # still importing (a short command): never waited for
        self._jobs.put(None)  # the writer closes the pipe: the helper's end of input
        try:
            p.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def current() -> ResultHelper | None:
    """The helper of the running command, if it is ready to take sets."""
    return _current if _current is not None and _current.usable else None


@contextlib.contextmanager
def started(enabled: bool = True):
    """Run a helper for the duration of a command (a sweep or walk-forward with a core to spare)."""
    global _current
    if not enabled:
        yield None
        return
    helper = ResultHelper().start()
    _current = helper
    try:
        yield helper
    finally:
        _current = None
        helper.close()


# A message is an 8-byte length, a JSON header and, for a set, its output rows as raw records (one
# blob per engine buffer, in _buffers() order, their sizes in the header): data only, no pickle,
# and read by exact lengths (a reader that looks ahead on a pipe would wait for the next message).
def _send(pipe, header: dict, blobs=()) -> None:
    header = dict(header, sizes=[b.nbytes for b in blobs])
    head = json.dumps(header, default=str).encode()
    pipe.write(len(head).to_bytes(8, "little") + head)
    for b in blobs:
        pipe.write(b)
    pipe.flush()


def _exactly(pipe, n: int) -> bytes:
    data = pipe.read(n)
    if len(data) < n:
        raise EOFError
    return data


def _receive(pipe) -> tuple[dict, list[bytes]]:
    head = json.loads(_exactly(pipe, int.from_bytes(_exactly(pipe, 8), "little")))
    return head, [_exactly(pipe, n) for n in head["sizes"]]


def _buffers() -> list:
    """(engine buffer, its row dtype) of every table a Result is built from."""
    from .result_build import TABLE_ROWS

    return [(buf, dtype) for dtype, buf, _ in TABLE_ROWS.values()]


# --- the helper process -----------------------------------------------------------------------
def _serve() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the command's to handle
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from .errors import CascadeError
    from .result_build import build_result

    out = sys.stdout.buffer
    out.write(READY)
    out.flush()
    sending = threading.Lock()

    def answer(k: int, status: str, value) -> None:
        with sending:
            _send(out, {"k": k, "status": status, "value": value})

    def save(k: int, res, run_dir: str) -> None:
        try:
            res.save(Path(run_dir))
            answer(k, "ok", res.manifest)
        except CascadeError as e:
            answer(k, "error", str(e))
        except Exception:  # noqa: BLE001 - the parent builds this set itself, and raises there
            answer(k, "failed", traceback.format_exc())

    # a set's folder is written by a thread while the next set is built, as in batch.py
    with ThreadPoolExecutor(1, thread_name_prefix="cascade-save") as saver:
        while True:
            try:
                head, blobs = _receive(sys.stdin.buffer)
            except EOFError:
                return  # once the saver has written and answered every set
            k = head["k"]
            rows = {name: [np.frombuffer(b, dtype=dtype)] for (name, dtype), b in zip(_buffers(), blobs)}
            try:
                res = build_result(rows, head["manifest"])
            except CascadeError as e:
                answer(k, "error", str(e))
            except Exception:  # noqa: BLE001 - the parent builds this set itself, and raises there
                answer(k, "failed", traceback.format_exc())
            else:
                saver.submit(save, k, res, head["out"])


def main() -> None:
    """The helper's entry (ResultHelper.start)."""
    _serve()
    os._exit(0)  # every folder is written and every reply flushed: skip the interpreter's teardown
