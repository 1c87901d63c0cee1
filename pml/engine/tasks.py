"""Tasks and sweeps: the unit of paper-scale work and the configs that list and assemble them.

A :class:`Task` is a frozen config whose :meth:`Task.run` is a pure function of its fields and its inputs' results,
returning plain data; :meth:`Task.key` hashes the fields that change the numbers, the code its module runs
(:mod:`pml.engine.closure`) and the library versions. A :class:`Sweep` yields tasks and assembles their results.
:func:`load_task` rebuilds a task from its class name and fields only through a registry (:data:`PML_TASKS` and the
classes of imported modules): a name read from data is never imported or called."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import math
import platform
import re
from functools import lru_cache
from importlib import metadata
from typing import Any, ClassVar, Sequence, TypeVar

from pml.config import Config, _canonical
from pml.engine import closure
from pml.engine.closure import closure_hash

VERSIONED = ("numpy", "scipy", "sympy", "torch")  # the libraries whose arithmetic a task's numbers depend on

# pml's own task classes (``module:qualname``): names a results archive may hold that are known without importing
# anything; :func:`task_class` imports a module of this list (and only of this list) to rebuild one of them.
# tests/engine/test_archive.py checks that it lists every Task subclass defined under pml/.
PML_TASKS = (
    "pml.experiments.beyond:BFGSTask",
    "pml.experiments.beyond:BenchTask",
    "pml.experiments.introduction:DecompositionTask",
    "pml.experiments.introduction:FloorTask",
    "pml.experiments.introduction:PiecewiseTask",
    "pml.experiments.network_sweep:NetworkTask",
    "pml.experiments.nonlinear_tasks:DotProductTask",
    "pml.experiments.nonlinear_tasks:GadgetCurveTask",
    "pml.experiments.nonlinear_tasks:GadgetTruncationTask",
    "pml.experiments.nonlinear_tasks:GridPointTask",
    "pml.experiments.nonlinear_tasks:SplineCurveTask",
    "pml.experiments.nonlinear_tasks:YRmsTask",
    "pml.experiments.optimization:AdamTask",
    "pml.experiments.optimization:BFGSTask",
    "pml.experiments.optimization:HessianTask",
    "pml.experiments.optimization:LowCurvatureTask",
    "pml.experiments.piecewise_linear:LinearRegionsTask",
    "pml.experiments.simplex_sweep:SimplexTask",
    "pml.experiments.users_guide:CsvTask",
    "pml.experiments.users_guide:FitTask",
)
MAX_DEPTH = 32  # nesting of a config value (tuples in tuples, a task in a task): ours are a few levels deep
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_REGISTRY: dict[str, type] = {}  # module:qualname -> Task subclass or registered config class, filled by code
C = TypeVar("C", bound=type)
_NESTED = object()  # what checking (not building) a nested config gives


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
    # True for tasks whose numbers amplify rounding (long optimiser trajectories): another CPU model's kernels give
    # other digits, so `pml results verify` compares them only with results from the same CPU model.
    ROUNDING_SENSITIVE: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[class_path(cls)] = cls  # defined by code that was imported: may be rebuilt from its name

    def run(self, **inputs: dict) -> dict:
        """Compute the result (plain data) from the fields and the results of :meth:`inputs`, by name.

        A pure function of the key fields and ``inputs``: the store caches its result under :meth:`key`.

        Parameters
        ----------
        **inputs : dict
            The results of the tasks of :meth:`inputs`, under the same names.

        Returns
        -------
        dict
            The result: JSON-like data and numpy arrays, what :class:`pml.engine.Store` saves.
        """
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
        """The independent tasks of this sweep.

        Returns
        -------
        list of Task
            The tasks, in the order :meth:`assemble` expects their results.
        """
        raise NotImplementedError(f"{type(self).__name__}.tasks")

    def assemble(self, results: Sequence[dict]) -> Any:
        """The step's result from the task results.

        Parameters
        ----------
        results : sequence of dict
            The results of :meth:`tasks`, in its order.

        Returns
        -------
        object
            What the chapter draws (usually a small dataclass of arrays).
        """
        raise NotImplementedError(f"{type(self).__name__}.assemble")


def class_path(cls: type) -> str:
    """``module:qualname``, what :func:`load_task` imports."""
    return f"{cls.__module__}:{cls.__qualname__}"


def register(cls: C) -> C:
    """Allow a config dataclass to be rebuilt from its name when it sits in a task's field (a decorator)."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"register() takes a dataclass, got {cls!r}")
    _REGISTRY[class_path(cls)] = cls
    return cls


def known_class(name: Any) -> bool:
    """Whether ``name`` (``module:qualname``) is a registered class or one of :data:`PML_TASKS`; imports nothing."""
    return isinstance(name, str) and (name in _REGISTRY or name in PML_TASKS)


def task_class(name: Any, *, task: bool = True) -> type:
    """The registered class named ``module:qualname``, importing its module only if it is one of :data:`PML_TASKS`."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"class name {_short(name)} is not of the form module:qualname")
    if name not in _REGISTRY and name in PML_TASKS:
        module = PML_TASKS[PML_TASKS.index(name)].partition(":")[0]  # the constant's own text, not the data's
        importlib.import_module(module)  # its Task subclasses register themselves
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ValueError(f"class {name!r} is not a known task class (pml's own tasks and the Task subclasses of "
                         "modules imported here); nothing was imported")
    if task and not issubclass(cls, Task):
        raise ValueError(f"class {name!r} is not a pml.engine.Task")
    return cls


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    """The inverse of :func:`to_json`: plain JSON values and the tagged forms only; a nested config must be of a
    registered class (:func:`task_class`) and have exactly its fields. ValueError, naming the value, otherwise."""
    return _walk(value, "value", 0, build=True)


def _walk(value: Any, where: str, depth: int, *, build: bool) -> Any:
    """The value :func:`to_json` wrote, rebuilt (``build``) or only checked (nested classes need only be known)."""
    if depth > MAX_DEPTH:
        raise ValueError(f"{where}: nested more than {MAX_DEPTH} levels deep")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):  # to_json tags non-finite floats
            raise ValueError(f"{where}: untagged non-finite float {value!r}")
        return value
    if isinstance(value, list):
        return [_walk(v, f"{where}[{i}]", depth + 1, build=build) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        raise ValueError(f"{where}: a {type(value).__name__} is not plain JSON")
    tags = sorted(map(str, value))
    if tags == ["__tuple__"] and isinstance(value["__tuple__"], list):
        return tuple(_walk(v, f"{where}[{i}]", depth + 1, build=build) for i, v in enumerate(value["__tuple__"]))
    if tags == ["__float__"] and value["__float__"] in ("nan", "inf", "-inf"):
        return float(value["__float__"])
    if tags == ["__dict__"] and isinstance(value["__dict__"], list):
        return _walk_dict(value["__dict__"], where, depth, build=build)
    if tags == ["__dataclass__", "fields"]:
        name = value["__dataclass__"]
        inner = f"{where} ({_short(name)})"
        if build:
            try:
                cls = task_class(name, task=False)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
            return cls(**_fields(cls, value["fields"], inner, depth + 1))
        check_task_json(name, value["fields"], where=inner, depth=depth + 1, task=False)
        return _NESTED
    raise ValueError(f"{where}: untagged or malformed object in a config (keys {_short(tags)})")


def _walk_dict(pairs: list, where: str, depth: int, *, build: bool) -> dict:
    """A tagged dict's [key, value] pairs (:func:`_walk`), its keys plain and hashable."""
    out = {}
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, list) and len(pair) == 2):
            raise ValueError(f"{where}: item {i} of a tagged dict is not a [key, value] pair")
        k = _walk(pair[0], f"{where} key {i}", depth + 1, build=build)
        if not (k is None or isinstance(k, (bool, int, float, str, tuple))):
            raise ValueError(f"{where}: key {i} of a tagged dict is a {type(k).__name__}")
        try:
            hash(k)
        except TypeError:
            raise ValueError(f"{where}: key {i} of a tagged dict is not hashable") from None
        out[k] = _walk(pair[1], f"{where}[{_short(k, 40)}]", depth + 1, build=build)
    return out


def _fields(cls: type, fields: Any, where: str, depth: int, build: bool = True) -> dict[str, Any]:
    """Keyword arguments for ``cls`` from its JSON fields: exactly its own fields, plain JSON of their types."""
    if not isinstance(fields, dict):
        raise ValueError(f"{where}: fields must be an object, got {type(fields).__name__}")
    own = {f.name: f for f in dataclasses.fields(cls)}
    unknown, missing = sorted(map(str, set(fields) - set(own))), sorted(set(own) - set(fields))
    if unknown or missing:
        raise ValueError(f"{where}: " + "; ".join(
            ([f"unknown field(s) {_short(unknown)}"] if unknown else [])
            + ([f"missing field(s) {missing}"] if missing else [])) + f"; valid: {sorted(own)}")
    kwargs = {}
    for name, spec in own.items():
        value = _walk(fields[name], f"{where}.{name}", depth, build=build)
        hint = spec.type if isinstance(spec.type, str) else getattr(spec.type, "__name__", str(spec.type))
        if not _matches(value, str(hint)):
            raise ValueError(f"{where}.{name}: {_short(value)} is not of type {hint}")
        if spec.init:
            kwargs[name] = value
    return kwargs


def _split(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == "["
        depth -= ch == "]"
        if ch == sep and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    return [*parts, text[start:].strip()]


def _matches(value: Any, hint: str) -> bool:
    """Whether a rebuilt field value fits its annotation; annotations this does not read accept any plain value."""
    if value is _NESTED:  # a nested config only checked, not built: its class was checked
        return True
    alternatives = _split(hint, "|")
    if len(alternatives) > 1:
        return any(_matches(value, h) for h in alternatives)
    hint = hint.removeprefix("typing.")
    if hint == "None":
        return value is None
    if hint in ("int", "float", "str", "bool"):
        if isinstance(value, bool):
            return hint == "bool"
        return isinstance(value, {"int": int, "float": (int, float), "str": str, "bool": bool}[hint])
    if hint.startswith(("tuple[", "Tuple[")) and hint.endswith("]"):
        if not isinstance(value, (tuple, list)):  # a list where code passed one: its key is the same
            return False
        args = _split(hint[hint.index("[") + 1:-1], ",")
        if len(args) == 2 and args[1] == "...":
            return all(_matches(v, args[0]) for v in value)
        return len(args) == len(value) and all(_matches(v, a) for v, a in zip(value, args))
    if any(cls.__qualname__ == hint for cls in _REGISTRY.values()):
        return dataclasses.is_dataclass(value) and type(value).__qualname__ == hint
    return True


def load_task(class_name: str, fields: dict[str, Any]) -> Task:
    """The task of class ``module:qualname`` with fields from :meth:`Task.fields_json`."""
    cls = task_class(class_name)
    return cls(**_fields(cls, fields, class_name, 0))


def check_task_json(class_name: Any, fields: Any, *, where: str | None = None, depth: int = 0,
                    task: bool = True) -> None:
    """Check a task's class name and JSON fields as :func:`load_task` would, importing and building nothing."""
    where = where or (class_name if isinstance(class_name, str) and _NAME.fullmatch(class_name) else _short(class_name))
    if not isinstance(class_name, str) or not _NAME.fullmatch(class_name):
        raise ValueError(f"{where}: class name {_short(class_name)} is not of the form module:qualname")
    if not known_class(class_name):
        raise ValueError(f"{where}: class {class_name!r} is not a known task class (pml's own tasks and the Task "
                         "subclasses of modules imported here); nothing was imported")
    cls = _REGISTRY.get(class_name)
    if task and cls is not None and not issubclass(cls, Task):
        raise ValueError(f"{where}: class {class_name!r} is not a pml.engine.Task")
    if not isinstance(fields, dict):
        raise ValueError(f"{where}: fields must be an object, got {type(fields).__name__}")
    if cls is not None:
        _fields(cls, fields, where, depth, build=False)
    else:
        for name, value in fields.items():
            _walk(value, f"{where}.{name}", depth, build=False)


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
