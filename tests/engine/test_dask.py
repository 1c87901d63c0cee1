"""The engine on a real Dask cluster (two single-threaded worker processes on this machine): the same numbers as
the serial path, a killed worker's task retried elsewhere, interrupts that lose no finished task, failures
reported by name, GPU tasks held for GPU workers."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from engine_tasks import Total, Toy, ToySweep, runs

from pml.engine import Store, TaskFailures, cluster, compute, materialize
from pml.engine.executor import SCHEDULER_ENV, client_from_env
from pml.engine.store import first_difference

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc, \
            distributed.Client(lc) as c:
        yield c


def _tasks(log="", sleep=0.0, n=6):
    return [*ToySweep(seeds=tuple(range(n)), sleep=sleep, log=log).tasks(), Total(seeds=(0, 1), log=log)]


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert first_difference(x, y) is None


def test_dask_gives_the_serial_results_bit_for_bit(client, tmp_path, monkeypatch):
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    serial = compute(_tasks(), store=Store(tmp_path / "serial"), client=False)
    dask = compute(_tasks(), store=Store(tmp_path / "dask"), client=client)
    _same(serial, dask)
    # and the chapter path: engine.run sends to $PML_SCHEDULER
    monkeypatch.setenv(SCHEDULER_ENV, client.scheduler.address)
    assert client_from_env() is not None
    log = str(tmp_path / "log")
    env = compute(_tasks(log=log), store=Store(tmp_path / "env"))
    _same(serial, env)
    assert {line.split()[1] for line in runs(log)} - {str(os.getpid())}  # ran in worker processes


def test_a_killed_worker_has_its_task_retried_and_the_results_are_identical(client, tmp_path):
    log = str(tmp_path / "log")
    tasks = _tasks(log=log, sleep=0.4, n=8)
    reference = compute(_tasks(n=8), store=Store(tmp_path / "serial"), client=False)  # sleep is not in the key
    pids = set(client.run(os.getpid).values())
    killed = []

    def kill_the_worker_that_just_started_a_task(progress):
        if killed:
            return
        seen, deadline = len(runs(log)), time.monotonic() + 10
        while len(runs(log)) == seen and time.monotonic() < deadline:
            time.sleep(0.01)
        pid = int([r for r in runs(log) if r.startswith("toy")][-1].split()[-1])  # it sleeps 0.4 s in this task now
        assert pid in pids
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    results = compute(tasks, store=Store(tmp_path / "dask"), client=client,
                      progress=kill_the_worker_that_just_started_a_task)
    assert killed
    _same(reference, results)
    assert len(runs(log)) > len(tasks)  # the killed task ran again, elsewhere
    client.wait_for_workers(2, timeout=30)  # the nanny restarted the killed worker


def test_interrupt_loses_no_finished_task_and_the_rerun_computes_only_the_rest(client, tmp_path):
    store = Store(tmp_path / "store")
    tasks = ToySweep(seeds=tuple(range(8)), sleep=0.2).tasks()

    def interrupt_after_three(progress):
        if progress.done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        compute(tasks, store=store, client=client, progress=interrupt_after_three)
    before = {t.key() for t in tasks if store.contains(t)}
    assert 3 <= len(before) < len(tasks)
    rerun = []
    report = materialize(tasks, store=store, client=client, progress=lambda p: rerun.append(p.last.key()))
    assert not set(rerun) & before  # zero finished tasks recomputed
    assert len(rerun) == report.computed == len(tasks) - len(before) and report.cached == len(before)
    _same(compute(tasks, store=Store(tmp_path / "ref"), client=False), compute(tasks, store=store, client=False))


def test_a_task_that_raises_is_named_and_the_others_are_stored(client, tmp_path):
    store = Store(tmp_path / "store")
    sweep = ToySweep(seeds=(0, 1, 2, 3, 4), fail_seeds=(1, 3))
    dependent = Total(seeds=(0, 3), fail_seeds=(3,))
    with pytest.raises(TaskFailures) as info:
        compute([*sweep.tasks(), dependent], store=store, client=client)
    failures = info.value.failures
    assert sorted(label.split(",")[0] for label in failures if label.startswith("Toy(")) == ["Toy(seed=1",
                                                                                             "Toy(seed=3"]
    assert "toy failure at seed 3" in "".join(failures.values()) and dependent.label() in failures
    assert all(store.contains(t) for t in ToySweep(seeds=(0, 2, 4)).tasks())
    assert info.value.report.computed == 3 and info.value.report.failed == 3


def test_gpu_tasks_wait_for_a_gpu_worker(client, tmp_path):
    task = Toy(seed=11, device="cuda")
    outcome = {}

    def submit():
        try:
            compute([task], store=Store(tmp_path), client=client)
        except TaskFailures as exc:
            outcome["failures"] = exc.failures

    thread = threading.Thread(target=submit)
    thread.start()

    prefix = f"Toy-{task.key()[:16]}"

    def waiting(dask_scheduler):
        return {k: (ts.state, ts.resource_restrictions) for k, ts in dask_scheduler.tasks.items()
                if str(k).startswith(prefix)}

    deadline = time.monotonic() + 10
    while not (state := client.run_on_scheduler(waiting)) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    state = client.run_on_scheduler(waiting)
    assert list(state.values()) == [("no-worker", {"GPU": 1})]  # held until a worker with GPU=1 joins
    client.cancel([distributed.Future(k, client) for k in state])
    thread.join(10)
    assert not thread.is_alive() and task.label() in outcome["failures"]


def test_session_connects_to_a_running_scheduler_and_sets_the_environment(client, monkeypatch):
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    address = client.scheduler.address
    with cluster.session(scheduler=address) as c:
        assert os.environ[SCHEDULER_ENV] == address
        assert "2 workers (2 threads)" in cluster.describe(c)
    assert SCHEDULER_ENV not in os.environ
    monkeypatch.setenv(SCHEDULER_ENV, address)
    with cluster.session() as c:  # the environment alone
        assert c is not None
    monkeypatch.delenv(SCHEDULER_ENV)
    with cluster.session() as c:
        assert c is None
    with pytest.raises(cluster.ClusterError, match="not both"), cluster.session(workers=2, scheduler=address):
        pass
