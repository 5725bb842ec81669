"""Run independent training tasks (folds, pretrainings) here, in spawned processes or as Ray tasks.

Each parallel worker gets one torch thread: small models scale better across processes
than threads. The same seeds give the same predictions whichever way a task runs.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..data import MEData
from ..errors import UserError


def run_tasks(fn: Callable, data: MEData, tasks: list, workers: int = 1, executor: str = "local",
              address: str | None = None, desc: str = "tasks"):
    """Yield ``fn(data, *task)`` for every task (in completion order when parallel), with a progress bar.

    local + ``workers`` 1: in this process; local + more: spawned processes of one
    torch thread; ``ray``: Ray tasks of one CPU and one thread (``address`` None = a
    local Ray of ``workers`` CPUs)."""
    from tqdm import tqdm

    if executor == "ray":
        yield from _ray_tasks(fn, data, tasks, workers, address, desc)
    elif executor != "local":
        raise UserError(f"unknown executor {executor!r} (local or ray)")
    elif workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers, initializer=_worker_init, initargs=(data,)) as pool:
            yield from tqdm(pool.imap_unordered(_worker_call, [(fn, t) for t in tasks]), total=len(tasks),
                            desc=desc, unit="task")
    else:
        for task in tqdm(tasks, desc=desc, unit="task"):
            yield fn(data, *task)


def _ray_tasks(fn: Callable, data: MEData, tasks: list, workers: int, address: str | None, desc: str):
    from tqdm import tqdm

    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install 'realtime-me[ray]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else max(1, workers), include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    try:
        remote = ray.remote(num_cpus=1)(_ray_call)
        ref = ray.put(data)
        pending = [remote.remote(fn, ref, t) for t in tasks]
        with tqdm(total=len(tasks), desc=desc, unit="task") as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                bar.update(len(done))
                yield ray.get(done[0])
    finally:
        if started:
            ray.shutdown()


def _ray_call(fn: Callable, data: MEData, task):
    torch.set_num_threads(1)
    return fn(data, *task)


_WORKER_DATA: MEData | None = None


def _worker_init(data: MEData) -> None:
    global _WORKER_DATA
    torch.set_num_threads(1)
    _WORKER_DATA = data


def _worker_call(job):
    fn, task = job
    return fn(_WORKER_DATA, *task)
