"""The runner on a throwaway book: overrides never overwrite a profile's outputs, values are injected with their
types or rejected up front, failed and interrupted runs keep the last good outputs, progress is shown, messages
show plain values, written files get the modes a plain ``open()`` gives, and execution settings are runner options."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import nbformat
import numpy as np
import pytest
from test_runner import HEADER, fake_book  # noqa: F401  (fixture)

from pml import cli, paths
from pml.book import claims, context, execute, params, progress, runner
from pml.engine.store import _atomic_write

PARAMS = 'profile = "paper"\nn = 3\nns = [1, 2, 3]\nname = "cos2x"\n'

# A chapter named like the introduction, so that it can report the introduction's four claims (C1.4 = n / 100).
INTRO = """from pml import plotting
from pml.book import claims
fig, ax = plotting.new_figure()
ax[0, 0].plot([0, 1], [0, n])
plotting.savefig(fig, "fig01_fake", profile)
claims.report("01_introduction", profile, {"C1.1": 1e-16, "C1.2": 0.0, "C1.3": -0.5, "C1.4": n / 100})"""


def write_book(root, body, stem="01_fake", cell=PARAMS):
    header = HEADER.replace('profile = "paper"\nn = 3\n', cell)
    (root / "_toc.yml").write_text(f"format: jb-book\nroot: book/index\nchapters:\n  - file: book/{stem}\n")
    for old in (root / "book").glob("0*.md"):
        old.unlink()
    (root / "book" / f"{stem}.md").write_text(header + "\n```{code-cell} ipython3\n" + body + "\n```\n")
    params._chapters_cached.cache_clear()


def quiet():
    return progress.Progress(stream=io.StringIO(), live=False)


def test_run_names_keep_overrides_apart():
    assert execute.run_name("ci", {}) == "ci"
    assert execute.run_name("ci", {"n_test": 200}) == "ci+n_test=200"
    assert execute.run_name("ci", {"n_train": [16, 64], "lr": 1e-3}) == "ci+lr=0.001+n_train=16,64"
    hashed = execute.run_name("ci", {"equation": "I.8.14 / odd name"})
    assert hashed.startswith("ci+o") and "/" not in hashed and " " not in hashed
    assert hashed == execute.run_name("ci", {"equation": "I.8.14 / odd name"})
    assert execute.run_name("ci", {"n": 1}) != execute.run_name("ci", {"n": 2})


@pytest.mark.chapters
def test_override_run_never_replaces_the_profile_outputs(fake_book, capsys):  # noqa: F811
    write_book(fake_book, INTRO, stem="01_introduction")
    base = runner.run_chapter("01_introduction", "smoke", progress=quiet())
    profile_claims = (paths.claims_dir("smoke") / "01_introduction.json").read_bytes()
    profile_figure = (paths.figures_dir("smoke") / "fig01_fake.png").read_bytes()
    profile_notebook = base.notebook.read_bytes()

    over = runner.run_chapter("01_introduction", "smoke", {"n": 50}, progress=quiet())
    assert over.run == "smoke+n=50" and over.notebook.parent.parent.name == "smoke+n=50"
    assert (paths.claims_dir("smoke") / "01_introduction.json").read_bytes() == profile_claims
    assert (paths.figures_dir("smoke") / "fig01_fake.png").read_bytes() == profile_figure
    assert base.notebook.read_bytes() == profile_notebook
    recorded = json.loads(over.claims.read_text())
    assert recorded["overrides"] == {"n": 50} and recorded["parameters"]["n"] == 50
    assert recorded["run"] == "smoke+n=50" and recorded["measured"]["C1.4"] == 0.5
    assert "with overrides: n=50" in over.notebook.read_text()  # the chapter's claim table says so
    assert {v.claim.id: v.measured for v in claims.collect("smoke", ["01_introduction"])}["C1.4"] == 0.03

    assert cli.main(["claims", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "01_introduction: profile smoke, no overrides" in out and "smoke+n=50" in out
    assert cli.main(["claims", "--profile", "smoke", "-p", "n=50", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["overrides"]["n"] for r in rows} == {50} and {r["measured"] for r in rows if r["id"] == "C1.4"} == {0.5}


def test_tuples_become_lists_and_mistyped_values_are_rejected_up_front(fake_book):  # noqa: F811
    write_book(fake_book, "pass")
    name, value = params.parse_assignment("ns=(16,64,256)")
    assert params.ChapterParams.resolve("01_fake", "smoke", {name: value}).injected()["ns"] == [16, 64, 256]
    assert params.ChapterParams.resolve("01_fake", "smoke", dict([params.parse_assignment("ns=16,64")])).injected()["ns"] == [16, 64]
    for text in ("ns=16 64", "ns=abc", "ns=[1.5]"):
        with pytest.raises(params.BookError, match=r"parameter 'ns' .* must be of type list of int .*for example "
                                                   r"-p \"ns=\[1, 2, 3\]\""):
            params.ChapterParams.resolve("01_fake", "smoke", dict([params.parse_assignment(text)])).injected()
    with pytest.raises(params.BookError, match=r"'n' .* type int .*-p n=3\), got float 2.5"):
        params.ChapterParams.resolve("01_fake", "smoke", {"n": 2.5}).injected()


@pytest.mark.chapters
def test_a_tuple_reaches_the_chapter_as_a_list(fake_book):  # noqa: F811
    write_book(fake_book, "assert ns == [16, 64, 256], repr(ns)")
    runner.run_chapter("01_fake", "smoke", dict([params.parse_assignment("ns=(16,64,256)")]), progress=quiet())


def test_profile_is_not_a_parameter_and_the_valid_list_is_what_is_accepted(fake_book):  # noqa: F811
    write_book(fake_book, "pass")
    with pytest.raises(params.BookError, match="'profile' is not a parameter to override; use --profile ci"):
        params.ChapterParams.resolve("01_fake", "smoke", {"profile": "ci"}).injected()
    with pytest.raises(params.BookError, match="use --threads"):
        params.ChapterParams.resolve("01_fake", "smoke", {"threads": 2}).injected()
    with pytest.raises(params.BookError, match="unknown parameter 'bogus'") as info:
        params.ChapterParams.resolve("01_fake", "smoke", {"bogus": 1}).injected()
    listed = str(info.value).split("valid: ")[1].split(", ")
    assert listed == ["n", "ns", "name"]
    defaults = params.chapter_parameters("01_fake")
    for name in listed:
        params.ChapterParams.resolve("01_fake", "smoke", {name: defaults[name]}).injected()


@pytest.mark.chapters
def test_failed_run_keeps_the_last_good_notebook_figures_and_claims(fake_book):  # noqa: F811
    write_book(fake_book, INTRO, stem="01_introduction")
    good = runner.run_chapter("01_introduction", "smoke", progress=quiet())
    kept = {p: p.read_bytes() for p in (good.notebook, good.claims, paths.figures_dir("smoke") / "fig01_fake.png")}
    write_book(fake_book, INTRO.replace("n / 100", "n / 10") + "\nraise RuntimeError('late failure')",
               stem="01_introduction")
    with pytest.raises(params.BookError, match="late failure.*\n.*notebook with the traceback: .*failed.*\n.*unchanged"):
        runner.run_chapter("01_introduction", "smoke", progress=quiet())
    assert {p: p.read_bytes() for p in kept} == kept
    assert execute.failed_notebook("01_introduction", "smoke").exists()
    assert not list(paths.build_dir().glob(".run-*")), "the staging folder is removed"


@pytest.mark.chapters
def test_a_dying_kernel_is_a_named_error_not_a_traceback(fake_book):  # noqa: F811
    write_book(fake_book, "import os\nos._exit(1)")
    with pytest.raises(params.BookError, match=r"chapter 01_fake \(smoke\) stopped: DeadKernelError.*\n.*\n.*unchanged"):
        runner.run_chapter("01_fake", "smoke", progress=quiet())
    assert not execute.executed_notebook("01_fake", "smoke").exists()


CLI_ON_FAKE_BOOK = """
import sys
from pathlib import Path
from pml import paths
paths.repo_root = lambda: Path(sys.argv[1])
from pml import cli
sys.exit(cli.main(sys.argv[2:]))
"""


@pytest.mark.chapters
def test_ctrl_c_exits_130_with_one_line_and_keeps_the_last_good_notebook(fake_book, tmp_path):  # noqa: F811
    write_book(fake_book, "print('good')")
    args = [sys.executable, "-c", CLI_ON_FAKE_BOOK, str(fake_book), "run", "01_fake", "--profile", "smoke"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "IPKernelApp" not in done.stderr and "encryption" not in done.stderr
    assert "01_fake (smoke): ok in" in done.stderr  # not a terminal: one line when the chapter ends
    notebook = execute.executed_notebook("01_fake", "smoke")
    before = notebook.read_bytes()

    marker = tmp_path / "started"
    write_book(fake_book, f"import pathlib, time\npathlib.Path({str(marker)!r}).write_text('1')\ntime.sleep(60)")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert marker.exists(), proc.communicate()[1]
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in err and "ZMQ" not in err and "IPKernelApp" not in err, err
    assert [line for line in err.splitlines() if line.startswith("pml:")] == [err.splitlines()[-1]]
    assert "interrupted" in err.splitlines()[-1]
    assert notebook.read_bytes() == before


@pytest.mark.chapters
def test_progress_names_cell_section_and_step_live_or_one_line(fake_book):  # noqa: F811
    write_book(fake_book, 'steps = {"toy": 1}\n```\n\n## A section\n\n```{code-cell} ipython3\nx = steps["toy"]')
    live = io.StringIO()
    runner.run_chapter("01_fake", "smoke", progress=progress.Progress(stream=live, live=True, prefix="[1/1] "))
    text = live.getvalue()
    assert "\r" in text and re.search(r"\[1/1\] 01_fake \(smoke\) \d+ s, cell 4/4 step toy", text)
    assert re.search(r"cell 1/4 § A chapter", text)
    assert text.endswith("\n") and "01_fake (smoke): ok in" in text.splitlines()[-1]
    log = io.StringIO()
    with pytest.raises(params.BookError):
        write_book(fake_book, "1 / 0")
        runner.run_chapter("01_fake", "smoke", progress=progress.Progress(stream=log, live=False))
    assert "\r" not in log.getvalue() and log.getvalue().count("\n") == 1
    assert log.getvalue().startswith("01_fake (smoke): failed after")


def test_messages_show_plain_values_not_numpy_reprs(fake_book):  # noqa: F811
    write_book(fake_book, "pass")
    with pytest.raises(params.BookError) as info:
        params.ChapterParams.resolve("01_fake", "smoke", {"n": np.float64(3.5)}).injected()
    assert "got float 3.5" in str(info.value) and "np." not in str(info.value)
    assert params.ChapterParams.resolve("01_fake", "smoke", {"ns": np.array([4, 5])}).injected()["ns"] == [4, 5]
    with pytest.raises(TypeError) as info:
        claims._as_float(np.str_("x"))
    assert "np." not in str(info.value)
    assert context.show({"a": np.float64(3.0), "b": (np.int64(1),)}) == "{'a': 3.0, 'b': [1]}"


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_get_the_mode_open_would_give(build_tmp, umask):
    old = os.umask(umask)
    try:
        claims.report("01_introduction", "ci", {"C1.1": 1e-16, "C1.2": 0.0, "C1.3": -0.5, "C1.4": 0.5})
        _atomic_write(build_tmp / "results" / "x.json", b"{}")
    finally:
        os.umask(old)
    for path in (build_tmp / "claims" / "ci" / "01_introduction.json", build_tmp / "results" / "x.json"):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.chapters
def test_execution_settings_reach_the_kernel_and_parameter_cells_fold(fake_book):  # noqa: F811
    write_book(fake_book, 'from pml.book import context\nassert context.current().execution() == {"threads": 2, '
                          '"device": "cpu"}\nassert context.current().overrides == {"n": 7}')
    result = runner.run_chapter("01_fake", "smoke", {"n": 7}, threads=2, progress=quiet())
    nb = nbformat.read(result.notebook, as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"]
    assert "hide-cell" in tags[0] and "parameters" in tags[0]  # the paper's values, collapsed
    assert "injected-parameters" in tags[1] and "remove-cell" in tags[1]  # shown in the table instead
    write_book(fake_book, "pass", cell='profile = "paper"\n')  # like the report: the page states the profile
    nb = nbformat.read(runner.run_chapter("01_fake", "smoke", progress=quiet()).notebook, as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"]
    assert "remove-cell" in tags[0] and "remove-cell" in tags[1] and "remove-cell" not in tags[2]


def test_parameters_table_shows_this_build_beside_the_paper(fake_book, monkeypatch):  # noqa: F811
    write_book(fake_book, "pass")
    ctx = context.RunContext(profile="smoke", run="smoke+n=7", overrides={"n": 7}, threads=2)
    monkeypatch.setenv(context.RUN_ENV, ctx.to_env())  # what the runner sets for the chapter's kernel
    chapter = params.ChapterParams.in_chapter("01_fake", {"profile": "smoke", "n": 7, "ns": [1, 2, 3],
                                                          "name": "cos2x"})
    values = chapter.for_steps()
    assert values["threads"] == 2 and values["device"] == "cpu" and values["n"] == 7
    table = chapter.table().html()
    assert "<td>n</td><td>7 (command line)</td><td>3</td>" in table
    assert "<td>ns</td><td>[1, 2, 3]</td><td>[1, 2, 3]</td>" in table and "threads=2" in table
    assert "smoke with command-line overrides: n=7" in table


def test_execution_settings_are_options_not_parameters():
    assert params.ChapterParams.resolve("01_introduction", "smoke").for_steps()["threads"] == 1
    steps_params = params.ChapterParams.resolve("02_piecewise_linear", "smoke", threads=3, device="cpu").for_steps()
    assert steps_params["threads"] == 3
    with pytest.raises(params.BookError, match="--threads must be a whole number"):
        params.check_execution(threads=-1)
    with pytest.raises(params.BookError, match="--device must be cpu, cuda or cuda:N"):
        params.check_execution(device="gpu")
    assert params.check_execution(device="cuda:1") == {"threads": 1, "device": "cuda:1"}
    for stem in params.chapters():
        assert not set(params.EXECUTION_SETTINGS) & set(params.chapter_parameters(stem)), stem
        if stem != "99_reproduction_report":
            text = params.source_path(stem).read_text()
            assert text.count(f'params.ChapterParams.in_chapter("{stem}", globals())') == 1, stem
            assert text.count("chapter.table()") == 1, stem


def test_run_context_round_trips_through_the_environment(monkeypatch):
    ctx = context.RunContext(profile="ci", run="ci+n=2", overrides={"n": 2}, parameters={"n": 2}, threads=4)
    monkeypatch.setenv(context.RUN_ENV, ctx.to_env())
    assert context.current() == ctx
    monkeypatch.delenv(context.RUN_ENV)
    assert context.current() == context.RunContext()


@pytest.mark.parametrize("args, message", [
    (["run", "01", "--profile", "smoke", "-p", "profile=ci"], "use --profile ci"),
    (["run", "01", "--profile", "smoke", "-p", "n_train=abc"], "'n_train' of chapter 01_introduction must be of type "
                                                               "list of int"),
    (["run", "01", "--profile", "smoke", "-p", "threads=2"], "use --threads"),
    (["run", "01", "--profile", "smoke", "--threads", "-1"], "--threads must be a whole number"),
    (["run", "01", "--profile", "smoke", "--device", "tpu"], "--device must be cpu, cuda or cuda:N"),
    (["compute", "01", "--profile", "smoke", "--device", "gpu"], "--device must be cpu, cuda or cuda:N"),
])
def test_cli_rejects_bad_runs_before_executing_anything(args, message, capsys, build_tmp):
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not build_tmp.exists()


def test_claims_of_an_override_run_that_never_ran_is_a_clear_error(build_tmp, capsys):
    assert cli.main(["claims", "--profile", "ci", "-p", "n_test=200"]) == 2
    assert "no chapter ran at profile ci with overrides n_test=200" in capsys.readouterr().err


def test_no_module_is_imported_for_a_chapter_name_outside_the_book():
    for name in ("os", "pml.cli", "../x", "01_introduction.evil"):
        with pytest.raises(params.BookError, match="unknown chapter"):
            params.has_steps(name)
        with pytest.raises(params.BookError, match="unknown chapter"):
            params.ChapterParams(name, "smoke").steps()
