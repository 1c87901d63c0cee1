"""A book's chapters, profiles and parameters: what a chapter run computes with.

Chapters are the jupytext MyST files listed in ``_toc.yml``. Their first code cell, tagged ``parameters``, holds
literal defaults (the paper's values). A profile file ``book/_params/<profile>.yaml`` maps chapter stems to
overrides; the command line (``pml run -p NAME=VALUE``) overrides those. :class:`ChapterParams` is one chapter's
parameters as one run sees them, with the execution settings (``--threads``, ``--device``), which change where
tasks run, never their results; ``ChapterParams.steps()`` gives the chapter's sweeps from them, the same call the
chapter makes, so ``pml plan``/``pml compute`` and the chapter agree on every task.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from pml import paths
from pml.book.context import EXECUTION_DEFAULTS, plain, show
from pml.book.context import current as run_context

PROFILES = ("smoke", "ci", "paper")
EXECUTION_SETTINGS = tuple(EXECUTION_DEFAULTS)  # runner options (--threads, --device), not chapter parameters
DEFAULT_PROFILE = "ci"


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


def read_chapter(stem: str):
    import jupytext

    return jupytext.read(source_path(stem), fmt="md:myst")


def has_code(stem: str) -> bool:
    return any(cell.cell_type == "code" for cell in read_chapter(stem).cells)


@lru_cache(maxsize=None)
def _chapters_cached(toc: str, toc_mtime: float) -> tuple[str, ...]:
    stems = [f.split("/", 1)[1] for f in toc_files() if f.startswith("book/")]
    return tuple(s for s in stems if has_code(s))


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
    nb = read_chapter(stem)
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


@dataclass(frozen=True)
class ChapterParams:
    """One chapter's parameters as one run sees them, and the execution settings it runs with.

    The values come in layers, later ones winning: the paper's (the chapter's ``parameters`` cell,
    :attr:`defaults`), the profile's (``book/_params/<profile>.yaml``), the command line's (:attr:`overrides`) and,
    for a chapter that is running, its own namespace (what papermill injected, or what a reader typed in Jupyter).
    Build one with :meth:`resolve` (a command line) or :meth:`in_chapter` (inside a chapter).

    Parameters
    ----------
    chapter : str
        The chapter's stem (``02_piecewise_linear``).
    profile : str
        ``smoke``, ``ci`` or ``paper``.
    overrides : dict
        The command line's values (``pml run -p NAME=VALUE``), checked against the chapter's parameters.
    execution : dict
        ``{"threads": ..., "device": ...}``: where and how fast tasks run, never what they compute.
    namespace : dict, optional
        A running chapter's values of its parameters; they win over every layer above.
    """

    chapter: str
    profile: str = DEFAULT_PROFILE
    overrides: dict[str, Any] = field(default_factory=dict)
    execution: dict[str, Any] = field(default_factory=lambda: dict(EXECUTION_DEFAULTS))
    namespace: dict[str, Any] | None = field(default=None, compare=False)

    @classmethod
    def resolve(cls, chapter: str, profile: str = DEFAULT_PROFILE, overrides: Mapping[str, Any] | None = None, *,
                threads: int | None = None, device: str | None = None) -> ChapterParams:
        """The parameters of a run from the command line; an unknown chapter, profile or parameter, a value of the
        wrong type or a bad ``threads``/``device`` is a :class:`BookError` naming what is valid."""
        stem = check_chapter(chapter)
        user = validate_parameters(stem, overrides or {}, "command line")
        return cls(stem, check_profile(profile), user, check_execution(threads, device))

    @classmethod
    def in_chapter(cls, chapter: str, namespace: Mapping[str, Any]) -> ChapterParams:
        """The parameters of the chapter that is running: its values picked from ``namespace`` (its globals), with
        the profile, overrides and execution settings the runner set (:func:`pml.book.context.current`; outside
        the runner: no overrides, one thread, the CPU)."""
        ctx = run_context()
        names = chapter_parameters(chapter)
        profile = str(namespace.get("profile", ctx.profile or "paper"))
        return cls(chapter, profile, dict(ctx.overrides), ctx.execution(), {n: namespace[n] for n in names})

    @property
    def defaults(self) -> dict[str, Any]:
        """The paper's values: the chapter's ``parameters`` cell."""
        return chapter_parameters(self.chapter)

    def injected(self) -> dict[str, Any]:
        """What papermill injects: the profile's values, then the command line's, then ``profile`` itself."""
        params = dict(load_profile(self.profile).get(self.chapter, {}))
        params.update(self.overrides)
        params["profile"] = self.profile
        return params

    def values(self) -> dict[str, Any]:
        """Every parameter of the chapter as this run sees it."""
        if self.namespace is not None:
            return dict(self.namespace)
        params = self.defaults
        params.update(self.injected())
        return params

    def for_steps(self) -> dict[str, Any]:
        """What ``pml.experiments.<slug>.steps`` takes: :meth:`values` plus the execution settings."""
        return {**self.values(), **self.execution}

    def steps(self, only: Iterable[str] | None = None) -> dict[str, Any]:
        """The chapter's sweeps: ``pml.experiments.<slug>.steps(self.for_steps())``, the call the chapter makes
        (``only``: just these steps). {} when the module defines no ``steps``; an unknown step name is a
        :class:`BookError` naming the valid ones."""
        import importlib

        only = list(only or [])
        if not has_steps(self.chapter):
            if only:
                raise BookError(f"chapter {self.chapter} has no steps: {experiments_module(self.chapter)} defines "
                                f"no steps(params)")
            return {}
        steps = dict(importlib.import_module(experiments_module(self.chapter)).steps(self.for_steps()))
        unknown = [s for s in only if s not in steps]
        if unknown:
            raise BookError(f"unknown step(s) {', '.join(map(repr, unknown))} of chapter {self.chapter}; "
                            f"valid: {', '.join(steps) or 'none'}")
        return {s: steps[s] for s in only} if only else steps

    def table(self):
        """These values beside the paper's, one row per parameter (command-line values marked), then the profile
        and the execution settings: a :class:`pml.experiments.tables.Table` for the chapter's page."""
        from pml.experiments.tables import Table

        values = self.values()
        rows = [(name, show(values.get(name, paper)) + (" (command line)" if name in self.overrides else ""),
                 show(paper)) for name, paper in self.defaults.items() if name != "profile"]
        profile = self.profile
        if self.overrides:
            profile += " with command-line overrides: " + ", ".join(f"{k}={show(v)}" for k, v in self.overrides.items())
        rows.append(("profile", profile, "paper"))
        rows.append(("execution (runner options)", ", ".join(f"{k}={show(v)}" for k, v in self.execution.items()),
                     "(runner options: they do not change results)"))
        return Table(("parameter", "this build", "the paper's value"), rows, css_class="pml-parameters")


def experiments_module(stem: str) -> str:
    """``pml.experiments.<slug>``, the module of chapter ``NN_slug``: only for a chapter of this book's ``_toc.yml``
    (checked before anything is imported by this name) whose slug is a plain identifier."""
    slug = check_chapter(stem).split("_", 1)[-1]
    if not slug.isidentifier():
        raise BookError(f"chapter {stem!r} has no experiments module: {slug!r} is not a Python identifier")
    return f"pml.experiments.{slug}"


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
    """The chapter's sweeps at ``profile`` (``only``: just these steps): :meth:`ChapterParams.steps`, with the
    execution settings ``execution``, else those the runner set for this process, else the defaults."""
    execution = execution if execution is not None else run_context().execution()
    return ChapterParams.resolve(stem, profile, overrides, **execution).steps(only)


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


