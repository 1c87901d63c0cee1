"""Portable results archives: the task results of a profile in one file, checked on the way in.

``pack`` writes a gzip-compressed pax tar: ``manifest.json`` first (every entry's task, key, steps and the hash and size
of its files, the library versions), then the store's files. Reading an archive is reading data: nothing it names is
imported or called. ``unpack`` checks everything before it writes anything (sizes and nesting bounded, every hash and
version checked), refuses the whole archive on any fault, then installs entries by atomic renames, never replacing an
intact entry that holds another result. ``verify`` recomputes a random sample here."""

from __future__ import annotations

import dataclasses
import datetime
import gzip
import hashlib
import io
import json
import os
import random
import re
import shutil
import tarfile
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Iterator

from pml.engine import provenance
from pml.engine.closure import closure_hash
from pml.engine.store import FORMAT as ENTRY_FORMAT
from pml.engine.store import (
    Store,
    _atomic_write,
    _meta_hash,
    first_difference,
    new_file_mode,
    parse_entry,
    same_data,
)
from pml.engine.tasks import Task, check_task_json, library_versions, load_task

FORMAT = "pml-results/2"
MANIFEST = "manifest.json"
MAX_JSON_BYTES = 32 << 20  # the manifest, and each entry's .json (a paper-profile manifest is a few MB)
MAX_JSON_TOKENS = 1_000_000  # values, keys and escapes of one JSON file: bounds the memory of parsing it
MAX_JSON_DEPTH = 64
MAX_MEMBER_BYTES = 1 << 30  # an entry's .npz
CHUNK = 1 << 20  # bytes read from a member at a time
GPU_RTOL = 1e-6  # GPU kernels do not promise the same rounding from run to run or card to card
GPU_ATOL = 1e-12  # for values that are zero up to rounding
# On another CPU model the BLAS and libm kernels differ in the last bits: a deterministic computation stays within
# CPU_RTOL, while a task that amplifies rounding (an Adam trajectory: ``Task.ROUNDING_SENSITIVE``) cannot be compared.
CPU_RTOL = 1e-6
_TYPE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,199}")  # ASCII: a task type names a folder of the store
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ENTRY_FIELDS = frozenset({"task", "class", "key", "config", "fields", "device", "seconds", "steps", "files"})
_BLOCK = 512
_MAX_PAX = 65536  # a pax header holds a long name; pack writes a few hundred bytes
_MAX_TAIL = 1 << 20  # zero padding after the end-of-archive blocks (tar pads to 10240 bytes)
_PAX_LENGTH = re.compile(rb"(\d{1,5}) ")
_JSON_STRUCTURE = re.compile(rb'["\[\]{}]')  # what the scan of a JSON file stops at: strings and brackets
_JSON_IN_STRING = re.compile(rb'["\\]')
_KINDS = {b"1": "hard link", b"2": "symbolic link", b"3": "character device", b"4": "block device",
          b"5": "directory", b"6": "FIFO", b"7": "contiguous file", b"g": "global pax header",
          b"L": "GNU long name", b"K": "GNU long link name", b"S": "GNU sparse file"}


class ArchiveError(RuntimeError):
    """An archive that cannot be used; the message (one line) names the entry at fault."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).splitlines()))


def _member(task_type: str, key: str, suffix: str) -> str:
    return f"entries/{task_type}/{key}{suffix}"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
            "steps": steps_of[key],
            "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                      for name, data in names.items()},
        })
        files.extend(names.items())
    manifest = {"format": FORMAT, "pml_version": pml.__version__, "versions": library_versions(),
                "profile": profile, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "machine": provenance.machine_line(), "entries": entries}
    commit = provenance.pml_commit()
    if commit is not None:
        manifest["pml_commit"] = commit
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6, format=tarfile.PAX_FORMAT) as tar:
        for name, data in [(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode()), *files]:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(out, buffer.getvalue())
    return PackReport(out, len(entries), missing, out.stat().st_size)


# ---------------------------------------------------------------------------------------------------------------
# reading: a tar reader that checks each header before reading what follows it
# ---------------------------------------------------------------------------------------------------------------


class _HashingFile:
    """The archive file for gzip, hashing the bytes it reads (the archive's SHA-256)."""

    def __init__(self, fh):
        self.fh, self.sha = fh, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.sha.update(data)
        return data


class _Tar:
    """The plain-file members of a gzip tar, read header by header with bounded sizes and checked checksums (``tarfile``
    would read a crafted pax header whole); only the header kinds ``pack`` writes are accepted."""

    def __init__(self, path: Path):
        self.path = path
        self.last = "the start"  # the last member read whole, for error messages
        self._left = 0  # unread bytes of the current member's data (and padding)
        try:
            self._fh = open(path, "rb")
        except OSError as exc:
            raise ArchiveError(f"{path}: cannot read it ({exc.strerror or exc})") from None
        if self._fh.read(2) != b"\x1f\x8b":
            self._fh.close()
            raise ArchiveError(f"{path}: not a pml results archive (not gzip-compressed)")
        self._fh.seek(0)
        self._raw = _HashingFile(self._fh)
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="rb")

    def close(self) -> None:
        self._gz.close()
        self._fh.close()

    def sha256(self) -> str:
        """SHA-256 of the archive file (complete once :meth:`members` has ended)."""
        return self._raw.sha.hexdigest()

    def _corrupt(self, exc: BaseException) -> ArchiveError:
        return ArchiveError(f"{self.path}: truncated or corrupt after {self.last} ({type(exc).__name__}: {exc}); "
                            "refusing the archive")

    def _read(self, n: int, exact: bool = True) -> bytes:
        parts, got = [], 0
        try:
            while got < n:
                part = self._gz.read(min(n - got, CHUNK))
                if not part:
                    break
                parts.append(part)
                got += len(part)
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            raise self._corrupt(exc) from None
        if exact and got < n:
            raise self._corrupt(EOFError("unexpected end of data"))
        return b"".join(parts)

    def members(self) -> Iterator[tuple[str, int]]:
        """``(name, size)`` of each member; read its data with :meth:`chunks` (what is not read is skipped)."""
        pax: dict[str, str] = {}
        while True:
            while self._left:  # skip what the caller did not read
                self._left -= len(self._read(min(self._left, CHUNK)))
            header = self._read(_BLOCK)
            if not header.strip(b"\0"):
                if pax:
                    raise self._corrupt(ValueError("a pax header with no member after it"))
                self._end()
                return
            name, size, kind = self._header(header)
            if kind == b"x":
                if size > _MAX_PAX:
                    raise ArchiveError(f"{self.path}: a pax header of {size} bytes after {self.last} (pack writes "
                                       f"at most a few hundred); refusing the archive")
                pax = self._pax(self._read(size + (-size) % _BLOCK)[:size])
                continue
            name = pax.get("path", name)
            if "size" in pax:
                size = pax["size"]
            pax = {}
            if kind not in (b"0", b"\0") or name.endswith("/"):
                what = _KINDS.get(kind, f"member of type {kind!r}") if kind not in (b"0", b"\0") else "directory"
                raise ArchiveError(f"{self.path}: member {name!r} is a {what}, not a plain file; refusing the archive")
            self._left = size + (-size) % _BLOCK
            yield name, size
            self.last = name

    def chunks(self, size: int) -> Iterator[bytes]:
        """The current member's data (``size`` bytes, as its header declared), in chunks of at most :data:`CHUNK`."""
        left = size
        while left:
            chunk = self._read(min(left, CHUNK))
            left -= len(chunk)
            self._left -= len(chunk)
            yield chunk

    def _header(self, block: bytes) -> tuple[str, int, bytes]:
        try:
            checksum = _octal(block[148:156])
            if checksum != 256 + sum(block[:148]) + sum(block[156:]):
                raise ValueError("bad header checksum")
            size = _octal(block[124:136])
            name = block[:100].split(b"\0", 1)[0]
            if block[257:263] == b"ustar\0":
                prefix = block[345:500].split(b"\0", 1)[0]
                name = prefix + b"/" + name if prefix else name
            return name.decode("utf-8"), size, block[156:157]
        except ValueError as exc:
            raise self._corrupt(exc) from None

    def _pax(self, data: bytes) -> dict[str, str]:
        records, pos = {}, 0
        try:
            while pos < len(data):
                length = _PAX_LENGTH.match(data, pos)
                end = pos + int(length.group(1)) if length else 0
                if not length or end > len(data) or end <= length.end() or data[end - 1:end] != b"\n":
                    raise ValueError("malformed pax record")
                key, eq, value = data[length.end():end - 1].partition(b"=")
                if not eq:
                    raise ValueError("malformed pax record")
                records[key.decode("utf-8")] = value.decode("utf-8")
                pos = end
            if "size" in records:
                if not re.fullmatch(r"[0-9]{1,19}", records["size"]):
                    raise ValueError(f"pax size {records['size'][:30]!r}")
                records["size"] = int(records["size"])
        except ValueError as exc:
            raise self._corrupt(exc) from None
        return records

    def _end(self) -> None:
        """After the first zero block: only zeros to the end of the file (and the gzip checksum is checked)."""
        left = _MAX_TAIL
        while True:
            tail = self._read(min(CHUNK, left + 1), exact=False)
            if not tail:
                return
            if tail.strip(b"\0") or len(tail) > left:
                raise ArchiveError(f"{self.path}: data after the archive's end (after {self.last}); refusing the "
                                   "archive")
            left -= len(tail)


def _octal(field: bytes) -> int:
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not re.fullmatch(rb"[0-7]{1,12}", text):
        raise ValueError(f"header number {field!r} is not octal")
    return int(text, 8)


def _parse_json(data: bytes, what: str, *, strict: bool = True) -> Any:
    """``data`` parsed as JSON after a scan that bounds what parsing it can take: at most :data:`MAX_JSON_TOKENS`
    tokens (values, keys, escapes) and :data:`MAX_JSON_DEPTH` levels. ValueError, naming ``what``, otherwise."""
    tokens = data.count(b",")
    depth, pos = 0, 0
    while tokens <= MAX_JSON_TOKENS:
        found = _JSON_STRUCTURE.search(data, pos)
        if found is None:
            break
        tokens += 1
        pos = found.end()
        char = data[found.start()]
        if char == 0x22:  # a string: to its closing quote, escapes counted
            while tokens <= MAX_JSON_TOKENS:
                end = _JSON_IN_STRING.search(data, pos)
                if end is None:
                    raise ValueError(f"{what} is not valid JSON (a string is not terminated)")
                pos = end.end()
                if data[end.start()] == 0x22:
                    break
                pos += 1
                tokens += 1
        elif char in b"[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep")
        else:
            depth -= 1
    if tokens > MAX_JSON_TOKENS:
        raise ValueError(f"{what} holds more than {MAX_JSON_TOKENS} JSON values")

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not strict JSON")

    try:
        return json.loads(data, parse_constant=no_constant) if strict else json.loads(data)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a number too long
        raise ValueError(f"{what} is not valid JSON ({exc})") from None


# ---------------------------------------------------------------------------------------------------------------
# checking
# ---------------------------------------------------------------------------------------------------------------


def _describe(entry: Any, index: int | None = None) -> str:
    """``entry [<index>] <task type> <key prefix> (<config>)``, from whatever the manifest holds."""
    if index is not None:
        return f"entry {index}" + (_describe(entry)[len("entry"):] if isinstance(entry, dict) else "")
    if not isinstance(entry, dict):
        return f"entry {_short(entry, 40)}"
    task, key, config = entry.get("task"), entry.get("key"), entry.get("config")
    task = task if isinstance(task, str) and _TYPE.fullmatch(task) else _short(task, 60)
    key = key[:12] if isinstance(key, str) and _HEX64.fullmatch(key) else _short(key, 20)
    fields = ""
    if isinstance(config, dict):
        fields = ", ".join(f"{k}={v if isinstance(v, (bool, int, float)) or v is None else _short(v, 40)}"
                           for k, v in config.items())
        fields = fields if len(fields) <= 300 else fields[:297] + "..."
    return f"entry {task} {key} ({fields})"


def _check_manifest(path: Path, data: bytes) -> dict:
    """The parsed manifest, every field of the type ``pack`` writes; ArchiveError naming the first that is not."""
    try:
        manifest = _parse_json(data, MANIFEST)
    except ValueError as exc:
        raise ArchiveError(f"{path}: {exc}; refusing the archive") from None
    if not isinstance(manifest, dict):
        raise ArchiveError(f"{path}: {MANIFEST} holds a JSON {_json_type(manifest)}, not an object; refusing the "
                           "archive")
    if manifest.get("format") != FORMAT:
        if manifest.get("format") == "pml-results/1":
            raise ArchiveError(f"{path}: archive format 'pml-results/1' (written by an older pml, without the sizes "
                               f"of its files); this pml reads {FORMAT!r}: pack it again with this pml")
        raise ArchiveError(f"{path}: archive format {_short(manifest.get('format'))}, this pml reads {FORMAT!r}")
    for name in ("pml_version", "profile", "created"):
        if not isinstance(manifest.get(name), (str, type(None))):
            raise ArchiveError(f"{path}: malformed {MANIFEST}: {name!r} is a JSON {_json_type(manifest[name])}, "
                               "not a string; refusing the archive")
    versions, entries = manifest.get("versions"), manifest.get("entries")
    if not (isinstance(versions, dict) and all(isinstance(v, str) for v in versions.values())):
        raise ArchiveError(f"{path}: malformed {MANIFEST}: 'versions' must be an object of version strings, got "
                           f"{_short(versions)}; refusing the archive")
    if not isinstance(entries, list):
        raise ArchiveError(f"{path}: malformed {MANIFEST}: 'entries' is a JSON {_json_type(entries)}, not a list; "
                           "refusing the archive")
    keys: set[str] = set()
    for i, entry in enumerate(entries):
        problem = _entry_problem(entry)
        if problem is None and entry["key"] in keys:
            problem = "its key appears twice"
        if problem:
            raise ArchiveError(f"{path}: malformed {MANIFEST} at {_describe(entry, i)}: {problem}; refusing the "
                               "archive")
        keys.add(entry["key"])
    here = library_versions()
    diff = [f"{lib} {versions.get(lib, 'absent')[:40]} (here {v})" for lib, v in here.items()
            if versions.get(lib) != v]
    if diff:
        example = f", e.g. {_describe(entries[0])}" if entries else ""
        raise ArchiveError(f"{path}: computed with {', '.join(diff)} (every entry{example}); results from other "
                           "library versions are not used here (they are part of every key): install the archive's "
                           "versions (constraints.txt) or recompute; refusing the archive")
    return manifest


def _json_type(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")


def _entry_problem(entry: Any) -> str | None:
    """What is wrong with a manifest entry (None if nothing): its fields, their types, its class and its files."""
    if not isinstance(entry, dict):
        return f"a JSON {_json_type(entry)}, not an object"
    if set(entry) != _ENTRY_FIELDS:
        unknown, missing = sorted(set(entry) - _ENTRY_FIELDS), sorted(_ENTRY_FIELDS - set(entry))
        return "; ".join(([f"unknown field(s) {_short(unknown)}"] if unknown else [])
                         + ([f"missing field(s) {missing}"] if missing else []))
    task, key, files = entry["task"], entry["key"], entry["files"]
    if not (isinstance(task, str) and _TYPE.fullmatch(task)):
        return f"task type {_short(task)} is not a dotted Python name"
    if not (isinstance(key, str) and _HEX64.fullmatch(key)):
        return f"key {_short(key)} is not 64 lowercase hex digits"
    if not isinstance(entry["config"], dict):
        return f"config is a JSON {_json_type(entry['config'])}, not an object"
    if not (entry["device"] is None or isinstance(entry["device"], str)):
        return f"device {_short(entry['device'])} is not a string"
    seconds = entry["seconds"]
    if not (seconds is None or (isinstance(seconds, (int, float)) and not isinstance(seconds, bool))):
        return f"seconds {_short(seconds)} is not a number"
    if not (isinstance(entry["steps"], list) and all(isinstance(s, str) for s in entry["steps"])):
        return f"steps {_short(entry['steps'])} is not a list of strings"
    try:
        check_task_json(entry["class"], entry["fields"])
    except ValueError as exc:
        return str(exc)
    module, _, qualname = entry["class"].partition(":")
    if f"{module}.{qualname}" != task:
        return f"class {entry['class']!r} is not of task type {task!r}"
    expected = {_member(task, key, ".npz"): MAX_MEMBER_BYTES, _member(task, key, ".json"): MAX_JSON_BYTES}
    if not isinstance(files, dict) or set(files) != set(expected):
        return f"files must be an object naming exactly {sorted(expected)}"
    for name, spec in files.items():
        if not (isinstance(spec, dict) and set(spec) == {"sha256", "size"} and isinstance(spec["sha256"], str)
                and _HEX64.fullmatch(spec["sha256"]) and type(spec["size"]) is int and spec["size"] >= 0):
            return f"file {name}: expected {{\"sha256\": 64 hex digits, \"size\": bytes}}, got {_short(spec)}"
        if spec["size"] > expected[name]:
            return f"file {name} has {spec['size']} bytes, more than the {expected[name]} this pml reads"
    return None


@dataclass
class _Checked:
    manifest: dict
    sha256: str = ""  # of the archive file
    staged: dict[str, Path] = field(default_factory=dict)  # member name -> its checked copy in the staging folder
    metas: dict[str, dict] = field(default_factory=dict)  # key -> the entry's metadata (without its result)
    kept: dict[str, dict] = field(default_factory=dict)  # key -> parsed entry (with result) for wanted keys


def _first_manifest(path: Path, tar: _Tar, members) -> dict:
    """The checked manifest, which must be the archive's first member; ArchiveError otherwise."""
    first = next(members, None)
    if first is None:
        raise ArchiveError(f"{path}: empty archive")
    name, size = first
    if name != MANIFEST:
        raise ArchiveError(f"{path}: not a pml results archive (its first member is {name!r}, not {MANIFEST})")
    if size > MAX_JSON_BYTES:
        raise ArchiveError(f"{path}: {MANIFEST} has {size} bytes, more than the {MAX_JSON_BYTES} a manifest "
                           "may have; refusing the archive")
    return _check_manifest(path, b"".join(tar.chunks(size)))


def _stage_member(path: Path, tar: _Tar, name: str, size: int, entry: dict | None, staged: dict,
                  staging: Path) -> Path:
    """Copy one member into ``staging`` if the manifest lists it once with this size and SHA-256; else ArchiveError."""
    if entry is None:
        raise ArchiveError(f"{path}: member {name!r} is not in the manifest (tampered); refusing the "
                           "archive")
    if name in staged:
        raise ArchiveError(f"{path}: member {name!r} appears twice (tampered); refusing the archive")
    spec = entry["files"][name]
    if size != spec["size"]:
        raise ArchiveError(f"{path}: {_describe(entry)}: {name} has {size} bytes, the manifest says "
                           f"{spec['size']} (tampered); refusing the archive")
    copy = staging / f"{len(staged)}.part"
    sha = hashlib.sha256()
    try:
        with open(copy, "xb") as out:
            for chunk in tar.chunks(size):
                sha.update(chunk)
                out.write(chunk)
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot write {copy}: {exc.strerror or exc}") from None
    if sha.hexdigest() != spec["sha256"]:
        raise ArchiveError(f"{path}: {_describe(entry)}: {name} does not match its SHA-256 in the manifest "
                           "(tampered or corrupt); refusing the archive")
    return copy


def _stage(path: Path, staging: Path, want: Callable[[dict], bool] = lambda entry: False) -> _Checked:
    """Check the whole archive, copying each member into ``staging`` as it is read; ArchiveError at the first fault."""
    tar = _Tar(path)
    try:
        members = tar.members()
        checked = _Checked(_first_manifest(path, tar, members))
        owner = {name: entry for entry in checked.manifest["entries"] for name in entry["files"]}
        need = sum(spec["size"] for entry in checked.manifest["entries"] for spec in entry["files"].values())
        free = shutil.disk_usage(staging).free
        if need > free:
            raise ArchiveError(f"{path}: unpacking needs {need / 1e6:.1f} MB, {free / 1e6:.1f} MB are free on "
                               f"{staging.parent}; refusing the archive")
        for name, size in members:
            checked.staged[name] = _stage_member(path, tar, name, size, owner.get(name), checked.staged, staging)
        checked.sha256 = tar.sha256()
    finally:
        tar.close()
    entries = checked.manifest["entries"]
    absent = [entry for entry in entries if any(n not in checked.staged for n in entry["files"])]
    if absent:
        raise ArchiveError(f"{path}: truncated: {_describe(absent[0])} is missing "
                           f"({len(absent)} of {len(entries)} entries incomplete); refusing the archive")
    for entry in entries:
        npz, meta = (checked.staged[_member(entry["task"], entry["key"], s)] for s in (".npz", ".json"))
        try:
            checked.metas[entry["key"]] = _check_entry(entry, npz, meta, checked.manifest)
            if want(entry):
                checked.kept[entry["key"]] = parse_entry(npz.read_bytes(), meta.read_bytes(), key=entry["key"])
        except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile) as exc:
            raise ArchiveError(f"{path}: {_describe(entry)} is not an intact result entry ({exc}); refusing the "
                               "archive") from None
    return checked


def _check_entry(entry: dict, npz: Path, meta_path: Path, manifest: dict) -> dict:
    """An entry's metadata, checked as the store reads it and against the manifest; ValueError otherwise."""
    meta = _parse_json(meta_path.read_bytes(), "its .json", strict=False)
    if not isinstance(meta, dict) or meta.get("format") != ENTRY_FORMAT:
        raise ValueError("not a task result entry of this format")
    if meta.pop("meta_sha256", None) != _meta_hash(meta):
        raise ValueError("the entry's metadata (.json) does not match its hash")
    for name in ("key", "task", "class", "config", "fields", "device", "seconds"):
        if meta.get(name) != entry[name]:
            raise ValueError(f"its {name} differs from the manifest's")
    if meta.get("versions") != manifest["versions"]:
        raise ValueError(f"computed with {_short(meta.get('versions'), 200)}, not the archive's versions")
    if meta.get("npz_sha256") != entry["files"][_member(entry["task"], entry["key"], ".npz")]["sha256"]:
        raise ValueError("the arrays (.npz) do not match the entry's hash")
    with zipfile.ZipFile(npz) as arrays:  # np.savez stores arrays uncompressed: no member can expand in memory
        infos = arrays.infolist()
        if any(i.compress_type != zipfile.ZIP_STORED for i in infos) or sum(i.file_size for i in infos) > \
                npz.stat().st_size:
            raise ValueError("its .npz holds compressed or oversized arrays (np.savez writes neither)")
    return meta


def read_manifest(path: Path | str) -> dict:
    """The checked manifest alone (the archive's first member); its files are neither read nor checked."""
    path = Path(path)
    tar = _Tar(path)
    try:
        first = next(tar.members(), None)
        if first is None:
            raise ArchiveError(f"{path}: empty archive")
        name, size = first
        if name != MANIFEST or size > MAX_JSON_BYTES:
            raise ArchiveError(f"{path}: not a pml results archive (first member {name!r}, {size} bytes)")
        return _check_manifest(path, b"".join(tar.chunks(size)))
    finally:
        tar.close()


def check(path: Path | str, want: Callable[[dict], bool] = lambda entry: False) -> _Checked:
    """Read the whole archive and check it; keep the decoded entries that ``want`` selects (by manifest entry)."""
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="pml-archive-") as staging:
        checked = _stage(path, Path(staging), want)
        checked.staged = {}
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
    sha256: str = ""  # of the archive file


def unpack(path: Path | str, store: Store | None = None, signer: str | None = None) -> UnpackReport:
    """Check the archive (ArchiveError if anything is wrong, with nothing written), then install its entries
    into ``store``; ``signer`` (the principal whose signature was checked) goes into each entry's origin."""
    path = Path(path)
    store = store or Store()
    made = [d for d in (store.root, *store.root.parents) if not d.exists()]  # to remove again if refused
    try:
        store.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=store.root))
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot unpack into {store.root}: {exc.strerror or exc}") from None
    try:
        checked = _stage(path, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in made:  # innermost first
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    try:
        return _install(path, checked, store, signer)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _install(path: Path, checked: _Checked, store: Store, signer: str | None = None) -> UnpackReport:
    manifest = checked.manifest
    report = UnpackReport(profile=manifest.get("profile"), sha256=checked.sha256)
    origin = provenance.archive_origin(path, checked.sha256, manifest, signer=signer)
    for entry in manifest["entries"]:
        task_type, key = entry["task"], entry["key"]
        json_sha = entry["files"][_member(task_type, key, ".json")]["sha256"]
        npz, meta = (checked.staged[_member(task_type, key, s)] for s in (".npz", ".json"))
        targets = store.entry_paths(task_type, key)
        existing_files = [p.exists() for p in targets]
        existing = store.read_entry(task_type, key)
        if existing is not None:
            theirs = parse_entry(npz.read_bytes(), meta.read_bytes(), key=key)
            if same_data(existing["result"], theirs["result"]):
                report.present += 1
                provenance.record_origin(store, task_type, key, origin, entry_sha256=json_sha)  # its bytes only
            else:
                report.conflicts.append(_describe(entry))
            continue
        try:
            targets[0].parent.mkdir(parents=True, exist_ok=True)
            for staged, target in zip((npz, meta), targets):  # the .json, which makes the entry visible, last
                os.chmod(staged, new_file_mode())
                os.replace(staged, target)
        except OSError as exc:
            raise ArchiveError(f"{path}: cannot install {_describe(entry)} into {store.root}: "
                               f"{exc.strerror or exc}") from None
        provenance.record_origin(store, task_type, key, origin, entry_sha256=json_sha)
        if any(existing_files):
            report.replaced += 1
        else:
            report.added += 1
        module = entry["class"].partition(":")[0]  # a known class's module: closure_hash reads its source
        source = checked.metas[key].get("source")
        if source and _source(module) not in (None, source):
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
           log: Callable[[str], None] = print, store: Store | None = None,
           keys: Collection[str] | None = None) -> list[Verdict]:
    """Recompute a random sample of the archive's tasks (or ``keys``) within ``time_limit`` and compare: identical on
    its CPU model, within ``CPU_RTOL`` elsewhere, ``GPU_RTOL`` for GPU results; run times are not compared."""
    from pml.engine.executor import execute, normalize

    path = Path(path)
    manifest = check(path).manifest  # hashes and versions first: never recompute from a bad archive
    entries = manifest["entries"]
    if keys is not None:
        chosen = [e for e in entries if e["key"] in set(keys)]
    else:
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
    theirs = _cpu_model(manifest.get("machine"))
    other_cpu = theirs if theirs and theirs != _cpu_model(provenance.machine_line()) else ""
    verdicts: list[Verdict] = []
    start = time.perf_counter()
    for entry, task in rebuilt:
        label = task.label() if isinstance(task, Task) else _describe(entry)
        verdict = _verify_one(entry, task, archived, start, time_limit, execute, normalize, other_cpu)
        verdict.label = label
        json_sha = entry["files"][_member(entry["task"], entry["key"], ".json")]["sha256"]
        if verdict.verdict in ("identical", "within tolerance"):
            provenance.mark_verified(store or Store(), entry["task"], entry["key"],
                                     f"{verdict.verdict}; {verdict.detail}", entry_sha256=json_sha)
        elif verdict.verdict == "MISMATCH":
            provenance.mark_mismatch(store or Store(), entry["task"], entry["key"], verdict.detail,
                                     entry_sha256=json_sha)
        log(f"{verdict.verdict:<16} {label}" + (f"\n                 {verdict.detail}" if verdict.detail else ""))
        verdicts.append(verdict)
    return verdicts


def _cpu_model(machine: Any) -> str:
    return str(machine or "").split(",")[0].strip()


def _verify_one(entry, task, archived, start, time_limit, execute, normalize, other_cpu: str = "") -> Verdict:
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
    if other_cpu and not on_gpu and task.ROUNDING_SENSITIVE:
        return Verdict("", "skipped", f"computed on another CPU ({other_cpu}); this task amplifies rounding, so "
                       "only the same CPU model reproduces it")
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
    elif other_cpu:
        diff = first_difference(fresh, stored, rtol=CPU_RTOL, skip_timings=True)
        ok = "within tolerance"
        note = f"computed on another CPU ({other_cpu}): rtol {CPU_RTOL:g}{note}"
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

