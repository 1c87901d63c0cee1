"""Plans: how many tasks a set of steps holds, how many are stored, and what the rest costs by the cost model.

The steps come from the chapters (``pml.book.params.chapter_steps``: ``pml.experiments.<slug>.steps`` at a profile), so
``pml plan`` counts exactly the tasks a chapter asks for and ``pml compute`` submits them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

from pml.engine.store import Store
from pml.engine.tasks import Sweep, Task, graph

Steps = Mapping[str, Mapping[str, Sweep]]  # chapter -> step name -> sweep


def tasks_of(steps: Steps) -> list[Task]:
    """Every task of every step (inputs included), each once, inputs first."""
    return graph([t for chapter in steps.values() for sweep in chapter.values() for t in sweep.tasks()])


@dataclass(frozen=True)
class PlanRow:
    """One step of one chapter: its tasks (inputs included), how many are stored, estimated hours."""

    chapter: str
    step: str
    tasks: int
    cached: int
    cpu_hours: float  # every task's cost(), in hours of one core of this machine
    gpu_hours: float  # the part of cpu_hours whose tasks run on GPU workers (device="cuda")
    remaining_cpu_hours: float  # the tasks not stored yet

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan(steps: Steps, store: Store | None = None) -> list[PlanRow]:
    """One row per chapter and step."""
    store = store or Store()
    rows = []
    stored: dict[str, bool] = {}
    for chapter, chapter_steps in steps.items():
        for name, sweep in chapter_steps.items():
            tasks = graph(sweep.tasks())
            for t in tasks:
                if t.key() not in stored:
                    stored[t.key()] = store.contains(t)
            cached = [stored[t.key()] for t in tasks]
            costs = [t.cost() for t in tasks]
            rows.append(PlanRow(
                chapter=chapter, step=name, tasks=len(tasks), cached=sum(cached),
                cpu_hours=sum(costs) / 3600,
                gpu_hours=sum(c for c, t in zip(costs, tasks) if t.gpu()) / 3600,
                remaining_cpu_hours=sum(c for c, s in zip(costs, cached) if not s) / 3600,
            ))
    return rows


def _hours(h: float) -> str:
    return "0" if h <= 0 else f"{h:.3g}" if h >= 0.01 else f"{h * 3600:.2g} s"


def _duration(h: float) -> str:
    return f"{h:.3g} CPU-hours" if h >= 1 else f"{h * 60:.3g} CPU-minutes" if h >= 1 / 60 else f"{h * 3600:.2g} CPU-s"


def format_plan(rows: Sequence[PlanRow], profile: str, without: Sequence[str] = ()) -> str:
    """A text table with per-chapter totals and the overall total."""
    head = ("chapter", "step", "tasks", "cached", "CPU-h", "GPU-h", "CPU-h to do")
    table = []
    for chapter in dict.fromkeys(r.chapter for r in rows):
        mine = [r for r in rows if r.chapter == chapter]
        for r in mine:
            table.append((r.chapter, r.step, str(r.tasks), str(r.cached), _hours(r.cpu_hours), _hours(r.gpu_hours),
                          _hours(r.remaining_cpu_hours)))
        if len(mine) > 1:
            table.append((chapter, "(all steps)", str(sum(r.tasks for r in mine)), str(sum(r.cached for r in mine)),
                          _hours(sum(r.cpu_hours for r in mine)), _hours(sum(r.gpu_hours for r in mine)),
                          _hours(sum(r.remaining_cpu_hours for r in mine))))
    widths = [max(len(c) for c in col) for col in zip(head, *table)]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in [head, *table]]
    lines.append(f"\nprofile {profile}: {sum(r.tasks for r in rows)} tasks, estimated "
                 f"{_duration(sum(r.cpu_hours for r in rows))} of one core of this machine, "
                 f"{_duration(sum(r.remaining_cpu_hours for r in rows))} of it not computed yet "
                 "(a task shared by two steps counts in both)")
    if without:
        lines.append(f"chapters without steps (their notebooks compute as they run): {', '.join(without)}")
    return "\n".join(lines)
