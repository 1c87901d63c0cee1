"""`pml plan`, `pml compute`, `pml results` and `pml run --workers` on a toy chapter (01's experiments module gets a
toy ``steps`` for the test), with results in a temporary build folder."""

from __future__ import annotations

import importlib
import json
import os
import signal

import pytest
from engine_tasks import Total, ToySweep, runs

from pml import cli, engine
from pml.book import execute, params, runner
from pml.engine.executor import SCHEDULER_ENV

N_TOYS = {"smoke": 3, "ci": 4}


def _toy_steps(params, log="", fail=()):
    seeds = tuple(range(min(int(params["n_seeds"]), 5)))
    return {"toys": ToySweep(seeds=seeds, fail_seeds=tuple(fail), log=log),
            "total": _TotalSweep(seeds=seeds[:2], log=log)}


class _TotalSweep(ToySweep):
    def tasks(self):
        return [Total(seeds=self.seeds, log=self.log)]

    def assemble(self, results):
        return results[0]


@pytest.fixture
def toy_chapter(build_tmp, tmp_path, monkeypatch):
    """01_introduction with toy steps (n_seeds tasks), 05_users_guide without steps; the run log's path."""
    log = str(tmp_path / "runs.log")
    intro = importlib.import_module("pml.experiments.introduction")
    monkeypatch.setattr(intro, "steps", lambda params: _toy_steps(params, log), raising=False)
    monkeypatch.delattr(importlib.import_module("pml.experiments.users_guide"), "steps", raising=False)
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    return log


def _plan(capsys, *args):
    assert cli.main(["plan", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_plan_compute_and_plan_again(toy_chapter, capsys):
    rows = _plan(capsys, "01", "--profile", "smoke", "-p", "n_seeds=3")
    assert [(r["chapter"], r["step"], r["tasks"], r["cached"]) for r in rows] == [
        ("01_introduction", "toys", 3, 0), ("01_introduction", "total", 3, 0)]  # Total's two inputs count
    assert {"chapter", "step", "tasks", "cached", "cpu_hours", "gpu_hours"} <= set(rows[0])
    assert rows[0]["cpu_hours"] > 0 and rows[0]["gpu_hours"] == 0
    assert cli.main(["compute", "01", "--profile", "smoke", "-p", "n_seeds=3", "--step", "toys"]) == 0
    out = capsys.readouterr().out
    assert "3 tasks: 0 already stored, 3 computed" in out and "estimated" in out and "actual" in out
    rows = _plan(capsys, "01", "--profile", "smoke", "-p", "n_seeds=3")
    assert [r["cached"] for r in rows] == [3, 2]
    assert cli.main(["compute", "introduction", "--profile", "smoke", "-p", "n_seeds=3"]) == 0
    assert "4 tasks: 3 already stored, 1 computed" in capsys.readouterr().out
    assert len(runs(toy_chapter)) == 4


def test_plan_of_every_chapter_as_text(toy_chapter, capsys):
    assert cli.main(["plan", "01", "05", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "CPU-h" in out and "01_introduction" in out and "(all steps)" in out
    assert "without steps" in out and "05_users_guide" in out


@pytest.mark.parametrize("args, message", [
    (["compute", "01", "--profile", "smoke", "--step", "fig9"], "unknown step(s) 'fig9' of chapter 01_introduction; "
                                                                "valid: toys, total"),
    (["compute", "nope", "--profile", "smoke"], "unknown chapter 'nope'"),
    (["compute", "01", "--profile", "fast"], "unknown profile 'fast'"),
    (["compute", "01", "--profile", "smoke", "-p", "bogus=1"], "unknown parameter 'bogus'"),
    (["plan", "01", "--profile", "smoke", "-p", "bogus=1"], "unknown parameter 'bogus'"),
    (["compute", "05", "--profile", "smoke", "--step", "x"], "has no steps"),
    (["compute", "01", "--profile", "smoke", "--workers", "0"], "--workers must be at least 1"),
])
def test_bad_input_is_a_clear_error(toy_chapter, capsys, args, message):
    assert cli.main(args) == 2
    assert message in capsys.readouterr().err


def test_a_chapter_without_steps_computes_nothing(toy_chapter, capsys):
    assert cli.main(["compute", "05", "--profile", "smoke"]) == 0
    assert "nothing to compute" in capsys.readouterr().out


def test_failed_tasks_fail_the_command_by_name(toy_chapter, capsys, monkeypatch):
    intro = importlib.import_module("pml.experiments.introduction")
    monkeypatch.setattr(intro, "steps", lambda params: _toy_steps(params, fail=(1,)))
    assert cli.main(["compute", "01", "--profile", "smoke", "-p", "n_seeds=3"]) == 1
    err = capsys.readouterr().err
    assert "Toy(seed=1" in err and "toy failure at seed 1" in err and "failed tasks:" in err


def test_results_pack_unpack_verify(toy_chapter, capsys, tmp_path):
    assert cli.main(["compute", "01", "--profile", "smoke", "-p", "n_seeds=3"]) == 0  # smoke has n_seeds=20: 5 toys
    assert cli.main(["compute", "01", "--profile", "smoke"]) == 0
    capsys.readouterr()
    out = tmp_path / "smoke.tar.gz"
    assert cli.main(["results", "pack", "--profile", "smoke", "--out", str(out), "01"]) == 0
    assert "6 task results of profile smoke (2 steps)" in capsys.readouterr().out
    assert cli.main(["results", "unpack", str(out)]) == 0
    assert "0 entries added, 6 already present" in capsys.readouterr().out
    assert cli.main(["results", "verify", str(out), "--sample", "3", "--seed", "2"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("identical") >= 3 and "seed=" in printed
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(out.read_bytes()[:-200])
    assert cli.main(["results", "unpack", str(broken)]) == 2
    assert "truncated or corrupt" in capsys.readouterr().err


def test_run_with_workers_precomputes_every_task_on_a_cluster_the_notebook_shares(toy_chapter, capsys, monkeypatch):
    seen = {}

    def fake_run_chapter(stem, profile, overrides, **execution):  # what the chapter's kernel does, here
        seen["env"] = os.environ.get(SCHEDULER_ENV)
        before = len(runs(toy_chapter))
        steps = _toy_steps(params.ChapterParams.resolve(stem, profile, overrides).for_steps(), toy_chapter)
        seen["result"] = engine.run(steps["toys"])
        seen["computed_by_notebook"] = len(runs(toy_chapter)) - before
        return execute.ChapterRun(stem, profile, {}, execute.executed_notebook(stem, profile), runner.paths.build_dir(),
                                 None, 0.1)

    monkeypatch.setattr(execute, "run_chapter", fake_run_chapter)
    assert cli.main(["run", "01", "--profile", "smoke", "-p", "n_seeds=4", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 workers (2 threads)" in out and "5 tasks: 0 already stored, 5 computed" in out
    assert seen["env"].startswith("tcp://") and seen["computed_by_notebook"] == 0
    assert seen["result"]["seeds"] == [0, 1, 2, 3] and SCHEDULER_ENV not in os.environ
    assert {line.split()[1] for line in runs(toy_chapter)} - {str(os.getpid())}  # computed by worker processes


def test_slurm_job_script_of_the_readme_renders(monkeypatch):
    # importing dask_jobqueue replaces the SIGINT handler process-wide (sys.exit on Ctrl-C): keep it to this test
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    jobqueue = pytest.importorskip("dask_jobqueue")
    monkeypatch.undo()
    with jobqueue.SLURMCluster(cores=1, processes=1, memory="4GB", walltime="24:00:00",
                               job_extra_directives=["--gres=gpu:1"], worker_extra_args=["--resources", "GPU=1"],
                               scheduler_options={"dashboard_address": None}) as slurm:
        script = slurm.job_script()
    assert "#SBATCH --gres=gpu:1" in script and "--nthreads 1" in script and "--resources GPU=1" in script
