"""The Ray distributor: the work in Ray Data actors, on this machine or on a running Ray cluster.

The items become a Ray Data dataset (each pickled, with its input index); ``map_batches`` runs them through
a pool of actors that each set the work up once (models loaded once per actor) and return pickled results.
The driver reads the results back in input order, so everything after (dedup, chunks, the manifest) is the
local engine's code. Actors are restarted and their batches retried when a worker dies (Ray Data's default
for actor pools: unlimited restarts and retries); the work writes its files atomically under deterministic
names, so a retried batch gives the same result. Workers write to the
output folder themselves: on a cluster it must be a path every node sees. Ray is imported here only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from pda_data.distribute import RAY_INSTALL, RAY_LOCAL, Engine, EngineError, Work

_MAX_BLOCKS = 4096  # the input's blocks (map tasks): one batch each for small inputs, bounded for large ones


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or :class:`EngineError` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the extra: ray[data])
    except ImportError as exc:
        raise EngineError(RAY_INSTALL) from exc
    return ray


class _Actor:
    """One Ray Data actor: the work set up once, then batches of pickled items in, pickled results out."""

    def __init__(self, work: Work) -> None:
        self._session = contextlib.ExitStack()
        self._fn: Callable[[Any], Any] = self._session.enter_context(work.session(worker=True))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = [pickle.dumps(self._fn(pickle.loads(item))) for item in batch["item"]]
        return {"index": batch["index"], "result": np.array(results, dtype=object)}


@contextlib.contextmanager
def ray_session(address: str, workers: int) -> Iterator[Any]:
    """Ray, connected: the session already open in this process, or a new one (shut down afterwards).

    ``address`` :data:`RAY_LOCAL` starts a quiet Ray on this machine with ``workers`` CPUs (0: all);
    ``auto`` or ``HOST:PORT`` joins a running cluster.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    cpus = (workers or os.cpu_count() or 1) if address == RAY_LOCAL else None
    try:
        ray.init(address=address, num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
    except ConnectionError as exc:
        raise EngineError(f"--ray-address {address}: no Ray cluster there ({exc}); start one with `ray "
                          "start --head`, or leave --ray-address out to run one on this machine") from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def _quiet(ray: Any) -> None:
    """No Ray Data progress bars or per-run log lines on the user's console: the command draws its own."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_options.preserve_order = True
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def _blocks(count: int, batch_size: int) -> int:
    return max(1, min(-(-count // batch_size), _MAX_BLOCKS))


def ray_results(work: Work, items: Iterable[Any], engine: Engine, batch_size: int = 1) -> Iterator[Any]:
    """``work``'s results in input order, computed by ``engine.workers`` Ray actors (0: one per CPU)."""
    rows = [{"index": i, "item": pickle.dumps(item)} for i, item in enumerate(items)]
    if not rows:
        return
    with ray_session(engine.address, engine.workers) as ray:
        _quiet(ray)
        actors = engine.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        pool = ray.data.ActorPoolStrategy(size=min(actors, len(rows)))
        dataset = ray.data.from_items(rows, override_num_blocks=_blocks(len(rows), batch_size)).map_batches(
            _Actor, fn_constructor_args=(work,), compute=pool, batch_size=batch_size, num_cpus=1,
            batch_format="numpy")
        del rows
        ahead: dict[int, Any] = {}  # results that came before their turn (none with preserve_order)
        expected = 0
        for row in dataset.iter_rows():
            ahead[int(row["index"])] = row["result"]
            while expected in ahead:
                yield pickle.loads(ahead.pop(expected))
                expected += 1
