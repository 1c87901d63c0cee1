"""Where tasks run: a Dask cluster for one command (``--workers N``, ``--scheduler ADDRESS``, ``$PML_SCHEDULER``).

:func:`session` yields a ``distributed.Client`` (or None: run in this process) and, while it is open, sets
``$PML_SCHEDULER`` to the scheduler's address so that the chapters' kernels, which papermill starts as child
processes, send their tasks to the same cluster. ``--workers N`` starts a ``distributed.LocalCluster`` of N
single-threaded worker processes for the whole command (on a machine with a CUDA GPU each offers ``GPU=1``: the
workers share the card); ``--scheduler`` connects to a running one (``dask
scheduler`` + ``dask worker`` by hand, a dask-jobqueue ``SLURMCluster``, Kubernetes). Dask is imported only here,
and only when a cluster is asked for.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

from pml.engine.executor import SCHEDULER_ENV, gpu_workers


class ClusterError(RuntimeError):
    """A cluster that cannot be started or reached (a user-facing error)."""


@contextlib.contextmanager
def session(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A client for the command: ``workers`` local processes, or the scheduler at ``scheduler`` (default
    ``$PML_SCHEDULER``), or None (serial, in process) when neither is given."""
    if workers is not None and scheduler:
        raise ClusterError("give --workers (a cluster on this machine) or --scheduler (a running one), not both")
    if workers is not None and workers < 1:
        raise ClusterError(f"--workers must be at least 1, got {workers}")
    if workers is None:
        scheduler = scheduler or os.environ.get(SCHEDULER_ENV) or None
        if not scheduler:
            yield None
            return
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if workers is not None:
            resources = {"GPU": 1} if local_gpu() else None  # each worker may run one GPU task; they share the card
            cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                       dashboard_address=None, resources=resources))
            address = cluster.scheduler_address
        else:
            address = scheduler
        try:
            client = stack.enter_context(Client(address, set_as_default=True))
        except OSError as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        previous = os.environ.get(SCHEDULER_ENV)
        os.environ[SCHEDULER_ENV] = address
        try:
            yield client
        finally:
            if previous is None:
                os.environ.pop(SCHEDULER_ENV, None)
            else:
                os.environ[SCHEDULER_ENV] = previous


def local_gpu() -> bool:
    """Whether this machine has a CUDA device torch can use (tasks with ``device="cuda"`` then run locally)."""
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # no torch, or a broken CUDA setup: CPU only
        return False


def describe(client: Any) -> str:
    """``N workers (T threads, GPU on G) at ADDRESS``."""
    info = client.scheduler_info()
    workers = info.get("workers", {})
    threads = sum(w.get("nthreads", 0) for w in workers.values())
    gpus = gpu_workers(client)
    gpu = f", GPU on {gpus}" if gpus else ""
    return f"{len(workers)} workers ({threads} threads{gpu}) at {info.get('address', '?')}"
