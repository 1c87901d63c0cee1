"""The book build: execute every chapter (:func:`pml.book.execute.run_chapter`), then render the executed
notebooks with Jupyter Book 1 (execution off, warnings as errors) into ``_build/html``; and the cost check that stops
a build which would compute more than :data:`COMPUTE_LIMIT_CPU_HOURS` first.

Where the rest of the pipeline lives: chapters, profiles and parameters in :mod:`pml.book.params`, one chapter's
execution in :mod:`pml.book.execute`, progress lines in :mod:`pml.book.progress`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from pml import paths
from pml.book import claims
from pml.book.execute import executed_notebook, run_chapter
from pml.book.params import (
    DEFAULT_PROFILE,
    BookError,
    chapter_steps,
    chapters,
    check_execution,
    check_profile,
    has_code,
    has_steps,
    load_profile,
    toc_files,
)
from pml.book.progress import Progress

COMPUTE_LIMIT_CPU_HOURS = 2.0  # a build that would compute more (cost models of the missing tasks) asks first


def stage(profile: str) -> Path:
    """Copy the pages without code (and nothing else) into the executed mirror of ``profile``."""
    mirror = paths.executed_dir(profile)
    for doc in toc_files():
        src = paths.repo_root() / f"{doc}.md"
        if doc.startswith("book/") and not has_code(doc.split("/", 1)[1]):
            (mirror / doc).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, mirror / f"{doc}.md")
    for extra in ("references.bib",):
        if (paths.book_dir() / extra).exists():
            shutil.copy2(paths.book_dir() / extra, mirror / "book" / extra)
    return mirror


def check_mathjax_offline() -> None:
    try:
        import importlib

        importlib.import_module("sphinx-mathjax-offline")
    except ImportError as exc:
        raise BookError(
            "math cannot render offline: the Sphinx extension 'sphinx-mathjax-offline' (PyPI) is not installed; "
            "run `make setup` or `pip install -c constraints.txt -e '.[book]'`"
        ) from exc


def render(profile: str, log=print) -> Path:
    """Render the executed mirror of ``profile`` into ``_build/html`` (execution off, warnings are errors)."""
    check_mathjax_offline()
    mirror = stage(profile)
    missing = [c for c in chapters() if not executed_notebook(c, profile).exists()]
    if missing:
        raise BookError(f"cannot render the {profile} book: chapters not executed: {', '.join(missing)}")
    html = paths.html_dir()
    if html.exists():
        shutil.rmtree(html)
    root = paths.repo_root()
    cmd = [
        str(Path(sys.executable).with_name("jupyter-book")),
        "build",
        str(mirror),
        "--config", str(root / "_config.yml"),
        "--toc", str(root / "_toc.yml"),
        "--path-output", str(root),
        "-W", "-n", "--keep-going",
    ]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    log_path = paths.build_dir() / "logs" / f"jupyter-book-{profile}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(proc.stdout + "\n" + proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise BookError(f"jupyter-book build failed (log: {log_path}):\n{tail}")
    return html


def build(profile: str = DEFAULT_PROFILE, chapters_to_run: Iterable[str] | None = None, log=print, *,
          threads: int | None = None, device: str | None = None, stored: bool = False) -> Path:
    """Execute every chapter (report last) and render the book; shows each chapter's progress as it goes
    (:class:`Progress`) and stops at the first chapter that fails. ``stored``: from the results store only
    (:func:`run_chapter`)."""
    check_profile(profile)
    load_profile(profile)  # fail fast on a bad profile file
    check_execution(threads, device)
    names = list(chapters_to_run) if chapters_to_run is not None else chapters()
    total = time.perf_counter()
    for i, stem in enumerate(names, 1):
        run_chapter(stem, profile, threads=threads, device=device, progress=Progress(prefix=f"[{i}/{len(names)}] "),
                    stored=stored)
    log("rendering the HTML book with jupyter-book ...", flush=True)
    html = render(profile)
    log(f"book built in {time.perf_counter() - total:.0f} s", flush=True)
    return html


class TooExpensive(BookError):
    """A build would compute more than :data:`COMPUTE_LIMIT_CPU_HOURS` of missing tasks without ``--yes``."""


def check_cost(stems: Iterable[str], profile: str, overrides: Mapping[str, Any] | None = None, *,
               command: str | None = None, limit: float = COMPUTE_LIMIT_CPU_HOURS) -> float:
    """What building ``stems`` at ``profile`` would compute: the cost-model CPU-hours of the tasks of their steps
    that the store lacks (each task once). Raises :class:`TooExpensive` with the ``pml plan`` numbers and the
    alternatives (``--stored``, ``--workers``, ``--scheduler``, ``--yes``) when that is more than ``limit``;
    ``command`` is the build's command line for them (default ``pml book --profile PROFILE``)."""
    from pml.engine import Store
    from pml.engine.partial import hours_text
    from pml.engine.plan import format_plan, plan, tasks_of

    stems = list(stems)
    steps = {stem: chapter_steps(stem, profile, overrides) for stem in stems if has_steps(stem)}
    steps = {stem: s for stem, s in steps.items() if s}
    store = Store()
    missing = sum(t.cost() for t in tasks_of(steps) if not store.contains(t)) / 3600
    if missing <= limit:
        return missing
    rows = [r for r in plan(steps, store) if r.remaining_cpu_hours > 0]
    command = command or f"pml book --profile {profile}"
    planned = f"pml plan {stems[0]} --profile {profile}" if len(stems) == 1 else f"pml plan --profile {profile}"
    raise TooExpensive(
        f"`{command}` would compute {hours_text(missing)} of tasks that are not in the results store (by the "
        f"tasks' cost models; a build computes at most {hours_text(limit)} without asking). The steps with tasks "
        f"still to compute (`{planned}`):\n\n{format_plan(rows, profile)}\n\nChoose one:\n"
        f"  {command} --stored\n      build from what the store holds, compute nothing (figures mark what is "
        f"missing, its claims are not judged)\n"
        f"  {command} --workers N --yes\n      compute it on a local Dask cluster of N processes\n"
        f"  {command} --scheduler ADDRESS --yes\n      compute it on a running Dask cluster (README: \"Running "
        f"the paper profile on a cluster\")\n"
        f"  {command} --yes\n      compute it here, one task after the other")


def summary(profile: str, run: str | None = None) -> tuple[claims.ClaimTable, bool]:
    """All claims at ``profile`` and whether ``make verify`` should pass (``run``: those of a run with overrides,
    see :func:`run_name`, judged by the profile's checks)."""
    names = chapters()
    if run not in (None, profile):  # a run with overrides: only the chapters that ran with them
        names = [c for c in names if (paths.claims_dir(run) / f"{c}.json").exists()]
    verdicts = claims.collect(profile, names, run=run)
    note = None if run in (None, profile) else f"run {run}: profile {profile} with command-line overrides"
    return claims.ClaimTable(verdicts, note=note), all(v.ok for v in verdicts)
