"""The task results store: one ``.npz`` (arrays) plus one ``.json`` (everything else and the metadata) per task.

Entries are plain data, never pickles: ``<root>/<task type>/<key>.npz`` holds the result's arrays and
``<key>.json`` the rest of the result (numbers, strings, lists, dicts, with ``{"__array__": name}`` where an
array sits), the task's config, the key's ingredients, the SHA-256 of the ``.npz`` bytes, the wall time and where
it ran. Both files are written atomically (temporary file + rename), the ``.json`` last, so an entry exists only
once it is complete. An entry that cannot be read, or whose ``.npz`` no longer matches its hash, is a miss: the
task is recomputed, never an error.
"""

from __future__ import annotations

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
from pml.engine.tasks import Task, library_versions

FORMAT = 1


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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
        base = self.root / task.task_type() / task.key()
        return base.with_suffix(".npz"), base.with_suffix(".json")

    def read_meta(self, task: Task) -> dict | None:
        return self._read(*self.paths(task), want_result=False)

    def get(self, task: Task) -> dict | None:
        """The stored result, or None when there is no complete, intact entry for this key."""
        entry = self._read(*self.paths(task), want_result=True)
        return None if entry is None else entry["result"]

    def contains(self, task: Task) -> bool:
        return self.read_meta(task) is not None

    @staticmethod
    def _read(npz: Path, meta_path: Path, want_result: bool) -> dict | None:
        try:
            meta = json.loads(meta_path.read_text())
            data = npz.read_bytes()
            if meta.get("format") != FORMAT or hashlib.sha256(data).hexdigest() != meta["npz_sha256"]:
                return None
            if not want_result:
                return meta
            with np.load(io.BytesIO(data), allow_pickle=False) as loaded:
                arrays = {name: loaded[name] for name in loaded.files}
            meta["result"] = decode(meta.pop("result"), arrays)
            return meta
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
            "config": task.key_fields(),
            "execution": {f: getattr(task, f) for f in sorted(task.EXECUTION_FIELDS) if hasattr(task, f)},
            "closure": list(import_closure(type(task).__module__)),
            "versions": library_versions(),
            "seconds": seconds,
            "device": device,
            "npz_sha256": hashlib.sha256(data).hexdigest(),
            "result": tree,
        }
        npz, meta_path = self.paths(task)
        _atomic_write(npz, data)
        _atomic_write(meta_path, json.dumps(meta, indent=1, sort_keys=True, default=_json_default).encode())

    def entries(self) -> list[tuple[Path, Path]]:
        """Every (npz, json) pair under the root."""
        return [(p.with_suffix(".npz"), p) for p in sorted(self.root.glob("*/*.json"))]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON: {type(value).__name__}")
