"""Where tasks run: a Dask cluster for one command (``--workers N``, ``--scheduler ADDRESS``, ``$PML_SCHEDULER``).

:func:`session` yields a ``distributed.Client`` (or None: in process) and sets ``$PML_SCHEDULER`` while open, so the
chapters' kernels, which papermill starts as child processes, use the same cluster. ``--workers N`` starts N
single-threaded local workers, ``--scheduler`` connects to a running one. The address and the number of workers are
checked first (:func:`check_address`, :func:`check_workers`). Local workers start with Ctrl-C blocked, so an interrupt
reaches only this process, which stops them. Dask is imported only here, and only when asked for."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Any, Iterator

from pml.engine.executor import SCHEDULER_ENV, ClusterError, check_address, gpu_workers

# A worker process holds Python, Dask, NumPy, SciPy and torch (about 300 MB measured) plus its task's arrays; below
# this much memory per worker, Dask's per-worker budget (total / N) pauses or kills them.
MIN_WORKER_MEMORY = 512 * 2**20


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _memory() -> int | None:
    """Bytes of memory this process may use: the machine's, or its cgroup's limit when lower; None if unknown."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
    with contextlib.suppress(OSError, ValueError):
        limit = open("/sys/fs/cgroup/memory.max").read().strip()
        if limit.isdigit():
            total = min(total, int(limit))
    return total


def check_workers(workers: int) -> None:
    """Refuse a ``--workers`` count this machine cannot hold; warn (one line on stderr) above its core count."""
    if workers < 1:
        raise ClusterError(f"--workers must be at least 1, got {workers}")
    memory = _memory()
    if memory is not None and workers * MIN_WORKER_MEMORY > memory:
        raise ClusterError(f"--workers {workers}: this machine has {memory / 2**30:.1f} GiB of memory and a worker "
                           f"process needs {MIN_WORKER_MEMORY // 2**20} MiB at least: at most "
                           f"{max(1, memory // MIN_WORKER_MEMORY)} workers (one per core, {_cores()} here, is "
                           "fastest)")
    cores = _cores()
    if workers > cores:
        print(f"pml: warning: --workers {workers} is more than the {cores} cores of this machine: the workers share "
              f"them (no faster than --workers {cores}) and each holds its own memory", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _interrupts_blocked() -> Iterator[None]:
    """SIGINT blocked in this thread and the processes it starts (the mask survives fork and exec), so Ctrl-C reaches
    only this process; one arriving meanwhile is raised when the block ends, never leaving the cluster half started."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # now: starting it later would unblock SIGINT in the thread that starts it
    previous = signal.getsignal(signal.SIGINT)
    held: list[Any] = []
    if previous is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, lambda signum, frame: held.append(frame))
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        signal.signal(signal.SIGINT, previous)
    if held:
        if callable(previous) and previous is not signal.default_int_handler:
            previous(signal.SIGINT, held[0])
        raise KeyboardInterrupt


@contextlib.contextmanager
def session(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A client for the command: local ``workers``, a ``scheduler``, or None (in process) when neither is given."""
    if workers is not None and scheduler:
        raise ClusterError("give --workers (a cluster on this machine) or --scheduler (a running one), not both")
    if workers is None:
        if scheduler:
            scheduler = check_address(scheduler, "--scheduler")
        elif os.environ.get(SCHEDULER_ENV, "").strip():
            scheduler = check_address(os.environ[SCHEDULER_ENV], f"${SCHEDULER_ENV}")
        else:
            yield None
            return
    else:
        check_workers(workers)

    with contextlib.ExitStack() as stack:
        if workers is not None:
            print(f"pml: starting a Dask cluster of {workers} worker process{'es' if workers > 1 else ''} on this "
                  "machine ...", file=sys.stderr, flush=True)
            resources = {"GPU": 1} if local_gpu() else None  # each worker may run one GPU task; they share the card
            with _interrupts_blocked():  # Dask's IO loop thread, and so the workers, inherit the block
                from distributed import LocalCluster

                cluster = stack.enter_context(LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                    resources=resources,
                    # Dask's errors only: its warnings about tasks it cancels and workers it stops on Ctrl-C say
                    # nothing the user needs (pml reports failed and lost tasks itself)
                    silence_logs=logging.ERROR,
                    # the scheduler's HTTP server (health checks) on a free port: 8787 may be another cluster's
                    scheduler_kwargs={"dashboard_address": ":0"}))
            address = cluster.scheduler_address
        else:
            address = scheduler
        from distributed import Client

        try:
            client = stack.enter_context(Client(address, set_as_default=True))
        except (OSError, ValueError, TypeError) as exc:
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
