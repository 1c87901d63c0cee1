"""Stored mode: build from what the results store holds and compute nothing.

With ``--stored`` (``$PML_STORED``) :func:`pml.engine.run` runs no task: a sweep whose tasks are all stored is
assembled; else one with ``assemble_partial(results)`` (None for the missing) assembles what is there; any other gives a
:class:`NotComputed` (the step, its stored count, the cost of the rest). Chapters, figures and summaries recognise it
(:func:`is_missing`), draw what is there and leave the claims that depend on it unjudged."""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable, Mapping, Sequence

from pml.engine.store import Store
from pml.engine.tasks import Sweep, Task, graph

STORED_ENV = "PML_STORED"  # "1": engine.run computes nothing (set by `pml run/book --stored` for the kernel)


def stored_mode() -> bool:
    """Whether this process builds from the store only (``$PML_STORED`` is set to a true value)."""
    return os.environ.get(STORED_ENV, "").strip().lower() not in ("", "0", "false", "no")


class NotComputedError(AttributeError):
    """A result that was not computed was used as if it were (an attribute of a :class:`NotComputed`)."""


def _hours(h: float) -> str:
    """CPU-hours for a sentence: ``1,700``, ``3.5``, ``0.02``."""
    if h >= 100:
        return f"{h:,.0f}"
    return f"{h:.2g}" if h >= 0.01 or h == 0 else f"{h:.1g}"


def hours_text(h: float) -> str:
    """``"1,700 CPU-hours"`` (singular below 1.5, seconds-scale values as ``"< 0.01 CPU-hours"``)."""
    if 0 < h < 0.01:
        return "< 0.01 CPU-hours"
    text = _hours(h)
    return f"{text} CPU-hour{'' if text == '1' else 's'}"


NOT_COMPUTED = "(not computed"  # how a NotComputed's repr starts: a glued one is recognised by it


@dataclasses.dataclass(frozen=True, repr=False)
class NotComputed:
    """The result of a step whose tasks are not all stored, in stored mode."""

    step: str
    stored: int
    total: int
    missing_cpu_hours: float
    total_cpu_hours: float
    sweep: Any = dataclasses.field(default=None, compare=False, repr=False)

    def __getattr__(self, name: str):
        # Only reached for names that are not fields: the result's own attributes (``nets.rmse``), which a
        # result that was not computed does not have; a clear error instead of a bare AttributeError.
        if name.startswith("__") or name.startswith("_repr_") or name.startswith("_ipython"):
            raise AttributeError(name)
        raise NotComputedError(f"{name!r} of a result that was not computed: {self.text}")

    @property
    def text(self) -> str:
        """One line: ``step fig5_networks not computed (12 of 144 tasks stored; 1,700 CPU-hours missing)``."""
        return (f"step {self.step} not computed ({self.stored} of {self.total} tasks stored; "
                f"{hours_text(self.missing_cpu_hours)} missing)")

    @property
    def short(self) -> str:
        """``12 of 144 tasks stored, 1,700 CPU-hours missing`` (for a figure's note)."""
        return f"{self.stored} of {self.total} tasks stored, {hours_text(self.missing_cpu_hours)} missing"

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:  # also the text/plain of a glued one, which the book runner recognises
        return f"{NOT_COMPUTED}: {self.text})"

    def __format__(self, spec: str) -> str:  # a glued number of a missing step reads "not computed"
        return "(not computed)"

    def _repr_html_(self) -> str:
        import html

        return f'<p class="pml-not-computed"><em>{html.escape(self.text)}</em></p>'


def is_missing(value: Any) -> bool:
    """Whether ``value`` is a :class:`NotComputed` (a step, or a summary of one, that is not in the store)."""
    return isinstance(value, NotComputed)


def combine(*values: Any) -> NotComputed | None:
    """The :class:`NotComputed` among ``values`` merged into one, or None when none is missing."""
    missing, seen = [], set()
    for value in values:
        if isinstance(value, NotComputed) and value.step not in seen:
            seen.add(value.step)
            missing.append(value)
    if not missing:
        return None
    if len(missing) == 1:
        return missing[0]
    return NotComputed(step=", ".join(m.step for m in missing), stored=sum(m.stored for m in missing),
                       total=sum(m.total for m in missing),
                       missing_cpu_hours=sum(m.missing_cpu_hours for m in missing),
                       total_cpu_hours=sum(m.total_cpu_hours for m in missing))


def missing_part(value: Any) -> NotComputed | None:
    """What ``value`` lacks: itself if it is a :class:`NotComputed`, the ``not_computed`` attribute of a partial
    result (a sweep's ``assemble_partial`` sets it, :func:`shortfall`), else None."""
    if isinstance(value, NotComputed):
        return value
    found = getattr(value, "not_computed", None)
    return found if isinstance(found, NotComputed) else None


def passes_missing(func: Callable) -> Callable:
    """Decorator: given a :class:`NotComputed` argument, return it (merged) instead of calling ``func``."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        missing = combine(*args, *kwargs.values())
        return missing if missing is not None else func(*args, **kwargs)

    return wrapper


def needs_complete(func: Callable) -> Callable:
    """Decorator for numbers that hold only for complete results: given a NotComputed or a partial result, return what
    is missing instead of calling ``func`` (figures draw partial results; numbers of a truncated curve are not
    reported)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        missing = combine(*(missing_part(a) for a in (*args, *kwargs.values())))
        return missing if missing is not None else func(*args, **kwargs)

    return wrapper


def shortfall(sweep: Sweep, results: Sequence[Any]) -> NotComputed | None:
    """For a sweep's ``assemble_partial``: what its missing tasks (None in ``results``) are, as a
    :class:`NotComputed` of the step (tasks of the sweep, not their inputs); None when nothing is missing."""
    tasks = sweep.tasks()
    absent = [t for t, r in zip(tasks, results) if r is None]
    if not absent:
        return None
    costs = [t.cost() / 3600 for t in tasks]
    return NotComputed(step=step_name(sweep), stored=len(tasks) - len(absent), total=len(tasks),
                       missing_cpu_hours=sum(t.cost() for t in absent) / 3600, total_cpu_hours=sum(costs),
                       sweep=sweep)


# ---------------------------------------------------------------------------------------------------------------------
# Step names
# ---------------------------------------------------------------------------------------------------------------------

_NAMES: list[tuple[Sweep, str]] = []


def name_steps(steps: Mapping[str, Sweep]) -> None:
    """Remember the step name of each sweep (a chapter's ``steps``), for the :class:`NotComputed` it may become."""
    for name, sweep in steps.items():
        if not any(s is sweep or (type(s) is type(sweep) and s == sweep) for s, _ in _NAMES):
            _NAMES.append((sweep, name))


def step_name(sweep: Sweep) -> str:
    """The name :func:`name_steps` gave ``sweep`` (identity or an equal config), else its type's name."""
    for s, name in _NAMES:
        if s is sweep or (type(s) is type(sweep) and s == sweep):
            return name
    return type(sweep).__name__


# ---------------------------------------------------------------------------------------------------------------------
# Reading a sweep from the store
# ---------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Coverage:
    """How much of a set of tasks (inputs included) the store holds, by count and by cost-model CPU-hours."""

    stored: int
    total: int
    stored_cpu_hours: float
    total_cpu_hours: float

    @property
    def missing_cpu_hours(self) -> float:
        return self.total_cpu_hours - self.stored_cpu_hours

    @property
    def complete(self) -> bool:
        return self.stored == self.total


def coverage(tasks: Sequence[Task], store: Store | None = None) -> Coverage:
    """:class:`Coverage` of ``tasks`` and their inputs in ``store``."""
    store = store or Store()
    order = graph(tasks)
    held = [store.contains(t) for t in order]
    costs = [t.cost() / 3600 for t in order]
    return Coverage(sum(held), len(order), sum(c for c, h in zip(costs, held) if h), sum(costs))


def from_store(sweep: Sweep, store: Store | None = None) -> Any:
    """The sweep's result from the store alone: assembled, partially assembled, or a :class:`NotComputed`."""
    store = store or Store()
    tasks = sweep.tasks()
    results = [store.get(t) for t in tasks]
    if all(r is not None for r in results):
        return sweep.assemble(results)
    assemble_partial = getattr(sweep, "assemble_partial", None)
    if callable(assemble_partial):
        result = assemble_partial(results)
        if result is not None:  # None: too little is stored to assemble anything
            return result
    cov = coverage(tasks, store)
    return NotComputed(step=step_name(sweep), stored=cov.stored, total=cov.total,
                       missing_cpu_hours=cov.missing_cpu_hours, total_cpu_hours=cov.total_cpu_hours, sweep=sweep)
