"""Distributors: who runs the per-item work of a long job (curation, synthesis), one code path for the work.

A job hands a :class:`Work` (picklable; set up once per worker: models loaded, threads limited) and its items
to :func:`distribute`, and gets the per-item results back in input order, whoever computed them: this
process or a local process pool (:mod:`pda_data.distribute.local`), or Ray Data actors on this machine or a
cluster (:mod:`pda_data.distribute.ray_data`). The driver (resume, chunks, dedup, manifest) stays one and the
same for every engine, so results do not depend on it. This module imports neither multiprocessing pools
nor Ray: command-line help stays instant.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, TypeVar

ENGINES = ("local", "ray")
RAY_LOCAL = "local"  # --ray-address: start a Ray on this machine ("auto": join the running cluster)
RAY_INSTALL = "--engine ray needs Ray: pip install 'pda-toolkit[ray]'"

T = TypeVar("T")
R = TypeVar("R")


class EngineError(RuntimeError):
    """The engine cannot run (Ray missing, no cluster at the address); the message says what to do."""


@dataclass(frozen=True)
class Engine:
    """Which distributor runs the work: ``kind`` local or ray, with ``workers`` processes or actors.

    ``workers`` 0 with Ray means one actor per CPU of the cluster; ``address`` is where Ray runs
    (:data:`RAY_LOCAL`, ``auto`` or ``HOST:PORT``).
    """

    kind: str = "local"
    workers: int = 1
    address: str = RAY_LOCAL


class Work(Protocol[T, R]):
    """The per-item function of a job, as it travels to each worker."""

    start_method: str | None  # local worker processes: multiprocessing start method (None: the platform's)

    def session(self, worker: bool) -> AbstractContextManager[Callable[[T], R]]:
        """Set up (models loaded once; in a ``worker`` process, threads limited); give the item function."""
        ...


def check_engine(engine: Engine) -> None:
    """Raise :class:`EngineError` now, before any work, when ``engine`` cannot run (Ray not installed)."""
    if engine.kind == "ray":
        from pda_data.distribute.ray_data import import_ray

        import_ray()
    elif engine.kind != "local":
        raise EngineError(f"unknown engine {engine.kind!r} (choose from {', '.join(ENGINES)})")


def distribute(work: Work[T, R], items: Iterable[T], engine: Engine, batch_size: int = 1) -> Iterator[R]:
    """``work``'s result for every item of ``items``, in input order, computed by ``engine``.

    ``batch_size`` items travel to a worker at a time (larger for cheap items). Closing the iterator early
    stops the work that has not started.
    """
    check_engine(engine)
    if engine.kind == "ray":
        from pda_data.distribute.ray_data import ray_results

        return ray_results(work, items, engine, batch_size)
    from pda_data.distribute.local import local_results

    return local_results(work, items, engine.workers, batch_size)
