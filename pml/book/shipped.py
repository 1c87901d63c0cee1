"""The paper-profile results shipped in ``results/``: what they hold against this checkout, and the sample of them that
CI recomputes on every run.

An entry is *current* when its key is one of the profile's task keys here and *stale* otherwise (never used, listed by
``pml results status``). ``pml results verify --shipped`` recomputes cheap current entries, one per step, steps in a
random order seeded by the commit, until a time budget is spent."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pml import paths
from pml.engine import archive, provenance
from pml.engine.store import Store
from pml.engine.tasks import Task, graph

PROFILE = "paper"  # the profile whose results are shipped
PER_TASK_CAP_S = 60.0  # CI recomputes only tasks that took at most this long where they were computed


def shipped_dir() -> Path:
    """The repository's ``results/`` folder."""
    return paths.repo_root() / "results"


def archives(folder: Path | None = None) -> list[Path]:
    """The shipped archives, by name."""
    return sorted((folder or shipped_dir()).glob("*.tar.gz"))


def profile_tasks(profile: str = PROFILE) -> dict[str, tuple[Task, list[str]]]:
    """Every task of the profile's chapter steps (inputs included): key -> (task, the ``chapter/step`` names)."""
    from pml.book import params

    found: dict[str, tuple[Task, list[str]]] = {}
    for stem in params.chapters():
        if not params.has_steps(stem):
            continue
        for name, sweep in params.chapter_steps(stem, profile).items():
            for task in graph(sweep.tasks()):
                found.setdefault(task.key(), (task, []))[1].append(f"{stem}/{name}")
    return found


@dataclass(frozen=True)
class ShippedEntry:
    """One entry of a shipped archive, seen from this checkout."""

    archive: Path
    entry: dict  # the manifest's entry
    current: bool  # its key is one of the profile's tasks here

    @property
    def steps(self) -> list[str]:
        return list(self.entry.get("steps") or ["?"])

    @property
    def seconds(self) -> float:
        """What it took where it was computed (the archive records it)."""
        value = self.entry.get("seconds")
        return float(value) if isinstance(value, (int, float)) else float("inf")


def entries(folder: Path | None = None, profile: str = PROFILE,
            tasks: dict[str, tuple[Task, list[str]]] | None = None) -> list[ShippedEntry]:
    """Every entry of every shipped archive (manifests only: the files are checked at unpack and verify)."""
    tasks = profile_tasks(profile) if tasks is None else tasks
    return [ShippedEntry(path, entry, entry["key"] in tasks)
            for path in archives(folder) for entry in archive.read_manifest(path)["entries"]]


@dataclass(frozen=True)
class StepStatus:
    """One chapter step: its tasks here, how many the archives hold (current), verified here, and what is missing."""

    step: str
    tasks: int
    shipped: int
    verified: int
    missing_cpu_hours: float


def status(folder: Path | None = None, profile: str = PROFILE, store: Store | None = None
           ) -> tuple[list[StepStatus], list[ShippedEntry]]:
    """Per step of the profile: tasks, shipped, verified here, CPU-hours missing; and the stale entries."""
    store = store or Store()
    tasks = profile_tasks(profile)
    shipped = entries(folder, profile, tasks)
    held = {e.entry["key"] for e in shipped if e.current}
    rows: dict[str, list] = {}
    for key, (task, steps) in tasks.items():
        verified = key in held and provenance.provenance(store, task) == "verified here"
        for step in steps:
            row = rows.setdefault(step, [0, 0, 0, 0.0])
            row[0] += 1
            row[1] += key in held
            row[2] += verified
            row[3] += 0.0 if key in held else task.cost() / 3600
    return ([StepStatus(step, *row) for step, row in rows.items()],
            [e for e in shipped if not e.current])


def commit_seed() -> int:
    """A seed from the checkout's commit (0 outside a git checkout): the sample changes with every commit."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.repo_root(), capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        return int(head[:12], 16)
    except (OSError, subprocess.SubprocessError, ValueError):
        return 0


def choose_sample(shipped: list[ShippedEntry], seed: int, time_limit: float,
                  per_task_cap: float = PER_TASK_CAP_S) -> list[ShippedEntry]:
    """One current entry per step (a random one among those that took at most ``per_task_cap`` seconds), the
    steps in a random order, while their recorded times fit in ``time_limit``."""
    rng = random.Random(seed)
    by_step: dict[str, list[ShippedEntry]] = {}
    for e in shipped:
        if e.current and e.seconds <= per_task_cap:
            by_step.setdefault(e.steps[0], []).append(e)
    order = sorted(by_step)
    rng.shuffle(order)
    chosen, left = [], time_limit
    for step in order:
        pick = rng.choice(by_step[step])
        if pick.seconds <= left:
            chosen.append(pick)
            left -= pick.seconds
    return chosen


def verify_sample(folder: Path | None = None, *, seed: int | None = None, time_limit: float = 300.0,
                  profile: str = PROFILE, log: Callable[[str], None] = print,
                  store: Store | None = None) -> list[archive.Verdict]:
    """Recompute :func:`choose_sample`'s entries and compare them with the archives; stale entries are reported."""
    import time

    seed = commit_seed() if seed is None else seed
    shipped = entries(folder, profile)
    stale = [e for e in shipped if not e.current]
    chosen = choose_sample(shipped, seed, time_limit)
    log(f"{len(shipped)} shipped entries in {len(archives(folder))} archives, {len(stale)} stale (not used, not "
        f"recomputed); recomputing {len(chosen)} (one per step, seed {seed}, within {time_limit:g} s)")
    verdicts: list[archive.Verdict] = []
    start = time.perf_counter()
    for path in dict.fromkeys(e.archive for e in chosen):
        keys = [e.entry["key"] for e in chosen if e.archive == path]
        left = time_limit - (time.perf_counter() - start)
        log(f"{path.name}:")
        verdicts += archive.verify(path, keys=keys, time_limit=max(left, 0.0), log=log, store=store)
    return verdicts


def archive_table(folder: Path | None = None) -> str:
    """The Markdown table of the shipped archives in ``results/README.md``."""
    lines = ["| archive | steps | tasks | CPU-hours | size | created | pml commit | machine |",
             "|---|---|---|---|---|---|---|---|"]
    for path in archives(folder):
        manifest = archive.read_manifest(path)
        found = manifest["entries"]
        steps = sorted({s for e in found for s in e.get("steps") or []})
        hours = sum(float(e["seconds"]) for e in found if isinstance(e.get("seconds"), (int, float))) / 3600
        lines.append(f"| `{path.name}` | {', '.join(steps)} | {len(found)} | {hours:.3g} | "
                     f"{path.stat().st_size / 1e6:.2f} MB | {manifest.get('created', '?')} | "
                     f"{str(manifest.get('pml_commit', '?'))[:12]} | {manifest.get('machine', '?')} |")
    return "\n".join(lines)
