"""Progress bars (rich) for runs, sweeps and walk-forwards; silent when off.

Bars are shown only on a terminal (never in pipes, logs or --json output) and never with --quiet.
The engine reports `progress(events_done, label)` after each chunk without knowing the total, so
the run bar estimates it from Parquet footers (row counts; no data is read).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path


def enabled(quiet: bool = False) -> bool:
    return not quiet and sys.stdout.isatty()


def estimate_events(data, symbols=None, start=None, end=None) -> int | None:
    """Rows of the selected streams from Parquet metadata (date partitions outside [start, end]
    skipped), or None when that cannot be told cheaply."""
    try:
        import pyarrow.parquet as pq

        from .config import parse_time_ns
        from .data.layout import date_of_file, list_streams, utc_date_of_ns
        from .data.storage import local_dataset

        lo, hi = parse_time_ns(start, "start"), parse_time_ns(end, "end")
        lo_d = str(utc_date_of_ns(lo)) if lo is not None else None
        hi_d = str(utc_date_of_ns(hi)) if hi is not None else None
        total = 0
        for (_, sym), files in list_streams(local_dataset(data)).items():
            if symbols and sym not in symbols:
                continue
            for f in files:
                d = date_of_file(f)
                if (lo_d and d < lo_d) or (hi_d and d > hi_d):
                    continue
                total += pq.ParquetFile(f).metadata.num_rows
        return total or None
    except Exception:  # an estimate only: the run reports real problems itself
        return None


class Bars:
    """One rich Progress with any number of tasks; every method is a no-op when disabled."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._p = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                               TimeRemainingColumn(), transient=True)
            self._p.start()
        return self

    def __exit__(self, *exc):
        if self._p is not None:
            self._p.stop()
        return False

    def add(self, description: str, total: int | None = None):
        return self._p.add_task(description, total=total, info="") if self._p else None

    def update(self, task, **kw) -> None:
        if self._p is not None and task is not None:
            self._p.update(task, **kw)

    def run_callback(self, total: int | None, description: str = "events"):
        """A `progress(events_done, label)` callback for engine.run showing events and events/s.

        Until the first chunk arrives the bar reads "compiling" (the engine compiles or loads the
        strategy's loop first, which can take seconds on a cold cache)."""
        task = self.add("compiling", total)
        first: list = []  # (time, events) at the first chunk: the rate excludes compilation

        def cb(done: int, label: str = "") -> None:
            now = time.perf_counter()
            if not first:
                first.append((now, done))
            dt, dn = now - first[0][0], done - first[0][1]
            info = f"{dn / dt:,.0f} events/s" if dt > 0 and dn > 0 else ""
            tot = max(total or 0, done) or None  # the estimate may be low (filters, dates)
            self.update(task, completed=done, total=tot, description=description, info=info)

        return cb if self._p is not None else None

    def sweep_callback(self, total: int, description: str = "runs"):
        """A `progress(done, total, best_label)` callback for sweeps showing the best so far."""
        task = self.add(description, total)

        def cb(done: int, total_: int, best: str = "") -> None:
            self.update(task, completed=done, total=total_, info=f"best {best}" if best else "")

        return cb if self._p is not None else None
