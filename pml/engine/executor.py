"""Run tasks: what the store lacks is computed, in this process or on a Dask cluster, and stored as it finishes.

``compute(tasks)`` returns the tasks' results in order. Without a client, missing tasks run here one after the
other (inputs first); with a ``distributed.Client`` they are submitted together, largest first by the cost model,
each on a worker with the resources it asks for (``GPU=1`` for ``device="cuda"``). Every result is written to the
store the moment it arrives, so an interrupted run loses nothing that finished and the rerun computes only what is
missing. A task that raises does not stop the others: when all are done, :class:`TaskFailures` names every failed
task with its config and traceback. A worker that dies mid-task has its task rescheduled by Dask on another worker.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Sequence

from pml.engine.store import Store
from pml.engine.tasks import Sweep, Task, graph

SCHEDULER_ENV = "PML_SCHEDULER"  # address of a Dask scheduler; set by `pml run/book --workers/--scheduler`


class TaskFailures(RuntimeError):
    """Some tasks raised; ``failures`` maps each task's label to its traceback text."""

    def __init__(self, failures: dict[str, str], n_tasks: int):
        self.failures = failures
        lines = [f"{len(failures)} of {n_tasks} tasks failed (the others are stored):"]
        for label, tb in failures.items():
            lines += [f"- {label}", "  " + tb.strip().replace("\n", "\n  ")]
        super().__init__("\n".join(lines))


class Done(NamedTuple):
    """A finished task as it comes back from a worker."""

    result: dict
    seconds: float
    device: str


def execute(task: Task, **inputs: Any) -> Done:
    """Run one task where it lands (here or on a worker) under its thread limit; inputs may be ``Done``."""
    from pml.threads import limit_threads

    inputs = {n: v.result if isinstance(v, Done) else v for n, v in inputs.items()}
    start = time.perf_counter()
    with limit_threads(getattr(task, "threads", 1) or 1):
        result = task.run(**inputs)
    return Done(result, time.perf_counter() - start, str(getattr(task, "device", "cpu")))


@dataclass
class Progress:
    """Counts for a progress display: tasks and estimated CPU-seconds, done and planned."""

    n_tasks: int
    planned: float
    done: int = 0
    cost_done: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    callback: Callable[["Progress"], None] | None = None

    def advance(self, task: Task) -> None:
        self.done += 1
        self.cost_done += task.cost()
        if self.callback is not None:
            self.callback(self)


def _terminal_bar(n_tasks: int, planned: float) -> tuple[Callable[[Progress], None], Callable[[], None]]:
    """A tqdm bar on a terminal (tasks, CPU-hours, ETA by cost), nothing in logs or notebooks."""
    if not sys.stderr.isatty() or n_tasks == 0:
        return (lambda p: None), (lambda: None)
    from tqdm import tqdm

    bar = tqdm(total=max(planned, 1e-9) / 3600, unit="CPU-h", file=sys.stderr, dynamic_ncols=True,
               bar_format="{l_bar}{bar}| {n:.3g}/{total:.3g} CPU-h [{elapsed}<{remaining}] {postfix}")

    def update(p: Progress) -> None:
        bar.update(p.cost_done / 3600 - bar.n)
        bar.set_postfix_str(f"tasks {p.done}/{p.n_tasks}")

    return update, bar.close


def compute(tasks: Sequence[Task], *, store: Store | None = None, client: Any = None,
            progress: Callable[[Progress], None] | None = None) -> list[dict]:
    """The results of ``tasks`` (in order), computing and storing those the store lacks."""
    store = store or Store()
    order = graph(tasks)
    results: dict[str, dict] = {}
    missing: list[Task] = []
    for task in order:
        cached = store.get(task)
        if cached is None:
            missing.append(task)
        else:
            results[task.key()] = cached
    if missing:
        close = lambda: None  # noqa: E731
        if progress is None:
            progress, close = _terminal_bar(len(missing), sum(t.cost() for t in missing))
        state = Progress(len(missing), sum(t.cost() for t in missing), callback=progress)
        try:
            if client is None:
                failures = _serial(missing, results, store, state)
            else:
                failures = _distributed(missing, results, store, state, client)
        finally:
            close()
        if failures:
            raise TaskFailures(failures, len(order))
    return [results[t.key()] for t in tasks]


def _serial(missing, results, store, state) -> dict[str, str]:
    failures: dict[str, str] = {}
    failed: set[str] = set()
    for task in missing:  # topological: inputs come first
        deps = task.inputs()
        bad = [d.label() for d in deps.values() if d.key() in failed]
        if bad:
            failed.add(task.key())
            failures[task.label()] = f"not run: input failed: {bad[0]}"
            continue
        try:
            result, seconds, device = execute(task, **{n: results[d.key()] for n, d in deps.items()})
        except Exception:
            failed.add(task.key())
            failures[task.label()] = traceback.format_exc()
            continue
        store.put(task, result, seconds=seconds, device=device)
        results[task.key()] = result
        state.advance(task)
    return failures


def _distributed(missing, results, store, state, client) -> dict[str, str]:
    from distributed import as_completed

    futures: dict[str, Any] = {}
    by_future: dict[Any, Task] = {}

    def submit(task: Task):
        key = task.key()
        if key in results:
            return results[key]
        if key not in futures:
            inputs = {n: submit(d) for n, d in task.inputs().items()}
            future = client.submit(execute, task, key=f"{type(task).__name__}-{key}", pure=False,
                                   resources=task.resources() or None, priority=int(task.cost()), **inputs)
            futures[key] = future
            by_future[future] = task
        return futures[key]

    for task in sorted(missing, key=lambda t: -t.cost()):  # largest first keeps every worker busy to the end
        submit(task)
    failures: dict[str, str] = {}
    try:
        for future in as_completed(list(by_future)):
            task = by_future[future]
            if future.status == "error":
                exc, tb = future.exception(), future.traceback()
                failures[task.label()] = "".join(traceback.format_exception(type(exc), exc, tb))
                continue
            result, seconds, device = future.result()
            store.put(task, result, seconds=seconds, device=device)
            results[task.key()] = result
            state.advance(task)
            future.release()
    except BaseException:
        client.cancel(list(by_future))
        raise
    return failures


def client_from_env() -> Any:
    """A ``distributed.Client`` for ``$PML_SCHEDULER`` when it is set, else None (run in process)."""
    address = os.environ.get(SCHEDULER_ENV)
    if not address:
        return None
    from distributed import Client, default_client

    try:
        client = default_client()
        if client.scheduler.address == address:
            return client
    except ValueError:
        pass
    return Client(address, set_as_default=True)


def run(sweep: Sweep, *, store: Store | None = None, client: Any = None) -> Any:
    """The sweep's result: its tasks from the store or computed (on ``$PML_SCHEDULER`` when set), assembled."""
    tasks = sweep.tasks()
    return sweep.assemble(compute(tasks, store=store, client=client if client is not None else client_from_env()))
