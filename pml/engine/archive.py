"""Portable results archives: the task results of a profile in one file, checked on the way in.

``pack`` writes a ``.tar.gz`` whose first member, ``manifest.json``, lists every entry (task type, class, key,
config, the chapter steps that use it, the SHA-256 of each of its two files) with the ``pml`` version and the
numerical library versions; the entries follow as ``entries/<task type>/<key>.npz`` and ``.json``, exactly the
store's files. ``unpack`` reads the archive twice: first it checks everything (every file against the manifest,
every entry against its own hash, the library versions against this environment) and refuses the whole archive,
naming the entry, if anything is truncated, tampered with or from other library versions; then it installs the
entries, never replacing an intact entry that holds a different result. Since keys are the same wherever a task
runs, a book built afterwards computes nothing the archive holds. ``verify`` recomputes a random sample of the
archive's tasks here and compares the numbers.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import io
import json
import random
import re
import tarfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from pml.engine.closure import closure_hash
from pml.engine.store import (
    Store,
    _atomic_write,
    first_difference,
    parse_entry,
    same_data,
)
from pml.engine.tasks import Task, library_versions, load_task

FORMAT = "pml-results/1"
MANIFEST = "manifest.json"
GPU_RTOL = 1e-6  # GPU kernels do not promise the same rounding from run to run or card to card
GPU_ATOL = 1e-12  # for values that are zero up to rounding
_TYPE = re.compile(r"^[A-Za-z_][\w.]*$")
_KEY = re.compile(r"^[0-9a-f]{64}$")


class ArchiveError(RuntimeError):
    """An archive that cannot be used; the message names the entry at fault."""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _member(task_type: str, key: str, suffix: str) -> str:
    return f"entries/{task_type}/{key}{suffix}"


# ---------------------------------------------------------------------------------------------------------------
# pack
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class PackReport:
    path: Path
    entries: int
    missing: list[str]  # labels of the profile's tasks not in the store (not packed)
    size: int


def pack(tasks_by_step: dict[str, list[Task]], out: Path | str, *, profile: str, store: Store | None = None
         ) -> PackReport:
    """Write the stored results of ``tasks_by_step`` (``"chapter/step" -> tasks``, inputs included) to ``out``."""
    import pml

    store = store or Store()
    out = Path(out)
    steps_of: dict[str, list[str]] = {}
    tasks: dict[str, Task] = {}
    for step, step_tasks in tasks_by_step.items():
        for task in step_tasks:
            tasks.setdefault(task.key(), task)
            steps_of.setdefault(task.key(), []).append(step)
    entries, files, missing = [], [], []
    for key, task in tasks.items():
        npz, meta = store.paths(task)
        try:
            npz_bytes, json_bytes = npz.read_bytes(), meta.read_bytes()
            parsed = parse_entry(npz_bytes, json_bytes, want_result=False, key=key)
        except Exception:
            missing.append(task.label())
            continue
        names = {_member(task.task_type(), key, ".npz"): npz_bytes, _member(task.task_type(), key, ".json"): json_bytes}
        entries.append({
            "task": task.task_type(), "class": parsed.get("class"), "key": key, "config": parsed["config"],
            "fields": parsed.get("fields"), "device": parsed.get("device"), "seconds": parsed.get("seconds"),
            "steps": steps_of[key], "files": {name: _sha(data) for name, data in names.items()},
        })
        files.extend(names.items())
    manifest = {"format": FORMAT, "pml_version": pml.__version__, "versions": library_versions(),
                "profile": profile, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "entries": entries}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        for name, data in [(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode()), *files]:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(out, buffer.getvalue())
    return PackReport(out, len(entries), missing, out.stat().st_size)


# ---------------------------------------------------------------------------------------------------------------
# reading and checking
# ---------------------------------------------------------------------------------------------------------------


def _describe(entry: dict) -> str:
    fields = ", ".join(f"{k}={v}" for k, v in (entry.get("config") or {}).items())
    return f"entry {entry.get('task')} {str(entry.get('key'))[:12]} ({fields})"


def _members(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every member, in order; ArchiveError when the archive cannot be read to its end."""
    if not path.is_file():
        raise ArchiveError(f"{path}: no such file")
    last = "the start"
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar:
                if not member.isfile():
                    raise ArchiveError(f"{path}: member {member.name!r} is not a plain file; refusing the archive")
                data = tar.extractfile(member).read()
                if len(data) != member.size:
                    raise EOFError(f"member {member.name} cut short")
                last = member.name
                yield member.name, data
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise ArchiveError(f"{path}: truncated or corrupt after {last} ({type(exc).__name__}: {exc}); "
                           "refusing the archive") from None


def _check_manifest(path: Path, name: str, data: bytes) -> dict:
    if name != MANIFEST:
        raise ArchiveError(f"{path}: not a pml results archive (its first member is {name!r}, not {MANIFEST})")
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise ArchiveError(f"{path}: unreadable {MANIFEST}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError(f"{path}: archive format {manifest.get('format')!r}, this pml reads {FORMAT!r}")
    here = library_versions()
    theirs = manifest.get("versions") or {}
    diff = [f"{lib} {theirs.get(lib, 'absent')} (here {v})" for lib, v in here.items() if theirs.get(lib) != v]
    if diff:
        first = (manifest.get("entries") or [{}])[0]
        raise ArchiveError(f"{path}: computed with {', '.join(diff)} (every entry, e.g. {_describe(first)}); results "
                           "from other library versions are not used here (they are part of every key): install "
                           "the archive's versions (constraints.txt) or recompute; refusing the archive")
    for entry in manifest.get("entries", []):
        task_type, key = str(entry.get("task")), str(entry.get("key"))
        expected = {_member(task_type, key, ".npz"), _member(task_type, key, ".json")}
        if not (_TYPE.match(task_type) and _KEY.match(key)) or set(entry.get("files", {})) != expected:
            raise ArchiveError(f"{path}: malformed manifest at {_describe(entry)}; refusing the archive")
    return manifest


@dataclass
class _Checked:
    manifest: dict
    kept: dict[str, dict] = field(default_factory=dict)  # key -> parsed entry (with result) for wanted keys


def check(path: Path | str, want: Callable[[dict], bool] = lambda entry: False) -> _Checked:
    """Read the whole archive and check it; keep the decoded entries that ``want`` selects (by manifest entry)."""
    path = Path(path)
    members = _members(path)
    try:
        first = next(members)
    except StopIteration:
        raise ArchiveError(f"{path}: empty archive") from None
    manifest = _check_manifest(path, *first)
    owner = {name: entry for entry in manifest["entries"] for name in entry["files"]}
    seen: set[str] = set()
    checked = _Checked(manifest)
    pending: dict[str, dict[str, bytes]] = {}
    for name, data in members:
        entry = owner.get(name)
        if entry is None:
            raise ArchiveError(f"{path}: member {name!r} is not in the manifest (tampered); refusing the archive")
        if name in seen:
            raise ArchiveError(f"{path}: member {name!r} appears twice (tampered); refusing the archive")
        if _sha(data) != entry["files"][name]:
            raise ArchiveError(f"{path}: {_describe(entry)}: {name} does not match its SHA-256 in the manifest "
                               "(tampered or corrupt); refusing the archive")
        seen.add(name)
        parts = pending.setdefault(entry["key"], {})
        parts[name.rsplit(".", 1)[1]] = data
        if len(parts) == 2:
            del pending[entry["key"]]
            try:
                parsed = parse_entry(parts["npz"], parts["json"], key=entry["key"], want_result=want(entry))
            except Exception as exc:
                raise ArchiveError(f"{path}: {_describe(entry)} is not an intact result entry ({exc}); refusing "
                                   "the archive") from None
            if parsed.get("versions") != manifest["versions"]:
                raise ArchiveError(f"{path}: {_describe(entry)} was computed with {parsed.get('versions')}, not the "
                                   f"archive's {manifest['versions']}; refusing the archive")
            if want(entry):
                checked.kept[entry["key"]] = parsed
    absent = [entry for entry in manifest["entries"] if any(n not in seen for n in entry["files"])]
    if absent:
        raise ArchiveError(f"{path}: truncated: {_describe(absent[0])} is missing "
                           f"({len(absent)} of {len(manifest['entries'])} entries incomplete); refusing the archive")
    return checked


# ---------------------------------------------------------------------------------------------------------------
# unpack
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class UnpackReport:
    added: int = 0
    present: int = 0  # already stored with the same result
    replaced: int = 0  # stored but unreadable or corrupt: replaced by the archive's
    conflicts: list[str] = field(default_factory=list)  # stored with a different result: kept, archive's skipped
    stale: int = 0  # computed from other source of the modules the task imports: this code will not use them
    profile: str | None = None


def unpack(path: Path | str, store: Store | None = None) -> UnpackReport:
    """Check the archive (ArchiveError if anything is wrong), then install its entries into ``store``."""
    path = Path(path)
    store = store or Store()
    manifest = check(path).manifest
    by_name = {name: entry for entry in manifest["entries"] for name in entry["files"]}
    report = UnpackReport(profile=manifest.get("profile"))
    parts: dict[str, dict[str, bytes]] = {}
    for name, data in _members(path):
        if name == MANIFEST:
            continue
        entry = by_name[name]
        if _sha(data) != entry["files"][name]:  # the file changed since it was checked
            raise ArchiveError(f"{path}: {_describe(entry)}: {name} changed while unpacking; stopped")
        mine = parts.setdefault(entry["key"], {})
        mine[name.rsplit(".", 1)[1]] = data
        if len(mine) < 2:
            continue
        del parts[entry["key"]]
        theirs = parse_entry(mine["npz"], mine["json"], key=entry["key"])
        existing_files = [p.exists() for p in store.entry_paths(entry["task"], entry["key"])]
        existing = store.read_entry(entry["task"], entry["key"])
        if existing is not None:
            if same_data(existing["result"], theirs["result"]):
                report.present += 1
            else:
                report.conflicts.append(_describe(entry))
            continue
        store.write_entry(entry["task"], entry["key"], mine["npz"], mine["json"])
        if any(existing_files):
            report.replaced += 1
        else:
            report.added += 1
        module = str(entry.get("class") or "").partition(":")[0]
        if module and theirs.get("source") and _source(module) not in (None, theirs["source"]):
            report.stale += 1
    return report


def _source(module: str) -> str | None:
    try:
        return closure_hash(module)
    except Exception:
        return None


# ---------------------------------------------------------------------------------------------------------------
# verify
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Verdict:
    label: str
    verdict: str  # "identical", "within tolerance", "MISMATCH", "error", "skipped"
    detail: str = ""
    seconds: float = 0.0

    @property
    def bad(self) -> bool:
        return self.verdict in ("MISMATCH", "error")


def verify(path: Path | str, *, sample: int = 5, time_limit: float | None = None, seed: int = 0,
           log: Callable[[str], None] = print) -> list[Verdict]:
    """Recompute ``sample`` tasks of the archive chosen at random with ``seed``, cheapest first (by the cost
    model) while they fit in ``time_limit`` seconds, and compare with the archive: identical for tasks the archive
    computed on CPU, within ``GPU_RTOL`` for tasks it computed on a GPU; measured run times in the results
    (:func:`pml.engine.store.is_timing_key`) are not compared. Logs each task's config and verdict."""
    from pml.engine.executor import execute, normalize

    path = Path(path)
    manifest = check(path).manifest  # hashes and versions first: never recompute from a bad archive
    entries = manifest["entries"]
    chosen = random.Random(seed).sample(entries, min(sample, len(entries)))
    rebuilt: list[tuple[dict, Task | Exception]] = []
    for entry in chosen:
        try:
            rebuilt.append((entry, load_task(entry["class"], entry["fields"])))
        except Exception as exc:
            rebuilt.append((entry, exc))
    want = {e["key"] for e in chosen}
    want |= {d.key() for _, t in rebuilt if isinstance(t, Task) for d in t.inputs().values()}
    archived = check(path, want=lambda e: e["key"] in want).kept
    rebuilt.sort(key=lambda et: et[1].cost() if isinstance(et[1], Task) else 0.0)
    verdicts: list[Verdict] = []
    start = time.perf_counter()
    for entry, task in rebuilt:
        label = task.label() if isinstance(task, Task) else _describe(entry)
        verdict = _verify_one(entry, task, archived, start, time_limit, execute, normalize)
        verdict.label = label
        log(f"{verdict.verdict:<16} {label}" + (f"\n                 {verdict.detail}" if verdict.detail else ""))
        verdicts.append(verdict)
    return verdicts


def _verify_one(entry, task, archived, start, time_limit, execute, normalize) -> Verdict:
    if isinstance(task, Exception):
        return Verdict("", "error", f"cannot rebuild the task here: {type(task).__name__}: {task}")
    if task.key_fields() != entry["config"]:
        return Verdict("", "error", "the rebuilt task's config differs from the archive's")
    left = None if time_limit is None else time_limit - (time.perf_counter() - start)
    if left is not None and task.cost() > left:
        return Verdict("", "skipped", f"estimated {task.cost():.3g} s, {max(left, 0):.3g} s of --time-limit left")
    inputs = {}
    for name, dep in task.inputs().items():
        if dep.key() not in archived:
            return Verdict("", "error", f"input {name} ({dep.label()}) is not in the archive")
        inputs[name] = archived[dep.key()]["result"]
    on_gpu = str(entry.get("device", "cpu")).startswith("cuda")
    note = ""
    if task.gpu() and not _cuda():
        task = dataclasses.replace(task, device="cpu")
        note = "; no GPU here: recomputed on CPU"
    began = time.perf_counter()
    try:
        fresh = normalize(execute(task, **inputs).result)
    except Exception as exc:
        return Verdict("", "error", f"{type(exc).__name__}: {exc}", time.perf_counter() - began)
    seconds = time.perf_counter() - began
    stored = archived[entry["key"]]["result"]
    if on_gpu or task.gpu():
        diff = first_difference(fresh, stored, rtol=GPU_RTOL, atol=GPU_ATOL, skip_timings=True)
        ok = "within tolerance"
        note = f"GPU task: rtol {GPU_RTOL:g}, atol {GPU_ATOL:g}{note}"
    else:
        diff = first_difference(fresh, stored, skip_timings=True)
        ok = "identical"
    if diff:
        return Verdict("", "MISMATCH", f"recomputed vs archived at {diff}{'; ' + note if note else ''}", seconds)
    return Verdict("", ok, f"{seconds:.2f} s" + (f"; {note}" if note else ""), seconds)


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False

