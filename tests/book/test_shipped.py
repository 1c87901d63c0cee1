"""The shipped results (results/): status against this checkout, the per-step sample CI recomputes, and a
deliberately altered entry (re-hashed, so the archive itself is consistent) failing `pml results verify --shipped`."""

from __future__ import annotations

import pytest
from engine_tasks import Toy, ToySweep

from pml import cli
from pml.book import shipped
from pml.engine import Store, archive, compute


@pytest.fixture
def results(tmp_path, monkeypatch, build_tmp):
    """A results/ folder with one archive of two steps; the profile's tasks are the toy tasks (one is new here)."""
    store = Store(tmp_path / "cluster")
    toys = ToySweep(seeds=(0, 1, 2)).tasks()
    compute(toys, store=store, client=False)
    folder = tmp_path / "results"
    archive.pack({"01_toy/a": toys[:2], "01_toy/b": toys[2:]}, folder / "toy.tar.gz", profile="paper", store=store)
    here = {t.key(): (t, ["01_toy/a" if i < 2 else "01_toy/b"]) for i, t in enumerate(toys)}
    extra = Toy(seed=9)
    here[extra.key()] = (extra, ["01_toy/b"])
    monkeypatch.setattr(shipped, "profile_tasks", lambda profile="paper": dict(here))
    monkeypatch.setattr(shipped, "shipped_dir", lambda: folder)
    return folder, store, toys


def test_status_counts_shipped_and_missing_tasks_per_step(results, tmp_path):
    folder, _, toys = results
    rows, stale = shipped.status(folder, store=Store(tmp_path / "laptop"))
    by_step = {r.step: r for r in rows}
    assert (by_step["01_toy/a"].tasks, by_step["01_toy/a"].shipped, by_step["01_toy/a"].missing_cpu_hours) == (2, 2, 0)
    assert (by_step["01_toy/b"].tasks, by_step["01_toy/b"].shipped) == (2, 1)
    assert by_step["01_toy/b"].missing_cpu_hours == pytest.approx(Toy(seed=9).cost() / 3600)
    assert stale == []


def test_an_entry_whose_task_is_no_longer_here_is_stale_and_never_recomputed(results, monkeypatch):
    folder, _, toys = results
    monkeypatch.setattr(shipped, "profile_tasks", lambda profile="paper": {toys[0].key(): (toys[0], ["01_toy/a"])})
    stale = shipped.status(folder)[1]
    assert sorted(e.entry["key"] for e in stale) == sorted(t.key() for t in toys[1:])
    chosen = shipped.choose_sample(shipped.entries(folder), seed=0, time_limit=100)
    assert [e.entry["key"] for e in chosen] == [toys[0].key()]


def test_the_sample_takes_one_cheap_task_per_step_and_changes_with_the_seed(results):
    folder, _, toys = results
    entries = shipped.entries(folder)
    picks = {tuple(e.entry["key"] for e in shipped.choose_sample(entries, seed, 100)) for seed in range(20)}
    assert all(len(p) == 2 for p in picks) and len(picks) > 1  # one per step, not always the same
    assert shipped.choose_sample(entries, 0, 100, per_task_cap=-1) == []  # nothing cheap enough
    assert shipped.choose_sample(entries, 0, time_limit=-1) == []  # no time


def test_verify_shipped_passes_on_true_results_and_fails_on_an_altered_entry(results, tmp_path, capsys):
    folder, store, toys = results
    assert cli.main(["results", "verify", "--shipped", "--seed", "3"]) == 0
    assert "identical" in capsys.readouterr().out
    right = store.get(toys[2])
    store.put(toys[2], {**right, "norm": right["norm"] * (1 + 1e-15)}, seconds=0.1)  # consistent hashes
    archive.pack({"01_toy/a": toys[:2], "01_toy/b": toys[2:]}, folder / "toy.tar.gz", profile="paper", store=store)
    assert cli.main(["results", "verify", "--shipped", "--seed", "3"]) == 1
    captured = capsys.readouterr()
    assert "MISMATCH" in captured.out and "do not reproduce the archive" in captured.err


def test_results_from_another_cpu_compare_within_a_tolerance_and_trajectories_are_skipped(results, monkeypatch):
    folder, store, toys = results
    path = folder / "toy.tar.gz"
    right = store.get(toys[1])
    store.put(toys[1], {**right, "norm": right["norm"] * (1 + 1e-3)}, seconds=0.1)  # beyond rounding
    archive.pack({"01_toy/a": toys[:2], "01_toy/b": toys[2:]}, path, profile="paper", store=store)
    monkeypatch.setattr(archive.provenance, "machine_line", lambda: "Another CPU, 2 cores, Linux (x86_64)")
    verdicts = archive.verify(path, keys=[toys[0].key()], log=lambda s: None)
    assert [v.verdict for v in verdicts] == ["within tolerance"] and "another CPU" in verdicts[0].detail
    assert [v.verdict for v in archive.verify(path, keys=[toys[1].key()], log=lambda s: None)] == ["MISMATCH"]
    monkeypatch.setattr(Toy, "ROUNDING_SENSITIVE", True)
    skipped = archive.verify(path, keys=[toys[0].key()], log=lambda s: None)
    assert [v.verdict for v in skipped] == ["skipped"] and "amplifies rounding" in skipped[0].detail
