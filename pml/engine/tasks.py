"""Tasks and sweeps: the unit of paper-scale work and the configs that list and assemble them.

A :class:`Task` is a frozen config (plain fields) whose :meth:`Task.run` is a pure function of its fields and of
the results of the tasks it names in :meth:`Task.inputs`; it returns plain data (a dict of numbers, strings,
NumPy arrays, lists and dicts of these), never objects of our classes, so a result computed on a cluster is a file
anyone can read. Its :meth:`Task.key` hashes the fields that change the numbers (execution settings such as
``threads`` and ``device`` are left out), the source of the ``pml`` modules its class's module imports
(:mod:`pml.engine.closure`) and the numerical library versions.

A :class:`Sweep` is a config that yields its tasks and assembles the chapter's result from their results, so a
figure's grid (seeds x sizes x depths) becomes many independent tasks while the chapter keeps one result object.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import math
import platform
from functools import lru_cache
from importlib import metadata
from typing import Any, ClassVar, Sequence

from pml.config import Config, _canonical
from pml.engine import closure
from pml.engine.closure import closure_hash

VERSIONED = ("numpy", "scipy", "sympy", "torch")  # the libraries whose arithmetic a task's numbers depend on


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """Python (major.minor) and numerical library versions: part of every key (a new BLAS or torch may change the
    digits; a Python bug-fix release does not change floating-point arithmetic)."""
    versions = {"python": ".".join(platform.python_version_tuple()[:2])}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


@dataclasses.dataclass(frozen=True)
class Task(Config):
    """One independent unit of work. Subclasses are frozen dataclasses that implement :meth:`run`."""

    # Fields that say how, not what: never part of the key (a result does not depend on them, up to rounding).
    EXECUTION_FIELDS: ClassVar[frozenset[str]] = frozenset({"threads", "device", "member_memory_gb"})

    def run(self, **inputs: dict) -> dict:
        """Compute the result (plain data) from the fields and the results of :meth:`inputs`, by name."""
        raise NotImplementedError(f"{type(self).__name__}.run")

    def inputs(self) -> dict[str, "Task"]:
        """Tasks whose results this one needs (e.g. the BFGS run a low-curvature stage starts from)."""
        return {}

    def cost(self) -> float:
        """Estimated CPU-seconds on one core of this machine (a cost model from the task's sizes, constants
        measured here): orders submission (largest first) and :mod:`pml.engine.plan`'s CPU-hours."""
        return 1.0

    def gpu(self) -> bool:
        return str(getattr(self, "device", "cpu")).startswith("cuda")

    def resources(self) -> dict[str, int]:
        """Dask worker resources: a GPU task runs only on workers started with ``--resources GPU=1``."""
        return {"GPU": 1} if self.gpu() else {}

    @classmethod
    def task_type(cls) -> str:
        return f"{cls.__module__}.{cls.__qualname__}"

    def key_fields(self) -> dict[str, Any]:
        """The fields that change the numbers, in canonical (JSON, exact-float) form."""
        return {f.name: _canonical(getattr(self, f.name)) for f in dataclasses.fields(self)
                if f.name not in self.EXECUTION_FIELDS}

    def source_hash(self) -> str:
        """SHA-256 of the source of the modules this task's class can run (:mod:`pml.engine.closure`)."""
        return closure_hash(type(self).__module__)

    def key(self) -> str:
        """Hex SHA-256 of the task type, its key fields, its import closure's source and the library versions."""
        memo = self.__dict__.get("_key_memo")  # frozen: memoised through __dict__, dropped by closure.clear()
        if memo is not None and memo[0] == closure.generation():
            return memo[1]
        payload = json.dumps({"type": self.task_type(), "fields": self.key_fields(),
                              "source": self.source_hash(), "versions": library_versions()},
                             sort_keys=True)
        key = hashlib.sha256(payload.encode()).hexdigest()
        object.__setattr__(self, "_key_memo", (closure.generation(), key))
        return key

    def fields_json(self) -> dict[str, Any]:
        """Every field (execution settings included) as JSON that :func:`load_task` turns back into this task."""
        return {f.name: to_json(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def label(self) -> str:
        """One line for progress and error messages: the type and every field."""
        fields = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self))
        return f"{type(self).__name__}({fields})"


@dataclasses.dataclass(frozen=True)
class Sweep(Config):
    """A config that lists independent tasks and assembles one result from theirs."""

    def tasks(self) -> list[Task]:
        raise NotImplementedError(f"{type(self).__name__}.tasks")

    def assemble(self, results: Sequence[dict]) -> Any:
        """The step's result from the task results, in the order of :meth:`tasks`."""
        raise NotImplementedError(f"{type(self).__name__}.assemble")


def class_path(cls: type) -> str:
    """``module:qualname``, what :func:`load_task` imports."""
    return f"{cls.__module__}:{cls.__qualname__}"


def _import(path: str) -> Any:
    module, _, qualname = path.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def to_json(value: Any) -> Any:
    """A config value as JSON, losslessly: tuples, non-finite floats, dicts with any keys and nested configs are
    tagged so that :func:`from_json` rebuilds the identical value (finite floats round-trip through JSON)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__dataclass__": class_path(type(value)),
                "fields": {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, tuple):
        return {"__tuple__": [to_json(v) for v in value]}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {"__dict__": [[to_json(k), to_json(v)] for k, v in value.items()]}
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item"):  # numpy scalar
        return to_json(value.item())
    raise TypeError(f"config values must be plain data, got {type(value).__name__}: {value!r}")


def from_json(value: Any) -> Any:
    """The inverse of :func:`to_json`."""
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if isinstance(value, dict):
        if "__tuple__" in value:
            return tuple(from_json(v) for v in value["__tuple__"])
        if "__float__" in value:
            return float(value["__float__"])
        if "__dict__" in value:
            return {from_json(k): from_json(v) for k, v in value["__dict__"]}
        if "__dataclass__" in value:
            return _import(value["__dataclass__"])(**{k: from_json(v) for k, v in value["fields"].items()})
        raise ValueError(f"untagged object in a config: {sorted(value)}")
    return value


def load_task(class_name: str, fields: dict[str, Any]) -> Task:
    """The task of class ``module:qualname`` with fields from :meth:`Task.fields_json` (imports the module)."""
    cls = _import(class_name)
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise TypeError(f"{class_name} is not a pml.engine.Task")
    return cls(**{k: from_json(v) for k, v in fields.items()})


def graph(tasks: Sequence[Task]) -> list[Task]:
    """The tasks and, recursively, their inputs, each once, inputs before the tasks that need them."""
    order: list[Task] = []
    seen: set[str] = set()

    def visit(task: Task) -> None:
        key = task.key()
        if key in seen:
            return
        for dep in task.inputs().values():
            visit(dep)
        seen.add(key)
        order.append(task)

    for task in tasks:
        visit(task)
    return order
