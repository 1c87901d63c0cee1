"""How much of a chapter's work a build drew on: per step, tasks and cost-model CPU-hours stored against the total.

A chapter calls :func:`report` once after building its steps: it names the steps, writes ``coverage/<chapter>.json``
beside the run's claims file and shows one line (in a stored build, what the store holds). :func:`table` reads the files
back for the reproduction report; :mod:`pml.book.claims` asks :func:`missing_hours` whether a claim's steps are all
there."""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from pml import paths
from pml.book import context
from pml.engine import partial

FOLDER = "coverage"  # beside the claims files: _build/claims/<run>/coverage/<chapter>.json


@dataclasses.dataclass(frozen=True)
class StepCoverage:
    """One step: its tasks (inputs included) and cost-model CPU-hours, and how much of both this build had."""

    step: str
    tasks: int
    available: int  # stored (stored build) or all (a build that computes what is missing)
    cpu_hours: float
    available_cpu_hours: float
    stored_before: int  # tasks the store held when the chapter started

    @property
    def complete(self) -> bool:
        return self.available == self.tasks

    @property
    def missing_cpu_hours(self) -> float:
        return max(self.cpu_hours - self.available_cpu_hours, 0.0)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _total(field: str) -> property:
    """A property of :class:`ChapterCoverage`: the sum of ``field`` over its steps."""
    return property(lambda self: sum(getattr(s, field) for s in self.steps), doc=f"``{field}`` over all steps.")


@dataclasses.dataclass(frozen=True)
class ChapterCoverage:
    """Every step of one chapter run (:func:`report`); displays as the chapter's one-line coverage statement."""

    chapter: str
    profile: str
    run: str
    stored_mode: bool
    steps: tuple[StepCoverage, ...]

    tasks = _total("tasks")
    available = _total("available")
    cpu_hours = _total("cpu_hours")
    available_cpu_hours = _total("available_cpu_hours")

    @property
    def complete(self) -> bool:
        return all(s.complete for s in self.steps)

    def step(self, name: str) -> StepCoverage | None:
        return next((s for s in self.steps if s.step == name), None)

    def line(self) -> str:
        """The chapter's coverage statement."""
        hours = f"{_h(self.available_cpu_hours)} of {_h(self.cpu_hours)} CPU-hours by the tasks' cost models"
        if not self.stored_mode:
            return (f"Coverage: this build computed or took from the results store every task it needs: "
                    f"{self.tasks} tasks, {_h(self.cpu_hours)} CPU-hours by the tasks' cost models.")
        if self.complete:
            return (f"Coverage at {self.profile}: built from stored results only, and the store holds all of them: "
                    f"{self.available} of {self.tasks} tasks, {hours}.")
        missing = [s.step for s in self.steps if not s.complete]
        return (f"Coverage at {self.profile}: built from stored results only: {self.available} of {self.tasks} "
                f"tasks stored, {hours}; not complete: {', '.join(missing)} (the figures mark what is missing, "
                f"and the claims that depend on it are not judged).")

    def __str__(self) -> str:
        return self.line()

    def _repr_html_(self) -> str:
        return f'<p class="pml-coverage"><strong>{html.escape(self.line())}</strong></p>'

    def to_dict(self) -> dict[str, Any]:
        return {"chapter": self.chapter, "profile": self.profile, "run": self.run, "stored_mode": self.stored_mode,
                "tasks": self.tasks, "available": self.available, "cpu_hours": self.cpu_hours,
                "available_cpu_hours": self.available_cpu_hours, "steps": [s.to_dict() for s in self.steps]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ChapterCoverage":
        fields = {f.name for f in dataclasses.fields(StepCoverage)}
        steps = tuple(StepCoverage(**{k: v for k, v in s.items() if k in fields}) for s in data["steps"])
        return cls(str(data["chapter"]), str(data["profile"]), str(data["run"]), bool(data["stored_mode"]), steps)


def _h(hours: float) -> str:
    if 0 < hours < 0.01:  # a few CPU-seconds: two digits, not "< 0.01"
        return f"{hours:.2g}"
    return partial.hours_text(hours).removesuffix(" CPU-hours").removesuffix(" CPU-hour")


_CURRENT: dict[str, ChapterCoverage] = {}  # chapter -> its coverage in this process (what claims.report asks)


def measure(chapter: str, steps: Mapping[str, Any], profile: str, run: str | None = None,
            stored: bool | None = None, store=None) -> ChapterCoverage:
    """The :class:`ChapterCoverage` of ``steps`` in the store, as a (``stored``) build sees it."""
    stored = partial.stored_mode() if stored is None else stored
    rows = []
    for name, sweep in steps.items():
        cov = partial.coverage(sweep.tasks(), store)
        available, hours = (cov.stored, cov.stored_cpu_hours) if stored else (cov.total, cov.total_cpu_hours)
        rows.append(StepCoverage(name, cov.total, available, cov.total_cpu_hours, hours, cov.stored))
    return ChapterCoverage(chapter, profile, run or profile, stored, tuple(rows))


def report(chapter: str, steps: Mapping[str, Any], profile: str | None = None, store=None) -> ChapterCoverage:
    """Name the chapter's steps, measure and write their coverage beside the claims file, and return it."""
    run = context.current()
    profile = profile or run.profile or "paper"
    partial.name_steps(steps)
    cov = measure(chapter, steps, profile, run.run, store=store)
    _CURRENT[chapter] = cov
    from pml.engine.store import _atomic_write

    _atomic_write(paths.output_dir("claims", profile) / FOLDER / f"{chapter}.json",
                  json.dumps(cov.to_dict(), indent=2).encode())
    return cov


def current(chapter: str) -> ChapterCoverage | None:
    """The coverage :func:`report` measured for ``chapter`` in this process, or None."""
    return _CURRENT.get(chapter)


def missing_hours(chapter: str, step_names: Iterable[str] | None) -> float | None:
    """CPU-hours missing from these steps of ``chapter`` in this stored build (None: nothing is missing, or the
    chapter recorded no coverage; ``step_names`` None or unknown: every step of the chapter counts)."""
    cov = _CURRENT.get(chapter)
    if cov is None or not cov.stored_mode:
        return None
    names = list(step_names or [])
    chosen = [s for s in cov.steps if s.step in names] if names and all(cov.step(n) for n in names) else cov.steps
    if all(s.complete for s in chosen):
        return None
    return sum(s.missing_cpu_hours for s in chosen)


def read(run: str) -> list[ChapterCoverage]:
    """Every chapter's coverage file of a run (``_build/claims/<run>/coverage/``), in chapter order."""
    folder = paths.claims_dir(run) / FOLDER
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            out.append(ChapterCoverage.from_dict(json.loads(path.read_text())))
        except (ValueError, KeyError, TypeError):
            continue  # a file that is not ours (or from an older format) is left out, never trusted
    return out


def table(profile: str, run: str | None = None):
    """The coverage of every chapter of a run as a :class:`pml.experiments.tables.Table`, per step and chapter."""
    from pml.experiments.tables import Table

    rows = []
    for cov in read(run or profile):
        mode = "stored" if cov.stored_mode else "computed"
        for s in cov.steps:
            rows.append((cov.chapter, s.step, mode, f"{s.available} / {s.tasks}",
                         f"{_h(s.available_cpu_hours)} / {_h(s.cpu_hours)}", "yes" if s.complete else "no"))
        rows.append((cov.chapter, "(all steps)", mode, f"{cov.available} / {cov.tasks}",
                     f"{_h(cov.available_cpu_hours)} / {_h(cov.cpu_hours)}", "yes" if cov.complete else "no"))
    return Table(("chapter", "step", "build", "tasks used / total", "CPU-hours used / total", "complete"), rows,
                 css_class="pml-coverage")


def written(profile: str, run: str | None = None) -> Path:
    """The folder of a run's coverage files."""
    return paths.claims_dir(run or profile) / FOLDER
