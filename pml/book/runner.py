"""The book pipeline: jupytext -> papermill (with a profile's parameters) -> staged mirror -> Jupyter Book 1.

Chapters are the jupytext MyST files listed in ``_toc.yml``. Their first code cell, tagged ``parameters``, holds
literal defaults (the paper's values). A profile file ``book/_params/<profile>.yaml`` maps chapter stems to
overrides. Executed notebooks land in ``_build/executed/<profile>/book/``; the HTML book is rendered from that
mirror with execution off and warnings as errors into ``_build/html``.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from pml import paths
from pml.book import claims, coverage
from pml.book.context import EXECUTION_DEFAULTS, RUN_ENV, RunContext, plain, show
from pml.book.context import current as run_context
from pml.engine.partial import STORED_ENV

PROFILES = ("smoke", "ci", "paper")
EXECUTION_SETTINGS = tuple(EXECUTION_DEFAULTS)  # runner options (--threads, --device), not chapter parameters
DEFAULT_PROFILE = "ci"
COMPUTE_LIMIT_CPU_HOURS = 2.0  # a build that would compute more (cost models of the missing tasks) asks first
CHAPTER_TIMEOUT_S = {"smoke": 300, "ci": 900, "paper": None}  # per cell; None = no limit


class BookError(RuntimeError):
    """A user-facing pipeline error (bad profile, chapter or parameter; a chapter that raised)."""


# ---------------------------------------------------------------------------------------------------------------
# Chapters and their parameters
# ---------------------------------------------------------------------------------------------------------------


def toc_files() -> list[str]:
    """Every document of ``_toc.yml`` in reading order, as ``book/<stem>`` (root first)."""
    toc = yaml.safe_load((paths.repo_root() / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))
            for part in entry.get("parts", []) if isinstance(entry, dict) else []:
                walk(part.get("chapters"))

    walk(toc.get("chapters"))
    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    return files


def source_path(stem: str) -> Path:
    return paths.book_dir() / f"{stem}.md"


def _read(stem: str):
    import jupytext

    return jupytext.read(source_path(stem), fmt="md:myst")


def _has_code(stem: str) -> bool:
    return any(cell.cell_type == "code" for cell in _read(stem).cells)


@lru_cache(maxsize=None)
def _chapters_cached(toc: str, toc_mtime: float) -> tuple[str, ...]:
    stems = [f.split("/", 1)[1] for f in toc_files() if f.startswith("book/")]
    return tuple(s for s in stems if _has_code(s))


def chapters() -> list[str]:
    """The executable chapters (those with code cells), in book order."""
    toc = paths.repo_root() / "_toc.yml"
    return list(_chapters_cached(str(toc), toc.stat().st_mtime))


def check_chapter(name: str) -> str:
    """Resolve a chapter name: a full stem (``01_introduction``) or its unique number or slug."""
    names = chapters()
    if name in names:
        return name
    matches = [c for c in names if c.split("_", 1)[0] == name or c.split("_", 1)[-1] == name]
    if len(matches) == 1:
        return matches[0]
    raise BookError(f"unknown chapter {name!r}; valid: {', '.join(names)}")


def _literal(node: ast.AST, stem: str, name: str):
    try:
        return ast.literal_eval(node)
    except ValueError as exc:
        raise BookError(f"chapter {stem}: parameter {name!r} must be a literal, not {ast.unparse(node)}") from exc


def chapter_parameters(stem: str) -> dict[str, Any]:
    """The defaults of a chapter's ``parameters`` cell (its first code cell), which holds only literals."""
    nb = _read(stem)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    if not code or "parameters" not in code[0].metadata.get("tags", []):
        raise BookError(f"chapter {stem}: the first code cell must be tagged 'parameters'")
    params: dict[str, Any] = {}
    for stmt in ast.parse(code[0].source).body:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
            raise BookError(f"chapter {stem}: the parameters cell may only hold `name = literal` lines")
        name = stmt.targets[0].id
        params[name] = _literal(stmt.value, stem, name)
    if "profile" not in params:
        raise BookError(f"chapter {stem}: the parameters cell must define `profile`")
    return params


def _type_ok(default: Any, value: Any) -> bool:
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            return False
        kinds = {type(v) for v in default}
        return len(kinds) != 1 or all(_type_ok(default[0], v) for v in value)
    return type(value) is type(default)


def _type_name(default: Any) -> str:
    if isinstance(default, (list, tuple)):
        kinds = sorted({type(v).__name__ for v in default})
        return "list" + (f" of {kinds[0]}" if len(kinds) == 1 else "")
    return type(default).__name__


def _example(name: str, default: Any) -> str:
    text = json.dumps(plain(default)) if isinstance(default, (list, tuple, bool)) else repr(default)
    return f'-p "{name}={text}"' if " " in text or "[" in text else f"-p {name}={text}"


def validate_parameters(stem: str, overrides: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check override names and types against the chapter's defaults; returns them converted (ints widen to float
    where the default is a float, tuples become lists, NumPy values plain Python). ``profile`` is not an override:
    it is chosen with ``--profile`` (or a profile file's name)."""
    defaults = chapter_parameters(stem)
    settable = [n for n in defaults if n != "profile"]
    out = {}
    for name, value in overrides.items():
        if name == "profile":
            raise BookError(f"{where}: 'profile' is not a parameter to override; use --profile "
                            f"{value if isinstance(value, str) else show(value)} "
                            f"(parameters of chapter {stem}: {', '.join(settable)})")
        if name in EXECUTION_SETTINGS and name not in defaults:
            raise BookError(f"{where}: {name!r} is an execution setting, not a parameter of chapter {stem}: "
                            f"use --{name} (it changes where and how fast tasks run, never their results)")
        if name not in defaults:
            raise BookError(f"{where}: unknown parameter {name!r} for chapter {stem}; valid: {', '.join(settable)}")
        default, value = defaults[name], plain(value)
        if not _type_ok(default, value):
            raise BookError(
                f"{where}: parameter {name!r} of chapter {stem} must be of type {_type_name(default)} "
                f"(default {show(default)}; for example {_example(name, default)}), "
                f"got {type(value).__name__} {show(value)}"
            )
        out[name] = float(value) if isinstance(default, float) and isinstance(value, int) else value
    return out


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise BookError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    return profile


def load_profile(profile: str) -> dict[str, dict[str, Any]]:
    """The validated per-chapter overrides of ``book/_params/<profile>.yaml``."""
    check_profile(profile)
    path = paths.params_dir() / f"{profile}.yaml"
    raw = yaml.safe_load(path.read_text()) if path.exists() else None
    raw = raw or {}
    if not isinstance(raw, dict):
        raise BookError(f"{path}: expected a mapping of chapter -> parameters")
    valid = chapters()
    out = {}
    for stem, overrides in raw.items():
        if stem not in valid:
            raise BookError(f"{path.name}: unknown chapter {stem!r}; valid: {', '.join(valid)}")
        if "profile" in (overrides or {}):
            raise BookError(f"{path.name}: chapter {stem} must not set 'profile' (it is the file's name)")
        out[stem] = validate_parameters(stem, overrides or {}, path.name)
    return out


def resolve_parameters(stem: str, profile: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Parameters papermill injects: the profile's overrides, then the user's, then ``profile`` itself."""
    params = dict(load_profile(profile).get(stem, {}))
    params.update(validate_parameters(stem, overrides or {}, "command line"))
    params["profile"] = profile
    return params


def chapter_values(stem: str, profile: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every parameter of the chapter as a run at ``profile`` sees it: defaults, then the profile, then overrides."""
    params = chapter_parameters(stem)
    params.update(resolve_parameters(stem, profile, overrides))
    return params


def check_execution(threads: Any = None, device: Any = None) -> dict[str, Any]:
    """The execution settings of a run (``--threads``, ``--device``; None: the defaults), checked."""
    threads = EXECUTION_DEFAULTS["threads"] if threads is None else threads
    device = EXECUTION_DEFAULTS["device"] if device is None else device
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise BookError(f"--threads must be a whole number >= 0 (0: torch's default), got {show(threads)}")
    name, _, index = str(device).partition(":")
    if name not in ("cpu", "cuda") or (index and (name != "cuda" or not index.isdigit())):
        raise BookError(f"--device must be cpu, cuda or cuda:N (a GPU's index), got {show(device)}")
    return {"threads": threads, "device": str(device)}


def full_parameters(stem: str, profile: str, overrides: Mapping[str, Any] | None = None,
                    execution: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What ``pml.experiments.<slug>.steps`` takes: :func:`chapter_values` plus the execution settings ``threads``
    and ``device`` (``execution``, else those the runner set for this process, else the defaults), which change
    where tasks run, never their keys or results."""
    params = chapter_values(stem, profile, overrides)
    params.update(execution if execution is not None else run_context().execution())
    return params


def parameter_values(stem: str, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The chapter's parameters (the names of its parameters cell) picked from ``namespace`` (a chapter's globals),
    plus the execution settings the runner set (:func:`pml.book.context.current`).

    With :func:`full_parameters` this gives ``pml.experiments.<slug>.steps`` the same values in the chapter and in
    ``pml plan``/``pml compute``: one source of truth for a chapter's sweeps.
    """
    values = {name: namespace[name] for name in chapter_parameters(stem)}
    values.update(run_context().execution())
    return values


def parameters_table(stem: str, namespace: Mapping[str, Any]):
    """The chapter's parameters as this build ran them beside the paper's values (its parameters cell's defaults):
    a :class:`pml.experiments.tables.Table` with one row per parameter, the values set on the command line
    (``pml run -p``) marked, then the profile and the execution settings (runner options, not parameters)."""
    from pml.experiments.tables import Table

    ctx = run_context()
    rows = []
    for name, paper in chapter_parameters(stem).items():
        if name != "profile":
            mark = " (command line)" if name in ctx.overrides else ""
            rows.append((name, show(namespace.get(name, paper)) + mark, show(paper)))
    profile = str(namespace.get("profile", ctx.profile or "paper"))
    if ctx.overrides:
        profile += " with command-line overrides: " + ", ".join(f"{k}={show(v)}" for k, v in ctx.overrides.items())
    rows.append(("profile", profile, "paper"))
    rows.append(("execution (runner options)", ", ".join(f"{k}={show(v)}" for k, v in ctx.execution().items()),
                 "(runner options: they do not change results)"))
    return Table(("parameter", "this build", "the paper's value"), rows, css_class="pml-parameters")


def experiments_module(stem: str) -> str:
    """``pml.experiments.<slug>``, the module of chapter ``NN_slug``."""
    return f"pml.experiments.{stem.split('_', 1)[-1]}"


def has_steps(stem: str) -> bool:
    """Whether the chapter's experiments module defines ``steps(params)``."""
    import importlib
    import importlib.util

    name = experiments_module(stem)
    if importlib.util.find_spec(name) is None:
        return False
    return callable(getattr(importlib.import_module(name), "steps", None))


def chapter_steps(stem: str, profile: str, overrides: Mapping[str, Any] | None = None,
                  only: Iterable[str] | None = None, execution: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The chapter's sweeps at ``profile``: ``pml.experiments.<slug>.steps(full_parameters(...))``, the same call
    the chapter makes with its own parameter values (``only``: just these steps). {} when the module defines no
    ``steps``; an unknown step name is a :class:`BookError` naming the valid ones."""
    import importlib

    stem = check_chapter(stem)
    params = full_parameters(stem, profile, overrides, execution)
    only = list(only or [])
    if not has_steps(stem):
        if only:
            raise BookError(f"chapter {stem} has no steps: {experiments_module(stem)} defines no steps(params)")
        return {}
    steps = dict(importlib.import_module(experiments_module(stem)).steps(params))
    unknown = [s for s in only if s not in steps]
    if unknown:
        raise BookError(f"unknown step(s) {', '.join(map(repr, unknown))} of chapter {stem}; "
                        f"valid: {', '.join(steps) or 'none'}")
    return {s: steps[s] for s in only} if only else steps


def profile_costs(profiles: Iterable[str] = PROFILES):
    """What each profile costs by the tasks' cost models (``pml plan``): tasks and estimated CPU-hours of one core
    of this machine, counting a task shared by two steps once, and the most expensive step; a Markdown table."""
    from pml.engine.plan import plan, tasks_of
    from pml.experiments.tables import Table

    rows = []
    for profile in profiles:
        steps = {stem: chapter_steps(stem, profile) for stem in chapters() if has_steps(stem)}
        tasks = tasks_of(steps)
        hours = sum(t.cost() for t in tasks) / 3600
        top = max(plan(steps), key=lambda r: r.cpu_hours)
        rows.append((f"`{profile}`", str(len(tasks)), f"{hours:.3g}",
                     f"{top.chapter} `{top.step}` ({top.cpu_hours:.3g} CPU-hours, {top.tasks} tasks)"))
    return Table(("profile", "tasks", "estimated CPU-hours", "most expensive step"), rows)


def glue_all(mapping: Mapping[str, Any], prefix: str = "", convert=None) -> None:
    """Glue every value of ``mapping`` under ``prefix + key`` for ``{glue:text}`` (not displayed).

    Parameters
    ----------
    mapping : Mapping[str, Any] or pml.engine.NotComputed
        Names and values, as the experiments' ``*_numbers`` summaries return them; a summary of a step a stored
        build lacks (a NotComputed) glues nothing, and the text's values it would have set read "(not computed)".
    prefix : str, optional
        Prepended to each key (the chapter's glue namespace, such as ``"pl_"``).
    convert : callable, optional
        Applied to each value before it is glued (``float``, or a change of unit); not to a
        :class:`pml.engine.NotComputed` (a value a stored build lacks), which is glued as it is and reads
        "(not computed)" in the text.
    """
    from myst_nb import glue

    from pml.engine.partial import is_missing

    if is_missing(mapping):  # a summary of a step a stored build lacks: its keys read "(not computed)" in the text
        return
    for key, value in mapping.items():
        glue(f"{prefix}{key}", value if convert is None or is_missing(value) else convert(value), display=False)


def parse_assignment(text: str) -> tuple[str, Any]:
    """``name=value`` from the command line: a Python literal (``3``, ``1e-3``, ``[1, 2]``, ``'cos2x'``),
    ``true``/``false``, or else the bare text as a string."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise BookError(f"expected name=value, got {text!r}")
    value = value.strip()
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = {"true": True, "false": False}.get(value.lower(), value)
    return name.strip(), parsed


# ---------------------------------------------------------------------------------------------------------------
# Execution and rendering
# ---------------------------------------------------------------------------------------------------------------


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


class Progress:
    """Progress of chapter runs: on a terminal a live line (chapter, elapsed seconds, cell k of n, the current
    section or step) that ends as one summary line; elsewhere (CI logs) just that line per chapter when it ends:
    ``<prefix><chapter> (<run>): ok in 12.3 s``, ``failed after ...`` or ``interrupted after ...``."""

    def __init__(self, stream=None, live: bool | None = None, prefix: str = ""):
        self.stream = stream if stream is not None else sys.stderr
        self.live = bool(live if live is not None else getattr(self.stream, "isatty", lambda: False)())
        self.prefix = prefix
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = None
        self._state = ""
        self._start = time.perf_counter()

    def start(self, chapter: str, run: str) -> None:
        self.chapter, self.run, self._start = chapter, run, time.perf_counter()
        self._state = "starting the kernel"
        if self.live:
            self._stop.clear()
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()
            self._draw()

    def cell(self, k: int, n: int, where: str) -> None:
        """Cell ``k`` of ``n`` code cells started; ``where``: its section heading or step name."""
        self._state = f"cell {k}/{n}" + (f" {where}" if where else "")
        if self.live:
            self._draw()

    def finish(self, outcome: str) -> None:
        """``outcome``: "ok", "failed" or "interrupted"."""
        seconds = time.perf_counter() - self._start
        if self._ticker is not None:
            self._stop.set()
            self._ticker.join()
            self._ticker = None
        word = "in" if outcome == "ok" else "after"
        line = f"{self.prefix}{self.chapter} ({self.run}): {outcome} {word} {seconds:.1f} s"
        with self._lock:
            self.stream.write(("\r\x1b[K" if self.live else "") + line + "\n")
            self.stream.flush()

    def _tick(self):
        while not self._stop.wait(1.0):
            self._draw()

    def _draw(self):
        elapsed = time.perf_counter() - self._start
        line = f"{self.prefix}{self.chapter} ({self.run}) {elapsed:.0f} s, {self._state}"
        width = shutil.get_terminal_size((100, 20)).columns - 1
        with self._lock:
            if not self._stop.is_set():
                self.stream.write("\r\x1b[K" + line[:width])
                self.stream.flush()


_STEP = re.compile(r"""steps\[["']([\w.-]+)["']\]""")
_HEADING = re.compile(r"^#{1,6}\s+(.*\S)\s*$", re.M)


def _cell_places(nb) -> dict[int, tuple[int, int, str]]:
    """cell index -> (k, n, where) for each code cell: its number among the n code cells, and the step it runs
    (``steps["fig1a"]``) or else the heading of the section it is in."""
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    places, heading = {}, ""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            found = _HEADING.findall(cell.source)
            heading = found[-1] if found else heading
        elif cell.cell_type == "code":
            step = _STEP.search(cell.source)
            where = f"step {step.group(1)}" if step else (f"§ {heading}" if heading else "")
            places[index] = (code.index(index) + 1, len(code), where)
    return places


def _engine():
    """papermill's nbclient engine, reporting each cell's start to a ``progress`` callback."""
    from papermill.engines import NBClientEngine, papermill_engines

    class Engine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, progress=None, **kwargs):
            if progress is not None:
                places, started = _cell_places(nb_man.nb), nb_man.cell_start

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

    stem = check_chapter(stem)
    user = validate_parameters(stem, overrides or {}, "command line")
    params = resolve_parameters(stem, check_profile(profile), user)
    execution = check_execution(threads, device)
    run = run_name(profile, user)
    ctx = RunContext(profile=profile, run=run, overrides=user, parameters=chapter_values(stem, profile, user),
                     **execution)
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
                    _read(stem), str(staged_nb), parameters=params, kernel_name="python3", language="python",
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
        _finish_notebook(notebook, only_profile=set(chapter_parameters(stem)) == {"profile"})
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


def stage(profile: str) -> Path:
    """Copy the pages without code (and nothing else) into the executed mirror of ``profile``."""
    mirror = paths.executed_dir(profile)
    for doc in toc_files():
        src = paths.repo_root() / f"{doc}.md"
        if doc.startswith("book/") and not _has_code(doc.split("/", 1)[1]):
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
