"""Progress of a run: a rich bar on a terminal, plain periodic lines otherwise, or nothing."""

from __future__ import annotations

import sys
import time


class Progress:
    """Counts samples and tokens; shows tokens/s, ETA and the current condition.

    ``work`` maps (condition, sample_id) to a size (e.g. characters): the plain-line ETA is
    then proportional to the work left, not to the samples left (runs start with the longest).
    """

    def __init__(self, total: int, *, quiet: bool = False, log=print, every: float = 10.0,
                 work: dict | None = None):
        self.total, self.quiet, self.log, self.every = total, quiet, log, every
        self.work = work or {}
        self.work_total = sum(self.work.values())
        self.done = self.tokens = self.work_done = 0
        self.start = self.last = time.perf_counter()
        self.bar = None
        if not quiet and sys.stderr.isatty() and total:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self.bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("{task.fields[rate]} tok/s"), TimeRemainingColumn(), transient=False)
            self.task = self.bar.add_task("computing", total=total, rate="-")
            self.bar.start()

    def update(self, records) -> None:
        computed = [r for r in records.samples if r["status"] != "skipped"]
        self.done += len(records.samples)
        self.work_done += sum(self.work.get((r["condition"], r["sample_id"]), 0) for r in records.samples)
        self.tokens += records.n_tokens
        rate = self.tokens / max(time.perf_counter() - self.start, 1e-9)
        condition = records.samples[-1]["condition"] if records.samples else ""
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done, rate=f"{rate:,.0f}", description=condition)
        elif not self.quiet and computed and time.perf_counter() - self.last >= self.every:
            self.last = time.perf_counter()
            elapsed = self.last - self.start
            if self.work_done:
                eta = (self.work_total - self.work_done) * elapsed / self.work_done
            else:
                eta = (self.total - self.done) * elapsed / max(self.done, 1)
            self.log(f"[{condition}] {self.done}/{self.total} samples, {rate:,.0f} tok/s, ETA {eta:,.0f} s")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
