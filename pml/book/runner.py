"""The book pipeline: jupytext -> papermill (with a profile's parameters) -> staged mirror -> Jupyter Book 1.

Chapters are the jupytext MyST files listed in ``_toc.yml``. Their first code cell, tagged ``parameters``, holds
literal defaults (the paper's values). A profile file ``book/_params/<profile>.yaml`` maps chapter stems to
overrides. Executed notebooks land in ``_build/executed/<profile>/book/``; the HTML book is rendered from that
mirror with execution off and warnings as errors into ``_build/html``.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from pml import paths
from pml.book import claims

PROFILES = ("smoke", "ci", "paper")
DEFAULT_PROFILE = "ci"
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


def validate_parameters(stem: str, overrides: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check override names and types against the chapter's defaults; returns them converted."""
    defaults = chapter_parameters(stem)
    out = {}
    for name, value in overrides.items():
        if name not in defaults:
            raise BookError(f"{where}: unknown parameter {name!r} for chapter {stem}; valid: {', '.join(defaults)}")
        default = defaults[name]
        if not _type_ok(default, value):
            raise BookError(
                f"{where}: parameter {name!r} of chapter {stem} must be of type {type(default).__name__} "
                f"(default {default!r}), got {type(value).__name__} {value!r}"
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


def full_parameters(stem: str, profile: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every parameter of the chapter as a run at ``profile`` sees it: defaults, then the profile, then overrides."""
    params = chapter_parameters(stem)
    params.update(resolve_parameters(stem, profile, overrides))
    return params


def parameter_values(stem: str, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The chapter's parameters (the names of its parameters cell) picked from ``namespace`` (a chapter's globals).

    With :func:`full_parameters` this gives ``pml.experiments.<slug>.steps`` the same values in the chapter and in
    ``pml plan``/``pml compute``: one source of truth for a chapter's sweeps.
    """
    return {name: namespace[name] for name in chapter_parameters(stem)}


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
                  only: Iterable[str] | None = None) -> dict[str, Any]:
    """The chapter's sweeps at ``profile``: ``pml.experiments.<slug>.steps(full_parameters(...))``, the same call
    the chapter makes with its own parameter values (``only``: just these steps). {} when the module defines no
    ``steps``; an unknown step name is a :class:`BookError` naming the valid ones."""
    import importlib

    stem = check_chapter(stem)
    params = full_parameters(stem, profile, overrides)
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
    mapping : Mapping[str, Any]
        Names and values, as the experiments' ``*_numbers`` summaries return them.
    prefix : str, optional
        Prepended to each key (the chapter's glue namespace, such as ``"pl_"``).
    convert : callable, optional
        Applied to each value before it is glued (``float``, or a change of unit).
    """
    from myst_nb import glue

    for key, value in mapping.items():
        glue(f"{prefix}{key}", value if convert is None else convert(value), display=False)


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


@dataclass(frozen=True)
class ChapterRun:
    chapter: str
    profile: str
    parameters: dict[str, Any]
    notebook: Path
    figures: Path
    claims: Path | None
    seconds: float


def executed_notebook(stem: str, profile: str) -> Path:
    return paths.executed_dir(profile) / "book" / f"{stem}.ipynb"


def _stderr_outputs(nb) -> list[tuple[int, str]]:
    found = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                found.append((index, "".join(output.get("text", "")).strip()))
    return found


def run_chapter(stem: str, profile: str = DEFAULT_PROFILE, overrides: Mapping[str, Any] | None = None) -> ChapterRun:
    """Execute one chapter with papermill; a cell that raises (or writes to stderr) is a named error."""
    import nbformat
    import papermill

    stem = check_chapter(stem)
    params = resolve_parameters(stem, check_profile(profile), overrides)
    out = executed_notebook(stem, profile)
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    env_backup = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "Agg"  # the kernel inherits it: figures are never shown in a window
    try:
        papermill.execute_notebook(
            _read(stem),
            str(out),
            parameters=params,
            kernel_name="python3",
            language="python",
            cwd=str(paths.repo_root()),
            progress_bar=False,
            execution_timeout=CHAPTER_TIMEOUT_S[profile],
        )
    except papermill.PapermillExecutionError as exc:
        raise BookError(
            f"chapter {stem} ({profile}) failed in cell {exc.cell_index} (execution count {exc.exec_count}): "
            f"{exc.ename}: {exc.evalue}\n  executed notebook with the traceback: {out}"
        ) from None
    finally:
        if env_backup is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = env_backup
    stderr = _stderr_outputs(nbformat.read(out, as_version=4))
    if stderr:
        cell, text = stderr[0]
        raise BookError(f"chapter {stem} ({profile}) wrote to stderr in cell {cell}: {text[:500]}\n  notebook: {out}")
    claims_file = paths.claims_dir(profile) / f"{stem}.json"
    return ChapterRun(
        chapter=stem,
        profile=profile,
        parameters=params,
        notebook=out,
        figures=paths.figures_dir(profile),
        claims=claims_file if claims_file.exists() else None,
        seconds=time.perf_counter() - start,
    )


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


def build(profile: str = DEFAULT_PROFILE, chapters_to_run: Iterable[str] | None = None, log=print) -> Path:
    """Execute every chapter (report last) and render the book; prints progress as it goes."""
    check_profile(profile)
    load_profile(profile)  # fail fast on a bad profile file
    names = list(chapters_to_run) if chapters_to_run is not None else chapters()
    total = time.perf_counter()
    for i, stem in enumerate(names, 1):
        log(f"[{i}/{len(names)}] executing {stem} ({profile}) ...", flush=True)
        result = run_chapter(stem, profile)
        log(f"[{i}/{len(names)}] {stem} done in {result.seconds:.1f} s", flush=True)
    log("rendering the HTML book with jupyter-book ...", flush=True)
    html = render(profile)
    log(f"book built in {time.perf_counter() - total:.0f} s", flush=True)
    return html


def summary(profile: str) -> tuple[claims.ClaimTable, bool]:
    """All claims at ``profile`` and whether ``make verify`` should pass."""
    verdicts = claims.collect(profile, chapters())
    return claims.ClaimTable(verdicts), all(v.ok for v in verdicts)
