"""The import closure of a ``pml`` module: the ``pml`` modules it imports, directly or not, read from the source.

A task's cache key hashes the source of exactly these modules, so an edit elsewhere in ``pml`` (a docstring of the
browser check, a new chapter) keeps a month of cluster results valid, while an edit to anything the task runs
invalidates them. Imports are read statically (every ``import`` statement in the file, function-level ones
included), so nothing is imported to compute a key.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def module_path(name: str, root: Path = PACKAGE_DIR) -> Path | None:
    """The file of ``pml`` module ``name`` (``pml.a.b``), or None when there is none (a name inside a module)."""
    parts = name.split(".")[1:]
    base = root.joinpath(*parts) if parts else root
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(name: str, path: Path) -> set[str]:
    """``pml`` modules named by the import statements of one file (relative imports resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
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
    return {m for m in found if m == "pml" or m.startswith("pml.")}


def _with_parents(name: str) -> list[str]:
    """Importing ``pml.a.b`` runs ``pml/__init__``, ``pml/a/__init__`` and ``pml/a/b``."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


@lru_cache(maxsize=None)
def import_closure(name: str, root: Path = PACKAGE_DIR) -> tuple[str, ...]:
    """Every ``pml`` module that importing ``name`` can execute, sorted; ``name`` and its packages included."""
    seen: set[str] = set()
    todo = _with_parents(name)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        path = module_path(module, root)
        if path is None:
            continue
        seen.add(module)
        for imported in _imported(module, path):
            todo.extend(m for m in _with_parents(imported) if m not in seen)
    return tuple(sorted(seen))


@lru_cache(maxsize=None)
def closure_hash(name: str, root: Path = PACKAGE_DIR) -> str:
    """SHA-256 over the name and bytes of every module in ``import_closure(name)``."""
    digest = hashlib.sha256()
    for module in import_closure(name, root):
        digest.update(module.encode() + b"\0")
        digest.update(module_path(module, root).read_bytes() + b"\0")
    return digest.hexdigest()


def clear() -> None:
    """Forget memoised closures (tests that edit sources)."""
    import_closure.cache_clear()
    closure_hash.cache_clear()
