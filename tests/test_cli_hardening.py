"""The command line's edges: ``--out`` never replaces what is not a regular file, engine and file-system errors are
one line with exit status 2 (a folder in the store, a full disk, a read-only checkout, a bad scheduler address,
``--workers`` beyond the machine), a closed standard output ends quietly, Ctrl-C with workers stays one line, and
simplex names conflicting repeated inputs."""

from __future__ import annotations

import errno
import importlib
import os
import signal
import subprocess
import sys
import types

import numpy as np
import pytest
from engine_tasks import ToySweep

from pml import cli
from pml.engine import cluster, store
from pml.engine.executor import SCHEDULER_ENV
from pml.fitting import FitError, fit

RNG = np.random.default_rng(3)


def _one_error_line(err: str, *needles: str) -> None:
    assert err.startswith("pml: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


@pytest.fixture
def data(tmp_path):
    x = RNG.uniform(-1, 1, 60)
    path = tmp_path / "data.csv"
    path.write_text("x,y\n" + "".join(f"{a!r},{float(np.sin(3 * a))!r}\n" for a in x.tolist()))
    return path


@pytest.fixture
def oddities(tmp_path):
    """A FIFO and a symbolic link to a file, as --out."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    target = tmp_path / "target.txt"
    target.write_text("keep me")
    link = tmp_path / "link"
    link.symlink_to(target)
    return {"FIFO (named pipe)": fifo, "symbolic link": link}


def _untouched(oddities, tmp_path):
    assert oddities["FIFO (named pipe)"].is_fifo()
    assert oddities["symbolic link"].is_symlink() and (tmp_path / "target.txt").read_text() == "keep me"


@pytest.fixture
def toy_chapter(build_tmp, monkeypatch):
    """01_introduction with three toy tasks, results in a temporary build folder, no scheduler."""
    intro = importlib.import_module("pml.experiments.introduction")
    monkeypatch.setattr(intro, "steps", lambda params: {"toys": ToySweep(seeds=(0, 1, 2))}, raising=False)
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    return build_tmp


# ------------------------------------------------------------------------------------------ --out of every writer
def test_fit_and_predict_refuse_an_out_that_is_not_a_regular_file(data, oddities, tmp_path, capsys):
    model = tmp_path / "model.npz"
    assert cli.main(["fit", str(data), "--target", "y", "--method", "poly", "--out", str(model), "--quiet"]) == 0
    capsys.readouterr()
    for kind, out in oddities.items():
        assert cli.main(["fit", str(data), "--target", "y", "--method", "poly", "--out", str(out), "--quiet"]) == 2
        _one_error_line(capsys.readouterr().err, f"--out {out} exists and is a {kind}", "not a regular file")
        assert cli.main(["predict", str(model), str(data), "--out", str(out)]) == 2
        _one_error_line(capsys.readouterr().err, f"is a {kind}")
    for command in (["fit", str(data), "--target", "y", "--out", ""], ["predict", str(model), str(data), "--out", ""]):
        assert cli.main(command) == 2
        _one_error_line(capsys.readouterr().err, "--out is empty")
    _untouched(oddities, tmp_path)


def test_saving_a_model_refuses_what_is_not_a_regular_file(oddities, tmp_path):
    model = fit(np.linspace(0, 1, 20), np.linspace(0, 1, 20) ** 2, "poly")
    for out in oddities.values():
        with pytest.raises(FileExistsError, match="not a regular file"):
            model.save(out)
    _untouched(oddities, tmp_path)


def test_results_pack_refuses_bad_outs_before_any_work(toy_chapter, oddities, tmp_path, capsys):
    assert cli.main(["compute", "01", "--profile", "smoke"]) == 0
    capsys.readouterr()
    folder = tmp_path / "folder"
    folder.mkdir()
    cases = [(str(out), f"is a {kind}") for kind, out in oddities.items()]
    cases += [(str(folder), "is a folder; give a file name"), ("", "--out is empty"),
              (str(tmp_path / "target.txt" / "a.tar.gz"), "is not a folder")]
    if sys.platform.startswith("linux"):
        cases.append(("/proc/pml-results.tar.gz", "no file can be created in /proc"))
    for out, message in cases:
        assert cli.main(["results", "pack", "--profile", "smoke", "--out", out, "01"]) == 2
        _one_error_line(capsys.readouterr().err, message)
    _untouched(oddities, tmp_path)
    assert list(folder.iterdir()) == []
    new = tmp_path / "new" / "sub" / "r.tar.gz"  # missing folders are still created
    assert cli.main(["results", "pack", "--profile", "smoke", "--out", str(new), "01"]) == 0 and new.is_file()


# ------------------------------------------------------------------------------- store and file-system errors
def test_a_folder_in_place_of_a_store_entry_is_a_miss_and_a_one_line_error_on_writing(toy_chapter, capsys):
    from engine_tasks import Toy

    assert cli.main(["compute", "01", "--profile", "smoke"]) == 0
    task = Toy(seed=1)
    npz, meta = store.Store().paths(task)
    npz.unlink()
    npz.mkdir()
    assert store.Store().get(task) is None and not store.Store().contains(task)  # reading: a miss
    capsys.readouterr()
    assert cli.main(["compute", "01", "--profile", "smoke"]) == 2
    _one_error_line(capsys.readouterr().err, f"{npz}: a folder stands where this file should be written")
    assert npz.is_dir()  # what someone put there is not removed


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_a_full_disk_or_read_only_store_is_one_line_naming_the_path(code, toy_chapter, capsys, monkeypatch):
    def mkstemp(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(store, "tempfile", types.SimpleNamespace(mkstemp=mkstemp))
    assert cli.main(["compute", "01", "--profile", "smoke"]) == 2
    err = capsys.readouterr().err
    _one_error_line(err, str(toy_chapter / "results" / "tasks"), f".npz: {os.strerror(code)}")


# ------------------------------------------------------------------------------------ cluster and arguments
@pytest.mark.parametrize("where", ["option", "environment"])
def test_a_malformed_scheduler_address_names_the_expected_form(where, toy_chapter, capsys, monkeypatch):
    args = ["compute", "01", "--profile", "smoke"]
    if where == "option":
        args += ["--scheduler", "garbage"]
    else:
        monkeypatch.setenv(SCHEDULER_ENV, "garbage")
    assert cli.main(args) == 2
    _one_error_line(capsys.readouterr().err, "'garbage' is not a Dask scheduler address", "tcp://",
                    "--scheduler" if where == "option" else "$PML_SCHEDULER")


@pytest.mark.parametrize("address", ["tcp://10.0.0.5:8786", "node7:8786", "tls://h.example.org:8786",
                                     "tcp://[::1]:8786", " tcp://127.0.0.1:1 "])
def test_scheduler_addresses_of_the_documented_forms_pass(address):
    assert cluster.check_address(address) == address.strip()


@pytest.mark.parametrize("address", ["garbage", "tcp://host", "tcp://host:0", "tcp://host:99999", "ftp://h:1",
                                     "tcp://h:80/path", ""])
def test_other_scheduler_addresses_are_refused(address):
    with pytest.raises(cluster.ClusterError, match="expected"):
        cluster.check_address(address)


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_verify_time_limit_is_checked_as_fit_does(value, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["results", "verify", "any.tar.gz", f"--time-limit={value}"])
    assert stop.value.code == 2
    assert "--time-limit: must be a positive, finite number of seconds" in capsys.readouterr().err


def test_workers_beyond_the_memory_are_refused_and_beyond_the_cores_warned(monkeypatch, capsys):
    monkeypatch.setattr(cluster, "_memory", lambda: 4 * 2**30)
    monkeypatch.setattr(cluster, "_cores", lambda: 2)
    with pytest.raises(cluster.ClusterError, match="at most 8 workers"):
        cluster.check_workers(9)
    cluster.check_workers(2)
    assert capsys.readouterr().err == ""
    cluster.check_workers(3)
    err = capsys.readouterr().err
    assert err.startswith("pml: warning: --workers 3 is more than the 2 cores") and err.count("\n") == 1


def test_too_many_workers_is_one_line_before_anything_starts(toy_chapter, capsys, monkeypatch):
    monkeypatch.setattr(cluster, "_memory", lambda: 4 * 2**30)

    def no_cluster(*args, **kwargs):
        raise AssertionError("a cluster was started")

    monkeypatch.setitem(sys.modules, "distributed", types.SimpleNamespace(LocalCluster=no_cluster, Client=no_cluster))
    assert cli.main(["compute", "01", "--profile", "smoke", "--workers", "1000"]) == 2
    _one_error_line(capsys.readouterr().err, "--workers 1000", "at most 8 workers")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_processes_started_while_interrupts_are_blocked_do_not_see_ctrl_c():
    """The local workers start inside this block: Ctrl-C in the terminal goes to the whole process group, and a
    worker that took it would print its own traceback (pages of them with many workers)."""
    child = ("import os, signal, time; os.kill(os.getpid(), signal.SIGINT); time.sleep(0.2); "
             "print([l for l in open('/proc/self/status') if l.startswith('SigBlk')][0].split()[1])")
    with pytest.raises(KeyboardInterrupt):
        with cluster._interrupts_blocked():
            done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
            os.kill(os.getpid(), signal.SIGINT)  # held, raised once the block ends
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert int(done.stdout, 16) & (1 << (signal.SIGINT - 1))  # SIGINT blocked in the child
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())


# ------------------------------------------------------------------------------------------ closed stdout
def test_a_closed_standard_output_ends_quietly():
    """`pml list | head -1`: no BrokenPipeError traceback; the exit status of a process SIGPIPE ended."""
    proc = subprocess.Popen([sys.executable, "-m", "pml.cli", "list"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before pml writes: its first write meets the closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == "", err


def test_a_broken_pipe_elsewhere_is_a_one_line_error(monkeypatch, capsys):
    def broken(args):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe", "/tmp/somewhere.sock")

    monkeypatch.setattr(cli, "_cmd_list", broken)
    assert cli.main(["list"]) == 2
    _one_error_line(capsys.readouterr().err, "/tmp/somewhere.sock: Broken pipe")


# ------------------------------------------------------------------------------------------ simplex duplicates
def test_simplex_names_repeated_inputs_with_conflicting_targets(tmp_path, capsys):
    X = RNG.uniform(-1, 1, (40, 2))
    y = X[:, 0] + X[:, 1] ** 2
    X, y = np.vstack([X, X[:5]]), np.concatenate([y, y[:5] + 1.0])
    with pytest.raises(FitError, match=r"simplex: 10 rows at 5 repeated input points have conflicting targets "
                                       r"\(first: inputs \("):
        fit(X, y, "simplex", validation=0)
    path = tmp_path / "dup.csv"
    path.write_text("a,b,y\n" + "".join(f"{p!r},{q!r},{t!r}\n" for (p, q), t in zip(X.tolist(), y.tolist())))
    assert cli.main(["fit", str(path), "--target", "y", "--method", "simplex", "--validation", "0",
                     "--out", str(tmp_path / "m.npz")]) == 2
    _one_error_line(capsys.readouterr().err, "repeated input points have conflicting targets", "targets ")
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("d", [1, 4])
def test_simplex_fits_repeated_rows_with_equal_targets(d):
    """Exact repeats (same inputs, same target) say nothing new: they are dropped, not a crash of the walk (d >= 4)
    or a refusal (d = 1)."""
    P = RNG.uniform(-1, 1, (12, d))
    X = np.repeat(P, 4, axis=0)
    y = np.repeat(np.sum(P, axis=1), 4)
    model = fit(X, y, "simplex", validation=0)
    assert model.state["X"].shape == (12, d)
    np.testing.assert_allclose(model.predict(P), np.sum(P, axis=1), rtol=1e-9, atol=1e-12)
