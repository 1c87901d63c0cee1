"""The task results store: one ``.npz`` (arrays) plus one ``.json`` (everything else and the metadata) per task.

Entries are plain data, never pickles: ``<root>/<task type>/<key>.npz`` and ``.json`` (the rest of the result with
``{"__array__": name}`` where an array sits, the config, the key's ingredients, the hashes of both, the wall time). Both
are written atomically, the ``.json`` last; an entry that cannot be read or fails its hash is a miss (the task is
recomputed), never an error."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pml import paths
from pml.engine.closure import import_closure
from pml.engine.tasks import Task, class_path, library_versions

FORMAT = 1


def new_file_mode() -> int:
    """The mode ``open()`` gives a new file, 0o666 less the umask (``mkstemp`` makes its files 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``path`` atomically; errors name ``path``, and a folder in its place is an IsADirectoryError (never
    removed)."""
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "a folder stands where this file should be written; remove it (or "
                                              "move it away) and rerun", str(path))
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None:
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
        raise


def encode(result: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """Split plain data into a JSON tree and its arrays; raise TypeError on anything else."""
    arrays: dict[str, np.ndarray] = {}

    def walk(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                raise TypeError("object arrays are not plain data")
            name = f"a{len(arrays)}"
            arrays[name] = value
            return {"__array__": name}
        if isinstance(value, np.generic):
            return walk(value.item())
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise TypeError(f"result dict keys must be strings, got {list(value)[:3]}")
            if "__array__" in value or "__float__" in value:
                raise TypeError("'__array__' and '__float__' are reserved keys")
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        if isinstance(value, float) and not math.isfinite(value):
            return {"__float__": repr(value)}  # strict JSON has no NaN or infinity
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise TypeError(f"task results must be plain data (numbers, strings, arrays, lists, dicts), "
                        f"got {type(value).__name__}")

    return walk(result), arrays


def decode(tree: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(tree, dict):
        if set(tree) == {"__array__"}:
            return arrays[tree["__array__"]]
        if set(tree) == {"__float__"}:
            return float(tree["__float__"])
        return {k: decode(v, arrays) for k, v in tree.items()}
    if isinstance(tree, list):
        return [decode(v, arrays) for v in tree]
    return tree


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


class Store:
    """Task results under ``root`` (default ``_build/results/tasks``)."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else paths.results_dir() / "tasks"

    def paths(self, task: Task) -> tuple[Path, Path]:
        return self.entry_paths(task.task_type(), task.key())

    def entry_paths(self, task_type: str, key: str) -> tuple[Path, Path]:
        base = self.root / task_type / key
        return base.with_suffix(".npz"), base.with_suffix(".json")

    def read_meta(self, task: Task) -> dict | None:
        return self._read(*self.paths(task), want_result=False)

    def get(self, task: Task) -> dict | None:
        """The stored result, or None when there is no complete, intact entry for this key."""
        entry = self._read(*self.paths(task), want_result=True)
        return None if entry is None else entry["result"]

    def contains(self, task: Task) -> bool:
        return self.read_meta(task) is not None

    def read_entry(self, task_type: str, key: str) -> dict | None:
        """The metadata and decoded ``result`` of an intact entry, or None."""
        return self._read(*self.entry_paths(task_type, key), want_result=True)

    @staticmethod
    def _read(npz: Path, meta_path: Path, want_result: bool) -> dict | None:
        try:
            return parse_entry(npz.read_bytes(), meta_path.read_bytes(), want_result=want_result,
                               key=meta_path.stem)
        except Exception:  # missing, truncated, corrupt or foreign: a miss, the task is recomputed
            return None

    def put(self, task: Task, result: dict, *, seconds: float, device: str = "cpu") -> None:
        """Write the entry atomically (``.npz`` first, then the ``.json`` that makes it visible)."""
        tree, arrays = encode(result)
        data = _npz_bytes(arrays)
        meta = {
            "format": FORMAT,
            "task": task.task_type(),
            "key": task.key(),
            "class": class_path(type(task)),
            "config": task.key_fields(),
            "fields": task.fields_json(),
            "source": task.source_hash(),
            "execution": {f: getattr(task, f) for f in sorted(task.EXECUTION_FIELDS) if hasattr(task, f)},
            "closure": list(import_closure(type(task).__module__, None)),
            "versions": library_versions(),
            "seconds": seconds,
            "device": device,
            "npz_sha256": hashlib.sha256(data).hexdigest(),
            "result": tree,
        }
        meta = json.loads(json.dumps(meta, default=_json_default))  # plain JSON types, as a reader will see them
        meta["meta_sha256"] = _meta_hash(meta)
        self.write_entry(task.task_type(), task.key(), data, json.dumps(meta, indent=1, sort_keys=True).encode())

    def write_entry(self, task_type: str, key: str, npz_bytes: bytes, json_bytes: bytes) -> None:
        """Write an entry's two files atomically, the ``.json`` (which makes it visible) last."""
        npz, meta_path = self.entry_paths(task_type, key)
        _atomic_write(npz, npz_bytes)
        _atomic_write(meta_path, json_bytes)

    def entries(self) -> list[tuple[Path, Path]]:
        """Every (npz, json) pair under the root."""
        return [(p.with_suffix(".npz"), p) for p in sorted(self.root.glob("*/*.json"))]


def parse_entry(npz_bytes: bytes, json_bytes: bytes, *, want_result: bool = True, key: str | None = None) -> dict:
    """An entry's metadata (with its decoded ``result`` when asked); ValueError when it is not an intact entry."""
    meta = json.loads(json_bytes)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError("not a task result entry of this format")
    if meta.pop("meta_sha256", None) != _meta_hash(meta):
        raise ValueError("the entry's metadata (.json) does not match its hash")
    if key is not None and meta.get("key") != key:
        raise ValueError(f"entry holds key {meta.get('key')!r}, not {key!r}")
    if hashlib.sha256(npz_bytes).hexdigest() != meta["npz_sha256"]:
        raise ValueError("the arrays (.npz) do not match the entry's hash")
    if want_result:
        with np.load(io.BytesIO(npz_bytes), allow_pickle=False) as loaded:
            arrays = {name: loaded[name] for name in loaded.files}
        meta["result"] = decode(meta.pop("result"), arrays)
    return meta


def same_data(a: Any, b: Any) -> bool:
    """Exact equality of two plain-data trees (arrays by dtype, shape and value; NaN equals NaN)."""
    return first_difference(a, b) is None


# Result keys that hold measured run times (a chapter may show them, a cost model may be fitted to them): they depend
# on the machine and its load, so comparing recomputed results skips them (``skip_timings``).
TIMING_KEYS = frozenset({"seconds", "time_s", "wall_s", "wall_time_s", "task_seconds", "seconds_per_step",
                         "curve_time"})


def is_timing_key(key: str) -> bool:
    return key in TIMING_KEYS or key.startswith("seconds_") or key.endswith(("_seconds", "_time_s", "_wall_s"))


def first_difference(a: Any, b: Any, where: str = "result", rtol: float | None = None,
                     atol: float = 0.0, skip_timings: bool = False) -> str | None:
    """Where two plain-data trees first differ (None if nowhere): exactly (NaN equals NaN) or within ``rtol``/``atol``;
    ``skip_timings`` skips measured times (:func:`is_timing_key`)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            return f"{where}: array vs {type(b if isinstance(a, np.ndarray) else a).__name__}"
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"{where}: {a.dtype}{list(a.shape)} vs {b.dtype}{list(b.shape)}"
        if rtol is not None and a.dtype.kind in "fc":
            close = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
        else:
            close = (a == b) | ((a != a) & (b != b)) if a.dtype.kind in "fc" else (a == b)
        if not np.all(close):
            i = np.unravel_index(int(np.argmin(close)), a.shape) if a.ndim else ()
            return f"{where}{list(i)}: {a[i]!r} vs {b[i]!r}"
        return None
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return f"{where}: keys {sorted(a)} vs {sorted(b)}"
        return next((d for k in a if not (skip_timings and is_timing_key(k))
                     and (d := first_difference(a[k], b[k], f"{where}[{k!r}]", rtol, atol, skip_timings))), None)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where}: length {len(a)} vs {len(b)}"
        return next((d for i, (x, y) in enumerate(zip(a, b))
                     if (d := first_difference(x, y, f"{where}[{i}]", rtol, atol, skip_timings))), None)
    if isinstance(a, float) and isinstance(b, float):
        same = a == b or (math.isnan(a) and math.isnan(b))
        if not same and rtol is not None:
            same = abs(a - b) <= atol + rtol * abs(b)
        return None if same else f"{where}: {a!r} vs {b!r}"
    return None if type(a) is type(b) and a == b else f"{where}: {a!r} vs {b!r}"


def _meta_hash(meta: dict) -> str:
    """SHA-256 of the canonical JSON of an entry's metadata (its result tree included), ``meta_sha256`` left out:
    a changed digit in the ``.json`` is a corrupt entry, not a different result."""
    return hashlib.sha256(json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON: {type(value).__name__}")
