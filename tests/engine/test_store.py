"""The engine's keys and store: keys follow the source a task runs and nothing else; entries are plain data; a
damaged entry is recomputed, never an error; a sweep runs serially with failures reported and interrupts resumed."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from engine_tasks import Total, Toy, ToySweep, runs

from pml.engine import Store, TaskFailures, closure, compute, materialize, run
from pml.engine.executor import normalize
from pml.engine.store import first_difference
from pml.engine.tasks import from_json, load_task, to_json


@pytest.fixture
def pml_copy(tmp_path, monkeypatch):
    """A copy of the pml sources that keys are computed from (edits there never touch the checkout)."""
    root = tmp_path / "src" / "pml"
    shutil.copytree(closure.PACKAGE_DIR, root, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(closure, "PACKAGE_DIR", root)
    closure.clear()
    yield root
    closure.clear()


def _append(path, text="\n# an edit\n"):
    path.write_text(path.read_text() + text)
    closure.clear()


def test_closure_of_a_task_holds_what_it_imports_and_not_the_book_nor_the_engine():
    names = closure.import_closure("engine_tasks")
    assert set(names) == {"engine_tasks", "pml", "pml.metrics"}  # pml.engine: how, not what
    piecewise = closure.import_closure("pml.experiments.introduction")
    assert "pml.experiments.introduction" in piecewise and "pml.data" in piecewise
    assert not [n for n in piecewise if n.startswith(("pml.book", "pml.cli", "pml.plotting", "pml.engine",
                                                      "pml.fitting"))]  # pml.fit imports pml.fitting lazily


def test_edit_outside_the_closure_keeps_the_entry_and_inside_invalidates_it(pml_copy, tmp_path):
    store, log = Store(tmp_path / "store"), str(tmp_path / "log")
    task = Toy(seed=3, log=log)
    first = compute([task], store=store, client=False)[0]
    key = task.key()
    _append(pml_copy / "book" / "htmlcheck.py", '\n"""a docstring edit in the browser check"""\n')
    _append(pml_copy / "fitting" / "__init__.py")
    _append(pml_copy / "engine" / "executor.py")
    again = Toy(seed=3, log=log)
    assert again.key() == key
    assert first_difference(compute([again], store=store, client=False)[0], first) is None
    assert len(runs(log)) == 1  # served from the store
    _append(pml_copy / "metrics.py", '\n# a comment inside the closure\n')
    _append(pml_copy / "metrics.py", '\n\ndef _helper():\n    """only a docstring"""\n')
    _append(pml_copy / "metrics.py", '\n\nclass _C:\n    """a docstring"""\n')
    assert Toy(seed=3, log=log).key() != key  # a new function is code
    base_key = Toy(seed=3, log=log).key()
    text = (pml_copy / "metrics.py").read_text()
    (pml_copy / "metrics.py").write_text(text.replace('"""a docstring"""', '"""a reworded docstring"""'))
    closure.clear()
    assert Toy(seed=3, log=log).key() == base_key  # docstrings and comments are not code
    _append(pml_copy / "metrics.py", "\nEDITED = 1\n")
    edited = Toy(seed=3, log=log)
    edited_key = edited.key()
    assert edited_key != key
    compute([edited], store=store, client=False)
    assert len(runs(log)) == 2  # recomputed under the new key
    _append(pml_copy / "__init__.py", "\nimport pml.data  # an import that runs with every pml import\n")
    assert "pml.data" in closure.import_closure("engine_tasks") and Toy(seed=3).key() != edited_key


def test_execution_settings_are_not_in_the_key():
    base = Toy(seed=1)
    assert Toy(seed=1, threads=4, device="cuda", log="x", sleep=1.0).key() == base.key()
    assert Toy(seed=2).key() != base.key() and Toy(seed=1, n=65).key() != base.key()


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_a_flipped_byte_in_an_entry_recomputes_it(tmp_path, suffix):
    store, log = Store(tmp_path / "store"), str(tmp_path / "log")
    task = Toy(seed=5, log=log)
    first = compute([task], store=store, client=False)[0]
    path = store.paths(task)[0 if suffix == ".npz" else 1]
    clean = path.read_bytes()
    rng = np.random.default_rng(0)
    positions = rng.choice(len(clean), size=6, replace=False)
    for i, pos in enumerate(positions, start=2):
        damaged = bytearray(clean)
        damaged[pos] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(damaged))
        assert store.get(task) is None
        result = compute([task], store=store, client=False)[0]  # never an error
        assert first_difference(result, first) is None
        assert len(runs(log)) == i
        clean = path.read_bytes()


def test_a_truncated_or_missing_file_is_a_miss(tmp_path):
    store = Store(tmp_path / "store")
    task = Toy(seed=1)
    compute([task], store=store, client=False)
    npz, meta = store.paths(task)
    meta.write_bytes(meta.read_bytes()[:50])
    assert store.get(task) is None
    compute([task], store=store, client=False)
    npz.unlink()
    assert not store.contains(task)


def test_results_are_plain_data_and_come_back_the_same_from_the_store(tmp_path):
    store = Store(tmp_path / "store")
    task = Toy(seed=2)
    fresh = compute([task], store=store, client=False)[0]
    cached = compute([task], store=store, client=False)[0]
    assert first_difference(fresh, cached) is None
    assert fresh["pair"] == [1, 2.5] and type(fresh["norm"]) is float and np.isnan(fresh["missing"])
    meta = json.loads(store.paths(task)[1].read_text())
    assert meta["config"]["seed"] == 2 and meta["class"] == "engine_tasks:Toy" and meta["device"] == "cpu"
    with pytest.raises(TypeError, match="plain data"):
        normalize({"x": object()})
    with pytest.raises(TypeError, match="strings"):
        normalize({1: 2})


def test_fields_round_trip_through_json():
    task = Total(seeds=(4, 5), n=8, log="a")
    back = load_task("engine_tasks:Total", json.loads(json.dumps(task.fields_json())))
    assert back == task and back.key() == task.key()
    value = {"t": (1, (2.5, float("inf"))), 3: [None, "x"], "nan": float("nan")}
    again = from_json(json.loads(json.dumps(to_json(value))))
    assert again["t"] == (1, (2.5, float("inf"))) and again[3] == [None, "x"] and np.isnan(again["nan"])


def test_serial_sweep_with_dependencies_and_a_failure(tmp_path):
    store, log = Store(tmp_path / "store"), str(tmp_path / "log")
    sweep = ToySweep(seeds=(0, 1, 2, 3), fail_seeds=(2,), log=log)
    dependent = Total(seeds=(2, 3), fail_seeds=(2,), log=log)
    dependent_ok = Total(seeds=(0, 1), log=log)
    with pytest.raises(TaskFailures) as info:
        compute([*sweep.tasks(), dependent, dependent_ok], store=store, client=False)
    failures = info.value.failures
    assert len(failures) == 2
    failed = next(label for label in failures if label.startswith("Toy("))
    assert "seed=2" in failed and "toy failure at seed 2" in failures[failed]
    assert "its input failed" in failures[dependent.label()]
    assert "seed=2" in str(info.value).splitlines()[-1]  # the run names every failed task
    assert info.value.report.computed == 4 and info.value.report.failed == 2
    assert all(store.contains(t) for t in [*ToySweep(seeds=(0, 1, 3)).tasks(), dependent_ok])
    total = compute([dependent_ok], store=store, client=False)[0]
    parts = compute(ToySweep(seeds=(0, 1)).tasks(), store=store, client=False)
    np.testing.assert_array_equal(total["total"], parts[0]["ax"] + parts[1]["ax"])


def test_serial_interrupt_keeps_finished_tasks_and_rerun_computes_only_the_rest(tmp_path):
    store = Store(tmp_path / "store")
    tasks = ToySweep(seeds=tuple(range(6))).tasks()

    def stop_after_two(progress):
        if progress.done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        compute(tasks, store=store, client=False, progress=stop_after_two)
    before = {t.key() for t in tasks if store.contains(t)}
    assert len(before) == 2
    rerun = []
    report = materialize(tasks, store=store, client=False, progress=lambda p: rerun.append(p.last.key()))
    assert not set(rerun) & before and len(rerun) == 4
    assert (report.cached, report.computed) == (2, 4)


def test_run_assembles_the_sweep(tmp_path):
    result = run(ToySweep(seeds=(3, 1)), store=Store(tmp_path), client=False)
    assert result["seeds"] == [3, 1] and result["ax"].shape == (2, 64)


def test_importing_pml_and_the_engine_does_not_import_dask():
    code = ("import sys, pml, pml.engine, pml.engine.plan, pml.engine.archive, pml.engine.cluster, pml.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_dataclass_replace_keeps_the_key():
    task = Toy(seed=9)
    assert dataclasses.replace(task, device="cuda").key() == task.key()
    assert dataclasses.replace(task, device="cuda").resources() == {"GPU": 1} and task.resources() == {}


def test_recomputed_results_are_compared_without_their_run_times():
    a = {"rmse": 1.5, "seconds": 0.2, "rows": [{"seconds_per_step": 1e-3, "n": 3}], "history": {"time_s": [0.1]}}
    b = {"rmse": 1.5, "seconds": 0.9, "rows": [{"seconds_per_step": 2e-3, "n": 3}], "history": {"time_s": [0.4]}}
    assert first_difference(a, b) is not None  # exact comparison sees the timings
    assert first_difference(a, b, skip_timings=True) is None
    c = dict(b, rows=[{"seconds_per_step": 2e-3, "n": 4}])
    assert "['n']" in first_difference(a, c, skip_timings=True)


def test_a_string_statement_anywhere_is_not_code():
    plain = b"X = 1\n\n\ndef f():\n    return X\n"
    documented = b'X = 1\n"""what X is"""\n\n\ndef f():\n    """f"""\n    return X\n'
    assert closure.code_fingerprint(plain) == closure.code_fingerprint(documented)
    assert closure.code_fingerprint(plain) != closure.code_fingerprint(b"X = 2\n\n\ndef f():\n    return X\n")


def test_a_chapter_lookup_recomputes_entries_with_a_non_utf8_byte_or_a_flipped_array_byte(tmp_path):
    """What a chapter calls (``engine.run`` of a sweep) treats a damaged entry as a miss: a byte made invalid UTF-8 in
    the .json (no UnicodeDecodeError) or a flipped byte in the .npz recomputes just that task, same result."""
    store, log = Store(tmp_path / "store"), str(tmp_path / "log")
    sweep = ToySweep(seeds=(3, 1, 4), log=log)
    first = run(sweep, store=store, client=False)
    assert len(runs(log)) == 3
    for n_runs, (task, suffix) in enumerate([(sweep.tasks()[0], ".json"), (sweep.tasks()[2], ".npz")], start=4):
        path = store.paths(task)[0 if suffix == ".npz" else 1]
        damaged = bytearray(path.read_bytes())
        damaged[len(damaged) // 2] = 0xFF if suffix == ".json" else damaged[len(damaged) // 2] ^ 0x10
        path.write_bytes(bytes(damaged))
        if suffix == ".json":
            with pytest.raises(UnicodeDecodeError):
                path.read_text(encoding="utf-8")
        again = run(sweep, store=store, client=False)  # never an error
        assert first_difference(again, first) is None and len(runs(log)) == n_runs
