"""Run tasks: what the store lacks is computed, in this process or on a Dask cluster, and stored as it finishes.

``compute(tasks)`` returns the results in order; ``materialize(tasks)`` only stores them and says what it did
(:class:`Report`). On a cluster the missing tasks go together, largest first, each with the resources it asks for. Every
result is stored the moment it arrives, so an interrupted run loses nothing that finished and a rerun computes only what
is missing. A failing task does not stop the others: :class:`TaskFailures` names them all at the end. Results are
normalised to their stored form where they are computed, so a result is the same fresh or stored."""

from __future__ import annotations

import os
import re
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Sequence

from pml.engine.store import Store, decode, encode
from pml.engine.tasks import Sweep, Task, graph

SCHEDULER_ENV = "PML_SCHEDULER"  # address of a Dask scheduler; set by `pml run/book/compute --workers/--scheduler`
SCHEDULER_FORM = "[tcp://]HOST:PORT, e.g. tcp://10.0.0.5:8786 (tls://HOST:PORT for a cluster with TLS)"
_ADDRESS = re.compile(r"(?:(?:tcp|tls)://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})")


class ClusterError(RuntimeError):
    """A cluster that cannot be started or reached (a user-facing error)."""


def check_address(address: str, source: str = "--scheduler") -> str:
    """``address`` (stripped) when it is a Dask scheduler address ``[tcp://|tls://]HOST:PORT``."""
    text = str(address).strip()
    match = _ADDRESS.fullmatch(text)
    if match is None or not 0 < int(match.group(2)) < 65536:
        raise ClusterError(f"{source} {address!r} is not a Dask scheduler address; expected {SCHEDULER_FORM}")
    return text



@dataclass
class Report:
    """What one :func:`materialize` did: tasks (inputs included, each once), cached, computed and failed; the cost
    model's estimate for the computed ones against their measured run time, and the wall time."""

    tasks: int = 0
    cached: int = 0
    computed: int = 0
    failed: int = 0
    estimated_s: float = 0.0
    actual_s: float = 0.0
    wall_s: float = 0.0

    def __str__(self) -> str:
        text = f"{self.tasks} tasks: {self.cached} already stored, {self.computed} computed"
        if self.failed:
            text += f", {self.failed} failed"
        if self.computed:
            text += (f"; wall time {self.wall_s:.1f} s; CPU time estimated {self.estimated_s:.1f} s, "
                     f"actual {self.actual_s:.1f} s")
        return text


class TaskFailures(RuntimeError):
    """Some tasks raised; ``failures`` maps each task's label (type and every field) to its traceback text."""

    def __init__(self, failures: dict[str, str], n_tasks: int, report: Report | None = None):
        self.failures = failures
        self.report = report
        lines = [f"{len(failures)} of {n_tasks} tasks failed (the others are stored):"]
        for label, tb in failures.items():
            lines += [f"- {label}", "  " + tb.strip().replace("\n", "\n  ")]
        lines.append(f"failed tasks: {', '.join(failures)}")
        super().__init__("\n".join(lines))


class Done(NamedTuple):
    """A finished task as it comes back from a worker."""

    result: dict
    seconds: float
    device: str


def normalize(result: Any) -> Any:
    """The result as the store gives it back (tuples as lists, NumPy scalars as numbers); TypeError if not plain."""
    if not isinstance(result, dict):
        raise TypeError(f"Task.run must return a dict, got {type(result).__name__}")
    return decode(*encode(result))


def execute(task: Task, **inputs: Any) -> Done:
    """Run one task where it lands (here or on a worker) under its thread limit; inputs may be ``Done``."""
    from pml.threads import limit_threads

    inputs = {n: v.result if isinstance(v, Done) else v for n, v in inputs.items()}
    start = time.perf_counter()
    with limit_threads(getattr(task, "threads", 1) or 1):
        result = normalize(task.run(**inputs))
    return Done(result, time.perf_counter() - start, str(getattr(task, "device", "cpu")))


@dataclass
class Progress:
    """Counts for a progress display: tasks and estimated CPU-seconds, done and planned; the last finished task."""

    n_tasks: int
    planned: float
    done: int = 0
    failed: int = 0
    cost_done: float = 0.0
    seconds_done: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    last: Task | None = None
    failures: dict[str, str] = field(default_factory=dict)  # label -> traceback
    callback: Callable[["Progress"], None] | None = None

    def advance(self, task: Task, seconds: float = 0.0, failed: bool = False) -> None:
        self.last = task
        if failed:
            self.failed += 1
        else:
            self.done += 1
            self.seconds_done += seconds
        self.cost_done += task.cost()
        if self.callback is not None:
            self.callback(self)


def terminal_bar(n_tasks: int, planned: float) -> tuple[Callable[[Progress], None], Callable[[], None]]:
    """A progress bar of CPU-hours and tasks on a terminal; nothing when stderr is not one."""
    if not sys.stderr.isatty() or n_tasks == 0:
        return (lambda p: None), (lambda: None)
    from tqdm import tqdm

    bar = tqdm(total=max(planned, 1e-9) / 3600, file=sys.stderr, dynamic_ncols=True, desc="tasks",
               bar_format="{desc} {percentage:3.0f}%|{bar}| {n:.3g}/{total:.3g} CPU-h{postfix} "
                          "[{elapsed} elapsed, ETA {remaining}]")
    bar.set_postfix_str(f"0/{n_tasks} tasks", refresh=False)

    def update(p: Progress) -> None:
        bar.update(min(p.cost_done, p.planned) / 3600 - bar.n)
        failed = f", {p.failed} failed" if p.failed else ""
        bar.set_postfix_str(f"{p.done + p.failed}/{p.n_tasks} tasks{failed}")

    return update, bar.close


def compute(tasks: Sequence[Task], *, store: Store | None = None, client: Any = None,
            progress: Callable[[Progress], None] | None = None) -> list[dict]:
    """The results of ``tasks`` (in order), computing and storing those the store lacks."""
    results: dict[str, dict] = {}
    materialize(tasks, store=store, client=client, progress=progress, results=results)
    return [results[t.key()] for t in tasks]


def materialize(tasks: Sequence[Task], *, store: Store | None = None, client: Any = None,
                progress: Callable[[Progress], None] | None = None, results: dict | None = None) -> Report:
    """Make sure every task (and its inputs) is stored; fill ``results`` (key -> result) when given."""
    start = time.perf_counter()
    store = store or Store()
    order = graph(tasks)
    needed = {d.key() for t in order for d in t.inputs().values()}
    wanted = {t.key() for t in tasks} if results is not None else set()
    known: dict[str, dict] = {} if results is None else results
    missing: list[Task] = []
    for task in order:
        key = task.key()
        if key in needed or key in wanted:
            cached = store.get(task)
            if cached is not None:
                known[key] = cached
        else:
            cached = True if store.contains(task) else None
        if cached is None:
            missing.append(task)
    report = Report(tasks=len(order), cached=len(order) - len(missing),
                    estimated_s=sum(t.cost() for t in missing))
    if not missing:
        report.wall_s = time.perf_counter() - start
        return report
    if client is None:
        client = client_from_env()
    close = lambda: None  # noqa: E731
    if progress is None:
        progress, close = terminal_bar(len(missing), report.estimated_s)
    state = Progress(len(missing), report.estimated_s, callback=progress)
    keep = needed | wanted
    try:
        if not client:
            failures = _serial(missing, known, keep, store, state)
        else:
            failures = _distributed(missing, known, keep, store, state, client)
    finally:
        close()
        report.computed, report.failed, report.actual_s = state.done, len(state.failures), state.seconds_done
        report.wall_s = time.perf_counter() - start
    if failures:
        raise TaskFailures(failures, len(order), report)
    return report


def _store(task: Task, done: Done, known: dict, keep: set, store: Store, state: Progress) -> None:
    store.put(task, done.result, seconds=done.seconds, device=done.device)
    if task.key() in keep:
        known[task.key()] = done.result
    state.advance(task, done.seconds)


def _serial(missing, known, keep, store, state) -> dict[str, str]:
    failures = state.failures
    failed: set[str] = set()
    for task in missing:  # topological: inputs come first
        deps = task.inputs()
        bad = [d.label() for d in deps.values() if d.key() in failed]
        if bad:
            failed.add(task.key())
            failures[task.label()] = f"not run: its input failed: {bad[0]}"
            state.advance(task, failed=True)
            continue
        try:
            done = execute(task, **{n: known[d.key()] for n, d in deps.items()})
        except Exception:
            failed.add(task.key())
            failures[task.label()] = traceback.format_exc()
            state.advance(task, failed=True)
            continue
        _store(task, done, known, keep, store, state)
    return failures


def _priorities(missing: list, largest_first: list) -> dict[str, int]:
    """Dask priorities by task key: the costliest first, and an input at least as early as what waits for it."""
    priority = {t.key(): len(largest_first) - rank for rank, t in enumerate(largest_first)}
    for task in reversed(missing):  # dependents before inputs: an input runs as early as what waits for it
        for dep in task.inputs().values():
            if dep.key() in priority:
                priority[dep.key()] = max(priority[dep.key()], priority[task.key()])
    return priority


def _failure(task: Task, future: Any, failed: set, problem: str) -> str:
    """Why a task failed on the cluster: a failed input, its traceback, or ``problem`` (what Dask said)."""
    bad = [d.label() for d in task.inputs().values() if d.key() in failed]
    if bad:
        return f"not run: its input failed: {bad[0]}"
    if future.status == "error":
        exc, tb = future.exception(), future.traceback()
        return "".join(traceback.format_exception(type(exc), exc, tb))
    return problem


def _distributed(missing, known, keep, store, state, client) -> dict[str, str]:
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]  # fresh Dask keys: a rerun never meets the cancelled futures of an interrupted one
    futures: dict[str, Any] = {}
    by_future: dict[Any, Task] = {}
    stored: set[str] = set()

    largest_first = sorted(missing, key=lambda t: -t.cost())  # keeps every worker busy to the end
    priority = _priorities(missing, largest_first)

    def submit(task: Task):
        key = task.key()
        if key in known:
            return known[key]
        if key not in futures:
            inputs = {n: submit(d) for n, d in task.inputs().items()}
            future = client.submit(execute, task, key=f"{type(task).__name__}-{key[:16]}-{token}", pure=False,
                                   resources=task.resources() or None, priority=priority[key], **inputs)
            futures[key] = future
            by_future[future] = task
        return futures[key]

    for task in largest_first:
        submit(task)
    n_gpu = sum(t.gpu() for t in missing)
    if n_gpu and sys.stderr.isatty() and not gpu_workers(client):
        print(f"pml: note: {n_gpu} tasks ask for a GPU (device='cuda') and no worker offers one yet; they wait "
              "for a worker started with `dask worker ADDRESS --nthreads 1 --resources GPU=1`", file=sys.stderr)
    failures = state.failures
    failed: set[str] = set()
    try:
        for future in as_completed(list(by_future)):
            task = by_future[future]
            problem = f"Dask future {future.status}"
            if future.status not in ("error", "cancelled"):
                try:  # finished; or "lost" (its worker died before we fetched it): Dask recomputes it, we wait
                    done = future.result()
                except Exception:
                    problem = traceback.format_exc()
                else:
                    _store(task, done, known, keep, store, state)
                    stored.add(task.key())
                    future.release()
                    continue
            failed.add(task.key())
            failures[task.label()] = _failure(task, future, failed, problem)
            state.advance(task, failed=True)
    except BaseException:
        _rescue(by_future, stored, known, keep, store, state)
        client.cancel(list(by_future))
        raise
    return failures


def _rescue(by_future, stored, known, keep, store, state, timeout: float = 10.0) -> None:
    """On an interrupt, store what already finished on the workers before the rest is cancelled."""
    deadline = time.monotonic() + timeout
    for future, task in by_future.items():
        if task.key() in stored or future.status != "finished" or time.monotonic() > deadline:
            continue
        try:
            _store(task, future.result(timeout=max(deadline - time.monotonic(), 0.1)), known, keep, store, state)
        except BaseException:  # a second Ctrl-C or a lost worker: what is stored stays stored
            return


def gpu_workers(client: Any) -> int:
    """How many of the cluster's workers offer the ``GPU`` resource."""
    workers = client.scheduler_info().get("workers", {})
    return sum(1 for w in workers.values() if (w.get("resources") or {}).get("GPU"))


def client_from_env() -> Any:
    """A ``distributed.Client`` for ``$PML_SCHEDULER`` when set, else None; ClusterError for a bad address."""
    address = os.environ.get(SCHEDULER_ENV, "").strip()
    if not address:
        return None
    address = check_address(address, f"${SCHEDULER_ENV}")
    from distributed import Client, default_client

    try:
        client = default_client()
        if client.scheduler.address == address and client.status == "running":
            return client
    except ValueError:
        pass
    try:
        return Client(address, set_as_default=True)
    except (OSError, ValueError, TypeError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler {address} (${SCHEDULER_ENV}): {exc}") from None


def run(sweep: Sweep, *, store: Store | None = None, client: Any = None, stored: bool | None = None) -> Any:
    """The sweep's result: its tasks from the store or computed, assembled; their provenance is noted for the claims.

    Parameters
    ----------
    sweep : Sweep
        The step to run.
    store : Store, optional
        Where results are read and written (default: the project's store).
    client : dask.distributed.Client, optional
        A cluster to compute on (default: ``$PML_SCHEDULER``, else in process).
    stored : bool, optional
        True: compute nothing (the default under ``$PML_STORED``, set by ``pml run/book --stored``).

    Returns
    -------
    object
        ``sweep.assemble`` of the results; in stored mode :func:`pml.engine.partial.from_store`'s.
    """
    from pml.engine import partial, provenance

    store = store or Store()
    tasks = sweep.tasks()
    if partial.stored_mode() if stored is None else stored:
        provenance.note_step(sweep, [t for t in tasks if store.contains(t)], store)
        return partial.from_store(sweep, store)
    results = compute(tasks, store=store, client=client)
    provenance.note_step(sweep, tasks, store)
    return sweep.assemble(results)
