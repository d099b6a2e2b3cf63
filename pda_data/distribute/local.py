"""The local distributor: the work in this process, or in a pool of worker processes on this machine.

Each worker process sets the work up once (its initializer) and runs batches of items; a bounded window of
batches is in flight, and results come back in input order, so memory does not grow with the input count.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from pda_data.distribute import Work

_WINDOW_PER_WORKER = 4  # batches in flight per worker: enough to keep every worker busy

_ITEM_FN: Callable[[Any], Any] | None = None
_SESSION = contextlib.ExitStack()  # a worker's work session, open until the process ends


def _init_worker(work: Work) -> None:
    global _ITEM_FN
    _ITEM_FN = _SESSION.enter_context(work.session(worker=True))


def _run_batch(batch: list[Any]) -> list[Any]:
    assert _ITEM_FN is not None, "_run_batch needs _init_worker first"
    return [_ITEM_FN(item) for item in batch]


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of ``size`` (the last may be shorter), lazily."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def local_results(work: Work, items: Iterable[Any], workers: int, batch_size: int = 1) -> Iterator[Any]:
    """``work``'s results in input order: in this process for ``workers`` <= 1, else in a process pool."""
    if workers <= 1:
        with work.session(worker=False) as fn:
            for item in items:
                yield fn(item)
        return
    context = mp.get_context(work.start_method)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(work,)) as pool:
        pending: deque[Future] = deque()
        try:
            for batch in batched(items, batch_size):
                pending.append(pool.submit(_run_batch, batch))
                if len(pending) >= _WINDOW_PER_WORKER * workers:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        except BaseException:  # a failed batch (full disk), a stop or an early close: start no queued batch
            for future in pending:
                future.cancel()
            raise
