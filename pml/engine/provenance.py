"""Where each stored result came from: computed here, taken from a results archive, or taken from one and then matched
by a recomputation here.

An entry installed from an archive gets an origin record beside it, ``<root>/<task type>/<key>.origin`` (the archive's
name and hash, when it was unpacked, what its manifest says about itself, the signer when checked), bound to the SHA-256
of the entry's ``.json``: an entry recomputed here later is no longer "from the archive", and the entry, its key and the
store's format do not change. :func:`mark_verified` and :func:`mark_mismatch` record the latest recomputation's verdict.
:func:`note_step` keeps the provenance of every task a step used, for the chapter's claims (:mod:`pml.book.claims`). A
malformed record is never trusted."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any, Iterable, Mapping

from pml import paths
from pml.engine.store import Store, _atomic_write
from pml.engine.tasks import Task, graph

FORMAT = "pml-origin/1"
SUFFIX = ".origin"
COMPUTED = "computed here"
VERIFIED = "verified here"
UNVERIFIED = "unverified"
MAX_RECORD_BYTES = 65536  # a record is a few hundred bytes; a larger file is not one of ours
_TEXT_LIMIT = 200  # characters kept of each text field an archive's manifest gives
_TYPE = re.compile(r"[A-Za-z_][\w.]*\Z")
_KEY = re.compile(r"[0-9a-f]{64}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# ---------------------------------------------------------------------------------------------------------------
# what pack writes about the machine and the code
# ---------------------------------------------------------------------------------------------------------------


def pml_commit() -> str | None:
    """The commit of this checkout (``git rev-parse HEAD``), or None outside a git checkout."""
    root = paths.repo_root()
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if head.returncode != 0 or not re.fullmatch(r"[0-9a-f]{40}", head.stdout.strip()):
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def machine_line() -> str:
    """One line about this machine for a results archive's manifest: CPU model, cores, operating system."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cpu = cpu or platform.processor() or platform.machine() or "unknown CPU"
    cores = os.cpu_count() or 0
    return f"{cpu}, {cores} cores, {platform.system()} {platform.release()} ({platform.machine()})"


def file_sha256(path: Path | str) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _text(value: Any) -> str | None:
    """A manifest's value as a short one-line string (None unless it is a string or a number)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    text = _CONTROL.sub(" ", str(value)).strip()
    return text[:_TEXT_LIMIT] + ("..." if len(text) > _TEXT_LIMIT else "") if text else None


# ---------------------------------------------------------------------------------------------------------------
# origin records
# ---------------------------------------------------------------------------------------------------------------


def archive_origin(path: Path | str, sha256: str, manifest: Mapping[str, Any], *, signer: str | None = None
                   ) -> dict[str, Any]:
    """The origin of the entries of one archive, for :func:`record_origin` (one dict, shared by its entries)."""
    if not (isinstance(sha256, str) and _KEY.match(sha256)):
        raise ValueError(f"archive SHA-256 must be 64 lowercase hex digits, got {sha256!r}")
    origin = {"archive": _text(Path(path).name) or "?", "sha256": sha256, "unpacked": _now()}
    for field in ("created", "pml_version", "pml_commit", "profile", "machine"):
        value = _text(manifest.get(field)) if isinstance(manifest, Mapping) else None
        if value is not None:
            origin[field] = value
    if signer is not None:
        origin["signer"] = _text(signer)
    return origin


def record_path(store: Store, task_type: str, key: str) -> Path:
    """Where the origin record of an entry lives: beside its ``.npz`` and ``.json``."""
    if not (isinstance(task_type, str) and _TYPE.match(task_type) and isinstance(key, str) and _KEY.match(key)):
        raise ValueError(f"not a store entry name: task type {task_type!r}, key {key!r}")
    return store.root / task_type / (key + SUFFIX)


def _entry_sha(store: Store, task_type: str, key: str) -> str | None:
    try:
        return file_sha256(store.entry_paths(task_type, key)[1])
    except OSError:  # no entry (or a folder where it should be): nothing to bind a record to
        return None


def _read_record(path: Path) -> dict | None:
    """The record at ``path``; None when there is none; ``{"unreadable": True}`` when a file is there but is not one."""
    try:
        if not path.is_file():
            return None if not path.exists() else {"unreadable": True}
        if path.stat().st_size > MAX_RECORD_BYTES:
            return {"unreadable": True}
        record = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return {"unreadable": True}
    if not (isinstance(record, dict) and record.get("format") == FORMAT and isinstance(record.get("entry_sha256"), str)):
        return {"unreadable": True}
    return record


def _write_record(path: Path, record: dict) -> None:
    _atomic_write(path, json.dumps(record, indent=1, sort_keys=True).encode())


def record_origin(store: Store, task_type: str, key: str, origin: Mapping[str, Any], *,
                  entry_sha256: str | None = None) -> bool:
    """Record that the entry stored under ``task_type``/``key`` came from the archive ``origin`` describes."""
    path = record_path(store, task_type, key)
    entry_sha = _entry_sha(store, task_type, key)
    if entry_sha256 is not None and entry_sha != entry_sha256:
        return False
    if entry_sha is None:
        raise ValueError(f"no entry {task_type}/{key} in {store.root} to record an origin for")
    record = {"format": FORMAT, "task": task_type, "key": key, "entry_sha256": entry_sha, "origin": dict(origin)}
    old = _read_record(path)
    if old and old.get("entry_sha256") == entry_sha and isinstance(old.get("check"), dict):
        record["check"] = old["check"]
    _write_record(path, record)
    return True


def _mark(store, task_type, key, verdict, detail, entry_sha256) -> bool:
    path = record_path(store, task_type, key)
    entry_sha = _entry_sha(store, task_type, key)
    if entry_sha is None or (entry_sha256 is not None and entry_sha256 != entry_sha):
        return False  # the store does not hold the bytes that were checked
    record = _read_record(path)
    if not record or record.get("unreadable") or record.get("entry_sha256") != entry_sha:
        record = {"format": FORMAT, "task": task_type, "key": key, "entry_sha256": entry_sha}
    record["check"] = {"verdict": verdict, "date": _now(), "pml_commit": pml_commit(), "detail": _text(detail) or ""}
    _write_record(path, record)
    return True


def mark_verified(store: Store, task_type: str, key: str, verdict_detail: str, *,
                  entry_sha256: str | None = None) -> bool:
    """Record that a recomputation here matched the stored entry (``pml results verify``)."""
    return _mark(store, task_type, key, "matched", verdict_detail, entry_sha256)


def mark_mismatch(store: Store, task_type: str, key: str, verdict_detail: str, *,
                  entry_sha256: str | None = None) -> bool:
    """Record that a recomputation here differed from the stored entry; parameters as :func:`mark_verified`."""
    return _mark(store, task_type, key, "differed", verdict_detail, entry_sha256)


def origin_record(store: Store, task_type: str, key: str) -> dict | None:
    """The origin record bound to the entry the store now holds, None if there is none (or it is stale)."""
    record = _read_record(record_path(store, task_type, key))
    if record is None:
        return None
    if record.get("unreadable"):
        return record
    return record if record["entry_sha256"] == _entry_sha(store, task_type, key) else None


# ---------------------------------------------------------------------------------------------------------------
# provenance of tasks
# ---------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Source:
    """Where one stored result came from: ``kind`` is :data:`COMPUTED`, :data:`VERIFIED` or :data:`UNVERIFIED`;
    ``archive`` names the archive (None when computed here); ``differed``: a recomputation here did not match."""

    kind: str
    archive: str | None = None
    differed: bool = False

    def label(self) -> str:
        if self.kind == COMPUTED:
            return COMPUTED
        if self.kind == VERIFIED:
            return VERIFIED
        return f"archive {self.archive} (unverified" + ("; a recomputation here differed)" if self.differed else ")")


def source(store: Store, task_type: str, key: str) -> Source:
    """The :class:`Source` of the entry the store holds under these names (computed here when it has no record)."""
    record = origin_record(store, task_type, key)
    if record is None:
        return Source(COMPUTED)
    if record.get("unreadable"):  # a file is there but it is not ours: trust nothing
        return Source(UNVERIFIED, "? (unreadable origin record)")
    origin = record.get("origin")
    if not isinstance(origin, dict):
        return Source(COMPUTED)  # a check without an origin: an entry of ours that verify looked at
    name = _text(origin.get("archive")) or "?"
    check = record.get("check") if isinstance(record.get("check"), dict) else {}
    if check.get("verdict") == "matched":
        return Source(VERIFIED, name)
    return Source(UNVERIFIED, name, differed=check.get("verdict") == "differed")


def provenance(store: Store, task: Task) -> str:
    """Where the stored result of ``task`` came from, in words."""
    return source(store, task.task_type(), task.key()).label()


@dataclasses.dataclass
class Summary:
    """Provenance counts of a set of tasks: computed here, verified here, unverified from an archive (and mismatched),
    and per archive how many entries were used."""

    tasks: int = 0
    computed: int = 0
    verified: int = 0
    unverified: int = 0
    mismatched: int = 0
    archives: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)

    def add(self, src: Source) -> None:
        self.tasks += 1
        if src.kind == COMPUTED:
            self.computed += 1
            return
        counts = self.archives.setdefault(src.archive or "?", {"verified": 0, "unverified": 0})
        if src.kind == VERIFIED:
            self.verified += 1
            counts["verified"] += 1
        else:
            self.unverified += 1
            self.mismatched += int(src.differed)
            counts["unverified"] += 1

    def kind(self) -> str:
        """The weakest provenance among the tasks (:data:`UNVERIFIED`, then :data:`VERIFIED`, then :data:`COMPUTED`)."""
        return UNVERIFIED if self.unverified else VERIFIED if self.verified else COMPUTED

    def label(self) -> str:
        """One phrase: ``computed here``, ``verified here (...)`` or ``from archive X (unverified: ...)``."""
        if self.unverified:
            names = ", ".join(sorted(n for n, c in self.archives.items() if c["unverified"]))
            differed = f", {self.mismatched} differed from a recomputation here" if self.mismatched else ""
            rest = "".join(f"; {n} {what}" for n, what in ((self.verified, "verified here"),
                                                           (self.computed, "computed here")) if n)
            return f"from archive {names} (unverified: {self.unverified} of {self.tasks} tasks{differed}{rest})"
        if self.verified:
            names = ", ".join(sorted(self.archives))
            here = f", {self.computed} computed here" if self.computed else ""
            return f"verified here ({self.verified} of {self.tasks} tasks from archive {names}{here})"
        return COMPUTED

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "kind": self.kind(), "label": self.label()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Summary":
        """The inverse of :meth:`to_dict` (unknown keys ignored); ValueError on anything that is not counts."""
        counts = {f: data.get(f, 0) for f in ("tasks", "computed", "verified", "unverified", "mismatched")}
        archives = data.get("archives") or {}
        if not (all(isinstance(v, int) and not isinstance(v, bool) for v in counts.values())
                and isinstance(archives, dict)
                and all(isinstance(c, dict) and all(isinstance(n, int) for n in c.values()) for c in archives.values())):
            raise ValueError("not a provenance summary")
        return cls(**counts, archives={str(k): {"verified": int(c.get("verified", 0)),
                                                "unverified": int(c.get("unverified", 0))}
                                       for k, c in archives.items()})

    def __or__(self, other: "Summary") -> "Summary":
        out = Summary(**{f: getattr(self, f) + getattr(other, f)
                         for f in ("tasks", "computed", "verified", "unverified", "mismatched")})
        for part in (self, other):
            for name, counts in part.archives.items():
                mine = out.archives.setdefault(name, {"verified": 0, "unverified": 0})
                for k in mine:
                    mine[k] += counts.get(k, 0)
        return out


def summary(store: Store, tasks: Iterable[Task]) -> Summary:
    """The provenance of ``tasks`` and, recursively, their inputs (each once)."""
    out = Summary()
    for task in graph(list(tasks)):
        out.add(source(store, task.task_type(), task.key()))
    return out


# ---------------------------------------------------------------------------------------------------------------
# per-run registry: what the steps of a chapter run used
# ---------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class StepUse:
    """One :func:`pml.engine.run` of a sweep in this process and the provenance of the tasks it used (by key)."""

    sweep: Any
    sources: dict[str, Source]

    def summary(self) -> Summary:
        out = Summary()
        for src in self.sources.values():
            out.add(src)
        return out


_USED: list[StepUse] = []


def note_step(sweep: Any, tasks: Iterable[Task], store: Store) -> None:
    """Remember the provenance of every task a run of ``sweep`` used (a rerun of an equal sweep replaces it)."""
    sources = {t.key(): source(store, t.task_type(), t.key()) for t in graph(list(tasks))}
    _USED[:] = [u for u in _USED if not _same_sweep(u.sweep, sweep)]
    _USED.append(StepUse(sweep, sources))


def used_steps() -> list[StepUse]:
    """The steps run in this process so far, in order."""
    return list(_USED)


def clear_used() -> None:
    """Forget the steps run so far (a new chapter run in the same process)."""
    _USED.clear()


def _same_sweep(a: Any, b: Any) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # a sweep whose fields do not compare (arrays): only the same object is the same sweep
        return a is b


# ---------------------------------------------------------------------------------------------------------------
# detached signatures of archives, by OpenSSH (``ssh-keygen -Y sign`` / ``-Y verify``) with the user's own keys
# ---------------------------------------------------------------------------------------------------------------

SIG_NAMESPACE = "pml-results"  # what a signature is for: a key's signature of anything else does not count here
SIG_SUFFIX = ".sig"


class SignatureError(RuntimeError):
    """An archive's signature is missing, not by an allowed signer, or does not match; or ``ssh-keygen`` failed."""


def _ssh_keygen(args: list[str], stdin: Path, what: str) -> str:
    """Run ``ssh-keygen`` with ``args`` on the bytes of ``stdin``; its stdout, or SignatureError in one line."""
    try:
        with open(stdin, "rb") as fh:
            done = subprocess.run(["ssh-keygen", *args], stdin=fh, capture_output=True, timeout=120)
    except FileNotFoundError as exc:
        if exc.filename == "ssh-keygen":
            raise SignatureError(f"{what}: ssh-keygen (OpenSSH 8.1 or later) is not installed") from None
        raise SignatureError(f"{what}: {exc.filename}: no such file") from None
    except (OSError, subprocess.SubprocessError) as exc:
        raise SignatureError(f"{what}: {type(exc).__name__}: {exc}") from None
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.decode(errors="replace").splitlines()
                 if ln.strip() and not ln.startswith("Signing data on standard input")]
        raise SignatureError(f"{what}: {lines[-1].strip() if lines else f'ssh-keygen exited {done.returncode}'}")
    return done.stdout.decode(errors="replace")


def signature_path(archive_path: Path | str) -> Path:
    """Where an archive's detached signature lives: ``ARCHIVE.sig``."""
    archive_path = Path(archive_path)
    return archive_path.with_name(archive_path.name + SIG_SUFFIX)


def sign_archive(archive_path: Path | str, key: Path | str) -> Path:
    """Sign an archive with an SSH key (``ssh-keygen -Y sign``, namespace ``pml-results``) into ``ARCHIVE.sig``."""
    archive_path, key = Path(archive_path).resolve(), Path(key).resolve()  # absolute: never read as an option
    if not archive_path.is_file():
        raise SignatureError(f"{archive_path}: no such file")
    if not key.is_file():
        raise SignatureError(f"signing key {key}: no such file")
    out = signature_path(archive_path)
    if out.is_symlink() or (out.exists() and not out.is_file()):
        raise SignatureError(f"{out} exists and is not a regular file; refusing to replace it")
    signature = _ssh_keygen(["-Y", "sign", "-f", str(key), "-n", SIG_NAMESPACE], archive_path,
                            f"signing {archive_path.name}")
    _atomic_write(out, signature.encode())
    return out


def check_signature(archive_path: Path | str, allowed_signers: Path | str, signature: Path | str | None = None
                    ) -> str:
    """The principal whose signature of the archive is good and allowed (``ssh-keygen -Y verify``)."""
    archive_path, allowed = Path(archive_path).resolve(), Path(allowed_signers).resolve()
    sig = Path(signature).resolve() if signature is not None else signature_path(archive_path)
    for path, what in ((archive_path, "archive"), (allowed, "allowed-signers file"), (sig, "signature")):
        if not path.is_file():
            raise SignatureError(f"{what} {path}: no such file" + (" (sign it with `pml results sign`)"
                                                                  if what == "signature" else ""))
    found = _ssh_keygen(["-Y", "find-principals", "-s", str(sig), "-f", str(allowed)], archive_path,
                        f"{archive_path.name}: signature {sig.name} is not by a key of {allowed.name}")
    principals = [p.strip() for p in found.splitlines() if p.strip()]
    if not principals:
        raise SignatureError(f"{archive_path.name}: signature {sig.name} is not by a key of {allowed.name}")
    principal = principals[0]
    _ssh_keygen(["-Y", "verify", "-f", str(allowed), "-I", principal, "-n", SIG_NAMESPACE, "-s", str(sig)],
                archive_path, f"{archive_path.name}: bad signature {sig.name}, refusing the archive (changed "
                              "after it was signed, or signed for another purpose)")
    return principal
