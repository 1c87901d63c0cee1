"""The import closure of a task's module: the ``pml`` modules it imports, directly or not, read from the source.

A task's key hashes the code of exactly these modules, so an edit elsewhere in ``pml`` keeps stored results valid while
an edit to anything the task runs invalidates them. Imports are read statically, so nothing is imported to compute a
key. The engine itself is in no closure: it decides where a task runs, not what it computes (a change to the stored
format bumps ``pml.engine.store.FORMAT`` instead)."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import sys
from functools import lru_cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def _in_pml(name: str) -> bool:
    return name == "pml" or name.startswith("pml.")


def _root(root: Path | None) -> Path:
    return PACKAGE_DIR if root is None else Path(root)


def _outside_path(name: str) -> Path | None:
    """The source file of a module outside ``pml`` (already imported, or found without importing it)."""
    module = sys.modules.get(name)
    origin = getattr(module, "__file__", None) if module is not None else None
    if origin is None:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return None
        origin = spec.origin if spec is not None else None
    return Path(origin) if origin and origin.endswith(".py") and Path(origin).is_file() else None


def module_path(name: str, root: Path | None = None) -> Path | None:
    """The file of module ``name`` (``pml`` ones under ``root``); None for a compiled or missing module."""
    if not _in_pml(name):
        return _outside_path(name)
    parts = name.split(".")[1:]
    base = _root(root).joinpath(*parts)
    candidates = [base.with_suffix(".py"), base / "__init__.py"] if parts else [base / "__init__.py"]
    return next((c for c in candidates if c.is_file()), None)


def _statements(body: list[ast.stmt]):
    """Every statement, nested ones included (imports are statements: expressions need not be visited)."""
    for node in body:
        yield node
        for attr in ("body", "orelse", "finalbody", "handlers", "cases"):
            inner = getattr(node, attr, None)
            if isinstance(inner, list):
                yield from _statements(inner)


def _imported(name: str, path: Path) -> set[str]:
    """``pml`` modules named by the import statements of one file (relative imports resolved)."""
    stat = path.stat()
    return set(_imported_cached(name, path, stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=None)
def _imported_cached(name: str, path: Path, mtime_ns: int, size: int) -> frozenset[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _statements(ast.parse(path.read_bytes(), filename=str(path)).body):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # `from pml import data`
    return frozenset(m for m in found if _in_pml(m))


def _executed(body: list[ast.stmt]):
    """The statements that run when a module is imported: everything but the bodies of functions."""
    for node in body:
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for attr in ("body", "orelse", "finalbody", "handlers", "cases"):
            inner = getattr(node, attr, None)
            if isinstance(inner, list):
                yield from _executed(inner)


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@lru_cache(maxsize=None)
def _edges(name: str, path: Path, mtime_ns: int, size: int, on_import_only: bool, root: Path | None
           ) -> tuple[frozenset[str], frozenset[str]]:
    """(modules whose code may run, packages only passed through) named by one file's import statements."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_bytes(), filename=str(path)).body
    used: set[str] = set()
    for node in (_executed(tree) if on_import_only else _statements(tree)):
        if isinstance(node, ast.Import):
            used.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                module = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:  # `from pml import data` uses the module pml.data; `from pml import fit`, pml
                sub = f"{module}.{alias.name}"
                used.add(sub if alias.name != "*" and _in_pml(sub) and module_path(sub, root) else module)
    used = {m for m in used if _in_pml(m)}
    passed = {p for m in used for p in _prefixes(m)} - used
    return frozenset(used), frozenset(passed)


def _excluded(name: str) -> bool:
    """The engine decides where and when a task runs, never what it computes: not part of any closure."""
    return name == "pml.engine" or name.startswith("pml.engine.")


@lru_cache(maxsize=None)
def import_closure(name: str, root: Path | None = None) -> tuple[str, ...]:
    """The modules whose source can change what module ``name`` computes: itself and the ``pml`` modules it imports,
    recursively, with the import-time statements of the packages on the way; ``pml.engine`` excluded."""
    mode: dict[str, bool] = {}  # module -> followed on import only (a package passed through)
    todo = [(name, False)] + [(p, True) for p in _prefixes(name) if _in_pml(name)]
    while todo:
        module, on_import_only = todo.pop()
        if _excluded(module) or mode.get(module, True) is False or mode.get(module) is on_import_only:
            continue
        path = module_path(module, root)
        if path is None:
            continue
        mode[module] = on_import_only
        stat = path.stat()
        used, passed = _edges(module, path, stat.st_mtime_ns, stat.st_size, on_import_only, root)
        todo.extend([(m, False) for m in used] + [(m, True) for m in passed])
    return tuple(sorted(mode))


def code_fingerprint(source: bytes, filename: str = "<module>") -> str:
    """The module's code without comments, docstrings and layout (a dump of its syntax tree): rewording a docstring
    keeps every task key; any change to what the code does changes it."""
    tree = ast.parse(source, filename=filename)
    for node in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            body = getattr(node, name, None)
            if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
                kept = [s for s in body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                                                and isinstance(s.value.value, str))]
                setattr(node, name, kept or [ast.Pass()])
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


@lru_cache(maxsize=None)
def closure_hash(name: str, root: Path | None = None) -> str:
    """SHA-256 over the name and code fingerprint of every module in ``import_closure(name)``."""
    digest = hashlib.sha256()
    for module in import_closure(name, root):
        path = module_path(module, root)
        digest.update(module.encode() + b"\0")
        digest.update(code_fingerprint(path.read_bytes(), str(path)).encode() + b"\0")
    return digest.hexdigest()


_generation = [0]


def generation() -> int:
    """Bumped by :func:`clear`: tasks memoise their key for one generation."""
    return _generation[0]


def clear() -> None:
    """Forget memoised closures and keys (after editing sources, or after pointing ``PACKAGE_DIR`` elsewhere)."""
    import_closure.cache_clear()
    closure_hash.cache_clear()
    _imported_cached.cache_clear()
    _edges.cache_clear()
    _generation[0] += 1
