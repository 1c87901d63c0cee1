"""Executing one chapter: papermill runs its notebook with a run's parameters into a staging folder, and only a
run whose every cell succeeded replaces the chapter's executed notebook, figures and claims under ``_build/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from pml import paths
from pml.book import coverage
from pml.book.context import RUN_ENV, RunContext, plain
from pml.book.params import DEFAULT_PROFILE, BookError, ChapterParams, read_chapter
from pml.book.progress import Progress, cell_places
from pml.engine.partial import STORED_ENV

CHAPTER_TIMEOUT_S = {"smoke": 300, "ci": 900, "paper": None}  # per cell; None = no limit


_SLUG_OK = re.compile(r"[A-Za-z0-9_.,=-]+")


def run_name(profile: str, overrides: Mapping[str, Any] | None = None) -> str:
    """Where a run's outputs go under ``_build/`` (executed notebook, figures, claims): the profile's name, or with
    command-line overrides ``<profile>+<name=value,...>`` (``ci+n_test=200``; lists as ``16,64,256``), or
    ``<profile>+o<hash>`` when the values do not make a short, plain folder name. A run with overrides therefore
    never replaces the profile's outputs, and ``pml claims --profile P`` shows only runs of P as it is."""
    if not overrides:
        return profile

    def text(value):
        value = plain(value)
        if isinstance(value, list) and all(not isinstance(v, (list, dict)) for v in value):
            return ",".join(text(v) for v in value)
        return json.dumps(value) if isinstance(value, bool) else str(value)

    items = sorted(overrides.items())
    slug = "+".join(f"{name}={text(value)}" for name, value in items)
    if len(slug) > 60 or not all(_SLUG_OK.fullmatch(part) for part in slug.split("+")):
        digest = hashlib.sha256(json.dumps(plain(dict(items)), sort_keys=True).encode()).hexdigest()[:10]
        slug = f"o{digest}"
    return f"{profile}+{slug}"


@dataclass(frozen=True)
class ChapterRun:
    chapter: str
    profile: str
    parameters: dict[str, Any]
    notebook: Path
    figures: Path
    claims: Path | None
    seconds: float
    run: str | None = None  # where the outputs went: the profile, or <profile>+<overrides>
    overrides: dict[str, Any] | None = None


def executed_notebook(stem: str, profile: str) -> Path:
    """The executed notebook of ``stem`` for a run named ``profile`` (see :func:`run_name`)."""
    return paths.executed_dir(profile) / "book" / f"{stem}.ipynb"


def failed_notebook(stem: str, run: str) -> Path:
    """Where a failed run leaves its notebook with the traceback (outside the executed mirror the book renders)."""
    return paths.build_dir() / "logs" / "failed" / run / f"{stem}.ipynb"


def _stderr_outputs(nb) -> list[tuple[int, str]]:
    found = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                found.append((index, "".join(output.get("text", "")).strip()))
    return found


def _engine():
    """papermill's nbclient engine, reporting each cell's start to a ``progress`` callback."""
    from papermill.engines import NBClientEngine, papermill_engines

    class Engine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, progress=None, **kwargs):
            if progress is not None:
                places, started = cell_places(nb_man.nb), nb_man.cell_start

                def cell_start(cell, cell_index=None, **kw):
                    if cell_index in places:
                        progress.cell(*places[cell_index])
                    return started(cell, cell_index, **kw)

                nb_man.cell_start = cell_start
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    papermill_engines.register("pml", Engine)
    return "pml"


def _kernel_options() -> dict[str, Any]:
    """Options of the kernel: its messages encrypted (CurveZMQ keys provisioned by the kernel manager, so the kernel
    has no reason to warn about plain-text TCP), and stopped at once when the run ends or is interrupted (no
    half-closed sockets to report)."""
    import zmq
    from traitlets.config import Config

    encryption = "auto" if zmq.has("curve") else "disabled"
    return {"config": Config({"KernelManager": {"transport_encryption": encryption}}), "shutdown_kernel": "immediate"}


@contextlib.contextmanager
def _environ(values: Mapping[str, str]):
    """Set environment variables (the kernel inherits them) and restore them afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _finish_notebook(nb, only_profile: bool = False) -> None:
    """Collapse the parameters cell (remove it where it sets only ``profile``, which the page states) and drop
    papermill's injected one from the rendered page: the chapter's parameters table shows what this build ran with
    beside the paper's values."""
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "parameters" in tags:
            tags.append("remove-cell" if only_profile else "hide-cell")
        if "injected-parameters" in tags:
            tags.append("remove-cell")
        cell.metadata["tags"] = list(dict.fromkeys(tags))


def _install(stage: Path, stem: str, run: str, notebook) -> Path | None:
    """Move a successful run's outputs from ``stage`` into place, each file atomically; returns the claims file."""
    import nbformat

    from pml.engine.store import _atomic_write, new_file_mode

    figures = paths.figures_dir(run)
    for png in sorted((stage / "figures").glob("*.png")):
        figures.mkdir(parents=True, exist_ok=True)
        os.chmod(png, new_file_mode())
        os.replace(png, figures / png.name)
    claims_file = None
    for staged in sorted((stage / "claims").glob("*.json")):
        claims_file = paths.claims_dir(run) / staged.name
        _atomic_write(claims_file, staged.read_bytes())
    for staged in sorted((stage / "claims" / coverage.FOLDER).glob("*.json")):
        _atomic_write(paths.claims_dir(run) / coverage.FOLDER / staged.name, staged.read_bytes())
    out = executed_notebook(stem, run)
    _atomic_write(out, nbformat.writes(notebook).encode())
    return claims_file if claims_file is not None else _existing(paths.claims_dir(run) / f"{stem}.json")


_GLUE_ROLE = re.compile(r"\{glue(?::(?:text|md|any|math))?\}`([\w.-]+)(?::[^`]*)?`")
_GLUE_DIRECTIVE = re.compile(r"^```\{glue(?::(figure|md|math|any))?\}\s+([\w.-]+)\s*\n.*?^```[ \t]*$", re.M | re.S)
NOT_COMPUTED_TEXT = "*(not computed)*"


def _glue_values(nb) -> dict[str, str]:
    """Glue key -> its text/plain, of every glue output of the notebook."""
    out = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                data = output.get("data", {})
                out[name] = next((v for k, v in data.items() if k.endswith("text/plain")), "")
    return out


def _mark_not_computed(nb) -> list[str]:
    """In a stored build: where the chapter's text pastes a glued value that a step not in the store left unset
    (or set to a ``NotComputed``), write "(not computed)" instead, and a missing figure as a note, so the page
    renders and says so. Returns the keys marked."""
    from pml.engine.partial import NOT_COMPUTED

    values = _glue_values(nb)
    missing = lambda key: key not in values or str(values[key]).startswith(NOT_COMPUTED)  # noqa: E731
    marked: list[str] = []

    def role(m):
        if not missing(m.group(1)):
            return m.group(0)
        marked.append(m.group(1))
        return NOT_COMPUTED_TEXT

    def directive(m):
        key = m.group(2)
        if not missing(key):
            return m.group(0)
        marked.append(key)
        what = "Figure" if m.group(1) == "figure" else "Table"
        reason = str(values[key])[1:-1] if key in values else "its steps are not in the results store"
        return f"*{what} `{key}`: {reason}.*"

    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = _GLUE_ROLE.sub(role, _GLUE_DIRECTIVE.sub(directive, cell.source))
    return list(dict.fromkeys(marked))


def _existing(path: Path) -> Path | None:
    return path if path.exists() else None


def run_chapter(stem: str, profile: str = DEFAULT_PROFILE, overrides: Mapping[str, Any] | None = None, *,
                threads: int | None = None, device: str | None = None, progress: Progress | None = None,
                stored: bool = False) -> ChapterRun:
    """Execute one chapter with papermill; a cell that raises (or writes to stderr) is a named error.

    The kernel writes the executed notebook, figures and claims into a staging folder under ``_build/``; they
    replace the last good ones only when every cell succeeded, so a failed or interrupted run (Ctrl-C) changes
    nothing but the failed notebook it leaves for inspection (:func:`failed_notebook`). With ``overrides`` the
    outputs go under :func:`run_name` ``(profile, overrides)``, never over the profile's. ``threads`` and
    ``device`` are the execution settings the chapter's tasks get (:mod:`pml.book.context`). ``stored``: build
    from the results store only, computing nothing (``$PML_STORED`` for the kernel, :mod:`pml.engine.partial`);
    the values of the text that a missing step left unset then read "(not computed)".
    """
    import nbformat
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    chapter = ChapterParams.resolve(stem, profile, overrides, threads=threads, device=device)
    stem, user, execution, params = chapter.chapter, chapter.overrides, chapter.execution, chapter.injected()
    run = run_name(profile, user)
    ctx = RunContext(profile=profile, run=run, overrides=user, parameters=chapter.values(), **execution)
    paths.build_dir().mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".run-{stem}-", dir=paths.build_dir()))
    staged_nb = stage / f"{stem}.ipynb"
    env = {"MPLBACKEND": "Agg", paths.STAGE_ENV: str(stage), RUN_ENV: ctx.to_env(),  # Agg: never a window
           STORED_ENV: "1" if stored else ""}
    progress = progress if progress is not None else Progress()
    progress.start(stem, run)
    start, outcome = time.perf_counter(), "failed"
    try:
        try:
            with _environ(env):
                papermill.execute_notebook(
                    read_chapter(stem), str(staged_nb), parameters=params, kernel_name="python3", language="python",
                    cwd=str(paths.repo_root()), progress_bar=False, execution_timeout=CHAPTER_TIMEOUT_S[profile],
                    engine_name=_engine(), progress=progress, **_kernel_options(),
                )
        except papermill.PapermillExecutionError as exc:
            kept = _keep_failed(staged_nb, stem, run)
            raise BookError(
                f"chapter {stem} ({run}) failed in cell {exc.cell_index} (execution count {exc.exec_count}): "
                f"{exc.ename}: {exc.evalue}\n  notebook with the traceback: {kept}\n  the last good outputs of "
                f"this chapter are unchanged"
            ) from None
        except (CellTimeoutError, DeadKernelError) as exc:  # a cell ran past the profile's limit; the kernel died
            kept = _keep_failed(staged_nb, stem, run)
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BookError(f"chapter {stem} ({run}) stopped: {type(exc).__name__}: {reason}\n  notebook: {kept}\n  "
                            f"the last good outputs of this chapter are unchanged") from None
        notebook = nbformat.read(staged_nb, as_version=4)
        stderr = _stderr_outputs(notebook)
        if stderr:
            cell, text = stderr[0]
            kept = _keep_failed(staged_nb, stem, run)
            raise BookError(f"chapter {stem} ({run}) wrote to stderr in cell {cell}: {text[:500]}\n  notebook: {kept}"
                            f"\n  the last good outputs of this chapter are unchanged")
        _finish_notebook(notebook, only_profile=set(chapter.defaults) == {"profile"})
        if stored:
            _mark_not_computed(notebook)
        claims_file = _install(stage, stem, run, notebook)
        outcome = "ok"
    except KeyboardInterrupt:
        outcome = "interrupted"
        raise
    finally:
        progress.finish(outcome)
        shutil.rmtree(stage, ignore_errors=True)
    return ChapterRun(chapter=stem, profile=profile, parameters=params, notebook=executed_notebook(stem, run),
                      figures=paths.figures_dir(run), claims=claims_file, seconds=time.perf_counter() - start,
                      run=run, overrides=user)


def _keep_failed(staged: Path, stem: str, run: str) -> Path | None:
    if not staged.exists():
        return None
    kept = failed_notebook(stem, run)
    kept.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, kept)
    return kept


