"""Results cache: ``load_or_run(run, cfg)`` (style guide §5.4).

The key is the experiment's qualified name, the config's stable hash, a hash of every ``pml`` source file and the
versions of the numerical libraries, so re-running a chapter with unchanged inputs is instant and a code change
never serves stale numbers. Entries are written atomically (temporary file + rename): an interrupted run leaves
no half-written result.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import platform
import tempfile
import time
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, TypeVar

from pml import paths
from pml.config import Config

R = TypeVar("R")
_VERSIONED = ("numpy", "scipy", "sympy", "torch", "matplotlib")


@lru_cache(maxsize=1)
def source_hash() -> str:
    """SHA-256 over the path and bytes of every ``pml/**/*.py``."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def cache_key(name: str, cfg: Config) -> str:
    payload = json.dumps(
        {"name": name, "config": cfg.stable_hash(), "source": source_hash(), "versions": library_versions()},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _experiment_name(run: Callable) -> str:
    return f"{run.__module__}.{run.__qualname__}"


def entry_path(run: Callable, cfg: Config, root: Path | None = None) -> Path:
    name = _experiment_name(run)
    return (root or paths.results_dir()) / name / f"{cache_key(name, cfg)}.pkl"


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_or_run(run: Callable[[Config], R], cfg: Config, *, force: bool = False, root: Path | None = None) -> R:
    """Return ``run(cfg)``, from the cache when an entry with exactly this key exists.

    The entry's stored metadata (experiment, config, source hash, versions) is compared with the current one
    before use; any mismatch recomputes. ``root`` overrides ``_build/results`` (tests).
    """
    if not isinstance(cfg, Config):
        raise TypeError(f"cfg must be a pml.config.Config, got {type(cfg).__name__}")
    name = _experiment_name(run)
    path = entry_path(run, cfg, root)
    meta = {
        "experiment": name,
        "config": cfg.to_dict(),
        "config_hash": cfg.stable_hash(),
        "source_hash": source_hash(),
        "versions": library_versions(),
    }
    if path.exists() and not force:
        try:
            stored = pickle.loads(path.read_bytes())
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            stored = None  # unreadable (e.g. a class was renamed): recompute
        if isinstance(stored, dict) and {k: stored.get("meta", {}).get(k) for k in meta} == meta:
            return stored["result"]
    start = time.perf_counter()
    result = run(cfg)
    meta["seconds"] = time.perf_counter() - start
    _atomic_write_bytes(path, pickle.dumps({"meta": meta, "result": result}))
    _atomic_write_bytes(path.with_suffix(".json"), json.dumps(meta, indent=2, default=str).encode())
    return result
