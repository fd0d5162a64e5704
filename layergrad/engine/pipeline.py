"""Overlap: a batch's eigensolves (on a GPU; on a CPU the capture helpers solved them during the
backward), statistics and records are finished on a background worker while the next batch's
forward and backward run.

``run_pipeline`` takes the producer of pending batches (the forward/backward, on the calling
thread) and a ``handle`` for each batch's finished records (e.g. writing its chunk). With
``overlap`` the finishing and ``handle`` run on one worker thread, in order, with at most
``depth`` batches waiting for it; so a batch is committed only after its own solve, and a
``kill -9`` loses at most the batch being computed, the ``depth`` waiting and the one being
finished. The first exception of the worker stops the producer and is raised on the calling
thread; whatever ``handle`` committed before stays.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable

DEPTH = 1


def run_pipeline(pending: Iterable, finish: Callable, handle: Callable, *, overlap: bool, depth: int = DEPTH) -> None:
    """For each item of ``pending``: ``handle(finish(item))``, in order, overlapped or not."""
    if not overlap:
        for item in pending:
            handle(finish(item))
        return
    with ThreadPoolExecutor(1, thread_name_prefix="layergrad-finish") as worker:
        futures: deque = deque()
        try:
            for item in pending:
                futures.append(worker.submit(lambda item=item: handle(finish(item))))
                while len(futures) > depth:
                    futures.popleft().result()  # re-raises the worker's exception here
            while futures:
                futures.popleft().result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
