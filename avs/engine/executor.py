"""Where independent pieces of work run: worker processes on this machine (``local``) or a Ray cluster
(``ray``; ``pip install 'avs[ray]'``). The same functions run either way, with the same number of torch threads
each, so the two give the same bytes (tested).

A piece of work is a top-level function and its argument; :meth:`Executor.map` returns the results in order.
Work that needs something costly loaded once per worker (a CLIP checkpoint) names a ``setup`` function: each
worker calls it once and hands its result to every piece of work it runs (Ray actors; a process pool's
initializer).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from avs.errors import InputError

EXECUTORS = ("local", "ray")
_STATE: dict[str, Any] = {}  # in a worker process: what its setup function returned


@dataclass(frozen=True)
class Executor:
    kind: str = "local"
    workers: int | None = None  # default: the cores of this machine (local) or of the cluster (ray)
    address: str | None = None  # Ray: a cluster address; default $RAY_ADDRESS, else a local one
    threads: int = 1  # torch threads a piece of work uses

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise InputError(None, f"--executor {self.kind!r}: one of {', '.join(EXECUTORS)}")

    def map(
        self,
        fn: Callable[[Any, Any], Any],
        items: Sequence[Any],
        setup: Callable[..., Any] | None = None,
        setup_args: tuple = (),
    ) -> list:
        """``[fn(state, item) for item in items]``, spread over the workers; ``state`` is ``setup(*setup_args)``,
        called once per worker (``None`` without ``setup``)."""
        items = list(items)
        if not items:
            return []
        if self.kind == "ray":
            return _ray_map(self, fn, items, setup, setup_args)
        workers = min(self.workers or os.cpu_count() or 1, len(items))
        import multiprocessing

        with ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),  # no forked copy of torch's threads or open files
            initializer=_worker_setup,
            initargs=(self.threads, setup, setup_args),
        ) as pool:
            return _raise_failures(list(pool.map(_run, [fn] * len(items), items)))


def _worker_setup(threads: int, setup, setup_args: tuple) -> None:
    import torch

    torch.set_num_threads(threads)
    _STATE["state"] = setup(*setup_args) if setup is not None else None


@dataclass(frozen=True)
class _Failed:
    """A user error in a worker, carried back as data (exceptions do not cross every process boundary whole)."""

    path: str | None
    problem: str
    line: int | None


def _run(fn, item):
    try:
        return fn(_STATE.get("state"), item)
    except InputError as e:
        return _Failed(e.path, e.problem, e.line)


def _raise_failures(results: list) -> list:
    for r in results:
        if isinstance(r, _Failed):
            raise InputError(r.path, r.problem, line=r.line)
    return results


def _ray_map(ex: Executor, fn, items: list, setup, setup_args: tuple) -> list:
    try:
        import ray
        from ray.util import ActorPool
    except ImportError:
        raise InputError(None, "--executor ray needs Ray: pip install 'avs[ray]'") from None
    if not ray.is_initialized():
        address = ex.address or os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=ex.workers, include_dashboard=False, log_to_driver=False)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    workers = min(ex.workers or cpus, len(items))

    @ray.remote(num_cpus=1)
    class Worker:
        def __init__(self):
            _worker_setup(ex.threads, setup, setup_args)

        def run(self, fn, item):
            return _run(fn, item)

    actors = [Worker.remote() for _ in range(workers)]
    try:
        return _raise_failures(list(ActorPool(actors).map(lambda a, item: a.run.remote(fn, item), items)))
    finally:
        for a in actors:
            ray.kill(a)
