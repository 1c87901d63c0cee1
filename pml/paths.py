"""Where things live. Everything is resolved from the repository root, never from the cwd."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def repo_root() -> Path:
    """The project root: the folder holding ``_toc.yml`` above this package."""
    return _PACKAGE_DIR.parent


def book_dir() -> Path:
    return repo_root() / "book"


def params_dir() -> Path:
    """Profile files ``book/_params/<profile>.yaml``."""
    return book_dir() / "_params"


def build_dir() -> Path:
    return repo_root() / "_build"


def results_dir() -> Path:
    """The results store of the tasks (see :mod:`pml.engine.store`)."""
    return build_dir() / "results"


def executed_dir(profile: str) -> Path:
    """Executed notebooks of one profile, mirroring ``book/``."""
    return build_dir() / "executed" / profile


def figures_dir(profile: str) -> Path:
    return build_dir() / "figures" / profile


def claims_dir(profile: str) -> Path:
    """Per-chapter measured values and verdicts, ``<chapter>.json``."""
    return build_dir() / "claims" / profile


STAGE_ENV = "PML_STAGE_DIR"  # set by the book runner for the kernel of the chapter it executes


def output_dir(kind: str, profile: str) -> Path:
    """Where a chapter writes its ``figures`` or ``claims``: ``_build/<kind>/<profile>``, or, under the book runner, the
    run's staging folder (``$PML_STAGE_DIR``), moved into place only when the chapter succeeds."""
    stage = os.environ.get(STAGE_ENV)
    return Path(stage) / kind if stage else build_dir() / kind / profile


def html_dir() -> Path:
    return build_dir() / "html"
